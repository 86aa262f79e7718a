"""Edge cases of measures.spc and measures.spc_batch: data far from zero, non-finite input, and
funnel limits at θ = 0 and θ = 1.

1. Tolerance. A point is "on" the centre line or a limit within ``spc._tol``: a few float64
   rounding errors of the centre's magnitude plus a billionth of the limits' width. It must
   never swamp the spread: the MDC v5.0 datasets (``test_spc_mdc.CASES``, NHS England Making
   Data Count) give the same colours shifted to 10⁹ or 10¹², or scaled to 10⁻⁹, and the
   Anhøj run chart counts the same useful points there (Anhøj & Olesen 2014).
2. Non-finite input. NaN is the missing marker; ±inf, values beyond ``spc.MAX_ABS_VALUE`` and
   limits that overflow raise ValueError naming the first bad position, in spc and spc_batch.
3. Funnels (Spiegelhalter 2005). At θ = 0 or 1 the limits are θ: units equal to θ are never
   flagged, others always; non-whole binomial denominators are rounded for the distribution
   and the division alike.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from measures import spc
from measures.spc_batch import analyse_many
from tests.spc.test_spc_batch import compare_batch, flat
from tests.spc.test_spc_mdc import CASES, CLASS_CODE, codes

SPECIAL = next(c for c in CASES if c.name == "Special cause - High is good")

#: (scale, offset): y → offset + scale·y. Each one made the old tolerance (1e-9·|centre| +
#: 1e-12) swamp the spread, except "as is" and "1e-9 y" (kept as controls).
TRANSFORMS = [
    pytest.param(1.0, 0.0, id="as-is"),
    pytest.param(1.0, 1e9, id="1e9+y"),
    pytest.param(1.0, 1e12, id="1e12+y"),
    pytest.param(1e-9, 0.0, id="1e-9*y"),
    pytest.param(1e-13, 1e-9, id="1e-9+1e-13*y"),
    pytest.param(1e-3, 1e9, id="1e9+1e-3*y"),
]


def moved(values: list[float], scale: float, offset: float) -> np.ndarray:
    return offset + scale * np.asarray(values, dtype=np.float64)


def signal_sets(result: spc.SeriesAnalysis) -> list[set[str]]:
    return [{str(s) for s in sig} for sig in result.signals]


# ---------------------------------------------------------------------------------------------
# 1. Tolerance follows the spread, not the distance from zero
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("scale", "offset"), TRANSFORMS)
@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_mdc_colours_survive_offsets_and_scales(case: Any, scale: float, offset: float) -> None:
    result = spc.analyse(
        moved(case.y, scale, offset),
        direction=case.direction,
        rebase_at=case.rebase_at,
        baseline_points=case.baseline_points,
    )
    assert codes(result) == case.colours


@pytest.mark.parametrize(("scale", "offset"), TRANSFORMS)
def test_astronomical_shift_and_two_of_three_far_from_zero(scale: float, offset: float) -> None:
    # MDC "Special cause": astronomical low p1, shift below p5-p10, an increasing trend
    # p17-p22, two-of-three above p25 and p27 (1-based)
    result = spc.analyse(moved(SPECIAL.y, scale, offset), direction="up")
    sig = signal_sets(result)
    assert [i for i, s in enumerate(sig) if "astronomical_low" in s] == [0]
    assert [i for i, s in enumerate(sig) if "shift_low" in s] == list(range(4, 10))
    assert [i for i, s in enumerate(sig) if "trend_high" in s] == list(range(16, 22))
    assert [i for i, s in enumerate(sig) if "two_of_three_high" in s] == [24, 26]
    assert sig == signal_sets(spc.analyse(SPECIAL.y, direction="up"))


def noisy_series() -> np.ndarray:
    """±10 noise, an outlier of +100 at index 20 and a shift of +25 over indices 30-37."""
    rng = np.random.default_rng(2024)
    y = np.round(rng.uniform(-10, 10, 50), 2)
    y[20] = 100.0
    y[30:38] = 25.0 + np.round(rng.uniform(-3, 3, 8), 2)
    return y


@pytest.mark.parametrize("offset", [0.0, 1e9, 1e12])
def test_the_review_case_outlier_and_shift_at_1e12(offset: float) -> None:
    y = offset + noisy_series()
    result = spc.analyse(y, direction="up")
    astro = np.flatnonzero(result.flags[spc.Signal.ASTRONOMICAL_HIGH]).tolist()
    assert 20 in astro
    assert set(range(30, 38)) <= set(np.flatnonzero(result.flags[spc.Signal.SHIFT_HIGH]))
    assert signal_sets(result) == signal_sets(spc.analyse(noisy_series(), direction="up"))
    assert result.variation_icon is spc.VariationIcon.COMMON_CAUSE
    # the limits are those of the spread, shifted: not widened by the offset
    base = spc.analyse(noisy_series())
    assert result.upper[0] - offset == pytest.approx(base.upper[0], abs=1e-3)


@pytest.mark.parametrize("direction", ["up", "down", "neither"])
def test_all_transforms_in_one_batch_match_analyse_and_the_mdc_colours(direction: str) -> None:
    # one analyse_many call over every MDC dataset of that direction (no re-basing), each
    # under every transform; compare_batch checks it against spc.analyse series by series
    cases = [c for c in CASES if c.direction == direction and not c.rebase_at]
    for baseline_points in {c.baseline_points for c in cases}:
        group = [c for c in cases if c.baseline_points == baseline_points]
        series = [list(moved(c.y, *p.values)) for p in TRANSFORMS for c in group]
        values, starts = flat(series)
        batch = compare_batch(values, None, starts, chart="xmr", direction=direction,
                              baseline_points=baseline_points)  # fmt: skip
        letter = {i: CLASS_CODE[c] for i, c in enumerate(spc.PointClass)}
        for i, case in enumerate(group * len(TRANSFORMS)):
            got = "".join(letter[int(k)] for k in batch.point_class[starts[i] : starts[i + 1]])
            assert got == case.colours, (case.name, i // len(group))


RUN_PATTERN = [0, 1, -1, 0, 2, 0, -2, 1, 0, -1, 3, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9]  # median 1


@pytest.mark.parametrize(("scale", "offset"), [*TRANSFORMS, pytest.param(1.0, 1e13, id="1e13+y")])
def test_run_chart_counts_the_same_useful_points_far_from_zero(scale: float, offset: float):
    y = moved(RUN_PATTERN, scale, offset)
    ref = spc.run_chart_analysis(RUN_PATTERN)
    got = spc.run_chart_analysis(y)
    assert ref.n_useful == len(RUN_PATTERN) - RUN_PATTERN.count(1) == 18  # the 1s are dropped
    assert (got.n_useful, got.longest_run, got.crossings, got.signal) == (
        ref.n_useful,
        ref.longest_run,
        ref.crossings,
        ref.signal,
    )
    assert ref.runs_signal  # the rising tail is a run of 8 > round(log2 18) + 3 = 7
    # the same through analyse and analyse_many (the latest segment's run chart)
    series = spc.analyse(y).run_chart
    assert series is not None and series.n_useful == ref.n_useful
    values, starts = flat([list(y), list(y[:13])])
    batch = compare_batch(values, None, starts, chart="xmr")
    assert int(batch.run_n_useful[0]) == ref.n_useful
    assert bool(batch.run_signal[0]) is True


@pytest.mark.parametrize(
    "values",
    [
        [1e12] * 20,
        [1e12 + 0.5] * 20,
        [1e9 + 0.1] * 20,
        [1e-9] * 20,
        [3e-10] * 20,
        [0.1] * 3 + [0.1] * 17,  # the mean of 0.1s is not 0.1
        [0.3, 0.1 + 0.2] * 10,  # 0.3 and 0.30000000000000004: float noise, not a signal
        [123456.7] * 300,
        [-7.3] * 40,
        [0.0] * 20,
    ],
)
def test_constant_series_give_no_signal_anywhere(values: list[float]) -> None:
    assert values[0] != 0.1 or float(np.mean(values[:3])) != 0.1  # the premise of that case
    for direction in ("up", "down", "neither"):
        result = spc.analyse(values, direction=direction)
        assert all(not s for s in result.signals), values[:2]
        assert result.variation_icon is spc.VariationIcon.COMMON_CAUSE
        assert result.run_chart is not None and result.run_chart.n_useful == 0
        v, starts = flat([values, values[:12]])
        batch = compare_batch(v, None, starts, chart="xmr", direction=direction)
        assert not batch.signals.any()
        assert batch.run_n_useful.tolist() == [0, 0]


def test_tolerance_is_far_below_the_spread_and_above_rounding() -> None:
    centre = np.array([1e12, 1e9, 25.0, 1e-9, 0.0])
    width = np.array([35.0, 35.0, 30.0, 3e-13, 0.0])  # upper − lower = 6σ
    tol = spc._tol(centre, centre + width / 2, centre - width / 2)
    assert np.all(tol[:4] < 0.01 * width[:4] / 6)  # under 1 % of σ
    assert tol[0] < 0.02  # the old tolerance was 1000 here, the spread's σ about 6
    # at least a few ulps of the centre (a mean's rounding)
    assert np.all(tol[:4] >= 8 * np.spacing(centre[:4]))
    assert tol[4] > 0  # an absolute floor (subnormal noise) only
    assert (
        spc._tol(np.array([5.0]), np.array([np.nan]), np.array([np.nan]))[0]
        == spc._tol(np.array([5.0]))[0]
    )


affine = st.sampled_from([(1.0, 0.0), (1.0, 1e9), (1.0, 1e12), (1e-9, 0.0), (1e-13, 1e-9)])


def resolvable(ref: spc.SeriesAnalysis, ints: list[int], scale: float, offset: float) -> bool:
    """No point lies off a line by less than float64 can resolve once moved.

    Moved to 10¹², values are 1.2e-4 apart (one ulp): a point 1e-4 beyond a limit in the
    original units cannot be told from one on it. Exact ties (on the line within the
    tolerance) are ties in both, and fine.
    """
    y = np.asarray(ints, dtype=np.float64)
    resolution = 64 * np.finfo(np.float64).eps * (abs(offset) / scale + float(np.abs(y).max()))
    tol = spc._tol(ref.centre, ref.upper, ref.lower)
    for line in (ref.centre, ref.upper, ref.lower, ref.upper_2s, ref.lower_2s):
        gap = np.abs(y - line)
        if np.any((gap > tol) & (gap <= resolution)):
            return False
    return True


@settings(max_examples=60, deadline=None)
@given(
    ints=st.lists(st.integers(min_value=0, max_value=60), min_size=13, max_size=60),
    transform=affine,
    direction=st.sampled_from(["up", "down", "neither"]),
)
def test_flags_do_not_depend_on_offset_or_scale(
    ints: list[int], transform: tuple[float, float], direction: str
) -> None:
    scale, offset = transform
    ref = spc.analyse([float(v) for v in ints], direction=direction)
    assume(resolvable(ref, ints, scale, offset))
    got = spc.analyse(moved(ints, scale, offset), direction=direction)
    assert signal_sets(got) == signal_sets(ref)
    assert got.variation_icon is ref.variation_icon
    assert got.run_chart == spc.RunChartResult(
        **{**_fields(ref.run_chart), "centre": got.run_chart.centre}
    )


def _fields(rc: spc.RunChartResult | None) -> dict[str, Any]:
    assert rc is not None
    return {name: getattr(rc, name) for name in rc.__dataclass_fields__}


# ---------------------------------------------------------------------------------------------
# 2. Non-finite input
# ---------------------------------------------------------------------------------------------

GOOD = [float(v) for v in SPECIAL.values.split()][:15]


def with_bad(value: float, at: int = 3) -> list[float]:
    out = list(GOOD)
    out[at] = value
    return out


@pytest.mark.parametrize("bad", [math.inf, -math.inf, 1e308, -5e300])
def test_infinite_and_overflowing_values_are_rejected_by_position(bad: float) -> None:
    with pytest.raises(ValueError, match=r"values\[3\]"):
        spc.analyse(with_bad(bad))
    values, starts = flat([GOOD, with_bad(bad, 5)])
    with pytest.raises(ValueError, match=r"series 1, point 5 \(values\[20\]\)"):
        analyse_many(values, starts=starts, chart="xmr")
    with pytest.raises(ValueError, match=r"values\[3\]"):
        spc.xmr_limits(with_bad(bad))
    with pytest.raises(ValueError, match=r"values\[3\]"):
        spc.run_chart_analysis(with_bad(bad))


def test_the_moving_range_overflow_of_the_review_is_rejected_not_charted() -> None:
    # 1e308 and -1e308: finite, but their moving range (2e308) overflows to inf, and the
    # limits came out infinite or NaN, shown, with a common-cause icon
    values = [1e308, -1e308, *([1.0] * 15)]
    with pytest.raises(ValueError, match=r"values\[0\] is 1e\+308: too large"):
        spc.analyse(values)
    with pytest.raises(ValueError, match="too large"):
        analyse_many(np.array(values), starts=np.array([0, 17]), chart="xmr")


def test_values_at_the_bound_still_give_finite_limits() -> None:
    big = spc.MAX_ABS_VALUE
    values = [big, -big] * 7
    result = spc.analyse(values)
    shown = result.limits_shown
    assert shown.all()
    for line in (result.upper, result.lower, result.upper_2s, result.lower_2s, result.centre):
        assert np.isfinite(line).all()
    compare_batch(np.array(values), None, np.array([0, len(values)]), chart="xmr")


def test_nan_stays_the_missing_marker() -> None:
    values = with_bad(math.nan)
    result = spc.analyse(values, direction="up")
    assert result.point_class[3] is None and math.isnan(result.centre[3])
    assert np.isfinite(result.upper[[0, 1, 2, 4]]).all()
    v, starts = flat([GOOD, values])
    compare_batch(v, None, starts, chart="xmr", direction="up")
    num = np.array([3.0, math.nan, 4.0, 5.0])
    den = np.array([10.0, 10.0, math.nan, 0.0])
    compare_batch(num, den, np.array([0, 4]), chart="p")
    rc = spc.run_chart_analysis([1.0, math.nan, 2.0, 3.0])
    assert rc.n_useful == 2


@pytest.mark.parametrize("chart", ["p", "u"])
@pytest.mark.parametrize(
    ("num", "den", "name", "at", "shown"),
    [
        ([math.inf, 1.0], [10.0, 10.0], "values", 0, "inf"),
        ([1.0, 1.0], [10.0, math.inf], "denominators", 1, "inf"),
        ([1.0, 1.0], [10.0, -math.inf], "denominators", 1, "-inf"),
        ([1.0, 1.0], [10.0, 1e301], "denominators", 1, r"1e\+301"),
    ],
)
def test_non_finite_attribute_input_is_rejected(
    chart: str, num: list[float], den: list[float], name: str, at: int, shown: str
) -> None:
    with pytest.raises(ValueError, match=rf"{name}\[{at}\] is {shown}"):
        spc.analyse(num, den, chart=chart)
    # the bad series is the second of two: series 1, point `at`, flat index 2 + at
    with pytest.raises(ValueError, match=rf"series 1, point {at} \({name}\[{2 + at}\]\)"):
        analyse_many(np.array([1.0, 2.0, *num]), np.array([10.0, 10.0, *den]),
                     starts=np.array([0, 2, 4]), chart=chart)  # fmt: skip
    with pytest.raises(ValueError):
        (spc.p_chart_limits if chart == "p" else spc.u_chart_limits)(num, den)
    with pytest.raises(ValueError):
        spc.funnel(num, den, kind="proportion" if chart == "p" else "rate")


def test_a_rate_whose_ratio_overflows_is_rejected() -> None:
    num, den = [5.0, 1.0, 2.0], [10.0, 1e-309, 10.0]
    with pytest.raises(ValueError, match=r"values\[1\] overflows"):
        spc.analyse(num, den, chart="u")
    with pytest.raises(ValueError, match=r"series 0, point 1"):
        analyse_many(np.array(num), np.array(den), starts=np.array([0, 3]), chart="u")
    with pytest.raises(ValueError, match="overflows"):
        spc.u_chart_limits(num, den)


def test_u_limits_that_overflow_at_a_tiny_exposure_are_rejected_alike() -> None:
    # no events at an exposure next to 0: the rate is 0, but σ = √(ū/n) overflows
    num = np.array([4.0] * 14 + [0.0])
    den = np.array([2.0] * 14 + [1e-310])
    with pytest.raises(ValueError, match=r"limits at values\[14\] overflow"):
        spc.analyse(num, den, chart="u")
    with pytest.raises(ValueError, match=r"limits at series 1, point 14"):
        analyse_many(np.concatenate((num, num)), np.concatenate((np.full(15, 2.0), den)),
                     starts=np.array([0, 15, 30]), chart="u")  # fmt: skip
    with pytest.raises(ValueError, match="overflow"):
        spc.u_chart_limits(num, den)
    # with fewer than 13 points no limits are shown: nothing overflows, nothing is raised
    compare_batch(num[3:], den[3:], np.array([0, 12]), chart="u")


def test_laney_limits_that_overflow_are_rejected_alike() -> None:
    # one huge rate makes Laney's σ_z about 5e299; σᵢ′ = σᵢ·σ_z then overflows at the tiny
    # exposure of point 14, whose plain u-chart limits are finite
    den = np.full(15, 1e300)
    den[7], den[14] = 1.0, 1e-300
    num = np.zeros(15)
    num[7] = 1e300
    plain = spc.analyse(num, den, chart="u")
    assert np.isfinite(plain.upper).all()
    compare_batch(num, den, np.array([0, 15]), chart="u")
    with pytest.raises(ValueError, match=r"limits at values\[14\] overflow"):
        spc.analyse(num, den, chart="u", laney=True)
    with pytest.raises(ValueError, match=r"limits at series 0, point 14"):
        analyse_many(num, den, starts=np.array([0, 15]), chart="u", laney=True)
    with pytest.raises(ValueError, match="overflow"):
        spc.u_chart_limits(num, den, laney=True)


@pytest.mark.parametrize("target", [math.inf, -math.inf, math.nan])
def test_a_non_finite_target_is_rejected(target: float) -> None:
    with pytest.raises(ValueError, match="target"):
        spc.analyse(GOOD, direction="up", target=target)
    with pytest.raises(ValueError, match="target"):
        analyse_many(np.array(GOOD), starts=np.array([0, 15]), chart="xmr", target=target)
    with pytest.raises(ValueError, match="target"):
        spc.assurance_icon(target, "up", lower=0.0, upper=1.0)


def test_rules_and_limits_functions_reject_infinity() -> None:
    n = 5
    ok = np.ones(n)
    with pytest.raises(ValueError, match=r"upper\[2\]"):
        spc.special_cause_flags(ok, ok, [2, 2, math.inf, 2, 2], ok * 0, ok * 2, ok * 0)
    with pytest.raises(ValueError, match=r"values\[1\] is NaN"):
        spc.xmr_limits([1.0, math.nan, 2.0])
    with pytest.raises(ValueError, match="centre"):
        spc.run_chart_analysis([1.0, 2.0], centre=math.inf)
    with pytest.raises(ValueError, match=r"numerators\[0\] is NaN"):
        spc.p_chart_limits([math.nan, 1.0], [10.0, 10.0])
    # NaN limits still mean "no limits here"
    flags = spc.special_cause_flags(ok, ok, ok * np.nan, ok * np.nan, ok * np.nan, ok * np.nan)
    assert not any(f.any() for f in flags.values())


@pytest.mark.parametrize(
    "call",
    [
        lambda: spc.funnel_limits(math.nan, [10.0]),
        lambda: spc.funnel_limits(math.inf, [10.0], kind="rate"),
        lambda: spc.funnel_limits(0.2, [10.0, math.inf]),
        lambda: spc.funnel_limits(0.2, [10.0, math.nan], exact=True),
        lambda: spc.funnel_limits(0.2, [10.0], z=math.inf),
        lambda: spc.funnel_limits(1.2, [10.0]),
        lambda: spc.funnel_limits(-0.1, [10.0], kind="rate"),
        lambda: spc.funnel([1.0, math.nan], [10.0, 10.0]),
        lambda: spc.funnel([1.0, 2.0], [10.0, math.inf]),
        lambda: spc.funnel([1.0, 2.0], [10.0, 10.0], theta=math.nan),
        lambda: spc.funnel([1.0, 2.0], [10.0, 10.0], levels=(1.96, math.inf)),
        lambda: spc.funnel([11.0, 2.0], [10.0, 10.0]),
        lambda: spc.funnel([], []),
    ],
)
def test_funnel_rejects_non_finite_and_impossible_input(call) -> None:
    with pytest.raises(ValueError):
        call()


# ---------------------------------------------------------------------------------------------
# 3. Funnel limits at θ = 0 and θ = 1, and non-whole denominators (Spiegelhalter 2005)
# ---------------------------------------------------------------------------------------------

DENS = np.array([5.0, 10.0, 20.0, 50.0, 400.0])


@pytest.mark.parametrize("exact", [False, True])
@pytest.mark.parametrize("theta", [0.0, 1.0])
def test_funnel_with_every_unit_at_theta_flags_none(exact: bool, theta: float) -> None:
    res = spc.funnel(theta * DENS, DENS, exact=exact)
    assert res.theta == theta
    for lo, hi, out in zip(res.lower, res.upper, res.outside, strict=True):
        assert lo.tolist() == [theta] * DENS.size
        assert hi.tolist() == [theta] * DENS.size
        assert not out.any()
    assert res.phi == 1.0 and not res.z.any()
    adjusted = spc.funnel(theta * DENS, DENS, exact=exact, overdispersion=True)
    assert not any(o.any() for o in adjusted.outside)


@pytest.mark.parametrize("exact", [False, True])
def test_funnel_at_theta_one_flags_units_below_it(exact: bool) -> None:
    num = np.array([5.0, 9.0, 20.0, 49.0, 400.0])  # 100 %, 90 %, 100 %, 98 %, 100 %
    res = spc.funnel(num, DENS, theta=1.0, exact=exact)
    for out in res.outside:
        assert out.tolist() == [0, -1, 0, -1, 0]


@pytest.mark.parametrize("exact", [False, True])
def test_funnel_at_theta_zero_flags_units_above_it(exact: bool) -> None:
    num = np.array([0.0, 1.0, 0.0, 0.0, 3.0])
    res = spc.funnel(num, DENS, theta=0.0, exact=exact)
    for out in res.outside:
        assert out.tolist() == [0, 1, 0, 0, 1]
    rates = spc.funnel(num, DENS, theta=0.0, kind="rate", exact=exact)
    for lo, hi, out in zip(rates.lower, rates.upper, rates.outside, strict=True):
        assert not lo.any() and not hi.any()
        assert out.tolist() == [0, 1, 0, 0, 1]


@pytest.mark.parametrize("kind", ["proportion", "rate"])
@pytest.mark.parametrize("exact", [False, True])
def test_funnel_limits_collapse_onto_theta_at_the_ends(kind: str, exact: bool) -> None:
    ends = [0.0, 1.0] if kind == "proportion" else [0.0]
    for theta in ends:
        for z in (1.96, 3.09):
            lo, hi = spc.funnel_limits(theta, [1.0, 7.0, 10.4, 1e6], kind=kind, z=z, exact=exact)
            assert lo.tolist() == hi.tolist() == [theta] * 4
    # next to the ends the limits are not collapsed: it is the point mass that is special
    lo, hi = spc.funnel_limits(0.999, [1000.0], kind="proportion", exact=exact)
    assert lo[0] < 0.999 < hi[0] <= 1.0


def test_exact_binomial_limits_of_a_non_whole_denominator_are_those_of_its_rounding() -> None:
    for z in (1.96, 3.09):
        for n, m in ((10.4, 10), (10.6, 11), (0.3, 1), (19.5, 20), (20.5, 20)):
            got = spc.funnel_limits(0.3, [n], z=z, exact=True)
            want = spc.funnel_limits(0.3, [float(m)], z=z, exact=True)
            assert (got[0][0], got[1][0]) == (want[0][0], want[1][0]), (n, m)
    # the limits surround θ as for whole n: at θ = 0.5, m = 10 the 95 % limits are
    # (1 − 0.9976)/10 and (8 − 0.3244)/10; dividing the same counts by n = 10.4 (the old
    # code) gave 0.738 instead of 0.768 for the upper one
    lo, hi = spc.funnel_limits(0.5, [10.4], z=1.96, exact=True)
    assert hi[0] == pytest.approx(0.76756, abs=1e-5)
    assert lo[0] == pytest.approx(0.13244, abs=1e-5)
    # flags come from the count's tail in Bin(10, 0.5): 8 of 10.4 lies above that drawn 95 %
    # limit, yet P(Y ≥ 8) = 0.055 is no 2.5 % tail; 9 (P = 0.011) is; one at θ is within
    res = spc.funnel([8.0, 9.0, 52.0], [10.4, 10.4, 104.0], theta=0.5, exact=True)
    assert res.outside[0].tolist() == [0, 1, 0]
    # rates: the Poisson mean nθ takes a non-whole exposure as it is, divided by n
    _, hi_r = spc.funnel_limits(2.0, [10.4], kind="rate", exact=True)
    _, hi_r10 = spc.funnel_limits(2.0, [10.0], kind="rate", exact=True)
    assert hi_r[0] != hi_r10[0]
    assert 2.0 < hi_r[0] < hi_r10[0]  # a longer exposure: a narrower funnel


def test_exact_limits_stay_within_one_step_of_their_quantile() -> None:
    # α is clipped to [0, 1]: a limit lies within [(r_p − 1)/m, r_p/m] of its quantile r_p
    from scipy import stats

    for theta in (0.01, 0.3, 0.5, 0.97):
        for m in (1, 2, 5, 13, 40):
            lo, hi = spc.funnel_limits(theta, [float(m)], z=1.96, exact=True)
            for p, limit in ((stats.norm.cdf(-1.96), lo[0]), (stats.norm.cdf(1.96), hi[0])):
                r = stats.binom.ppf(p, m, theta)
                assert max(r - 1, 0) / m - 1e-12 <= limit <= r / m + 1e-12, (theta, m, p)


# ---------------------------------------------------------------------------------------------
# The engine: a suppressed (missing) period goes in as NaN and must keep working
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["mean", "count", "proportion", "rate"])
def test_engine_series_with_a_missing_period_are_analysed(kind: str) -> None:
    from dataclasses import replace

    from measures.aggregation.analysis import SeriesInputs, analyse_inputs
    from measures.packing import unpack_columns
    from tests.aggregation.conftest import MEASURE

    measure = replace(MEASURE, kind=kind, rate_per=1000 if kind == "rate" else None)
    k = 20
    rng = np.random.default_rng(3)
    den = rng.integers(40, 60, k).astype(np.float64)
    num = np.floor(den * rng.uniform(0.2, 0.4, k))
    if kind == "mean":
        num = den * rng.uniform(2.0, 4.0, k)
    suppressed = np.zeros(k, dtype=bool)
    suppressed[6] = True
    inputs = SeriesInputs(
        measure=measure,
        keys=[("unit", 1, "week")],
        starts=np.array([0, k], dtype=np.int64),
        days=np.arange(k, dtype=np.int64) * 7 + 19_000,
        rows=den.astype(np.int64),
        n=den,
        numerator=num,
        denominator=den,
        suppressed=suppressed,
    )
    (series,) = analyse_inputs(inputs, rebase={})
    points = unpack_columns(series.data)
    assert math.isnan(points["value"][6]) and math.isnan(points["centre"][6])
    assert points["point_class"][6] == -1
    others = np.delete(np.arange(k), 6)
    assert np.isfinite(points["value"][others]).all()
    assert np.isfinite(points["upper"][others]).all()
    assert series.variation_icon
