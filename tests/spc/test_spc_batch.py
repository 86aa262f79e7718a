"""measures.spc_batch.analyse_many against measures.spc.analyse, series by series.

``spc.analyse`` is the reference: every test runs both on the same series and compares every
per-point array (NaN-equal, floats to rtol 1e-9 / atol 1e-12), the signal bitmask, the point
classes, both icons and the latest segment's run chart exactly. Data: the MDC Single Chart
Tool v5.0 datasets embedded in ``test_spc_mdc`` (NHS England Making Data Count, see
``../shared/spc-reference/``), published p/u examples, and a seeded random stress set built so
that every rule and every icon occurs.
"""

from __future__ import annotations

import itertools
import math
from datetime import date, timedelta
from typing import Any

import numpy as np
import pytest

from measures import spc
from measures.spc_batch import (
    SIGNAL_BITS,
    BatchAnalysis,
    _segment_sums,
    analyse_many,
    benchmark,
    segment_breaks,
)
from tests.spc.test_spc_mdc import CASES, CLASS_CODE

SIGNALS = list(spc.Signal)
CLASSES = list(spc.PointClass)
FLOATS = ("y", "centre", "upper", "lower", "upper_2s", "lower_2s")
CODE_OF_CLASS = [CLASS_CODE[c] for c in CLASSES]


# ---------------------------------------------------------------------------------------------
# Comparison helpers
# ---------------------------------------------------------------------------------------------


def expected_bits(ref: spc.SeriesAnalysis) -> np.ndarray:
    bits = np.zeros(ref.y.size, dtype=np.uint8)
    for j, sig in enumerate(SIGNALS):
        bits |= ref.flags[sig].astype(np.uint8) << j
    return bits


def expected_classes(ref: spc.SeriesAnalysis) -> list[int]:
    return [-1 if c is None else CLASSES.index(c) for c in ref.point_class]


def assert_points_match(
    batch: BatchAnalysis, refs: list[spc.SeriesAnalysis], starts: np.ndarray, label: str
) -> None:
    """Per-point arrays of all series at once; a failure names the first series that differs."""

    def where(bad: np.ndarray) -> str:
        k = int(np.flatnonzero(bad)[0])
        i = int(np.searchsorted(starts, k, side="right")) - 1
        return f"{label}: series {i}, point {k - int(starts[i])}"

    def concat(arrays: list[np.ndarray], dtype: Any) -> np.ndarray:
        return np.concatenate([np.asarray(a, dtype=dtype) for a in arrays] or [np.zeros(0, dtype)])

    for name in FLOATS:
        got = getattr(batch, name)
        exp = concat([getattr(r, name) for r in refs], np.float64)
        close = np.isclose(got, exp, rtol=1e-9, atol=1e-12, equal_nan=True)
        assert close.all(), f"{where(~close)}: {name} {got[~close][:3]} != {exp[~close][:3]}"
    for name, exp in [
        ("segment", concat([r.segment for r in refs], np.int64)),
        ("signals", concat([expected_bits(r) for r in refs], np.uint8)),
        ("point_class", concat([expected_classes(r) for r in refs], np.int8)),
    ]:
        same = getattr(batch, name) == exp
        assert same.all(), f"{where(~same)}: {name}"


def assert_series_matches(
    batch: BatchAnalysis, i: int, ref: spc.SeriesAnalysis, label: str
) -> None:
    """Per-series results of series i of ``batch`` equal ``ref`` (spc.analyse of it)."""
    where = f"{label}, series {i}"
    assert batch.variation_icon[i] is ref.variation_icon, f"{where}: variation icon"
    assert batch.assurance_icon[i] is ref.assurance_icon, f"{where}: assurance icon"
    rc = ref.run_chart
    assert bool(batch.has_run_chart[i]) is (rc is not None), f"{where}: has_run_chart"
    got = (
        int(batch.run_n_useful[i]),
        int(batch.run_longest[i]),
        int(batch.run_longest_max[i]),
        int(batch.run_crossings[i]),
        int(batch.run_crossings_min[i]),
        bool(batch.run_signal[i]),
    )
    if rc is None:
        assert math.isnan(batch.run_centre[i]), where
        assert got == (0, 0, 0, 0, 0, False), where
    else:
        assert math.isclose(batch.run_centre[i], rc.centre, rel_tol=1e-9, abs_tol=1e-12), where
        expected = (
            rc.n_useful,
            rc.longest_run,
            rc.longest_run_max,
            rc.crossings,
            rc.crossings_min,
            rc.signal,
        )
        assert got == expected, f"{where}: run chart {got} != {expected}"


def assert_matches(
    batch: BatchAnalysis, refs: list[spc.SeriesAnalysis], starts: np.ndarray, label: str
) -> None:
    assert_shapes(batch, int(starts[-1]), starts.size - 1)
    assert len(refs) == starts.size - 1
    assert_points_match(batch, refs, starts, label)
    for i, ref in enumerate(refs):
        assert_series_matches(batch, i, ref, label)


def assert_shapes(batch: BatchAnalysis, n: int, s: int) -> None:
    for name in FLOATS:
        arr = getattr(batch, name)
        assert arr.dtype == np.float64 and arr.shape == (n,), name
    assert batch.segment.dtype == np.int64 and batch.segment.shape == (n,)
    assert batch.signals.dtype == np.uint8 and batch.signals.shape == (n,)
    assert batch.point_class.dtype == np.int8 and batch.point_class.shape == (n,)
    for name in ("variation_icon", "assurance_icon"):
        arr = getattr(batch, name)
        assert arr.dtype == object and arr.shape == (s,), name
    for name, kind in [
        ("has_run_chart", np.bool_),
        ("run_centre", np.float64),
        ("run_n_useful", np.int64),
        ("run_longest", np.int64),
        ("run_longest_max", np.int64),
        ("run_crossings", np.int64),
        ("run_crossings_min", np.int64),
        ("run_signal", np.bool_),
    ]:
        arr = getattr(batch, name)
        assert arr.dtype == kind and arr.shape == (s,), name


def compare_batch(
    values: np.ndarray,
    denominators: np.ndarray | None,
    starts: np.ndarray,
    *,
    rebase: list[list[Any]] | None = None,
    periods: np.ndarray | None = None,
    label: str = "",
    **options: Any,
) -> BatchAnalysis:
    """analyse_many on all series, spc.analyse on each, and compare; returns the batch."""
    breaks = None
    if rebase is not None:
        assert periods is not None
        breaks = segment_breaks(periods, starts, rebase)
    batch = analyse_many(values, denominators, starts=starts, segment_breaks=breaks, **options)
    refs = []
    for i, (a, b) in enumerate(zip(starts[:-1].tolist(), starts[1:].tolist(), strict=True)):
        kwargs = dict(options)
        if rebase is not None and rebase[i]:
            assert periods is not None
            kwargs.update(rebase_at=rebase[i], dates=periods[a:b])
        den = None if denominators is None else denominators[a:b]
        refs.append(spc.analyse(values[a:b], den, **kwargs))
    assert_matches(batch, refs, starts, f"{label} {options}")
    return batch


def flat(series: list[list[float]]) -> tuple[np.ndarray, np.ndarray]:
    lengths = [len(s) for s in series]
    starts = np.concatenate(([0], np.cumsum(lengths))).astype(np.int64)
    values = np.array([v for s in series for v in s], dtype=np.float64)
    return values, starts


# ---------------------------------------------------------------------------------------------
# MDC Single Chart Tool v5.0 datasets
# ---------------------------------------------------------------------------------------------


def mdc_breaks(cases: list[Any], starts: np.ndarray) -> np.ndarray:
    breaks = np.zeros(int(starts[-1]), dtype=bool)
    for case, a in zip(cases, starts[:-1].tolist(), strict=True):
        for r in case.rebase_at:
            breaks[a + r] = True
    return breaks


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_mdc_dataset_alone_matches_analyse_and_the_mdc_colours(case: Any) -> None:
    values, starts = flat([case.y])
    batch = analyse_many(
        values,
        starts=starts,
        chart="xmr",
        direction=case.direction,
        baseline_points=case.baseline_points,
        segment_breaks=mdc_breaks([case], starts),
    )
    ref = spc.analyse(
        case.y,
        direction=case.direction,
        baseline_points=case.baseline_points,
        rebase_at=case.rebase_at,
    )
    assert_matches(batch, [ref], starts, case.name)
    # the flags behind the bitmask are spc's per-point signal sets
    assert [
        frozenset(s for j, s in enumerate(SIGNALS) if b >> j & 1) for b in batch.signals.tolist()
    ] == list(ref.signals)
    # and directly against the MDC tool's colours
    assert "".join(CODE_OF_CLASS[k] for k in batch.point_class.tolist()) == case.colours


@pytest.mark.parametrize("direction", ["up", "down", "neither"])
@pytest.mark.parametrize("baseline_points", [None, 15])
def test_all_mdc_datasets_in_one_call(direction: str, baseline_points: int | None) -> None:
    values, starts = flat([c.y for c in CASES])
    breaks = mdc_breaks(CASES, starts)
    for target in (None, 10.0, 30.0, 40.0):  # the checklist's assurance targets
        options = {
            "chart": "xmr",
            "direction": direction,
            "target": target,
            "baseline_points": baseline_points,
        }
        batch = analyse_many(values, starts=starts, segment_breaks=breaks, **options)
        refs = [spc.analyse(case.y, rebase_at=case.rebase_at, **options) for case in CASES]
        assert_matches(batch, refs, starts, f"MDC {options}")
        for i, case in enumerate(CASES):
            a, b = int(starts[i]), int(starts[i + 1])
            if case.direction == direction and case.baseline_points == baseline_points:
                colours = "".join(CODE_OF_CLASS[k] for k in batch.point_class[a:b].tolist())
                assert colours == case.colours, case.name


def test_mdc_assurance_icons_in_one_call() -> None:
    # Checklist "Summary icons -- assurance": limits 13.33 / 37.00; targets 40 (above), 30
    # (within), 10 (below); and with the recalculation at p16 the latest limits are used.
    recalc = next(c for c in CASES if c.name == "Recalculations")
    values, starts = flat([recalc.y, recalc.y])
    breaks = np.zeros(values.size, dtype=bool)
    breaks[30 + 15] = True
    expected = {
        ("up", 40.0): (spc.AssuranceIcon.CONSISTENT_FAIL, spc.AssuranceIcon.HIT_AND_MISS),
        ("up", 10.0): (spc.AssuranceIcon.CONSISTENT_PASS, spc.AssuranceIcon.CONSISTENT_PASS),
        ("down", 40.0): (spc.AssuranceIcon.CONSISTENT_PASS, spc.AssuranceIcon.HIT_AND_MISS),
        ("down", 30.0): (spc.AssuranceIcon.HIT_AND_MISS, spc.AssuranceIcon.HIT_AND_MISS),
        ("neither", 40.0): (None, None),
    }
    for (direction, target), icons in expected.items():
        batch = analyse_many(
            values, starts=starts, chart="xmr", direction=direction, target=target,
            segment_breaks=breaks,
        )  # fmt: skip
        assert tuple(batch.assurance_icon.tolist()) == icons, (direction, target)
        assert round(batch.upper[29], 2) == 37.00 and round(batch.upper[59], 2) == 40.21


# ---------------------------------------------------------------------------------------------
# Published p and u examples
# ---------------------------------------------------------------------------------------------


def test_published_attribute_examples() -> None:
    # Montgomery 7th ed. Table 7.4 totals (p-chart, n = 50); Laney 2002 style over-dispersed
    # p' and u' data as in test_spc_published.
    rng = np.random.default_rng(7)
    den_p = rng.integers(20_000, 60_000, 24).astype(np.float64)
    num_p = rng.binomial(den_p.astype(np.int64), rng.uniform(0.09, 0.11, 24)).astype(np.float64)
    rng = np.random.default_rng(3)
    den_u = rng.uniform(500, 1500, 20)
    num_u = rng.poisson(den_u * rng.uniform(1.5, 2.5, 20)).astype(np.float64)
    montgomery = np.array([5] * 38 + [4] * 11, dtype=np.float64)
    nums, starts = flat([list(montgomery), list(num_p)])
    dens, _ = flat([[50.0] * 49, list(den_p)])
    for laney in (False, True):
        for direction in ("up", "down"):
            compare_batch(
                nums, dens, starts, chart="p", laney=laney, direction=direction, target=0.1
            )
            compare_batch(
                num_u, den_u, np.array([0, 20]), chart="u", laney=laney, direction=direction
            )
    lim = spc.p_chart_limits(num_p, den_p, laney=True)
    batch = analyse_many(nums, dens, starts=starts, chart="p", laney=True)
    np.testing.assert_allclose(batch.upper[49:], lim.upper, rtol=1e-12)


# ---------------------------------------------------------------------------------------------
# Seeded random stress test
# ---------------------------------------------------------------------------------------------

N_STRESS = 300


def random_series(rng: np.random.Generator, chart: str) -> tuple[list[list[float]], ...]:
    """Integer-valued series of lengths 0..120 with steps, trends, outliers, flats and gaps."""
    values: list[list[float]] = []
    dens: list[list[float]] = []
    lengths = rng.integers(0, 121, N_STRESS)
    few = rng.random(N_STRESS) < 0.2
    lengths[few] = rng.integers(0, 16, int(few.sum()))
    for length in lengths.tolist():
        level = float(rng.integers(4, 40))
        y = level + rng.integers(-3, 4, length).astype(np.float64)
        for _ in range(int(rng.integers(0, 3))):  # step changes
            y[int(rng.integers(0, length + 1)) :] += rng.choice([-9.0, -6.0, 6.0, 9.0])
        if length >= 8 and rng.random() < 0.4:  # a strict trend of 6 to 9 points
            k = int(rng.integers(6, min(10, length) + 1))
            at = int(rng.integers(0, length - k + 1))
            y[at : at + k] = y[at] + rng.choice([-2.0, 2.0]) * np.arange(k)
        if length >= 6 and rng.random() < 0.2:  # a flat stretch
            k = int(rng.integers(3, 7))
            at = int(rng.integers(0, length - k + 1))
            y[at : at + k] = y[at]
        for _ in range(int(rng.integers(0, 3))):  # outliers
            if length:
                y[int(rng.integers(0, length))] += rng.choice([-30.0, 30.0])
        if rng.random() < 0.05:
            y[:] = level  # constant series
        if chart == "xmr":
            x = y
            d = None
        else:
            base = rng.integers(5, 60, length).astype(np.float64) if chart == "p" else None
            if chart == "p":
                assert base is not None
                rate = np.clip(y / 50.0, 0.0, 1.0)
                d = base
                x = rng.binomial(d.astype(np.int64), rate).astype(np.float64)
            else:
                d = rng.integers(1, 30, length).astype(np.float64)
                if rng.random() < 0.5:  # exposures need not be whole numbers
                    d = np.round(d * rng.uniform(0.5, 1.5, length), 1) + 0.1
                rate = np.clip(y / 20.0, 0.0, None)
                x = rng.poisson(d * rate).astype(np.float64)
            outlier = rng.random(length) < 0.02
            x[outlier] = np.where(rng.random(int(outlier.sum())) < 0.5, 0.0, d[outlier])
            zero = rng.random(length) < 0.04  # zero denominator: a missing point
            d[zero] = 0.0
            x[zero] = 0.0
            d[rng.random(length) < 0.02] = np.nan
        gaps = rng.random(length) < 0.05
        if length >= 10 and rng.random() < 0.2:  # a longer gap
            at = int(rng.integers(0, length - 5))
            gaps[at : at + int(rng.integers(2, 6))] = True
        if rng.random() < 0.03:
            gaps[:] = True  # all missing
        x = x.copy()
        x[gaps] = np.nan
        values.append(x.tolist())
        dens.append([] if d is None else d.tolist())
    return values, dens


def random_rebasing(
    rng: np.random.Generator, starts: np.ndarray
) -> tuple[np.ndarray, list[list[Any]]]:
    """Weekly periods per series, and re-basing dates for about a third of the series."""
    periods = []
    rebase: list[list[Any]] = []
    for a, b in zip(starts[:-1].tolist(), starts[1:].tolist(), strict=True):
        n = b - a
        first = date(2020, 1, 6) + timedelta(days=int(rng.integers(0, 700)))
        days = np.datetime64(first) + 7 * np.arange(n)
        periods.append(days.astype("datetime64[D]"))
        dates: list[Any] = []
        if n and rng.random() < 0.35:
            for _ in range(int(rng.integers(1, 3))):
                k = int(rng.integers(0, n))
                kind = rng.integers(0, 5)
                if kind == 0:
                    d = first + timedelta(days=7 * k)  # on a period
                elif kind == 1:
                    d = first + timedelta(days=7 * k + 3)  # between periods
                elif kind == 2:
                    d = first - timedelta(days=10)  # before the series
                elif kind == 3:
                    d = first + timedelta(days=7 * n + 2)  # after it
                else:
                    d = np.datetime64(first + timedelta(days=7 * k), "D")  # numpy date
                dates.append(d)
        rebase.append(dates)
    return np.concatenate(periods) if periods else np.zeros(0, "datetime64[D]"), rebase


STRESS = [("xmr", False), ("p", False), ("p", True), ("u", False), ("u", True)]
TARGETS = {"xmr": 20.0, "p": 0.4, "u": 1.0}


@pytest.mark.parametrize(
    ("chart", "laney"), STRESS, ids=[f"{c}-laney{int(la)}" for c, la in STRESS]
)
def test_random_stress_matches_analyse(chart: str, laney: bool) -> None:
    seed = STRESS.index((chart, laney))
    rng = np.random.default_rng(20240 + seed)
    value_lists, den_lists = random_series(rng, chart)
    values, starts = flat(value_lists)
    dens = None if chart == "xmr" else flat(den_lists)[0]
    periods, rebase = random_rebasing(rng, starts)
    assert sum(1 for r in rebase if r) > 50

    seen_signals = 0
    seen_variation: set[Any] = set()
    seen_assurance: set[Any] = set()
    seen_run: set[tuple[bool, bool]] = set()
    seen_multi_segment = 0
    for direction in ("up", "down", "neither"):
        for target in (None, TARGETS[chart]):
            for baseline_points in (None, 12):
                batch = compare_batch(
                    values,
                    dens,
                    starts,
                    rebase=rebase,
                    periods=periods,
                    label=f"stress {chart}",
                    chart=chart,
                    direction=direction,
                    target=target,
                    baseline_points=baseline_points,
                    laney=laney,
                )
                seen_signals |= int(np.bitwise_or.reduce(batch.signals, initial=0))
                seen_variation |= set(batch.variation_icon.tolist())
                seen_assurance |= set(batch.assurance_icon.tolist())
                seen_run |= set(
                    zip(batch.has_run_chart.tolist(), batch.run_signal.tolist(), strict=True)
                )
                seen_multi_segment += int(np.count_nonzero(batch.segment > 0))
    # not vacuous: every rule, icon and run-chart outcome occurred
    missing = [s for s in SIGNALS if not seen_signals & SIGNAL_BITS[s]]
    assert not missing, missing
    assert seen_variation == {*spc.VariationIcon, None}
    assert seen_assurance == {*spc.AssuranceIcon, None}
    assert seen_run == {(True, True), (True, False), (False, False)}
    assert seen_multi_segment > 0


# ---------------------------------------------------------------------------------------------
# Edge cases
# ---------------------------------------------------------------------------------------------

EDGE_XMR: list[list[float]] = [
    [],
    [math.nan, math.nan, math.nan],
    [5.0],
    [5.0, 7.0],
    [math.nan, 4.0],
    [4.0, math.nan],
    [30, 31, 25, 35, 34, 15, 21, 23, 30, 26, 26, 22],  # 12 points: no limits
    [30, 31, 25, 35, 34, 15, 21, 23, 30, 26, 26, 22, 25],  # 13 points: limits
    [30, 31, 25, 35, math.nan, 15, 21, 23, 30, 26, 26, 22, 25],  # 12 valid of 13
    [30, 31, 25, 35, 34, 15, 21, 23, 30, 26, 26, 22, 99, math.nan],  # last valid: astronomical
    [],
    [7.0] * 20,  # constant: no signal, every point on the centre
    [0.1] * 20,  # constant, mean 1 ulp above 0.1: on the centre and the limits within tolerance
    [0.7] * 20,  # mean 1 ulp below 0.7
    [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14],  # one long trend
    [],
]


@pytest.mark.parametrize("chart", ["xmr", "p", "u"])
@pytest.mark.parametrize("direction", ["up", "down", "neither"])
def test_edge_series(chart: str, direction: str) -> None:
    values, starts = flat([[float(v) for v in s] for s in EDGE_XMR])
    dens = None
    if chart != "xmr":
        dens = np.where(np.isnan(values), 0.0, 120.0)
        values = np.where(np.isnan(values), math.nan, values)
    for baseline_points in (None, 2, 12):
        batch = compare_batch(
            values,
            dens,
            starts,
            chart=chart,
            direction=direction,
            target=20.0 if chart == "xmr" else 0.2,
            baseline_points=baseline_points,
        )
        assert batch.has_run_chart.tolist()[:3] == [False, False, True]
        assert batch.variation_icon.tolist()[:7] == [None] * 7
        assert batch.variation_icon[7] is not None and batch.variation_icon[8] is None


def test_no_series_and_only_empty_series() -> None:
    nothing = analyse_many(np.zeros(0), starts=np.array([0]), chart="xmr")
    assert_shapes(nothing, 0, 0)
    empties = analyse_many(
        np.zeros(0), np.zeros(0), starts=np.array([0, 0, 0]), chart="p", direction="up", target=0.5
    )
    assert_shapes(empties, 0, 2)
    assert empties.variation_icon.tolist() == [None, None]
    assert empties.has_run_chart.tolist() == [False, False]


def test_segments_without_points_and_an_empty_latest_segment() -> None:
    # segment 1 has no valid point; the latest segment (from index 30) has none either, so
    # there is no run chart but the icons still come from the last valid point (index 27)
    base = [float(v) for v in CASES[0].values.split()] * 3
    y = base[:30] + [math.nan] * 6
    y[13:17] = [math.nan] * 4
    values, starts = flat([y, y[:29]])
    breaks = np.zeros(values.size, dtype=bool)
    breaks[[13, 17, 30]] = True
    batch = analyse_many(values, starts=starts, chart="xmr", direction="up", target=25,
                         segment_breaks=breaks)  # fmt: skip
    refs = [
        spc.analyse(values[a:b], direction="up", target=25, rebase_at=rebase)
        for a, b, rebase in [(0, 36, (13, 17, 30)), (36, 65, ())]
    ]
    assert_matches(batch, refs, starts, "empty segments")
    assert batch.segment[:36].max() == 3
    assert not batch.has_run_chart[0] and batch.variation_icon[0] is not None


def test_break_at_a_series_start_is_ignored() -> None:
    values, starts = flat([[1.0, 2.0, 3.0], [4.0, 5.0]])
    breaks = np.array([True, False, False, True, True])
    batch = analyse_many(values, starts=starts, chart="xmr", segment_breaks=breaks)
    assert batch.segment.tolist() == [0, 0, 0, 0, 1]


def test_negative_numerator_at_a_missing_point_is_no_error() -> None:
    # spc.analyse checks numerators only where the denominator makes the point valid
    num = np.array([1.0, -5.0, 2.0, 3.0, 9.0])
    den = np.array([10.0, 0.0, 10.0, 10.0, 0.0])
    compare_batch(num, den, np.array([0, 5]), chart="p")
    compare_batch(num, den, np.array([0, 5]), chart="u")


# ---------------------------------------------------------------------------------------------
# segment_breaks
# ---------------------------------------------------------------------------------------------


def test_segment_breaks_follow_spc_segment_starts() -> None:
    days = np.datetime64("2023-01-01") + np.array([0, 7, 14, 21, 28, 35])
    periods = np.concatenate((days, days[:3], days[:0], days))
    starts = np.array([0, 6, 9, 9, 15])
    rebase = [
        [date(2023, 1, 8), date(2023, 1, 17), date(2023, 1, 17)],  # on, between, repeated
        [date(2022, 12, 1), date(2023, 1, 1), date(2023, 2, 1)],  # before, on first, after
        [date(2023, 1, 8)],  # empty series
        [np.datetime64("2023-01-29"), 2, 0, 6, -1],  # numpy date and indices
    ]
    breaks = segment_breaks(periods, starts, rebase)
    expected = np.zeros(15, dtype=bool)
    for i, (a, b) in enumerate(itertools.pairwise(starts)):
        for s in spc._segment_starts(int(b - a), rebase[i], periods[a:b]):
            if s:
                expected[a + s] = True
    assert breaks.tolist() == expected.tolist()
    assert np.flatnonzero(breaks).tolist() == [1, 3, 11, 13]


def test_segment_breaks_need_sorted_periods_where_they_rebase() -> None:
    periods = np.array(["2023-01-08", "2023-01-01", "2023-01-01", "2023-01-08"], "datetime64[D]")
    starts = np.array([0, 2, 4])  # series 0 is not sorted, series 1 is
    with pytest.raises(ValueError, match="sorted"):
        spc.analyse([1.0, 2.0], rebase_at=[date(2023, 1, 5)], dates=periods[:2])
    with pytest.raises(ValueError, match="sorted"):
        segment_breaks(periods, starts, [[date(2023, 1, 5)], []])
    # as spc.analyse, which looks at the dates only to re-base
    ok = segment_breaks(periods, starts, [[], [date(2023, 1, 5)]])
    assert ok.tolist() == [False, False, False, True]
    with pytest.raises(ValueError):
        segment_breaks(periods, starts, [[]])  # one list per series


# ---------------------------------------------------------------------------------------------
# Validation
# ---------------------------------------------------------------------------------------------

ERRORS = [
    ("negative p numerator", [1.0, -1.0], [5.0, 5.0], {"chart": "p"}),
    ("negative u numerator", [1.0, -1.0], [5.0, 5.0], {"chart": "u"}),
    ("negative denominator", [1.0, 1.0], [5.0, -5.0], {"chart": "u"}),
    ("p numerator > denominator", [1.0, 6.0], [5.0, 5.0], {"chart": "p"}),
    ("p chart without denominators", [1.0, 2.0], None, {"chart": "p"}),
    ("u chart without denominators", [1.0, 2.0], None, {"chart": "u"}),
    ("XmR with denominators", [1.0, 2.0], [5.0, 5.0], {"chart": "xmr"}),
    ("baseline of 1", [1.0, 2.0], None, {"chart": "xmr", "baseline_points": 1}),
    ("unknown chart", [1.0, 2.0], None, {"chart": "np"}),
    ("unknown direction", [1.0, 2.0], None, {"chart": "xmr", "direction": "sideways"}),
]


@pytest.mark.parametrize(("name", "values", "dens", "options"), ERRORS, ids=[e[0] for e in ERRORS])
def test_value_errors_as_analyse(
    name: str, values: list[float], dens: list[float] | None, options: dict[str, Any]
) -> None:
    # the bad series is the second of two: every series is checked
    good = [3.0, 4.0]
    num = np.array(good + values)
    den = None if dens is None else np.array([10.0, 10.0, *dens])
    with pytest.raises(ValueError):
        spc.analyse(values, dens, **options)
    with pytest.raises(ValueError):
        analyse_many(num, den, starts=np.array([0, 2, 4]), **options)


@pytest.mark.parametrize("starts", [[0, 3], [1, 4], [0, 3, 2, 4], [], [0, 5]])
def test_bad_starts(starts: list[int]) -> None:
    with pytest.raises(ValueError):
        analyse_many(np.arange(4.0), starts=np.array(starts, dtype=np.int64), chart="xmr")


def test_mismatched_lengths() -> None:
    with pytest.raises(ValueError):
        analyse_many(np.ones(3), np.ones(2), starts=np.array([0, 3]), chart="p")
    with pytest.raises(ValueError):
        analyse_many(np.ones(3), starts=np.array([0, 3]), chart="xmr", segment_breaks=[True])


# ---------------------------------------------------------------------------------------------
# Internals
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("chart", "laney"), [("xmr", False), ("p", True), ("u", True)])
def test_limits_are_the_same_doubles_as_analyse(chart: str, laney: bool) -> None:
    # Stricter than the tolerance above: sums are taken in numpy's pairwise order and every
    # other step as spc does it, so centre, limits and medians are bit for bit spc's.
    rng = np.random.default_rng(99)
    value_lists, den_lists = random_series(rng, chart)
    values, starts = flat(value_lists)
    dens = None if chart == "xmr" else flat(den_lists)[0]
    if chart == "xmr":  # non-integer values, where the order of summation matters
        values = values * 0.1 + 1e-3
    periods, rebase = random_rebasing(rng, starts)
    options = {"chart": chart, "direction": "up", "laney": laney, "baseline_points": 12}
    batch = analyse_many(
        values, dens, starts=starts, segment_breaks=segment_breaks(periods, starts, rebase),
        **options,
    )  # fmt: skip
    refs = []
    for i, (a, b) in enumerate(itertools.pairwise(starts.tolist())):
        kwargs = dict(options, rebase_at=rebase[i], dates=periods[a:b])
        refs.append(spc.analyse(values[a:b], None if dens is None else dens[a:b], **kwargs))
    for name in FLOATS:
        expected = np.concatenate([getattr(r, name) for r in refs])
        assert np.array_equal(getattr(batch, name), expected, equal_nan=True), name
    run_centres = [math.nan if r.run_chart is None else r.run_chart.centre for r in refs]
    assert np.array_equal(batch.run_centre, run_centres, equal_nan=True)
    assert np.isfinite(batch.upper).sum() > 1000


def test_segment_sums_are_numpy_sums_bit_for_bit() -> None:
    # numpy sums pairwise (8 accumulators, blocks of 128); the batch means must be the same
    # doubles as spc's np.mean, or a point exactly on a limit could be judged differently.
    rng = np.random.default_rng(5)
    counts = np.concatenate((np.arange(0, 300), rng.integers(0, 2000, 200), [4096, 5000]))
    x = rng.standard_normal(int(counts.sum())) * 10.0 ** rng.integers(-3, 8, int(counts.sum()))
    got = _segment_sums(x, counts)
    offsets = np.concatenate(([0], np.cumsum(counts)))
    expected = np.array([x[a:b].sum() for a, b in itertools.pairwise(offsets)])
    assert np.array_equal(got, expected)
    # the naive alternatives differ: this test can tell them apart
    assert not np.array_equal(np.add.reduceat(x, offsets[:-1][counts > 0]), expected[counts > 0])


def test_signal_bits_are_the_signal_order() -> None:
    assert [SIGNAL_BITS[s] for s in SIGNALS] == [1 << j for j in range(len(SIGNALS))]
    assert len(SIGNALS) <= 8  # fits the uint8 bitmask


def test_benchmark_runs_on_a_small_set(capsys: pytest.CaptureFixture[str]) -> None:
    # the timing helper (python -m measures.spc_batch) keeps working; no timing is asserted
    first, best, loop = benchmark(n_series=40, mean_points=30, repeat=1)
    assert first > 0 and best > 0 and loop > 0
    assert "analyse_many" in capsys.readouterr().out
