"""Statistical process control (SPC) for the Learning Health System: pure functions.

Numbers in, numbers out: no Django, no database. The aggregation engine calls
:func:`analyse` once per series (a few hundred points) and renders the returned
:class:`SeriesAnalysis`.

Sources (cited per function below):

* **MDC** -- NHS England "Making Data Count" (MDC), *Single Chart Tool v5.0* and the MDC team's
  "XmR testing" checklist (``/work/shared/spc-reference``): limits from 2.66 x mean moving
  range, the 13-point minimum, the four special-cause rules, colours, icons.
* **Wheeler** -- D. J. Wheeler, *Understanding Variation* (2nd ed., 2000) and *Making Sense of
  Data* (2003): the individuals (XmR) chart, 2.66 = 3/d2 with d2 = 1.128, 3.267 = D4 for the
  moving-range chart, baselines ("limits computed from a baseline and extended forward").
* **Montgomery** -- D. C. Montgomery, *Introduction to Statistical Quality Control* 7th ed.
  (2013), ch. 7: p-chart p̄ ± 3·√(p̄(1−p̄)/nᵢ) with variable sample size, u-chart ū ± 3·√(ū/nᵢ),
  negative lower limits set to 0.
* **Laney 2002** -- D. B. Laney, "Improved control charts for attributes", *Quality
  Engineering* 14(4):531-537: p′ and u′ charts, σ_z from the moving ranges of z-scores / 1.128.
* **Anhøj & Olesen 2014** -- J. Anhøj, A. V. Olesen, "Run charts revisited: a simulation
  study of run chart rules for detection of non-random variation in health care processes",
  *PLoS ONE* 9(11): e113825: longest run > round(log2 n) + 3, crossings < qbinom(0.05, n−1, ½).
* **qicharts2** -- J. Anhøj, R package *qicharts2* (``runs.analysis``): points on the median
  are dropped; the same critical values; ``freeze`` (baseline) and ``part`` (re-basing).
* **NHSRplotthedots** -- NHS-R community R package (``ptd_spc_standard``): moving-range
  screening (keep mR < 3.267·mR̄, recompute mR̄ once), rebase groups, assurance icon logic.
* **Spiegelhalter 2005** -- D. J. Spiegelhalter, "Funnel plots for comparing institutional
  performance", *Statistics in Medicine* 24:1185-1202: funnel limits, exact binomial/Poisson
  limits by interpolation (appendix), multiplicative over-dispersion with winsorised z-scores.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from enum import StrEnum
from functools import lru_cache
from itertools import pairwise
from typing import Any, Literal

import numpy as np
from numpy.typing import ArrayLike, NDArray

__all__ = [
    "COLOURS",
    "E2",
    "MR_SCREEN_FACTOR",
    "AssuranceIcon",
    "ChartType",
    "Direction",
    "FunnelResult",
    "Limits",
    "PointClass",
    "RuleConfig",
    "RunChartResult",
    "SegmentInfo",
    "SeriesAnalysis",
    "Signal",
    "VariationIcon",
    "analyse",
    "anhoej_critical_values",
    "assurance_icon",
    "classify_points",
    "funnel",
    "funnel_limits",
    "p_chart_limits",
    "run_chart_analysis",
    "special_cause_flags",
    "u_chart_limits",
    "variation_icon",
    "xmr_limits",
]

FloatArray = NDArray[np.float64]
BoolArray = NDArray[np.bool_]

#: Wheeler's scaling factor for XmR limits, 3/d2 with d2 = 1.128 for n = 2; MDC uses 2.66.
E2: float = 2.66
#: d2 for moving ranges of two points (Wheeler; Laney 2002 uses it for σ_z).
D2: float = 1.128
#: D4 for n = 2: upper limit of the moving-range chart, mR > 3.267·mR̄ is an outlier (Wheeler;
#: NHSRplotthedots screens with it; the MDC checklist rounds it to 3.27).
MR_SCREEN_FACTOR: float = 3.267
#: Minimum points in a segment for limits and icons to be shown (MDC checklist "Number of points").
MIN_POINTS: int = 13

#: Largest |value| accepted (and |denominator|, |numerator / denominator|). Below it none of
#: the arithmetic can overflow: sums of up to 10⁸ values, moving ranges (≤ 2·10³⁰⁰), limits at
#: mean ± 2.66·mR̄ (≤ 7·10³⁰⁰), deviations from the centre and the limits' width.
MAX_ABS_VALUE: float = 1e300

# Tolerance for "exactly on the centre line / on a limit" (:func:`_tol`). Float means are not
# exact (mean of [0.1, 0.1, 0.1] != 0.1) and a constant series must give no signal, but the
# tolerance must stay far below the data's spread however far from zero the data lie
# (10¹² ± 10, or values of 10⁻⁹): so it is a few float64 rounding errors of the centre's
# magnitude plus a billionth of the limits' width -- never a fraction of the centre itself.
# The mean of a constant series is off by at most ~3·eps·|value| (measured, 3 to 20 000 points).
_REL_TOL = 16 * float(np.finfo(np.float64).eps)  # ≈ 3.6e-15 of |centre|: 16 to 32 ulps
_WIDTH_TOL = 1e-9  # of upper − lower (≈ 6σ): float noise in decimal data, never a real signal
_ABS_TOL = float(np.finfo(np.float64).tiny)  # ≈ 2.2e-308: below this a difference is noise
_FLOAT_MAX = float(np.finfo(np.float64).max)


class ChartType(StrEnum):
    """Chart kind by measure kind (DESIGN.md §5): XmR for means and counts, p, u."""

    XMR = "xmr"
    P = "p"
    U = "u"


class Direction(StrEnum):
    """Improvement direction of a measure (MDC: high is good / low is good / neither)."""

    UP = "up"
    DOWN = "down"
    NEITHER = "neither"


class Signal(StrEnum):
    """A special-cause rule that fired at a point, with the side it points to (MDC v5.0)."""

    ASTRONOMICAL_HIGH = "astronomical_high"
    ASTRONOMICAL_LOW = "astronomical_low"
    SHIFT_HIGH = "shift_high"
    SHIFT_LOW = "shift_low"
    TREND_HIGH = "trend_high"  # increasing run
    TREND_LOW = "trend_low"  # decreasing run
    TWO_OF_THREE_HIGH = "two_of_three_high"
    TWO_OF_THREE_LOW = "two_of_three_low"

    @property
    def high(self) -> bool:
        """True when the signal points upwards (higher values)."""
        return self.value.endswith("_high")


_HIGH_SIGNALS = tuple(s for s in Signal if s.high)
_LOW_SIGNALS = tuple(s for s in Signal if not s.high)


class PointClass(StrEnum):
    """MDC point classification; see :data:`COLOURS` for the MDC colours."""

    COMMON = "common"  # grey: common-cause variation
    IMPROVEMENT = "improvement"  # blue
    CONCERN = "concern"  # orange
    NEITHER = "neither"  # purple: special cause when the direction is "neither"


#: MDC v5.0 colours (checklist "Special cause").
COLOURS: Mapping[PointClass, str] = {
    PointClass.COMMON: "#A6A6A6",
    PointClass.IMPROVEMENT: "#00B0F0",
    PointClass.CONCERN: "#E46C0A",
    PointClass.NEITHER: "#490092",
}


class VariationIcon(StrEnum):
    """MDC variation icon, decided by the last point (checklist "Summary icons -- variation")."""

    COMMON_CAUSE = "common_cause"
    IMPROVEMENT_HIGH = "improvement_high"
    IMPROVEMENT_LOW = "improvement_low"
    CONCERN_HIGH = "concern_high"
    CONCERN_LOW = "concern_low"
    NEITHER_HIGH = "neither_high"
    NEITHER_LOW = "neither_low"


class AssuranceIcon(StrEnum):
    """MDC assurance icon: target against the latest process limits."""

    CONSISTENT_PASS = "consistent_pass"  # noqa: S105 (not a password)
    CONSISTENT_FAIL = "consistent_fail"
    HIT_AND_MISS = "hit_and_miss"


@dataclass(frozen=True, slots=True)
class RuleConfig:
    """Which special-cause rules run, and their lengths.

    Defaults are the MDC Single Chart Tool v5.0 rule set (shift and trend of 6).
    :meth:`nhsrplotthedots` gives the NHSRplotthedots defaults (7 and 7).

    ``on_centre``: how a point exactly on the centre line affects a shift. ``"break"`` (default,
    as NHSRplotthedots' ``sign(y - mean) != 0`` test and the MDC tool's strict above/below tests)
    ends the run; ``"neutral"`` skips the point (neither counted nor breaking), as the Anhøj
    run-chart rules treat points on the median.

    ``rules_without_limits``: MDC shows no limits below 13 points, and DESIGN.md §5 says such a
    series gets the run-chart rules instead. By default points in a segment without limits get
    no special-cause flags at all; set True to still apply shift and trend (which need only the
    centre line) to them.
    """

    astronomical: bool = True
    shift: bool = True
    trend: bool = True
    two_of_three: bool = True
    shift_length: int = 6
    trend_length: int = 6
    on_centre: Literal["break", "neutral"] = "break"
    rules_without_limits: bool = False

    def __post_init__(self) -> None:
        if self.shift_length < 2 or self.trend_length < 2:
            raise ValueError("shift_length and trend_length must be at least 2")
        if self.on_centre not in ("break", "neutral"):
            raise ValueError("on_centre must be 'break' or 'neutral'")

    @classmethod
    def nhsrplotthedots(cls) -> RuleConfig:
        """Rule lengths of NHSRplotthedots (7-point shift and trend)."""
        return cls(shift_length=7, trend_length=7)


@dataclass(frozen=True, slots=True)
class Limits:
    """Centre line and sigma lines as per-point arrays (constant along an XmR segment).

    ``sigma`` is the per-point 1σ distance; ``upper``/``lower`` are the 3σ process limits,
    ``upper_2s``/``lower_2s`` and ``upper_1s``/``lower_1s`` the 2σ and 1σ lines, already clipped
    (p: [0, 1]; u: ≥ 0). ``mr_bar`` is the mean moving range used (of values for XmR, of
    z-scores for Laney), ``sigma_z`` Laney's σ_z (1.0 without Laney).
    """

    centre: float
    sigma: FloatArray
    upper: FloatArray
    lower: FloatArray
    upper_2s: FloatArray
    lower_2s: FloatArray
    upper_1s: FloatArray
    lower_1s: FloatArray
    mr_bar: float = math.nan
    sigma_z: float = 1.0


@dataclass(frozen=True, slots=True)
class RunChartResult:
    """Anhøj run-chart analysis of one segment (Anhøj & Olesen 2014; qicharts2 runs.analysis)."""

    centre: float  # the median the runs are counted against
    n_useful: int  # points not on the centre line
    longest_run: int
    longest_run_max: int  # signal when longest_run > this
    crossings: int
    crossings_min: int  # signal when crossings < this
    runs_signal: bool  # longest run too long
    crossings_signal: bool  # too few crossings

    @property
    def signal(self) -> bool:
        """Non-random variation by either run-chart rule."""
        return self.runs_signal or self.crossings_signal


@dataclass(frozen=True, slots=True)
class SegmentInfo:
    """One segment of the chart (between re-basings), indices into the input arrays."""

    start: int  # first index (inclusive)
    stop: int  # last index + 1
    n_points: int  # non-missing points in the segment
    n_calc: int  # points the limits were computed from (baseline)
    centre: float
    limits_shown: bool  # n_points >= min_points
    mr_bar: float  # mean moving range used (NaN when limits are not shown)
    sigma_z: float  # Laney σ_z (1.0 unless laney=True)
    run_chart: RunChartResult | None


@dataclass(frozen=True, slots=True)
class SeriesAnalysis:
    """Everything a chart needs, per point (arrays as long as the input) and per series.

    Arrays are read-only numpy arrays; NaN marks "not shown" (limits of a segment with too
    few points, or a missing value). ``y`` is the plotted statistic: the value (XmR), the
    proportion numerator/denominator (p) or the rate events/exposure (u).
    ``signals[i]`` is the set of rules that fired at point i; ``flags`` the same as one boolean
    array per :class:`Signal`. ``point_class[i]`` is None for a missing point.
    """

    chart: ChartType
    direction: Direction
    y: FloatArray
    segment: NDArray[np.int_]
    centre: FloatArray
    upper: FloatArray
    lower: FloatArray
    upper_2s: FloatArray
    lower_2s: FloatArray
    upper_1s: FloatArray
    lower_1s: FloatArray
    limits_shown: BoolArray
    flags: Mapping[Signal, BoolArray]
    signals: tuple[frozenset[Signal], ...]
    point_class: tuple[PointClass | None, ...]
    variation_icon: VariationIcon | None
    assurance_icon: AssuranceIcon | None
    segments: tuple[SegmentInfo, ...]
    target: float | None = None
    rules: RuleConfig = field(default_factory=RuleConfig)

    @property
    def run_chart(self) -> RunChartResult | None:
        """Run-chart result of the latest segment (the one the icons describe)."""
        return self.segments[-1].run_chart if self.segments else None

    @property
    def colours(self) -> tuple[str | None, ...]:
        """MDC hex colour per point (None for missing points)."""
        return tuple(None if c is None else COLOURS[c] for c in self.point_class)

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready dict: lists with None instead of NaN, enums as strings."""

        def floats(a: FloatArray) -> list[float | None]:
            return [None if math.isnan(v) else float(v) for v in a.tolist()]

        return {
            "chart": str(self.chart),
            "direction": str(self.direction),
            "target": self.target,
            "y": floats(self.y),
            "segment": self.segment.tolist(),
            "centre": floats(self.centre),
            "upper": floats(self.upper),
            "lower": floats(self.lower),
            "upper_2s": floats(self.upper_2s),
            "lower_2s": floats(self.lower_2s),
            "upper_1s": floats(self.upper_1s),
            "lower_1s": floats(self.lower_1s),
            "limits_shown": self.limits_shown.tolist(),
            "signals": [sorted(str(s) for s in sig) for sig in self.signals],
            "point_class": [None if c is None else str(c) for c in self.point_class],
            "variation_icon": None if self.variation_icon is None else str(self.variation_icon),
            "assurance_icon": None if self.assurance_icon is None else str(self.assurance_icon),
            "run_chart": None
            if self.run_chart is None
            else {
                "centre": self.run_chart.centre,
                "n_useful": self.run_chart.n_useful,
                "longest_run": self.run_chart.longest_run,
                "longest_run_max": self.run_chart.longest_run_max,
                "crossings": self.run_chart.crossings,
                "crossings_min": self.run_chart.crossings_min,
                "signal": self.run_chart.signal,
            },
        }


# --------------------------------------------------------------------------------------------
# Input checks
# --------------------------------------------------------------------------------------------

#: Names a flat position for an error message: (array name, index) -> "values[3]" or, in
#: :mod:`measures.spc_batch`, "series 2, point 3 (values[40])".
Where = Callable[[str, int], str]


def _at(name: str, i: int) -> str:
    return f"{name}[{i}]"


def _check_numbers(
    name: str,
    a: FloatArray,
    *,
    missing_ok: bool,
    where: Where | None = None,
    bound: float = MAX_ABS_VALUE,
) -> None:
    """Raise ValueError naming the first entry of ``a`` that is not a usable number.

    Infinite values are never accepted (they would give infinite or NaN limits that still look
    shown); NaN only where it marks a missing point (``missing_ok``); finite values beyond
    ±``bound`` (default :data:`MAX_ABS_VALUE`, as means, moving ranges and limits of larger
    values could overflow) never.
    """
    bad = ~(np.abs(a) <= bound)  # NaN and ±inf compare False
    if missing_ok:
        bad &= ~np.isnan(a)
    if not bad.any():
        return
    i = int(np.flatnonzero(bad.ravel())[0])
    v = float(a.ravel()[i])
    at = (where or _at)(name, i)
    if math.isnan(v):
        raise ValueError(f"{at} is NaN: missing values are not allowed here")
    if math.isinf(v):
        hint = " (NaN marks a missing point)" if missing_ok else ""
        raise ValueError(f"{at} is {v}: values must be finite{hint}")
    raise ValueError(
        f"{at} is {v:g}: too large for the arithmetic (|value| must not exceed "
        f"{bound:g}, or means and moving ranges could overflow)"
    )


def _check_scalar(name: str, x: float | None, *, optional: bool = False) -> None:
    if x is None and optional:
        return
    if x is None or not math.isfinite(float(x)) or abs(float(x)) > MAX_ABS_VALUE:
        raise ValueError(f"{name} must be a finite number, not {x!r}")


def _check_limits(lim: Limits, index: NDArray[np.intp] | None, where: Where | None) -> None:
    """Raise ValueError where shown limits are not finite numbers (an overflow).

    Inputs within ±:data:`MAX_ABS_VALUE` keep XmR limits finite; p and u limits can still
    overflow at a denominator next to 0 (σᵢ = √(V/nᵢ), V = p̄(1−p̄) or ū) or through Laney's σ_z.
    ``index`` maps the limits' points to positions in the caller's arrays.
    """
    ok = np.ones(lim.upper.shape, dtype=bool)
    for line in (lim.upper, lim.lower, lim.upper_2s, lim.lower_2s):
        ok &= np.isfinite(line)
    if not math.isfinite(lim.sigma_z):
        ok[:] = False
    if ok.all():
        return
    j = int(np.flatnonzero(~ok)[0])
    i = j if index is None else int(index[j])
    raise ValueError(
        f"the limits at {(where or _at)('values', i)} overflow (a denominator too close to 0, "
        "or z-scores beyond float range): these values cannot be charted"
    )


# --------------------------------------------------------------------------------------------
# Limits
# --------------------------------------------------------------------------------------------


def _mean_moving_range(values: FloatArray, screen: bool) -> float:
    """Mean moving range mR̄ = mean |yᵢ − yᵢ₋₁|, optionally screened once.

    Screening (NHSRplotthedots ``ptd_spc_standard``; Wheeler's moving-range chart with D4 =
    3.267): moving ranges ≥ 3.267·mR̄ are dropped and mR̄ recomputed once from those kept.
    """
    if values.size < 2:
        return math.nan
    mr = np.abs(np.diff(values))
    mr_bar = float(mr.mean())
    if screen:
        kept = mr[mr < MR_SCREEN_FACTOR * mr_bar]
        if kept.size:
            mr_bar = float(kept.mean())
    return mr_bar


def _const(x: float, n: int) -> FloatArray:
    return np.full(n, x, dtype=np.float64)


def xmr_limits(values: ArrayLike, *, screen_mr: bool = False, n: int | None = None) -> Limits:
    """XmR (individuals) chart limits from ``values`` (the calculation/baseline points).

    Centre = mean; mR̄ = mean of |yᵢ − yᵢ₋₁|; process limits = mean ± 2.66·mR̄; 2σ lines at
    mean ± 1.7733·mR̄ (= 2/3 · 2.66) and 1σ at mean ± 0.8867·mR̄ (MDC Single Chart Tool v5.0,
    checklist "Process limits"; Wheeler, *Understanding Variation*: 2.66 = 3/d2, d2 = 1.128).
    The lower limit is not floored (MDC and NHSRplotthedots do not floor it).

    ``screen_mr``: drop moving ranges ≥ 3.267·mR̄ and recompute once (NHSRplotthedots; off in
    the MDC tool). ``n``: length of the returned per-point arrays (default: len(values)).
    ``values`` must be finite numbers within ±:data:`MAX_ABS_VALUE` (no NaN: these are the
    calculation points themselves); ValueError names the first that is not.
    """
    y = np.asarray(values, dtype=np.float64).ravel()
    if y.size < 2:
        raise ValueError("XmR limits need at least 2 points")
    _check_numbers("values", y, missing_ok=False)
    size = y.size if n is None else n
    centre = float(y.mean())
    mr_bar = _mean_moving_range(y, screen_mr)
    sigma = E2 * mr_bar / 3.0
    lim = Limits(
        centre=centre,
        sigma=_const(sigma, size),
        upper=_const(centre + 3 * sigma, size),
        lower=_const(centre - 3 * sigma, size),
        upper_2s=_const(centre + 2 * sigma, size),
        lower_2s=_const(centre - 2 * sigma, size),
        upper_1s=_const(centre + sigma, size),
        lower_1s=_const(centre - sigma, size),
        mr_bar=mr_bar,
    )
    _check_limits(lim, None, None)  # cannot fail within MAX_ABS_VALUE: a guard, not a rule
    return lim


def _attribute_limits(
    kind: ChartType,
    numerators: FloatArray,
    denominators: FloatArray,
    calc: slice,
    laney: bool,
    screen_mr: bool,
) -> Limits:
    num_c, den_c = numerators[calc], denominators[calc]
    total = float(den_c.sum())
    if total <= 0:
        raise ValueError("denominators of the calculation points sum to zero")
    centre = float(num_c.sum()) / total
    if kind is ChartType.P:
        if not 0 <= centre <= 1:
            raise ValueError("p-chart numerators must not exceed denominators")
        var_unit = centre * (1.0 - centre)
        upper_clip = 1.0
    else:
        var_unit = centre
        upper_clip = math.inf
    # Overflow (a denominator next to 0) is left to _check_limits, which names the point.
    with np.errstate(over="ignore", divide="ignore", invalid="ignore"):
        sigma = np.sqrt(var_unit / denominators)
        sigma_z = 1.0
        mr_bar = math.nan
        if laney:
            # Laney 2002: z = (y − centre)/σᵢ; σ_z = mR̄(z)/1.128; σᵢ′ = σᵢ·σ_z.
            sig_c = sigma[calc]
            z = np.where(sig_c > 0, (num_c / den_c - centre) / sig_c, 0.0)
            mr_bar = _mean_moving_range(z, screen_mr)
            if not math.isnan(mr_bar):
                sigma_z = mr_bar / D2
            sigma = sigma * sigma_z

        def line(k: float) -> FloatArray:
            return np.clip(centre + k * sigma, 0.0, upper_clip)

        return Limits(
            centre=centre,
            sigma=sigma,
            upper=line(3),
            lower=line(-3),
            upper_2s=line(2),
            lower_2s=line(-2),
            upper_1s=line(1),
            lower_1s=line(-1),
            mr_bar=mr_bar,
            sigma_z=sigma_z,
        )


def p_chart_limits(
    numerators: ArrayLike,
    denominators: ArrayLike,
    *,
    laney: bool = False,
    baseline_points: int | None = None,
) -> Limits:
    """p-chart limits per point: p̄ ± 3·√(p̄(1−p̄)/nᵢ), clipped to [0, 1].

    p̄ = Σ numerators / Σ denominators over the calculation points (the first
    ``baseline_points``, default all) -- Montgomery, *Introduction to Statistical Quality
    Control* 7th ed., §7.2 (variable sample size; a negative LCL is set to 0).
    ``laney=True`` gives Laney's p′ chart (Laney 2002): σᵢ multiplied by σ_z, the mean moving
    range of zᵢ = (pᵢ − p̄)/σᵢ divided by 1.128.
    """
    num, den = _check_attribute(numerators, denominators)
    calc = slice(0, baseline_points)
    lim = _attribute_limits(ChartType.P, num, den, calc, laney, screen_mr=False)
    _check_limits(lim, None, None)
    return lim


def u_chart_limits(
    numerators: ArrayLike,
    denominators: ArrayLike,
    *,
    laney: bool = False,
    baseline_points: int | None = None,
) -> Limits:
    """u-chart limits per point: ū ± 3·√(ū/nᵢ), floored at 0.

    ū = Σ events / Σ exposure over the calculation points -- Montgomery 7th ed., §7.3.
    ``laney=True`` gives Laney's u′ chart (Laney 2002), as for :func:`p_chart_limits`.
    """
    num, den = _check_attribute(numerators, denominators)
    calc = slice(0, baseline_points)
    lim = _attribute_limits(ChartType.U, num, den, calc, laney, screen_mr=False)
    _check_limits(lim, None, None)
    return lim


def _check_attribute(numerators: ArrayLike, denominators: ArrayLike) -> tuple[FloatArray, ...]:
    """Numerators and denominators as float arrays: finite (no missing marker here), within
    ±MAX_ABS_VALUE, numerators ≥ 0, denominators > 0, and each ratio within MAX_ABS_VALUE."""
    num = np.asarray(numerators, dtype=np.float64)
    den = np.asarray(denominators, dtype=np.float64)
    if num.shape != den.shape:
        raise ValueError("numerators and denominators differ in length")
    _check_numbers("numerators", num, missing_ok=False)
    _check_numbers("denominators", den, missing_ok=False)
    if np.any(den <= 0) or np.any(num < 0):
        raise ValueError("denominators must be > 0 and numerators >= 0")
    with np.errstate(over="ignore"):
        ratio = num / den
    _check_ratio(ratio, np.ones(ratio.shape, dtype=bool), None)
    return num, den


def _check_ratio(y: FloatArray, valid: BoolArray, where: Where | None) -> None:
    """numerator / denominator must stay within ±MAX_ABS_VALUE (a denominator next to 0)."""
    big = valid & ~(np.abs(y) <= MAX_ABS_VALUE)
    if big.any():
        i = int(np.flatnonzero(big.ravel())[0])
        raise ValueError(
            f"numerator / denominator at {(where or _at)('values', i)} overflows "
            f"({float(y.ravel()[i]):g}): the denominator is too close to 0"
        )


# --------------------------------------------------------------------------------------------
# Special-cause rules
# --------------------------------------------------------------------------------------------


def _tol(
    centre: FloatArray, upper: FloatArray | None = None, lower: FloatArray | None = None
) -> FloatArray:
    """How far from the centre (or beyond a line) a value must lie to count as off it.

    ``_REL_TOL·|centre| + _WIDTH_TOL·(upper − lower) + _ABS_TOL``, per point; the width term is
    0 where there are no limits (NaN) or none are given (the run chart's median). The first
    term covers the rounding of the mean and of the limits (a few ulps of the centre: a
    constant series, whose limits collapse onto its mean, stays on its centre line); the
    second the float noise of decimal data near a limit. Both scale with the data: the result
    is the same for 10⁻⁹·y, y and 10¹² + y wherever float64 can tell the values apart.
    :mod:`measures.spc_batch` calls this same function, so both judge points alike.
    """
    tol = _REL_TOL * np.abs(centre) + _ABS_TOL
    if upper is not None and lower is not None:
        width = np.subtract(upper, lower)
        tol = tol + _WIDTH_TOL * np.where(np.isnan(width), 0.0, width)
    return tol


def _run_bounds(a: NDArray[np.int8]) -> tuple[NDArray[np.intp], NDArray[np.intp]]:
    """Start and stop (exclusive) of every run of equal values in ``a``."""
    change = np.flatnonzero(a[1:] != a[:-1]) + 1
    starts = np.concatenate(([0], change))
    stops = np.concatenate((change, [a.size]))
    return starts, stops


def _shift_flags(side: NDArray[np.int8], length: int, neutral: BoolArray) -> tuple[BoolArray, ...]:
    """Points in runs of ≥ ``length`` on one side (MDC "shift"). ``neutral`` points are skipped."""
    n = side.size
    high = np.zeros(n, dtype=bool)
    low = np.zeros(n, dtype=bool)
    keep = np.flatnonzero(~neutral)
    if keep.size == 0:
        return high, low
    s = side[keep]
    starts, stops = _run_bounds(s)
    lengths = stops - starts
    long_run = np.repeat(lengths >= length, lengths)
    run_side = np.repeat(s[starts], lengths)
    high[keep[long_run & (run_side > 0)]] = True
    low[keep[long_run & (run_side < 0)]] = True
    return high, low


def _trend_flags(y: FloatArray, length: int, active: BoolArray) -> tuple[BoolArray, ...]:
    """Points in ≥ ``length`` consecutive strictly increasing/decreasing points (MDC "trend").

    A tie (or an inactive point) breaks the run; all points of the run are flagged, so a turning
    point can belong to both an increasing and a decreasing trend.
    """
    n = y.size
    out = []
    if n < 2:
        return np.zeros(n, dtype=bool), np.zeros(n, dtype=bool)
    d = np.sign(np.diff(y)).astype(np.int8)
    d[~(active[1:] & active[:-1])] = 0
    starts, stops = _run_bounds(d)
    for sign in (1, -1):
        sel = (d[starts] == sign) & (stops - starts >= length - 1)
        mark = np.zeros(n + 1, dtype=np.int32)
        # diffs start..stop-1 join points start..stop
        np.add.at(mark, starts[sel], 1)
        np.add.at(mark, stops[sel] + 1, -1)
        out.append(np.cumsum(mark[:n]) > 0)
    return out[0], out[1]


def special_cause_flags(
    y: ArrayLike,
    centre: ArrayLike,
    upper: ArrayLike,
    lower: ArrayLike,
    upper_2s: ArrayLike,
    lower_2s: ArrayLike,
    *,
    rules: RuleConfig | None = None,
) -> dict[Signal, BoolArray]:
    """MDC v5.0 special-cause rules, per point, side by side.

    All arguments are per-point arrays; NaN limits mean "no limits here" (a segment with too
    few points), NaN in ``y`` a missing point. Each point is judged against its own centre and
    limits, so the multi-point rules run across a re-basing boundary (MDC checklist "Special
    cause crossing recalculations"). Rules (MDC Single Chart Tool v5.0 checklist):

    * astronomical: strictly above the upper / below the lower process limit;
    * shift: a run of ≥ ``shift_length`` points all above (or all below) the centre line;
    * trend: ≥ ``trend_length`` consecutive points all increasing (or all decreasing), a tie
      breaks it; it may cross the centre line;
    * two of three: in any 3 consecutive points all on the same side of the centre line, 2 or 3
      beyond the 2σ line but not beyond the process limit (those are astronomical and do not
      count) -- those 2 or 3 points are flagged.

    Infinite values in any argument raise ValueError (NaN is the only "nothing here" marker).
    A value counts as on the centre line or on a limit within :func:`_tol`.
    """
    rules = rules or RuleConfig()
    yv = np.asarray(y, dtype=np.float64)
    c = np.asarray(centre, dtype=np.float64)
    up, lo = np.asarray(upper, dtype=np.float64), np.asarray(lower, dtype=np.float64)
    up2, lo2 = np.asarray(upper_2s, dtype=np.float64), np.asarray(lower_2s, dtype=np.float64)
    # limits may lie beyond MAX_ABS_VALUE (mean ± 2.66·mR̄ of values within it): finite only
    arrays = {"y": yv, "centre": c, "upper": up, "lower": lo, "upper_2s": up2, "lower_2s": lo2}
    for name, arr in arrays.items():
        _check_numbers(name, arr, missing_ok=True, bound=_FLOAT_MAX)
    n = yv.size
    valid = ~np.isnan(yv) & ~np.isnan(c)
    has_limits = valid & ~np.isnan(up) & ~np.isnan(lo)
    active = has_limits | (valid & rules.rules_without_limits)
    tol = _tol(c, up, lo)
    with np.errstate(invalid="ignore"):
        dev = yv - c
        side = np.where(active & (dev > tol), 1, np.where(active & (dev < -tol), -1, 0))
        side = side.astype(np.int8)
        above3 = has_limits & (yv > up + tol)
        below3 = has_limits & (yv < lo - tol)
        beyond2 = has_limits & ~above3 & ~below3 & ((yv > up2 + tol) | (yv < lo2 - tol))
    false = np.zeros(n, dtype=bool)
    flags: dict[Signal, BoolArray] = {s: false.copy() for s in Signal}

    if rules.astronomical:
        flags[Signal.ASTRONOMICAL_HIGH] = above3
        flags[Signal.ASTRONOMICAL_LOW] = below3
    if rules.shift:
        # "neutral": on-centre points are skipped; inactive points always break the run.
        neutral = active & (side == 0) if rules.on_centre == "neutral" else false
        high, low = _shift_flags(side, rules.shift_length, neutral)
        flags[Signal.SHIFT_HIGH], flags[Signal.SHIFT_LOW] = high, low
    if rules.trend:
        filled = np.where(active, yv, 0.0)
        high, low = _trend_flags(filled, rules.trend_length, active)
        flags[Signal.TREND_HIGH], flags[Signal.TREND_LOW] = high, low
    if rules.two_of_three and n >= 3:
        s0, s1, s2 = side[:-2], side[1:-1], side[2:]
        same = (s0 != 0) & (s0 == s1) & (s1 == s2)
        count = beyond2[:-2].astype(np.int8) + beyond2[1:-1] + beyond2[2:]
        win = same & (count >= 2)  # window starting at i
        in_win = false.copy()
        in_win[:-2] |= win
        in_win[1:-1] |= win
        in_win[2:] |= win
        hit = in_win & beyond2
        flags[Signal.TWO_OF_THREE_HIGH] = hit & (side > 0)
        flags[Signal.TWO_OF_THREE_LOW] = hit & (side < 0)
    return flags


def classify_points(
    flags: Mapping[Signal, BoolArray], direction: Direction | str, valid: BoolArray | None = None
) -> tuple[PointClass | None, ...]:
    """Point class from the flags and the improvement direction (MDC v5.0 colours).

    High-side signals are improvement when higher is better and concern when lower is better
    (and vice versa); with direction "neither" any signal is :attr:`PointClass.NEITHER`. A point
    flagged both improving and concerning (a trend crossing other rules) shows as improvement
    (MDC checklist "Special cause conflict": "The Excel tool shows blue").
    """
    direction = Direction(direction)
    any_high = np.logical_or.reduce([flags[s] for s in _HIGH_SIGNALS])
    any_low = np.logical_or.reduce([flags[s] for s in _LOW_SIGNALS])
    n = any_high.size
    if valid is None:
        valid = np.ones(n, dtype=bool)
    if direction is Direction.NEITHER:
        special = np.where(any_high | any_low, 3, 0)
    else:
        good, bad = (any_high, any_low) if direction is Direction.UP else (any_low, any_high)
        special = np.where(good, 1, np.where(bad, 2, 0))
    lookup = (PointClass.COMMON, PointClass.IMPROVEMENT, PointClass.CONCERN, PointClass.NEITHER)
    return tuple(
        lookup[k] if v else None for k, v in zip(special.tolist(), valid.tolist(), strict=True)
    )


def variation_icon(
    point_class: PointClass,
    direction: Direction | str,
    *,
    high: bool,
    low: bool,
    above_centre: bool,
) -> VariationIcon:
    """MDC variation icon from the last point (checklist "Summary icons -- variation").

    Improvement/concern take high or low from the direction (improvement when higher is better
    is high). With direction "neither" the side comes from the signals that fired (``high`` /
    ``low``); if both fired (a turning point) the side of the centre line decides.
    """
    direction = Direction(direction)
    up = direction is Direction.UP
    if point_class is PointClass.COMMON:
        return VariationIcon.COMMON_CAUSE
    if point_class is PointClass.IMPROVEMENT:
        return VariationIcon.IMPROVEMENT_HIGH if up else VariationIcon.IMPROVEMENT_LOW
    if point_class is PointClass.CONCERN:
        return VariationIcon.CONCERN_LOW if up else VariationIcon.CONCERN_HIGH
    is_high = high if high != low else above_centre
    return VariationIcon.NEITHER_HIGH if is_high else VariationIcon.NEITHER_LOW


def assurance_icon(
    target: float | None, direction: Direction | str, *, lower: float, upper: float
) -> AssuranceIcon | None:
    """MDC assurance icon from a target and the latest process limits.

    Target above the upper limit: consistently fail when higher is better, pass when lower is
    better; below the lower limit: the reverse; otherwise (within or on the limits) hit and
    miss. No icon without a target or with direction "neither" (MDC checklist "Summary icons --
    assurance"; NHSRplotthedots ``ptd_calculate_assurance_type``).
    """
    direction = Direction(direction)
    _check_scalar("target", target, optional=True)
    if target is None or direction is Direction.NEITHER or math.isnan(upper):
        return None
    up = direction is Direction.UP
    if target > upper:
        return AssuranceIcon.CONSISTENT_FAIL if up else AssuranceIcon.CONSISTENT_PASS
    if target < lower:
        return AssuranceIcon.CONSISTENT_PASS if up else AssuranceIcon.CONSISTENT_FAIL
    return AssuranceIcon.HIT_AND_MISS


# --------------------------------------------------------------------------------------------
# Run charts (Anhøj)
# --------------------------------------------------------------------------------------------


@lru_cache(maxsize=1024)
def _qbinom_05_half(size: int) -> int:
    """R's ``qbinom(0.05, size, 0.5)``: smallest x with P(X ≤ x) ≥ 0.05, in exact integers."""
    if size <= 0:
        return 0
    threshold = 2**size  # P(X ≤ x) ≥ 1/20  <=>  20·Σ C(size, k) ≥ 2**size
    cum = 0
    for x in range(size + 1):
        cum += math.comb(size, x)
        if 20 * cum >= threshold:
            return x
    return size  # pragma: no cover


def anhoej_critical_values(n: int) -> tuple[int, int]:
    """(longest-run maximum, crossings minimum) for ``n`` useful points.

    Signal when the longest run > round(log2 n) + 3 or the number of crossings <
    qbinom(0.05, n − 1, 0.5) -- Anhøj & Olesen 2014 (PLoS ONE 9(11) e113825), as computed in
    qicharts2 ``runs.analysis``.
    """
    if n < 1:
        raise ValueError("n must be positive")
    return round(math.log2(n)) + 3, _qbinom_05_half(n - 1)


def run_chart_analysis(values: ArrayLike, centre: float | None = None) -> RunChartResult:
    """Anhøj run-chart rules against ``centre`` (default: the median of the values).

    Points on the centre line (within :func:`_tol` of it: float noise is no run) and missing
    values (NaN) are dropped (qicharts2 ``runs.analysis``; Anhøj & Olesen 2014); runs and
    crossings are counted on the rest. Infinite values raise ValueError.
    """
    y = np.asarray(values, dtype=np.float64).ravel()
    _check_numbers("values", y, missing_ok=True)
    _check_scalar("centre", centre, optional=True)
    y = y[~np.isnan(y)]
    if centre is None:
        centre = float(np.median(y)) if y.size else math.nan
    side = np.sign(y - centre).astype(np.int8)
    side = side[np.abs(y - centre) > _tol(np.float64(centre))]
    n = int(side.size)
    if n == 0:
        return RunChartResult(centre, 0, 0, 0, 0, 0, False, False)
    starts, stops = _run_bounds(side)
    longest = int((stops - starts).max())
    crossings = int(starts.size - 1)
    run_max, cross_min = anhoej_critical_values(n)
    return RunChartResult(
        centre=centre,
        n_useful=n,
        longest_run=longest,
        longest_run_max=run_max,
        crossings=crossings,
        crossings_min=cross_min,
        runs_signal=longest > run_max,
        crossings_signal=crossings < cross_min,
    )


# --------------------------------------------------------------------------------------------
# Entry point
# --------------------------------------------------------------------------------------------


def _to_datetime64(x: Any) -> np.datetime64:
    """date, datetime, numpy datetime64, pandas Timestamp or ISO string -> datetime64[ns]."""
    if hasattr(x, "to_datetime64"):  # pandas Timestamp
        x = x.to_datetime64()
    return np.datetime64(x, "ns")


def _segment_starts(
    n: int, rebase_at: Sequence[Any], dates: Sequence[Any] | ArrayLike | None
) -> list[int]:
    starts = {0}
    if len(rebase_at):
        date_arr = None
        if dates is not None:
            date_arr = np.array([_to_datetime64(d) for d in dates], dtype="datetime64[ns]")
            if date_arr.size != n:
                raise ValueError("dates and values differ in length")
            if np.any(date_arr[1:] < date_arr[:-1]):
                raise ValueError("dates must be sorted")
        for r in rebase_at:
            if isinstance(r, int | np.integer) and not isinstance(r, bool):
                idx = int(r)
            else:
                if date_arr is None:
                    raise ValueError("rebase_at holds dates but no dates were given")
                idx = int(np.searchsorted(date_arr, _to_datetime64(r), side="left"))
            if 0 < idx < n:
                starts.add(idx)
    return sorted(starts)


def _readonly(a: NDArray[Any]) -> NDArray[Any]:
    a.flags.writeable = False
    return a


def plotted_statistic(
    values: ArrayLike,
    denominators: ArrayLike | None,
    chart: ChartType,
    *,
    where: Where | None = None,
) -> tuple[FloatArray, BoolArray, FloatArray | None, FloatArray | None]:
    """The plotted statistic and which points count, after checking the input.

    XmR: the values themselves (no denominators). p and u: numerator / denominator, where a
    NaN numerator or a NaN or zero denominator is a missing point (MDC checklist "Gaps").
    Returns (y, valid, numerators, denominators); the last two are None for XmR. Raises
    ValueError for negative counts, a p-chart numerator above its denominator, and -- naming
    the first such position (``where`` formats it) -- an infinite value or denominator, one
    beyond ±:data:`MAX_ABS_VALUE`, or a ratio that overflows. NaN stays the missing marker.
    """
    raw = np.asarray(values, dtype=np.float64).ravel()
    _check_numbers("values", raw, missing_ok=True, where=where)
    if chart is ChartType.XMR:
        if denominators is not None:
            raise ValueError("an XmR chart takes no denominators")
        y = raw.copy()
        return y, ~np.isnan(y), None, None
    if denominators is None:
        raise ValueError(f"a {chart}-chart needs denominators")
    num = raw
    den = np.asarray(denominators, dtype=np.float64).ravel()
    if den.size != num.size:
        raise ValueError("values and denominators differ in length")
    _check_numbers("denominators", den, missing_ok=True, where=where)
    valid = ~np.isnan(num) & ~np.isnan(den) & (den > 0)
    if np.any(num[valid] < 0) or np.any(den[~np.isnan(den)] < 0):
        raise ValueError("numerators and denominators must not be negative")
    if chart is ChartType.P and np.any(num[valid] > den[valid]):
        raise ValueError("p-chart numerators must not exceed denominators")
    y = np.full(num.size, np.nan)
    with np.errstate(over="ignore"):
        y[valid] = num[valid] / den[valid]
    _check_ratio(y, valid, where)
    return y, valid, num, den


def analyse(
    values: ArrayLike,
    denominators: ArrayLike | None = None,
    *,
    chart: ChartType | str = ChartType.XMR,
    direction: Direction | str = Direction.NEITHER,
    target: float | None = None,
    baseline_points: int | None = None,
    rebase_at: Sequence[int | date | datetime | np.datetime64] = (),
    dates: Sequence[Any] | ArrayLike | None = None,
    rules: RuleConfig | None = None,
    min_points: int = MIN_POINTS,
    laney: bool = False,
    screen_mr: bool = False,
) -> SeriesAnalysis:
    """Analyse one series the way the MDC Single Chart Tool v5.0 does (DESIGN.md §5).

    ``values``: the values (XmR) or the numerators, i.e. event counts (p, u); ``denominators``:
    the sample sizes (p) or exposures (u), required for p and u. NaN values (and zero
    denominators) are missing points: they are left out of every calculation, and the moving
    range runs from the point before to the point after (MDC checklist "Gaps": no gaps).

    Segments: the series is re-based (MDC "recalculation", NHSRplotthedots ``rebase``,
    qicharts2 ``part``) at each index of ``rebase_at`` -- or, when ``dates`` are given, at the
    first point on or after each date. Each segment gets its own centre and limits, computed
    from its first ``baseline_points`` points (default: all) and extended to the end of the
    segment (Wheeler; MDC "Baselines"; qicharts2 ``freeze``). Unlike the MDC Excel tool, which
    ignores recalculations when a baseline is set, the baseline applies within each segment.

    Limits, the limit-based rules and the icons appear only in segments with ≥ ``min_points``
    points (MDC: 13); every segment also gets the Anhøj run-chart analysis about its median.
    Limits: XmR (:func:`xmr_limits`, optional ``screen_mr``), p and u (:func:`p_chart_limits`,
    :func:`u_chart_limits`, optional ``laney``). Rules: :func:`special_cause_flags` with
    ``rules`` (default MDC v5.0). Colours: :func:`classify_points`. Icons from the last point
    and the latest segment's limits: :func:`variation_icon`, :func:`assurance_icon`.

    Non-finite input raises ValueError naming the first bad position: infinite values or
    denominators, values beyond ±:data:`MAX_ABS_VALUE` (their means and moving ranges could
    overflow), a ratio that overflows, limits that overflow, a non-finite ``target``. NaN is
    never an error: it is the missing marker.
    """
    chart = ChartType(chart)
    direction = Direction(direction)
    rules = rules or RuleConfig()
    _check_scalar("target", target, optional=True)
    if min_points < 2:
        raise ValueError("min_points must be at least 2")
    if baseline_points is not None and baseline_points < 2:
        raise ValueError("baseline_points must be at least 2 (DESIGN.md recommends >= 12)")

    y, valid, num, den = plotted_statistic(values, denominators, chart)
    n = y.size

    bounds = [*_segment_starts(n, rebase_at, dates), n]
    segment = np.zeros(n, dtype=np.int_)
    nan = np.full(n, np.nan)
    centre, upper, lower = nan.copy(), nan.copy(), nan.copy()
    upper_2s, lower_2s, upper_1s, lower_1s = nan.copy(), nan.copy(), nan.copy(), nan.copy()
    limits_shown = np.zeros(n, dtype=bool)
    seg_infos: list[SegmentInfo] = []

    for k, (start, stop) in enumerate(pairwise(bounds)):
        segment[start:stop] = k
        idx = start + np.flatnonzero(valid[start:stop])
        m = idx.size
        if m == 0:
            seg_infos.append(SegmentInfo(start, stop, 0, 0, math.nan, False, math.nan, 1.0, None))
            continue
        n_calc = m if baseline_points is None else min(baseline_points, m)
        calc_idx = idx[:n_calc]
        shown = m >= min_points and n_calc >= 2
        if chart is ChartType.XMR:
            seg_centre = float(y[calc_idx].mean())
            lim = xmr_limits(y[calc_idx], screen_mr=screen_mr, n=m) if shown else None
            mr_bar = lim.mr_bar if lim else math.nan
            sigma_z = 1.0
        else:
            assert num is not None and den is not None
            lim = _attribute_limits(
                chart, num[idx], den[idx], slice(0, n_calc), laney and shown, screen_mr
            )
            seg_centre = lim.centre
            mr_bar, sigma_z = lim.mr_bar, lim.sigma_z
            if shown:
                _check_limits(lim, idx, None)
            else:
                lim = None
        centre[idx] = seg_centre
        if lim is not None:
            upper[idx], lower[idx] = lim.upper, lim.lower
            upper_2s[idx], lower_2s[idx] = lim.upper_2s, lim.lower_2s
            upper_1s[idx], lower_1s[idx] = lim.upper_1s, lim.lower_1s
            limits_shown[idx] = True
        median = float(np.median(y[calc_idx]))
        seg_infos.append(
            SegmentInfo(
                start=start,
                stop=stop,
                n_points=m,
                n_calc=n_calc,
                centre=seg_centre,
                limits_shown=shown,
                mr_bar=mr_bar,
                sigma_z=sigma_z,
                run_chart=run_chart_analysis(y[idx], median),
            )
        )

    # Rules run on the non-missing points only (MDC "Gaps": the chart has no gaps).
    vidx = np.flatnonzero(valid)
    compact = special_cause_flags(
        y[vidx],
        centre[vidx],
        upper[vidx],
        lower[vidx],
        upper_2s[vidx],
        lower_2s[vidx],
        rules=rules,
    )
    flags: dict[Signal, BoolArray] = {}
    for sig, arr in compact.items():
        full = np.zeros(n, dtype=bool)
        full[vidx] = arr
        flags[sig] = full
    point_class = classify_points(flags, direction, valid)
    empty: frozenset[Signal] = frozenset()
    hits = np.column_stack([flags[s] for s in Signal]).reshape(n, len(Signal))
    signal_list = list(Signal)
    # Most points carry no signal: build sets only where a rule fired (per-point numpy calls
    # on every point cost more than the rules themselves).
    signal_rows = [empty] * n
    for i in np.flatnonzero(hits.any(axis=1)).tolist():
        signal_rows[i] = frozenset(signal_list[j] for j in np.flatnonzero(hits[i]))
    signals = tuple(signal_rows)

    v_icon: VariationIcon | None = None
    a_icon: AssuranceIcon | None = None
    last_valid = np.flatnonzero(valid)
    if last_valid.size and limits_shown[last_valid[-1]]:
        i = int(last_valid[-1])
        cls = point_class[i]
        assert cls is not None
        v_icon = variation_icon(
            cls,
            direction,
            high=any(flags[s][i] for s in _HIGH_SIGNALS),
            low=any(flags[s][i] for s in _LOW_SIGNALS),
            above_centre=bool(y[i] >= centre[i]),
        )
        a_icon = assurance_icon(target, direction, lower=lower[i], upper=upper[i])

    return SeriesAnalysis(
        chart=chart,
        direction=direction,
        y=_readonly(y),
        segment=_readonly(segment),
        centre=_readonly(centre),
        upper=_readonly(upper),
        lower=_readonly(lower),
        upper_2s=_readonly(upper_2s),
        lower_2s=_readonly(lower_2s),
        upper_1s=_readonly(upper_1s),
        lower_1s=_readonly(lower_1s),
        limits_shown=_readonly(limits_shown),
        flags={s: _readonly(a) for s, a in flags.items()},
        signals=signals,
        point_class=point_class,
        variation_icon=v_icon,
        assurance_icon=a_icon,
        segments=tuple(seg_infos),
        target=target,
        rules=rules,
    )


# --------------------------------------------------------------------------------------------
# Funnel plots (Spiegelhalter 2005)
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class FunnelResult:
    """Funnel plot of units in one period (Spiegelhalter 2005).

    Per unit: ``value`` (yᵢ/nᵢ), ``z`` (unadjusted z-score), the limits at that unit's
    denominator for each z in ``levels`` (``lower[j]``, ``upper[j]`` for ``levels[j]``), and
    ``outside[j]``: +1 above, −1 below, 0 within. ``phi`` is the over-dispersion factor used
    (1.0 when not adjusted).
    """

    kind: Literal["proportion", "rate"]
    theta: float
    phi: float
    levels: tuple[float, ...]
    value: FloatArray
    z: FloatArray
    lower: tuple[FloatArray, ...]
    upper: tuple[FloatArray, ...]
    outside: tuple[NDArray[np.int8], ...]


def funnel_limits(
    theta: float,
    n: ArrayLike,
    *,
    kind: Literal["proportion", "rate"] = "proportion",
    z: float = 1.96,
    exact: bool = False,
    phi: float = 1.0,
) -> tuple[FloatArray, FloatArray]:
    """(lower, upper) funnel limits at denominators ``n`` around target ``theta``.

    Normal approximation (Spiegelhalter 2005, §2.3): θ ± z·√(φ·V(θ)/n) with V = θ(1−θ) for
    proportions and V = θ for Poisson rates (n = exposure); proportions clipped to [0, 1],
    rates floored at 0. ``exact=True`` (for small n, φ = 1 only): exact binomial/Poisson limits
    with Spiegelhalter's interpolation (2005, appendix A.1): with p = Φ(∓z), r_p the p-quantile
    of Y ~ Bin(m, θ) (or Poisson(nθ)), α = (F(r_p) − p)/(F(r_p) − F(r_p − 1)), the limit is
    (r_p − α)/m (α kept within [0, 1], so a quantile off by float error cannot leave its step).

    Ends of the range: at θ = 0 or θ = 1 for proportions, and θ = 0 for rates, V(θ) = 0 and Y
    is certain to be nθ; both limits are then θ itself, for the normal and the exact limits
    alike, so a unit equal to θ is never flagged and any other unit is. (The interpolation
    would put the exact upper limit at θ = 1 a fraction (1 − p)/m below 1 and flag every unit
    at 100 %.)

    Non-whole denominators (exact binomial only): a binomial needs a whole number of trials,
    and Spiegelhalter 2005 defines the exact limits for Y ~ Bin(n, θ) with n whole. We take
    m = round(n) trials (at least 1) for the distribution *and* divide by the same m, so the
    limits are those of a proportion out of m, centred on θ as for whole n; dividing r_p − α
    by n instead (as before) mixed the two and shifted the limits by the factor m/n (10 trials
    at θ = 0.5 gave limits about 5/10.4 = 0.48 for n = 10.4). Rates need no rounding: a Poisson
    mean nθ may take any exposure n, and the limit is (r_p − α)/n.

    All arguments must be finite (ValueError otherwise); n > 0, 0 ≤ θ ≤ 1 for proportions and
    θ ≥ 0 for rates, z ≥ 0, φ > 0.
    """
    nn = np.asarray(n, dtype=np.float64)
    _check_numbers("n", nn, missing_ok=False)
    if np.any(nn <= 0):
        raise ValueError("denominators must be positive")
    if kind not in ("proportion", "rate"):
        raise ValueError("kind must be 'proportion' or 'rate'")
    theta = _check_theta(theta, kind)
    _check_scalar("z", z)
    _check_scalar("phi", phi)
    if z < 0 or phi <= 0:
        raise ValueError("z must not be negative and phi must be positive")
    if exact and phi != 1.0:
        raise ValueError("exact limits are not defined with over-dispersion")
    if theta == 0.0 or (kind == "proportion" and theta == 1.0):
        # a point mass at nθ: no spread, the limits are θ (exact and normal alike)
        return np.full(nn.shape, theta), np.full(nn.shape, theta)
    if exact:
        from scipy import stats  # lazy: scipy.stats is slow to import

        if kind == "proportion":
            trials = np.maximum(np.round(nn), 1.0)
            dist = stats.binom(trials.astype(np.int64), theta)
        else:
            trials = nn
            dist = stats.poisson(nn * theta)

        def limit(p: float) -> FloatArray:
            r = dist.ppf(p)
            f_r = dist.cdf(r)
            f_below = dist.cdf(r - 1)
            with np.errstate(divide="ignore", invalid="ignore"):
                alpha = np.where(f_r > f_below, (f_r - p) / (f_r - f_below), 0.0)
            alpha = np.clip(alpha, 0.0, 1.0)
            return np.asarray((r - alpha) / trials, dtype=np.float64)

        p_low = float(_norm_cdf(-z))
        lower, upper = limit(p_low), limit(1.0 - p_low)
    else:
        var = theta * (1.0 - theta) if kind == "proportion" else theta
        half = z * np.sqrt(phi * var / nn)
        lower, upper = theta - half, theta + half
    top = 1.0 if kind == "proportion" else math.inf
    return np.clip(lower, 0.0, top), np.clip(upper, 0.0, top)


def _check_theta(theta: float, kind: str) -> float:
    _check_scalar("theta", theta)
    theta = float(theta)
    if kind == "proportion" and not 0.0 <= theta <= 1.0:
        raise ValueError("a proportion's theta must lie in [0, 1]")
    if theta < 0.0:
        raise ValueError("a rate's theta must not be negative")
    return theta


def _norm_cdf(x: float) -> float:
    return 0.5 * math.erfc(-x / math.sqrt(2.0))


def _exact_outside(
    num: FloatArray, den: FloatArray, theta: float, kind: str, z: float
) -> NDArray[np.int8]:
    """+1 / −1 where a unit's count lies in the upper / lower tail of probability below
    p = Φ(−z) of Y ~ Bin(round(n), θ) (Poisson(nθ) for rates): P(Y ≥ y) < p or P(Y ≤ y) < p.

    The discrete test behind Spiegelhalter's exact limits (2005, appendix A.1). Flagging by
    the interpolated limits instead is anti-conservative next to the ends: at θ = 0.9 and
    n = 10 the interpolated 99.8 % upper limit is 0.9997, yet 10 of 10 has probability 0.35.
    """
    from scipy import stats  # lazy: scipy.stats is slow to import

    p = _norm_cdf(-z)
    y = np.round(num)
    if kind == "proportion":
        dist = stats.binom(np.maximum(np.round(den), 1).astype(np.int64), theta)
    else:
        dist = stats.poisson(den * theta)
    upper = dist.sf(y - 1) < p  # P(Y ≥ y)
    lower = dist.cdf(y) < p  # P(Y ≤ y)
    return np.where(upper, 1, np.where(lower, -1, 0)).astype(np.int8)


def funnel(
    numerators: ArrayLike,
    denominators: ArrayLike,
    *,
    kind: Literal["proportion", "rate"] = "proportion",
    theta: float | None = None,
    levels: Sequence[float] = (1.96, 3.09),
    exact: bool = False,
    overdispersion: bool = False,
    winsor: float = 0.1,
) -> FunnelResult:
    """Funnel plot of units (Spiegelhalter 2005, Statistics in Medicine 24:1185).

    θ = Σ numerators / Σ denominators (the pooled value) unless ``theta`` is given; limits at
    each unit's denominator for z = 1.96 (95 %) and 3.09 (99.8 %) by :func:`funnel_limits`.
    ``overdispersion=True``: multiplicative over-dispersion (Spiegelhalter 2005, §3.4.1):
    z-scores zᵢ = (yᵢ − θ)/√(V(θ)/nᵢ) are winsorised at the ``winsor`` and 1 − ``winsor``
    quantiles (default 10 %), φ̂ = Σ zᵢ²/I, and the limits are widened by √φ̂ when φ̂ > 1
    (normal approximation then, even if ``exact``).

    At θ = 0 or 1 (proportions) or θ = 0 (rates) the limits are θ (see :func:`funnel_limits`):
    units equal to θ are within, all others outside; their z-scores are 0 (V(θ) = 0) and φ̂
    stays 1. Input must be finite numbers (ValueError naming the first that is not), with
    proportions' numerators at most their denominators.

    With ``exact`` a unit is flagged by the exact tail probability of its count
    (:func:`_exact_outside`), not by the interpolated limits, which are for drawing.
    """
    num, den = _check_attribute(numerators, denominators)
    if kind not in ("proportion", "rate"):
        raise ValueError("kind must be 'proportion' or 'rate'")
    if kind == "proportion" and np.any(num > den):
        raise ValueError("a proportion's numerators must not exceed its denominators")
    for lev in levels:
        _check_scalar("levels", lev)
    if not 0.0 <= winsor < 0.5:
        raise ValueError("winsor must lie in [0, 0.5)")
    if theta is None:
        if num.size == 0:
            raise ValueError("a funnel plot needs at least one unit (or a theta)")
        theta = float(num.sum() / den.sum())
    theta = _check_theta(theta, kind)
    value = num / den
    var = theta * (1.0 - theta) if kind == "proportion" else theta
    with np.errstate(divide="ignore", invalid="ignore"):
        z = (value - theta) / np.sqrt(var / den) if var > 0 else np.zeros_like(value)
    phi = 1.0
    if overdispersion and z.size > 1:
        lo_q, hi_q = np.quantile(z, [winsor, 1.0 - winsor])
        zw = np.clip(z, lo_q, hi_q)
        phi = max(1.0, float(np.mean(zw**2)))
    lowers, uppers, outs = [], [], []
    use_exact = exact and phi == 1.0
    for lev in levels:
        lo, hi = funnel_limits(theta, den, kind=kind, z=lev, exact=use_exact, phi=phi)
        lowers.append(lo)
        uppers.append(hi)
        if use_exact:
            outs.append(_exact_outside(num, den, theta, kind, lev))
        else:
            outs.append(np.where(value > hi, 1, np.where(value < lo, -1, 0)).astype(np.int8))
    return FunnelResult(
        kind=kind,
        theta=theta,
        phi=phi,
        levels=tuple(levels),
        value=value,
        z=z,
        lower=tuple(lowers),
        upper=tuple(uppers),
        outside=tuple(outs),
    )
