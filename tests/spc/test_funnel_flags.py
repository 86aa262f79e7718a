"""Exact funnel flags come from the count's tail probability, not the interpolated limits."""

import numpy as np
from scipy import stats

from measures.spc import funnel


def test_a_unit_at_ten_of_ten_is_not_an_alarm_when_the_pooled_value_is_ninety_percent():
    # θ = 0.9 exactly (90 of 100 overall): 10 of 10 has probability 0.9¹⁰ = 0.35.
    result = funnel([10, 80], [10, 90], theta=0.9, exact=True)
    assert result.upper[1][0] < 1.0  # the interpolated limit lies below 100 % …
    assert result.outside[1][0] == 0  # … yet the unit is within
    assert result.outside[0][0] == 0


def test_exact_flags_match_the_binomial_tails():
    rng = np.random.default_rng(7)
    den = rng.integers(5, 60, size=200)
    num = rng.binomial(den, 0.3)
    num[:5] = den[:5]  # some extreme units
    num[5:10] = 0
    result = funnel(num, den, theta=0.3, exact=True)
    for level, z in enumerate((1.96, 3.09)):
        p = stats.norm.cdf(-z)
        upper = stats.binom.sf(num - 1, den, 0.3) < p
        lower = stats.binom.cdf(num, den, 0.3) < p
        expected = np.where(upper, 1, np.where(lower, -1, 0))
        assert np.array_equal(result.outside[level], expected)
    assert (result.outside[1][:5] == 1).all()


def test_rates_flag_by_poisson_tails():
    result = funnel([30, 0, 10], [1.0, 1.0, 1.0], kind="rate", theta=10.0, exact=True)
    assert list(result.outside[1]) == [1, -1, 0]


def test_normal_flags_follow_the_limits():
    result = funnel([90, 50], [100, 100], theta=0.7)
    assert list(result.outside[1]) == [1, -1]
