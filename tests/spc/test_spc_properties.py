"""Property tests, rule details and the API contract of measures.spc."""

from __future__ import annotations

import json
import math
import time

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from measures.spc import (
    AssuranceIcon,
    PointClass,
    RuleConfig,
    SeriesAnalysis,
    Signal,
    analyse,
    assurance_icon,
    classify_points,
    special_cause_flags,
    xmr_limits,
)

finite = st.floats(min_value=-1e6, max_value=1e6, allow_nan=False, allow_infinity=False)


@given(value=finite, n=st.integers(min_value=1, max_value=300))
def test_constant_series_has_no_signal(value: float, n: int) -> None:
    for direction in ("up", "down", "neither"):
        result = analyse([value] * n, direction=direction)
        assert all(not s for s in result.signals)
        assert all(c is PointClass.COMMON for c in result.point_class)
        if n >= 13:
            assert result.variation_icon.value == "common_cause"


@given(
    base=st.lists(
        st.floats(min_value=0, max_value=100, allow_nan=False), min_size=13, max_size=120
    ),
    position=st.integers(min_value=0),
    sign=st.sampled_from([1, -1]),
)
def test_far_outlier_is_astronomical_exactly_there(base: list[float], position: int, sign: int):
    spread = max(base) - min(base) + 1.0
    i = position % (len(base) + 1)
    values = [*base[:i], float(np.mean(base)) + sign * 1e4 * spread, *base[i:]]
    result = analyse(values, direction="up")
    astro = result.flags[Signal.ASTRONOMICAL_HIGH] | result.flags[Signal.ASTRONOMICAL_LOW]
    assert np.flatnonzero(astro).tolist() == [i]
    expected = Signal.ASTRONOMICAL_HIGH if sign > 0 else Signal.ASTRONOMICAL_LOW
    assert expected in result.signals[i]


@given(values=st.lists(finite, min_size=2, max_size=200), screen=st.booleans())
def test_xmr_limits_are_symmetric_about_the_centre(values: list[float], screen: bool) -> None:
    lim = xmr_limits(values, screen_mr=screen)
    scale = 1e-9 * (1 + abs(lim.centre) + float(lim.sigma[0]))
    assert np.allclose(lim.upper - lim.centre, lim.centre - lim.lower, atol=scale)
    assert np.allclose(lim.upper_2s - lim.centre, lim.centre - lim.lower_2s, atol=scale)
    assert np.all(lim.lower <= lim.lower_2s) and np.all(lim.upper_2s <= lim.upper)


@st.composite
def proportions(draw: st.DrawFn) -> tuple[list[int], list[int]]:
    size = draw(st.integers(min_value=1, max_value=150))
    dens = draw(st.lists(st.integers(1, 10_000), min_size=size, max_size=size))
    nums = [draw(st.integers(0, d)) for d in dens]
    return nums, dens


@given(data=proportions(), laney=st.booleans())
def test_p_chart_limits_stay_within_0_and_1(data: tuple[list[int], list[int]], laney: bool):
    nums, dens = data
    result = analyse(nums, dens, chart="p", laney=laney, min_points=1 + 1)
    for line in (result.upper, result.lower, result.upper_2s, result.lower_2s):
        shown = line[~np.isnan(line)]
        assert np.all((shown >= 0) & (shown <= 1))
    assert np.all(result.lower[result.limits_shown] <= result.upper[result.limits_shown])


@given(data=proportions())
def test_u_chart_lower_limit_is_never_negative(data: tuple[list[int], list[int]]) -> None:
    nums, dens = data
    result = analyse(nums, dens, chart="u", min_points=2)
    shown = result.lower[result.limits_shown]
    assert np.all(shown >= 0)


@settings(max_examples=50)
@given(values=st.lists(finite, min_size=0, max_size=80), n_rebase=st.integers(0, 3))
def test_analyse_shapes_are_consistent(values: list[float], n_rebase: int) -> None:
    rebase = tuple(range(5, 5 * (n_rebase + 1), 5))
    result = analyse(values, rebase_at=rebase, direction="down", target=0.0)
    n = len(values)
    for arr in (result.y, result.centre, result.upper, result.lower, result.segment):
        assert arr.shape == (n,)
    assert len(result.signals) == len(result.point_class) == n
    json.dumps(result.as_dict())


# ---------------------------------------------------------------------------------------------
# Rule details
# ---------------------------------------------------------------------------------------------


def _flags(y, centre=0.0, sigma=1.0, rules=None):
    y = np.asarray(y, dtype=float)
    c = np.full(y.size, centre)
    return special_cause_flags(
        y, c, c + 3 * sigma, c - 3 * sigma, c + 2 * sigma, c - 2 * sigma, rules=rules
    )


def test_shift_needs_six_and_a_point_on_the_centre_breaks_it() -> None:
    assert _flags([1, 1, 1, 1, 1, 1])[Signal.SHIFT_HIGH].all()
    assert not _flags([1, 1, 1, 1, 1])[Signal.SHIFT_HIGH].any()
    on_centre = [1, 1, 1, 0, 1, 1, 1]
    assert not _flags(on_centre)[Signal.SHIFT_HIGH].any()
    neutral = _flags(on_centre, rules=RuleConfig(on_centre="neutral"))[Signal.SHIFT_HIGH]
    assert neutral.tolist() == [True, True, True, False, True, True, True]


def test_rule_lengths_are_configurable() -> None:
    seven = RuleConfig.nhsrplotthedots()
    assert (seven.shift_length, seven.trend_length) == (7, 7)
    assert not _flags([1] * 6, rules=seven)[Signal.SHIFT_HIGH].any()
    assert _flags([1] * 7, rules=seven)[Signal.SHIFT_HIGH].all()
    rising = [-0.5, -0.4, -0.3, -0.2, 0.2, 0.3]  # six increasing, crossing the centre
    assert _flags(rising)[Signal.TREND_HIGH].all()
    assert not _flags(rising, rules=seven)[Signal.TREND_HIGH].any()


def test_trend_tie_breaks_and_trends_cross_the_centre() -> None:
    assert not _flags([-0.5, -0.4, -0.3, -0.3, 0.2, 0.3, 0.4])[Signal.TREND_HIGH].any()
    falling = _flags([0.5, 0.4, 0.3, -0.2, -0.3, -0.4, 0.9])
    assert falling[Signal.TREND_LOW].tolist() == [True] * 6 + [False]


def test_two_of_three_rule() -> None:
    # 2 of 3 beyond 2 sigma, same side: those 2 flagged, the middle one not
    flags = _flags([2.5, 0.5, 2.5, -0.5])
    assert flags[Signal.TWO_OF_THREE_HIGH].tolist() == [True, False, True, False]
    # a point beyond 3 sigma does not count
    assert not _flags([2.5, 0.5, 3.5])[Signal.TWO_OF_THREE_HIGH].any()
    assert _flags([2.5, 0.5, 3.5])[Signal.ASTRONOMICAL_HIGH].tolist() == [False, False, True]
    # all three must be on the same side
    assert not _flags([2.5, -0.5, 2.5])[Signal.TWO_OF_THREE_HIGH].any()
    # a point exactly on a limit is not astronomical ("strictly outside")
    assert not _flags([3.0])[Signal.ASTRONOMICAL_HIGH].any()


def test_rules_can_be_switched_off() -> None:
    off = RuleConfig(astronomical=False, shift=False, trend=False, two_of_three=False)
    flags = _flags([5, 5, 5, 5, 5, 5, 6], rules=off)
    assert not any(a.any() for a in flags.values())


def test_improvement_wins_a_conflict() -> None:
    n = 3
    flags = {s: np.zeros(n, dtype=bool) for s in Signal}
    flags[Signal.TREND_HIGH][:] = True
    flags[Signal.SHIFT_LOW][1] = True
    assert classify_points(flags, "up")[1] is PointClass.IMPROVEMENT
    assert classify_points(flags, "down")[1] is PointClass.IMPROVEMENT
    assert classify_points(flags, "down")[0] is PointClass.CONCERN
    assert classify_points(flags, "neither")[1] is PointClass.NEITHER


def test_assurance_icon_on_the_limit_is_hit_and_miss() -> None:
    assert assurance_icon(10.0, "up", lower=0.0, upper=10.0) is AssuranceIcon.HIT_AND_MISS
    assert assurance_icon(None, "up", lower=0.0, upper=10.0) is None


def test_short_segment_gets_centre_and_run_chart_only() -> None:
    values = [20.0, 22, 19, 21, 20, 23, 18, 20, 21, 22, 19, 20, 21, 30, 31, 32, 33, 34]
    result = analyse(values, rebase_at=(13,), direction="up")
    assert result.limits_shown.tolist() == [True] * 13 + [False] * 5
    assert result.segments[1].run_chart is not None
    assert result.variation_icon is None  # the last point has no limits
    # by default no rule fires in the short segment; with rules_without_limits the trend does
    assert result.point_class[13:] == (PointClass.COMMON,) * 5
    loose = analyse(
        values, rebase_at=(13,), direction="up", rules=RuleConfig(rules_without_limits=True)
    )
    assert loose.point_class[14:] == (PointClass.IMPROVEMENT,) * 4


def test_missing_values_are_left_out() -> None:
    values = [20.0, 22, 19, 21, 20, 23, 18, 20, 21, 22, 19, 20, 21, 20]
    gap = [*values[:5], math.nan, *values[5:]]
    full, gapped = analyse(values), analyse(gap)
    assert gapped.point_class[5] is None and math.isnan(gapped.centre[5])
    assert gapped.upper[0] == pytest.approx(full.upper[0])
    assert [c for c in gapped.point_class if c is not None] == list(full.point_class)


def test_p_chart_zero_denominator_is_missing() -> None:
    result = analyse([1, 2, 0], [10, 20, 0], chart="p", min_points=2)
    assert result.point_class[2] is None
    assert result.centre[0] == pytest.approx(3 / 30)


def test_bad_input_is_rejected() -> None:
    with pytest.raises(ValueError):
        analyse([1, 2], [3, 4], chart="xmr")
    with pytest.raises(ValueError):
        analyse([1, 2], chart="p")
    with pytest.raises(ValueError):
        analyse([5, 2], [3, 4], chart="p")
    with pytest.raises(ValueError):
        analyse([1, 2], rebase_at=[np.datetime64("2023-01-01")])
    with pytest.raises(ValueError):
        analyse([1, 2, 3], baseline_points=1)
    with pytest.raises(ValueError):
        analyse([1, 2], chart="c")


def test_result_is_immutable() -> None:
    result = analyse(list(range(20)))
    assert isinstance(result, SeriesAnalysis)
    with pytest.raises(ValueError):
        result.upper[0] = 1.0
    with pytest.raises(AttributeError):
        result.variation_icon = None  # type: ignore[misc]


def test_fast_enough_for_the_aggregation_engine() -> None:
    # target < 2 ms for 260 points; the assertion leaves head room for slow CI machines
    rng = np.random.default_rng(0)
    y = rng.normal(50, 5, 260)
    den = rng.integers(50, 500, 260)
    num = rng.binomial(den, 0.2)
    analyse(y)  # warm up
    timings = []
    for _ in range(20):
        start = time.perf_counter()
        analyse(y, direction="up", target=55, rebase_at=(100, 200), baseline_points=20)
        analyse(num, den, chart="p", direction="down", laney=True)
        timings.append((time.perf_counter() - start) / 2)
    assert sorted(timings)[len(timings) // 2] < 0.010
