"""measures.spc against published worked examples and tables (DESIGN.md §5)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from measures.spc import (
    Signal,
    analyse,
    anhoej_critical_values,
    funnel,
    funnel_limits,
    p_chart_limits,
    run_chart_analysis,
    u_chart_limits,
    xmr_limits,
)

# ---------------------------------------------------------------------------------------------
# NHSRplotthedots vignette: "deviations" (moving-range screening)
# ---------------------------------------------------------------------------------------------

DEVIATIONS = [1, 2, 1, 2, 10, 1, 2, 1, 2, 1, 2, 1, 2, 1, 2, 1, 2, 1]


def test_nhsrplotthedots_deviations_unscreened() -> None:
    lim = xmr_limits(DEVIATIONS)
    assert round(lim.centre, 2) == 1.94
    assert round(float(lim.lower[0]), 2) == -3.06
    assert round(float(lim.upper[0]), 2) == 6.95
    result = analyse(DEVIATIONS)
    assert round(result.upper[0], 2) == 6.95 and round(result.lower[0], 2) == -3.06


def test_nhsrplotthedots_deviations_screened() -> None:
    # moving ranges 8 and 9 are >= 3.267 x mR-bar (6.15) and dropped: mR-bar becomes 1
    lim = xmr_limits(DEVIATIONS, screen_mr=True)
    assert lim.mr_bar == pytest.approx(1.0)
    assert round(lim.centre, 2) == 1.94
    assert round(float(lim.lower[0]), 2) == -0.72
    assert round(float(lim.upper[0]), 2) == 4.60
    result = analyse(DEVIATIONS, screen_mr=True, direction="down")
    assert round(result.upper[0], 2) == 4.60 and round(result.lower[0], 2) == -0.72
    # the 10 is beyond the upper limit, and with the narrower limits so are no other points
    assert result.signals[4] >= {Signal.ASTRONOMICAL_HIGH}
    astro = result.flags[Signal.ASTRONOMICAL_HIGH] | result.flags[Signal.ASTRONOMICAL_LOW]
    assert np.flatnonzero(astro).tolist() == [4]


# ---------------------------------------------------------------------------------------------
# Montgomery, Introduction to Statistical Quality Control 7th ed., Table 7.4 p-chart
# ---------------------------------------------------------------------------------------------


def test_montgomery_p_chart_table_7_4() -> None:
    # p-bar = 234 / 2450 = 0.0955 from 49 samples of n = 50; 3-sigma limits 0.2203 and
    # 0.0955 - 0.1247 < 0, so LCL = 0. Only the total matters for the limits, so the 234
    # nonconforming units are spread over the samples arbitrarily.
    counts = [5] * 38 + [4] * 11
    assert sum(counts) == 234 and len(counts) * 50 == 2450
    lim = p_chart_limits(counts, [50] * 49)
    assert lim.centre == pytest.approx(234 / 2450)
    assert round(lim.centre, 4) == 0.0955
    # the book rounds sigma = 0.0416 before multiplying (0.0955 + 3 x 0.0416 = 0.2203);
    # unrounded the limit is 0.22021
    assert float(lim.upper[0]) == pytest.approx(0.2203, abs=1e-4)
    assert float(lim.sigma[0]) == pytest.approx(0.0416, abs=5e-5)
    assert np.all(lim.lower == 0.0)
    result = analyse(counts, [50] * 49, chart="p")
    assert np.allclose(result.upper, lim.upper) and np.all(result.lower == 0.0)


def test_p_chart_limits_vary_with_the_denominator() -> None:
    num, den = [10, 30, 5, 40], [100, 200, 50, 400]
    lim = p_chart_limits(num, den)
    p = 85 / 750
    for i, n in enumerate(den):
        half = 3 * math.sqrt(p * (1 - p) / n)
        assert lim.upper[i] == pytest.approx(p + half)
        assert lim.lower[i] == pytest.approx(max(0.0, p - half))
        assert lim.upper_2s[i] == pytest.approx(p + 2 * half / 3)


def test_u_chart_limits() -> None:
    # Montgomery 7th ed. §7.3: u-bar +/- 3 sqrt(u-bar / n_i), LCL floored at 0
    num, den = [3, 12, 7, 0], [1.5, 4.0, 2.0, 0.5]
    lim = u_chart_limits(num, den)
    u = 22 / 8.0
    for i, n in enumerate(den):
        assert lim.upper[i] == pytest.approx(u + 3 * math.sqrt(u / n))
        assert lim.lower[i] == pytest.approx(max(0.0, u - 3 * math.sqrt(u / n)))


def test_laney_p_prime_matches_a_direct_calculation() -> None:
    # Laney 2002: z_i = (p_i - p-bar) / sigma_i, sigma_z = mean |z_i - z_(i-1)| / 1.128,
    # limits p-bar +/- 3 sigma_i sigma_z.
    rng = np.random.default_rng(7)
    den = rng.integers(20_000, 60_000, 24)
    num = rng.binomial(den, rng.uniform(0.09, 0.11, 24))
    p = num.sum() / den.sum()
    sigma = np.sqrt(p * (1 - p) / den)
    z = (num / den - p) / sigma
    sigma_z = np.mean(np.abs(np.diff(z))) / 1.128
    lim = p_chart_limits(num, den, laney=True)
    assert lim.sigma_z == pytest.approx(sigma_z)
    assert np.allclose(lim.upper, p + 3 * sigma * sigma_z)
    assert sigma_z > 1  # over-dispersed data: p' limits are wider than p limits
    plain = p_chart_limits(num, den)
    assert np.all(lim.upper > plain.upper)
    result = analyse(num, den, chart="p", laney=True)
    assert np.allclose(result.upper, lim.upper)
    assert result.segments[0].sigma_z == pytest.approx(sigma_z)


def test_laney_u_prime() -> None:
    rng = np.random.default_rng(3)
    den = rng.uniform(500, 1500, 20)
    num = rng.poisson(den * rng.uniform(1.5, 2.5, 20))
    u = num.sum() / den.sum()
    sigma = np.sqrt(u / den)
    sigma_z = np.mean(np.abs(np.diff((num / den - u) / sigma))) / 1.128
    lim = u_chart_limits(num, den, laney=True)
    assert np.allclose(lim.upper, u + 3 * sigma * sigma_z)
    assert np.allclose(lim.lower, np.maximum(0, u - 3 * sigma * sigma_z))


# ---------------------------------------------------------------------------------------------
# Anhøj & Olesen 2014, critical values for run charts
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("n", "longest_run_max", "crossings_min"),
    [(10, 6, 2), (20, 7, 6), (24, 8, 8), (30, 8, 10)],
)
def test_anhoej_critical_values_table(n: int, longest_run_max: int, crossings_min: int) -> None:
    # signal when longest run > longest_run_max or crossings < crossings_min
    assert anhoej_critical_values(n) == (longest_run_max, crossings_min)
    # and these are round(log2 n) + 3 and R's qbinom(0.05, n - 1, 0.5)
    assert longest_run_max == round(math.log2(n)) + 3
    assert crossings_min == int(stats.binom.ppf(0.05, n - 1, 0.5))


def test_anhoej_critical_values_match_scipy_quantiles() -> None:
    for n in range(2, 400):
        run_max, cross_min = anhoej_critical_values(n)
        assert run_max == round(math.log2(n)) + 3
        assert cross_min == int(stats.binom.ppf(0.05, n - 1, 0.5)), n


def test_run_chart_rules() -> None:
    # 20 points alternating about the median: 19 crossings, longest run 1 -> random
    alternating = [1, 3] * 10
    res = run_chart_analysis(alternating)
    assert (res.n_useful, res.longest_run, res.crossings) == (20, 1, 19)
    assert not res.signal
    # 8 below then 12 above the median 10 -> longest run 12 > 7, 1 crossing < 6
    shifted = [5] * 8 + [15] * 12
    res = run_chart_analysis(shifted, centre=10)
    assert res.longest_run == 12 and res.runs_signal
    assert res.crossings == 1 and res.crossings_signal


def test_run_chart_drops_points_on_the_median() -> None:
    # the points on the centre line neither count nor break a run (qicharts2)
    res = run_chart_analysis([1, 1, 1, 5, 1, 1, 1, 9, 9, 9, 5, 9], centre=5)
    assert res.n_useful == 10
    assert res.longest_run == 6  # 1 1 1 (5) 1 1 1
    assert res.crossings == 1


# ---------------------------------------------------------------------------------------------
# Funnel plots, Spiegelhalter 2005
# ---------------------------------------------------------------------------------------------


def test_funnel_normal_limits_for_proportions() -> None:
    num, den = np.array([5, 40, 12, 90, 3]), np.array([50, 400, 100, 1000, 10])
    res = funnel(num, den)
    theta = num.sum() / den.sum()
    assert res.theta == pytest.approx(theta)
    assert res.levels == (1.96, 3.09)
    se = np.sqrt(theta * (1 - theta) / den)
    assert np.allclose(res.upper[0], np.clip(theta + 1.96 * se, 0, 1))
    assert np.allclose(res.lower[1], np.clip(theta - 3.09 * se, 0, 1))
    assert np.allclose(res.z, (num / den - theta) / se)


def test_funnel_flags_units_outside_the_limits() -> None:
    num = np.array([50, 50, 50, 50, 600, 160])
    den = np.full(6, 1000)
    res = funnel(num, den)
    # theta = 0.16; 99.8 % limits 0.16 -/+ 3.09 x 0.0116 = 0.124 / 0.196
    assert res.outside[1].tolist() == [-1, -1, -1, -1, 1, 0]
    assert res.outside[0].tolist() == [-1, -1, -1, -1, 1, 0]


def test_funnel_poisson_rates() -> None:
    events, exposure = np.array([4, 20, 9]), np.array([1.0, 8.0, 3.0])
    lo, hi = funnel_limits(33 / 12, exposure, kind="rate", z=1.96)
    theta = 33 / 12
    assert np.allclose(hi, theta + 1.96 * np.sqrt(theta / exposure))
    assert np.allclose(lo, np.maximum(0, theta - 1.96 * np.sqrt(theta / exposure)))
    res = funnel(events, exposure, kind="rate")
    assert res.theta == pytest.approx(theta)


def test_funnel_exact_binomial_limits_by_interpolation() -> None:
    # Spiegelhalter 2005 appendix: r_p = p-quantile, alpha = (F(r_p) - p) / (F(r_p) - F(r_p - 1)),
    # limit = (r_p - alpha) / n. Worked here for n = 20, theta = 0.1, 95 % upper limit.
    p = stats.norm.cdf(1.96)
    r = stats.binom.ppf(p, 20, 0.1)
    f_r, f_below = stats.binom.cdf(r, 20, 0.1), stats.binom.cdf(r - 1, 20, 0.1)
    expected = (r - (f_r - p) / (f_r - f_below)) / 20
    assert r == 5
    lo, hi = funnel_limits(0.1, [20], z=1.96, exact=True)
    assert hi[0] == pytest.approx(expected)
    assert lo[0] == 0.0  # below zero: clipped
    # for large n the exact limits approach the normal ones
    lo_e, hi_e = funnel_limits(0.1, [1_000_000], z=3.09, exact=True)
    lo_n, hi_n = funnel_limits(0.1, [1_000_000], z=3.09)
    assert hi_e[0] == pytest.approx(hi_n[0], rel=1e-3)
    assert lo_e[0] == pytest.approx(lo_n[0], rel=1e-3)
    # exact Poisson limits too
    lo_p, hi_p = funnel_limits(2.0, [1_000_000.0], kind="rate", z=1.96, exact=True)
    assert hi_p[0] == pytest.approx(2.0 + 1.96 * math.sqrt(2.0 / 1e6), rel=1e-4)
    assert lo_p[0] < 2.0 < hi_p[0]


def test_funnel_overdispersion_multiplies_the_variance() -> None:
    rng = np.random.default_rng(11)
    den = rng.integers(200, 2000, 40)
    num = rng.binomial(den, rng.uniform(0.05, 0.25, 40))  # strongly over-dispersed
    plain = funnel(num, den)
    adjusted = funnel(num, den, overdispersion=True)
    zw = np.clip(plain.z, *np.quantile(plain.z, [0.1, 0.9]))
    phi = float(np.mean(zw**2))
    assert phi > 1
    assert adjusted.phi == pytest.approx(phi)
    theta = plain.theta
    assert np.allclose(
        adjusted.upper[0], np.clip(theta + 1.96 * np.sqrt(phi * theta * (1 - theta) / den), 0, 1)
    )
    # under-dispersed data are not narrowed
    even = funnel(np.full(10, 50), np.full(10, 500), overdispersion=True)
    assert even.phi == 1.0
