"""Statistical process control for many series at once: a vectorised :func:`spc.analyse`.

The aggregation engine analyses thousands of series per run. :func:`measures.spc.analyse`
costs about a millisecond per series (hundreds of small numpy calls); :func:`analyse_many`
takes all series as flat arrays cut by ``starts`` and does every step with whole-array
operations (group sums, run-length encoding, one bucketed sort for the medians), giving the
same numbers as ``spc.analyse`` series by series. :mod:`measures.spc` stays the reference and
the documentation of the method; each step below says which of its functions it reproduces.

Supported configuration (the engine's): the MDC Single Chart Tool v5.0 rule set
(``spc.RuleConfig()``: shift and trend of 6, a point on the centre line breaks a shift, no
rules in segments without limits), ``min_points = spc.MIN_POINTS``, no moving-range screening.
All series of one call share chart, direction, target, baseline and Laney.

Sources: as :mod:`measures.spc` -- MDC (NHS England "Making Data Count" Single Chart Tool v5.0
and its XmR testing checklist), Wheeler (*Understanding Variation*), Montgomery (*Introduction
to Statistical Quality Control* 7th ed., ch. 7), Laney 2002 (*Quality Engineering* 14(4)),
Anhøj & Olesen 2014 (*PLoS ONE* 9(11) e113825) and qicharts2 ``runs.analysis``.

Floating point: sums are taken in the order numpy's own ``sum``/``mean`` take them (pairwise
summation, :func:`_segment_sums`), and every other float step repeats ``spc``'s operations in
the same order, so results agree to the last bit, not only within a tolerance.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from typing import Any

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view
from numpy.typing import ArrayLike, NDArray

from measures import spc

__all__ = ["BatchAnalysis", "analyse_many", "segment_breaks"]

FloatArray = NDArray[np.float64]
IntArray = NDArray[np.int64]
BoolArray = NDArray[np.bool_]

#: Bit j of :attr:`BatchAnalysis.signals` is ``list(spc.Signal)[j]``.
SIGNAL_BITS: dict[spc.Signal, int] = {s: 1 << j for j, s in enumerate(spc.Signal)}
_HIGH_MASK = sum(SIGNAL_BITS[s] for s in spc.Signal if s.high)
_LOW_MASK = sum(SIGNAL_BITS[s] for s in spc.Signal if not s.high)
_POINT_CLASSES = tuple(spc.PointClass)
# point_class codes: the index in list(spc.PointClass)
_COMMON = np.int8(_POINT_CLASSES.index(spc.PointClass.COMMON))
_IMPROVEMENT = np.int8(_POINT_CLASSES.index(spc.PointClass.IMPROVEMENT))
_CONCERN = np.int8(_POINT_CLASSES.index(spc.PointClass.CONCERN))
_NEITHER = np.int8(_POINT_CLASSES.index(spc.PointClass.NEITHER))
# numpy's pairwise summation: blocks of at most this many values are summed with 8 accumulators
_PW_BLOCKSIZE = 128


@dataclass(frozen=True, slots=True)
class BatchAnalysis:
    """Results of :func:`analyse_many`: flat per-point arrays and per-series arrays.

    Per point (length N, input order): ``y`` the plotted statistic (value, proportion or rate;
    NaN for a missing point), ``segment`` the segment number within its own series (from 0),
    centre and 3σ/2σ lines (NaN where ``spc.analyse`` has NaN: missing points, and the limits of
    segments with fewer than ``spc.MIN_POINTS`` points), ``signals`` a bitmask (bit j set when
    ``list(spc.Signal)[j]`` fired, see :data:`SIGNAL_BITS`), ``point_class`` the index in
    ``list(spc.PointClass)`` or -1 for a missing point.

    Per series (length S): the variation and assurance icons (object arrays of enum members or
    None) and the latest segment's run chart (``spc.SeriesAnalysis.run_chart``):
    ``has_run_chart`` False when it is None, the other fields then NaN / 0 / False.
    """

    y: FloatArray
    segment: IntArray
    centre: FloatArray
    upper: FloatArray
    lower: FloatArray
    upper_2s: FloatArray
    lower_2s: FloatArray
    signals: NDArray[np.uint8]
    point_class: NDArray[np.int8]
    variation_icon: NDArray[np.object_]
    assurance_icon: NDArray[np.object_]
    has_run_chart: BoolArray
    run_centre: FloatArray
    run_n_useful: IntArray
    run_longest: IntArray
    run_longest_max: IntArray
    run_crossings: IntArray
    run_crossings_min: IntArray
    run_signal: BoolArray


# --------------------------------------------------------------------------------------------
# Group helpers
# --------------------------------------------------------------------------------------------


def _exclusive_cumsum(counts: IntArray) -> IntArray:
    out = np.zeros(counts.size, dtype=np.int64)
    if counts.size > 1:
        np.cumsum(counts[:-1], out=out[1:])
    return out


def _rows(xp: FloatArray, off: IntArray, n: IntArray, width: int, fill: float) -> FloatArray:
    """Rows ``xp[off:off+n]`` (n <= width), padded with ``fill`` to ``width`` columns.

    ``xp`` must extend at least ``width`` values past the last row start (callers pad it):
    each row is then one contiguous copy out of a sliding-window view.
    """
    out = sliding_window_view(xp, width)[off]
    out[np.arange(width)[None, :] >= n[:, None]] = fill
    return out


def _leaf_sums(xp: FloatArray, off: IntArray, n: IntArray) -> FloatArray:
    """numpy's pairwise sum of blocks ``xp[off:off+n]`` with ``n <= 128`` (numpy's leaf case).

    Fewer than 8 values: summed in order from 0.0. 8 to 128: eight running sums of every 8th
    value, combined as ((r0+r1)+(r2+r3))+((r4+r5)+(r6+r7)), then the remaining n % 8 values
    added in order (numpy ``pairwise_sum`` in ``loops_utils.h.src``). Blocks are padded with
    zeros to a common width; adding 0.0 leaves a sum unchanged.
    """
    out = np.zeros(off.size, dtype=np.float64)
    short = n < 8
    if short.any():
        pad = _rows(xp, off[short], n[short], 7, 0.0)
        res = np.zeros(pad.shape[0], dtype=np.float64)
        for j in range(7):
            res += pad[:, j]
        out[short] = res
    blk = ~short
    if blk.any():
        o, k = off[blk], n[blk]
        full = k - k % 8
        chunks = _rows(xp, o, full, _PW_BLOCKSIZE, 0.0).reshape(o.size, _PW_BLOCKSIZE // 8, 8)
        r = chunks[:, 0, :].copy()
        for i in range(1, int(full.max()) // 8):
            r += chunks[:, i, :]
        res = ((r[:, 0] + r[:, 1]) + (r[:, 2] + r[:, 3])) + (
            (r[:, 4] + r[:, 5]) + (r[:, 6] + r[:, 7])
        )
        rest = _rows(xp, o + full, k - full, 7, 0.0)
        for j in range(7):
            res += rest[:, j]
        out[blk] = res
    return out


def _pairwise_sums(xp: FloatArray, off: IntArray, n: IntArray) -> FloatArray:
    out = np.empty(off.size, dtype=np.float64)
    big = n > _PW_BLOCKSIZE
    small = ~big
    out[small] = _leaf_sums(xp, off[small], n[small])
    if big.any():
        o, k = off[big], n[big]
        half = k // 2
        half -= half % 8
        out[big] = _pairwise_sums(xp, o, half) + _pairwise_sums(xp, o + half, k - half)
    return out


def _segment_sums(x: FloatArray, counts: IntArray) -> FloatArray:
    """Sum of each consecutive group of ``x`` (group g has ``counts[g]`` values; 0.0 if none).

    Bit for bit ``x[a:b].sum()`` per group: numpy sums contiguous float64 arrays pairwise
    (``np.add.reduceat`` does not: it starts from the first value), so ``mean`` in
    :mod:`measures.spc` and here give the same double.
    """
    counts = np.asarray(counts, dtype=np.int64)
    xp = np.concatenate((np.asarray(x, dtype=np.float64), np.zeros(_PW_BLOCKSIZE)))
    return _pairwise_sums(xp, _exclusive_cumsum(counts), counts)


def _runs(key: NDArray[Any], cut: BoolArray | None) -> tuple[IntArray, IntArray]:
    """Run-length encoding of ``key``: (run starts, run lengths).

    A run also ends where ``cut[j]`` is True (between elements j and j + 1).
    """
    n = key.size
    if n == 0:
        empty = np.zeros(0, dtype=np.int64)
        return empty, empty
    change = key[1:] != key[:-1]
    if cut is not None:
        change |= cut
    starts = np.flatnonzero(np.concatenate(([True], change)))
    lengths = np.diff(np.append(starts, n))
    return starts, lengths


def _in_long_runs(e: BoolArray, length: int, keep: BoolArray | None) -> BoolArray:
    """True where ``e`` is True within ``length`` or more consecutive True values.

    ``keep[j]`` False cuts a run between elements j and j + 1. Same as run-length encoding and
    flagging runs of at least ``length`` (``spc._shift_flags`` / ``_trend_flags``), with a few
    shifted ANDs and ORs instead: a window of ``length`` all True marks all its elements.
    """
    n = e.size
    out = np.zeros(n, dtype=bool)
    if n < length:
        return out
    span = n - length + 1
    win = e[:span].copy()
    for k in range(1, length):
        win &= e[k : span + k]
        if keep is not None:
            win &= keep[k - 1 : span + k - 1]
    for k in range(length):
        out[k : span + k] |= win
    return out


def _segment_medians(y: FloatArray, off: IntArray, n: IntArray) -> FloatArray:
    """``np.median(y[off:off+n])`` per group (n ≥ 1), by sorting groups of similar size as rows.

    Groups are bucketed by the bit length of n, so each bucket is a matrix at most twice as
    wide as its shortest row; even n: (a + b) / 2 of the middle pair, as ``np.median`` (the
    mean of the two).
    """
    out = np.empty(off.size, dtype=np.float64)
    if off.size == 0:
        return out
    bucket = np.floor(np.log2(n)).astype(np.int64)
    yp = np.concatenate((y, np.full(int(n.max()), np.nan)))
    for b in np.unique(bucket).tolist():
        rows = np.flatnonzero(bucket == b)
        k = n[rows]
        mat = _rows(yp, off[rows], k, int(k.max()), np.nan)
        mat.sort(axis=1)  # NaN padding sorts last
        r = np.arange(rows.size)
        hi = mat[r, k // 2]
        lo = mat[r, (k - 1) // 2]
        out[rows] = np.where(k % 2 == 1, hi, (lo + hi) / 2)
    return out


# --------------------------------------------------------------------------------------------
# Segments
# --------------------------------------------------------------------------------------------


def segment_breaks(
    periods: ArrayLike,
    starts: ArrayLike,
    rebase_at: Sequence[Sequence[date | np.datetime64 | int]],
) -> BoolArray:
    """Re-basing points as the flat ``segment_breaks`` argument of :func:`analyse_many`.

    ``periods``: the dates of all points (datetime64 or anything numpy turns into one), oldest
    first within each series; ``starts`` as for :func:`analyse_many`; ``rebase_at[i]``: the
    dates series i is re-based at. Same rule as ``spc._segment_starts`` with ``dates``: a new
    segment starts at the first point on or after each date, and a date on or before the
    series' first point, or after its last, re-bases nothing. An ``int`` in ``rebase_at[i]`` is
    an index into the series, as in ``spc.analyse``. Raises ValueError when the periods of a
    re-based series are not sorted (``spc.analyse`` checks that too).
    """
    st = np.asarray(starts, dtype=np.int64).ravel()
    per = np.asarray(periods)
    if per.dtype.kind != "M":
        per = per.astype("datetime64[ns]")
    t = per.astype("datetime64[ns]").astype(np.int64).ravel()
    n = t.size
    s_count = st.size - 1
    _check_starts(st, n)
    if len(rebase_at) != s_count:
        raise ValueError("rebase_at needs one sequence of dates per series")
    lengths = np.diff(st)
    breaks = np.zeros(n, dtype=bool)
    rebased = np.array([len(r) > 0 for r in rebase_at], dtype=bool)
    if not rebased.any():
        return breaks
    # spc.analyse checks the order of the dates of a series it re-bases
    sid = np.repeat(np.arange(s_count, dtype=np.int64), lengths)
    unsorted = np.flatnonzero((t[1:] < t[:-1]) & (sid[1:] == sid[:-1]))
    if unsorted.size and rebased[sid[unsorted]].any():
        raise ValueError("dates must be sorted")

    q_series: list[int] = []
    q_time: list[np.datetime64] = []
    idx_series: list[int] = []
    idx_pos: list[int] = []
    for i in np.flatnonzero(rebased).tolist():
        for r in rebase_at[i]:
            if isinstance(r, int | np.integer) and not isinstance(r, bool):
                idx_series.append(i)
                idx_pos.append(int(r))
            else:
                q_series.append(i)
                q_time.append(spc._to_datetime64(r))
    if idx_series:
        s_arr = np.asarray(idx_series, dtype=np.int64)
        pos = np.asarray(idx_pos, dtype=np.int64)
        ok = (pos > 0) & (pos < lengths[s_arr])
        breaks[st[s_arr[ok]] + pos[ok]] = True
    if q_series:
        qs = np.asarray(q_series, dtype=np.int64)
        qt = np.asarray(q_time, dtype="datetime64[ns]").astype(np.int64)
        # np.searchsorted(series dates, r, side="left") for all dates at once: bisection
        # within each series' [start, stop) for the first period >= r
        lo, hi = st[qs].copy(), st[qs + 1].copy()
        while True:
            open_ = lo < hi
            if not open_.any():
                break
            mid = (lo + hi) // 2
            before = open_ & (t[np.minimum(mid, n - 1)] < qt)
            lo = np.where(before, mid + 1, lo)
            hi = np.where(open_ & ~before, mid, hi)
        pos = lo - st[qs]
        ok = (pos > 0) & (pos < lengths[qs])
        breaks[st[qs[ok]] + pos[ok]] = True
    return breaks


def _describe(starts: IntArray) -> spc.Where:
    """Error positions as "series i, point j (values[k])" for the flat index k."""

    def where(name: str, k: int) -> str:
        if starts.size < 2 or not 0 <= k < int(starts[-1]):
            return f"{name}[{k}]"
        i = int(np.searchsorted(starts, k, side="right")) - 1
        return f"series {i}, point {k - int(starts[i])} ({name}[{k}])"

    return where


def _check_starts(starts: IntArray, n: int) -> None:
    if starts.size < 1 or starts[0] != 0 or starts[-1] != n or np.any(np.diff(starts) < 0):
        raise ValueError("starts must rise from 0 to the number of points")


# --------------------------------------------------------------------------------------------
# Entry point
# --------------------------------------------------------------------------------------------


def analyse_many(
    values: ArrayLike,
    denominators: ArrayLike | None = None,
    *,
    starts: ArrayLike,
    chart: spc.ChartType | str,
    direction: spc.Direction | str = "neither",
    target: float | None = None,
    baseline_points: int | None = None,
    laney: bool = False,
    segment_breaks: ArrayLike | None = None,
) -> BatchAnalysis:
    """:func:`spc.analyse` of many series at once (same as spc.analyse, series by series).

    ``values``: all points, flat (values for XmR, numerators for p and u; NaN = missing);
    ``denominators``: flat, p and u only (NaN or 0 = missing); series i is
    ``[starts[i], starts[i+1])`` (empty series allowed). ``segment_breaks``: True at the first
    point of a re-based segment (see :func:`segment_breaks`; ignored at a series' first point).
    Rules: ``spc.RuleConfig()`` (MDC v5.0), ``min_points = spc.MIN_POINTS``, no moving-range
    screening. Raises ValueError where ``spc.analyse`` would for any of the series -- among
    others for infinite values or denominators, values beyond ±``spc.MAX_ABS_VALUE`` and limits
    that overflow, naming the series and point (NaN is the missing marker, never an error).

    Steps, each as in :mod:`measures.spc`: segments (``_segment_starts``); per segment the
    centre and limits from its first ``baseline_points`` valid points (``xmr_limits``,
    ``_attribute_limits`` with Laney and clipping), shown only with ≥ ``MIN_POINTS`` points;
    the rules on each series' valid points (``special_cause_flags``: runs cross segment
    boundaries but not series); ``classify_points``; icons from the last valid point
    (``variation_icon``, ``assurance_icon``); the run chart of the latest segment
    (``run_chart_analysis`` about the median of its baseline points).
    """
    chart = spc.ChartType(chart)
    direction = spc.Direction(direction)
    rules = spc.RuleConfig()
    min_points = spc.MIN_POINTS
    if baseline_points is not None and baseline_points < 2:
        raise ValueError("baseline_points must be at least 2 (DESIGN.md recommends >= 12)")
    spc._check_scalar("target", target, optional=True)

    st = np.asarray(starts, dtype=np.int64).ravel()
    where = _describe(st)
    y, valid, num, den = spc.plotted_statistic(values, denominators, chart, where=where)
    n = y.size
    _check_starts(st, n)
    s_count = st.size - 1
    lengths = np.diff(st)

    # --- segments: global segment ids (spc._segment_starts) ---
    sid = np.repeat(np.arange(s_count, dtype=np.int64), lengths)
    nonempty = lengths > 0
    first_points = st[:-1][nonempty]
    new_seg = np.zeros(n, dtype=bool)
    if segment_breaks is not None:
        b = np.asarray(segment_breaks, dtype=bool).ravel()
        if b.size != n:
            raise ValueError("segment_breaks and values differ in length")
        new_seg |= b
    new_seg[first_points] = True
    gseg = np.cumsum(new_seg, dtype=np.int64) - 1
    n_seg = int(gseg[-1]) + 1 if n else 0
    series_seg0 = gseg[first_points]
    segment = gseg - np.repeat(series_seg0, lengths[nonempty])

    # --- compact arrays of the valid points ---
    all_valid = bool(valid.all())
    vidx = np.arange(n) if all_valid else np.flatnonzero(valid)
    nc = vidx.size
    yc = y if all_valid else y[vidx]
    segc = gseg if all_valid else gseg[vidx]
    sidc = sid if all_valid else sid[vidx]
    m = np.bincount(segc, minlength=n_seg).astype(np.int64)  # valid points per segment
    seg_off = _exclusive_cumsum(m)
    ncalc = m if baseline_points is None else np.minimum(m, baseline_points)
    if baseline_points is None:
        calc = np.ones(nc, dtype=bool)
    else:
        rank = np.arange(nc, dtype=np.int64) - np.repeat(seg_off, m)
        calc = rank < np.repeat(ncalc, m)
    shown = (m >= min_points) & (ncalc >= 2)
    has_lim = np.repeat(shown, m)  # per compact point: limits shown (spc: limits_shown)
    yk = yc[calc]
    segk = segc[calc]
    same_seg_k = segk[1:] == segk[:-1]
    has_calc = ncalc > 0
    n_mr = np.maximum(ncalc - 1, 0)

    # --- centre and limits per segment ---
    seg_centre = np.full(n_seg, np.nan)
    seg_finite = np.ones(n_seg, dtype=bool)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        if chart is spc.ChartType.XMR:
            # spc.analyse / xmr_limits: centre = mean; mR̄ = mean |Δy| of the calculation points;
            # sigma = 2.66·mR̄/3 (MDC v5.0; Wheeler 2.66 = 3/d2).
            seg_centre[has_calc] = _segment_sums(yk, ncalc)[has_calc] / ncalc[has_calc]
            mr_bar = _segment_sums(np.abs(np.diff(yk))[same_seg_k], n_mr) / n_mr
            sigma = spc.E2 * mr_bar / 3.0
            sigma[~shown] = np.nan
            lines = [seg_centre + 3 * sigma, seg_centre - 3 * sigma]
            lines += [seg_centre + 2 * sigma, seg_centre - 2 * sigma]
            c_up, c_lo, c_up2, c_lo2 = (np.repeat(line, m) for line in lines)
        else:
            # spc._attribute_limits: p̄ or ū = Σnum/Σden of the calculation points; σᵢ =
            # √(p̄(1−p̄)/nᵢ) or √(ū/nᵢ) (Montgomery §7.2-7.3); Laney's σ_z (Laney 2002); lines
            # clipped to [0, 1] (p) or [0, ∞) (u).
            assert num is not None and den is not None
            numc = num if all_valid else num[vidx]
            denc = den if all_valid else den[vidx]
            total = _segment_sums(denc[calc], ncalc)
            if np.any(total[has_calc] <= 0):
                raise ValueError("denominators of the calculation points sum to zero")
            seg_centre[has_calc] = _segment_sums(numc[calc], ncalc)[has_calc] / total[has_calc]
            if chart is spc.ChartType.P:
                if np.any(~((seg_centre[has_calc] >= 0) & (seg_centre[has_calc] <= 1))):
                    raise ValueError("p-chart numerators must not exceed denominators")
                var_unit = seg_centre * (1.0 - seg_centre)
                upper_clip = 1.0
            else:
                var_unit = seg_centre
                upper_clip = math.inf
            var_unit = np.where(shown, var_unit, np.nan)  # no limits: NaN lines
            sig = np.sqrt(np.repeat(var_unit, m) / denc)
            if laney:
                sig_c = sig[calc]
                z = np.where(sig_c > 0, (yk - np.repeat(seg_centre, ncalc)) / sig_c, 0.0)
                mr_z = _segment_sums(np.abs(np.diff(z))[same_seg_k], n_mr) / n_mr
                sigma_z = np.where(np.isnan(mr_z), 1.0, mr_z / spc.D2)
                sig = sig * np.repeat(sigma_z, m)
            cc_l = np.repeat(seg_centre, m)
            c_up = np.clip(cc_l + 3 * sig, 0.0, upper_clip)
            c_lo = np.clip(cc_l + -3 * sig, 0.0, upper_clip)
            c_up2 = np.clip(cc_l + 2 * sig, 0.0, upper_clip)
            c_lo2 = np.clip(cc_l + -2 * sig, 0.0, upper_clip)
            if laney:
                seg_finite &= np.isfinite(sigma_z)  # spc._check_limits checks σ_z too
    cc = np.repeat(seg_centre, m)
    # spc._check_limits: shown limits must be finite numbers (p and u can overflow at a
    # denominator next to 0; XmR cannot within spc.MAX_ABS_VALUE)
    finite = np.isfinite(c_up) & np.isfinite(c_lo) & np.isfinite(c_up2) & np.isfinite(c_lo2)
    overflow = has_lim & ~(finite & np.repeat(seg_finite, m))
    if overflow.any():
        k = int(vidx[np.flatnonzero(overflow)[0]])
        raise ValueError(
            f"the limits at {where('values', k)} overflow (a denominator too close to 0, "
            "or z-scores beyond float range): these values cannot be charted"
        )

    # --- special-cause rules on each series' valid points (spc.special_cause_flags) ---
    bits = _rule_bits(yc, cc, c_up, c_lo, c_up2, c_lo2, has_lim, sidc, rules)

    # --- point classes (spc.classify_points) ---
    any_high = (bits & _HIGH_MASK) != 0
    any_low = (bits & _LOW_MASK) != 0
    if direction is spc.Direction.NEITHER:
        cls = np.where(any_high | any_low, _NEITHER, _COMMON)
    else:
        # a point both improving and concerning shows as improvement (MDC "conflict")
        good, bad = (any_high, any_low) if direction is spc.Direction.UP else (any_low, any_high)
        cls = np.where(good, _IMPROVEMENT, np.where(bad, _CONCERN, _COMMON))

    # --- icons from each series' last valid point, if its limits are shown ---
    v_icon = np.full(s_count, None, dtype=object)
    a_icon = np.full(s_count, None, dtype=object)
    n_valid = np.bincount(sidc, minlength=s_count)
    last = np.cumsum(n_valid) - 1
    with_icon = np.flatnonzero(n_valid > 0)
    with_icon = with_icon[has_lim[last[with_icon]]]
    if with_icon.size:
        li = last[with_icon]
        v_icon[with_icon] = _variation_icons(
            cls[li], any_high[li], any_low[li], yc[li] >= cc[li], direction
        )
        a_icon[with_icon] = _assurance_icons(target, direction, c_lo[li], c_up[li])

    # --- run chart of each series' latest segment (spc.run_chart_analysis) ---
    run = _latest_run_charts(yc, seg_off, m, ncalc, gseg, st, nonempty, s_count)

    # --- back to full length ---
    def spread(compact: NDArray[Any], fill: Any) -> NDArray[Any]:
        if all_valid:
            return compact
        out = np.full(n, fill, dtype=compact.dtype)
        out[vidx] = compact
        return out

    return BatchAnalysis(
        y=y,
        segment=segment,
        centre=spread(cc, np.nan),
        upper=spread(c_up, np.nan),
        lower=spread(c_lo, np.nan),
        upper_2s=spread(c_up2, np.nan),
        lower_2s=spread(c_lo2, np.nan),
        signals=spread(bits, 0),
        point_class=spread(cls.astype(np.int8, copy=False), np.int8(-1)),
        variation_icon=v_icon,
        assurance_icon=a_icon,
        **run,
    )


def _rule_bits(
    yc: FloatArray,
    cc: FloatArray,
    up: FloatArray,
    lo: FloatArray,
    up2: FloatArray,
    lo2: FloatArray,
    has_lim: BoolArray,
    sidc: IntArray,
    rules: spc.RuleConfig,
) -> NDArray[np.uint8]:
    """MDC v5.0 rules as in ``spc.special_cause_flags`` on the valid points of all series.

    Each point is judged against its own centre and limits; shift, trend and two-of-three run
    across segment boundaries within a series (MDC "Special cause crossing recalculations") and
    never across series. Only the default rule set (``on_centre="break"``, no rules without
    limits) is supported. Limits are NaN where not shown, so comparisons with them are False.
    """
    assert rules.on_centre == "break" and not rules.rules_without_limits
    nc = yc.size
    bits = np.zeros(nc, dtype=np.uint8)
    if nc == 0:
        return bits
    active = has_lim
    tol = spc._tol(cc, up, lo)  # the same tolerance, from the same doubles, as spc
    with np.errstate(invalid="ignore"):
        dev = yc - cc
        side = (dev > tol).view(np.int8) - (dev < -tol).view(np.int8)
        side[~active] = 0
        above3 = yc > up + tol
        below3 = yc < lo - tol
        beyond2 = ~above3 & ~below3 & ((yc > up2 + tol) | (yc < lo2 - tol))
    new_series = sidc[1:] != sidc[:-1]

    def put(sig: spc.Signal, flag: BoolArray) -> None:
        bits[:] |= flag.view(np.uint8) * np.uint8(SIGNAL_BITS[sig])

    if rules.astronomical:
        put(spc.Signal.ASTRONOMICAL_HIGH, above3)
        put(spc.Signal.ASTRONOMICAL_LOW, below3)
    if rules.shift:
        # runs of one side (0 = on the centre or no limits: breaks a run), cut between series
        same_series = ~new_series
        for sig, sign in ((spc.Signal.SHIFT_HIGH, 1), (spc.Signal.SHIFT_LOW, -1)):
            put(sig, _in_long_runs(side == sign, rules.shift_length, same_series))
    if rules.trend and nc >= 2:
        # signs of consecutive differences; 0 = tie, a point without limits, or a series change
        d = np.sign(np.diff(yc)).astype(np.int8)
        d[~(active[1:] & active[:-1]) | new_series] = 0
        for sig, sign in ((spc.Signal.TREND_HIGH, 1), (spc.Signal.TREND_LOW, -1)):
            in_run = _in_long_runs(d == sign, rules.trend_length - 1, None)
            flag = np.zeros(nc, dtype=bool)
            flag[:-1] = in_run  # difference j joins points j and j + 1
            flag[1:] |= in_run
            put(sig, flag)
    if rules.two_of_three and nc >= 3:
        s0, s1, s2 = side[:-2], side[1:-1], side[2:]
        same = (s0 != 0) & (s0 == s1) & (s1 == s2) & ~new_series[:-1] & ~new_series[1:]
        count = beyond2[:-2].view(np.int8) + beyond2[1:-1].view(np.int8) + beyond2[2:].view(np.int8)
        win = same & (count >= 2)
        in_win = np.zeros(nc, dtype=bool)
        in_win[:-2] = win
        in_win[1:-1] |= win
        in_win[2:] |= win
        hit = in_win & beyond2
        put(spc.Signal.TWO_OF_THREE_HIGH, hit & (side > 0))
        put(spc.Signal.TWO_OF_THREE_LOW, hit & (side < 0))
    return bits


def _variation_icons(
    cls: NDArray[np.int8],
    high: BoolArray,
    low: BoolArray,
    above: BoolArray,
    direction: spc.Direction,
) -> NDArray[np.object_]:
    """``spc.variation_icon`` for each last point: evaluated once per distinct input."""
    key = cls.astype(np.int64) * 8 + high * 4 + low * 2 + above
    uniq, inverse = np.unique(key, return_inverse=True)
    table = np.empty(uniq.size, dtype=object)
    for j, k in enumerate(uniq.tolist()):
        table[j] = spc.variation_icon(
            _POINT_CLASSES[k // 8],
            direction,
            high=bool(k & 4),
            low=bool(k & 2),
            above_centre=bool(k & 1),
        )
    return table[inverse.ravel()]


def _assurance_icons(
    target: float | None, direction: spc.Direction, lower: FloatArray, upper: FloatArray
) -> NDArray[np.object_]:
    """``spc.assurance_icon`` per series: target against the last point's process limits."""
    out = np.full(lower.size, None, dtype=object)
    if target is None or direction is spc.Direction.NEITHER:
        return out
    up = direction is spc.Direction.UP
    above = target > upper
    below = ~above & (target < lower)
    out[:] = spc.AssuranceIcon.HIT_AND_MISS
    above_icon = spc.AssuranceIcon.CONSISTENT_FAIL if up else spc.AssuranceIcon.CONSISTENT_PASS
    below_icon = spc.AssuranceIcon.CONSISTENT_PASS if up else spc.AssuranceIcon.CONSISTENT_FAIL
    out[above] = above_icon
    out[below] = below_icon
    out[np.isnan(upper)] = None
    return out


def _latest_run_charts(
    yc: FloatArray,
    seg_off: IntArray,
    m: IntArray,
    ncalc: IntArray,
    gseg: IntArray,
    st: IntArray,
    nonempty: BoolArray,
    s_count: int,
) -> dict[str, NDArray[Any]]:
    """Anhøj run chart of each series' latest segment, as ``spc.run_chart_analysis``.

    Centre: the median of the segment's calculation (baseline) points; points within the
    centre's tolerance are dropped; longest run > round(log2 n) + 3 or crossings <
    qbinom(0.05, n − 1, ½) signal (Anhøj & Olesen 2014; qicharts2 ``runs.analysis``).
    No run chart when the latest segment has no valid point (``SegmentInfo.run_chart`` None).
    """
    has_run = np.zeros(s_count, dtype=bool)
    centre = np.full(s_count, np.nan)
    n_useful = np.zeros(s_count, dtype=np.int64)
    longest = np.zeros(s_count, dtype=np.int64)
    longest_max = np.zeros(s_count, dtype=np.int64)
    crossings = np.zeros(s_count, dtype=np.int64)
    crossings_min = np.zeros(s_count, dtype=np.int64)
    signal = np.zeros(s_count, dtype=bool)
    out = {
        "has_run_chart": has_run,
        "run_centre": centre,
        "run_n_useful": n_useful,
        "run_longest": longest,
        "run_longest_max": longest_max,
        "run_crossings": crossings,
        "run_crossings_min": crossings_min,
        "run_signal": signal,
    }
    series = np.flatnonzero(nonempty)
    last_seg = gseg[st[1:][nonempty] - 1]
    keep = m[last_seg] > 0
    series, last_seg = series[keep], last_seg[keep]
    if series.size == 0:
        return out
    has_run[series] = True
    med = _segment_medians(yc, seg_off[last_seg], ncalc[last_seg])
    centre[series] = med

    # the latest segments' valid points (consecutive in the compact arrays), row = series
    counts = m[last_seg]
    if last_seg.size == m.size:  # no re-basing: every segment is a latest one
        yv = yc
    else:
        first = np.repeat(seg_off[last_seg] - _exclusive_cumsum(counts), counts)
        yv = yc[first + np.arange(first.size)]
    dv = yv - np.repeat(med, counts)
    side = np.sign(dv).astype(np.int8)
    useful = np.abs(dv) > np.repeat(spc._tol(med), counts)
    nu = np.add.reduceat(useful.view(np.int8), _exclusive_cumsum(counts), dtype=np.int64)
    side = side[useful]
    row_end = np.cumsum(nu)  # row r's useful points end here
    cut = np.zeros(max(side.size - 1, 0), dtype=bool)
    inner_ends = row_end[(row_end > 0) & (row_end < side.size)]
    cut[inner_ends - 1] = True
    r_start, r_len = _runs(side, cut)
    # runs of row r are consecutive; count them by where they start
    n_runs = np.diff(np.concatenate(([0], np.searchsorted(r_start, row_end, side="left"))))
    with_pts = np.flatnonzero(nu > 0)
    if with_pts.size == 0:
        return out
    first_run = np.concatenate(([0], np.cumsum(n_runs)[:-1]))[with_pts]
    row_longest = np.maximum.reduceat(r_len, first_run)
    uniq, inverse = np.unique(nu[with_pts], return_inverse=True)
    crit = np.array([spc.anhoej_critical_values(int(k)) for k in uniq.tolist()], dtype=np.int64)
    run_max = crit[inverse.ravel(), 0]
    cross_min = crit[inverse.ravel(), 1]
    cross = n_runs[with_pts] - 1
    s_u = series[with_pts]
    n_useful[s_u] = nu[with_pts]
    longest[s_u] = row_longest
    longest_max[s_u] = run_max
    crossings[s_u] = cross
    crossings_min[s_u] = cross_min
    signal[s_u] = (row_longest > run_max) | (cross < cross_min)
    return out


# --------------------------------------------------------------------------------------------
# Timing (not a test): python -m measures.spc_batch
# --------------------------------------------------------------------------------------------


def benchmark(
    n_series: int = 6500, mean_points: int = 100, seed: int = 1, repeat: int = 3
) -> tuple[float, float, float]:
    """Seconds for :func:`analyse_many` and for a loop over ``spc.analyse`` on random series.

    XmR, direction up, a target, ``n_series`` series of ``mean_points`` ± 50 % points (2 %
    missing), a tenth of them re-based at a date. Returns (first batch call, best of
    ``repeat`` batch calls, the loop), and prints them.
    """
    import time

    rng = np.random.default_rng(seed)
    lengths = rng.integers(mean_points // 2, mean_points * 3 // 2 + 1, n_series)
    starts = np.concatenate(([0], np.cumsum(lengths))).astype(np.int64)
    values = rng.poisson(20, int(starts[-1])).astype(np.float64)
    values[rng.random(values.size) < 0.02] = np.nan
    periods = np.concatenate([np.datetime64("2020-01-06") + 7 * np.arange(k) for k in lengths])
    rebase: list[list[date | np.datetime64 | int]] = [
        [np.datetime64("2020-01-06") + 7 * int(k) // 2] if rng.random() < 0.1 else []
        for k in lengths
    ]
    kwargs: dict[str, Any] = {"chart": "xmr", "direction": "up", "target": 22.0}
    times = []
    for _ in range(max(repeat, 1)):
        t0 = time.perf_counter()
        analyse_many(
            values, starts=starts, segment_breaks=segment_breaks(periods, starts, rebase), **kwargs
        )
        times.append(time.perf_counter() - t0)
    t0 = time.perf_counter()
    for i, (a, b) in enumerate(zip(starts[:-1].tolist(), starts[1:].tolist(), strict=True)):
        spc.analyse(values[a:b], rebase_at=rebase[i], dates=periods[a:b], **kwargs)
    t_loop = time.perf_counter() - t0
    print(
        f"{n_series} series, {values.size} points: analyse_many (with segment_breaks) first call "
        f"{times[0]:.3f} s, best of {len(times)} {min(times):.3f} s; loop over spc.analyse "
        f"{t_loop:.3f} s ({t_loop / min(times):.0f}x)"
    )
    return times[0], min(times), t_loop


if __name__ == "__main__":
    benchmark()
