"""SPC of many series at once, and the packed points stored for each (step 4)."""

from __future__ import annotations

import hashlib
import itertools
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from typing import Any

import numpy as np
import pandas as pd

from .. import spc, spc_batch
from ..enums import MeasureKind
from ..packing import (
    blob_of,
    days_to_periods,
    encode_columns,
    periods_to_days,
)
from .cells import (
    GRAIN_DTYPE,
    LEVEL_DTYPE,
    MeasureConfig,
    _codes,
    canonical,
    node_key,
)

#: Part of every series' input digest: raise it when the statistics or the stored fields
#: change, so that the next run recomputes every series instead of keeping unchanged ones.
#: 2: points packed in columns (measures.packing), SPC by measures.spc_batch.
#: 3: complementary suppression per sum, of lone children, and of weeks within months.
#: 4: the exact audit of each quarter takes in the weeks linked to its months.
#: 5: SPC tolerance follows the spread (spc._tol), not 1e-9 of the centre.
ENGINE_VERSION = 5

#: Decimals kept for displayed figures (values, centre lines, limits): far below what a chart
#: or a table shows, and the API's JSON then carries no float noise.
DISPLAY_DECIMALS = 6

#: (measure id, level, node id) → dates at which that series is re-based.
RebaseDates = Mapping[tuple[int, str, int], Sequence[date]]


@dataclass
class ComputedSeries:
    """One series ready to store: the fields of :class:`measures.models.Series`."""

    measure_id: int
    level: str
    node_id: int
    grain: str
    observation_count: int
    chart: str
    variation_icon: str
    assurance_icon: str
    run_chart: dict[str, Any] | None
    data: bytes
    digest: str = ""

    @property
    def node_key(self) -> str:
        return node_key(self.level, self.node_id)


def series_digest(
    measure: MeasureConfig, days: np.ndarray, stacked: np.ndarray, rebase: Sequence[date]
) -> str:
    """A fingerprint of everything a series' SPC depends on (to skip unchanged series).

    ``days``: int64 days since 1970 of the periods; ``stacked``: float64 rows, n, numerator,
    denominator and the suppressed flag per period.
    """
    digest = hashlib.blake2b(digest_size=16)
    digest.update(f"engine {ENGINE_VERSION}".encode())
    digest.update(repr(measure).encode())
    digest.update(repr(list(rebase)).encode())
    digest.update(np.ascontiguousarray(days, dtype="int64").tobytes())
    digest.update(np.ascontiguousarray(stacked, dtype="float64").tobytes())
    return digest.hexdigest()


@dataclass
class SeriesInputs:
    """Many series of one measure, flat and sorted by series then period."""

    measure: MeasureConfig
    keys: list[tuple[str, int, str]]  # (level, node id, grain) per series
    starts: np.ndarray  # int64, len(keys) + 1
    days: np.ndarray  # int64 days since 1970, the period's first day
    rows: np.ndarray
    n: np.ndarray
    numerator: np.ndarray
    denominator: np.ndarray
    suppressed: np.ndarray

    def take(self, chosen: np.ndarray) -> SeriesInputs:
        """Only the series whose index is in ``chosen`` (sorted)."""
        lengths = np.diff(self.starts)[chosen]
        index = (
            np.concatenate([np.arange(self.starts[i], self.starts[i + 1]) for i in chosen])
            if len(chosen)
            else np.empty(0, dtype="int64")
        )
        return SeriesInputs(
            measure=self.measure,
            keys=[self.keys[i] for i in chosen.tolist()],
            starts=np.concatenate([[0], np.cumsum(lengths)]).astype("int64"),
            days=self.days[index],
            rows=self.rows[index],
            n=self.n[index],
            numerator=self.numerator[index],
            denominator=self.denominator[index],
            suppressed=self.suppressed[index],
        )


def series_inputs(
    cells: pd.DataFrame, suppressed: np.ndarray, measure: MeasureConfig, *, ordered: bool = False
) -> SeriesInputs:
    """Per-series inputs from one measure's cells and their suppression flags.

    ``ordered``: the cells are in :func:`canonical` order already (else they are sorted).
    """
    frame = cells.assign(suppressed=suppressed)
    if not ordered:
        frame = canonical(frame)
    level = _codes(frame["level"], LEVEL_DTYPE)
    node = frame["node_id"].to_numpy()
    grain = _codes(frame["grain"], GRAIN_DTYPE)
    change = np.ones(len(frame), dtype=bool)
    if len(frame):
        change[1:] = (level[1:] != level[:-1]) | (node[1:] != node[:-1]) | (grain[1:] != grain[:-1])
    first = np.flatnonzero(change)
    levels, grains = list(LEVEL_DTYPE.categories), list(GRAIN_DTYPE.categories)
    return SeriesInputs(
        measure=measure,
        keys=[
            (levels[lv], nd, grains[gr])
            for lv, nd, gr in zip(
                level[first].tolist(), node[first].tolist(), grain[first].tolist(), strict=True
            )
        ],
        starts=np.append(first, len(frame)).astype("int64"),
        days=periods_to_days(frame["period"].to_numpy()),
        rows=frame["rows"].to_numpy(dtype="int64"),
        n=frame["n"].to_numpy(dtype="float64"),
        numerator=frame["numerator"].to_numpy(dtype="float64"),
        denominator=frame["denominator"].to_numpy(dtype="float64"),
        suppressed=frame["suppressed"].to_numpy(dtype=bool),
    )


def _round(values: np.ndarray) -> np.ndarray:
    return np.round(values, DISPLAY_DECIMALS)


def analyse_inputs(
    inputs: SeriesInputs,
    *,
    rebase: RebaseDates,
    skip_digests: Mapping[tuple[int, str, str], str] | None = None,
) -> list[ComputedSeries]:
    """SPC of every series in ``inputs`` (one vectorised call) → series ready to store.

    The statistic per kind (DESIGN.md §5): proportion p = Σnum/Σden on a p-chart; rate
    u = Σevents/Σexposure on a u-chart; mean Σvalues/Σratings and count Σevents on an XmR
    chart. Suppressed periods go in as missing: the centre line and limits must not carry
    them. Figures are stored in display units (a proportion in %, a rate per ``rate_per``).
    ``skip_digests``: (measure id, node key, grain) → stored digest; a series whose inputs
    hash to it is unchanged and left out.
    """
    measure = inputs.measure
    stacked = np.column_stack(
        [
            inputs.rows.astype("float64"),
            inputs.n,
            inputs.numerator,
            inputs.denominator,
            inputs.suppressed,
        ]
    )
    starts = inputs.starts.tolist()
    dates = [rebase.get((measure.id, level, node), ()) for level, node, _grain in inputs.keys]
    digests = [
        series_digest(measure, inputs.days[a:b], stacked[a:b], dates[i])
        for i, (a, b) in enumerate(itertools.pairwise(starts))
    ]
    if skip_digests:
        keep = np.array(
            [
                skip_digests.get((measure.id, node_key(level, node), grain)) != digests[i]
                for i, (level, node, grain) in enumerate(inputs.keys)
            ],
            dtype=bool,
        )
        if not keep.all():
            chosen = np.flatnonzero(keep)
            inputs = inputs.take(chosen)
            digests = [digests[i] for i in chosen.tolist()]
            dates = [dates[i] for i in chosen.tolist()]
            starts = inputs.starts.tolist()
    if not inputs.keys:
        return []
    chart = measure.chart
    hidden = np.where(inputs.suppressed, np.nan, 1.0)
    breaks = None
    if any(dates):
        breaks = spc_batch.segment_breaks(
            days_to_periods(inputs.days), inputs.starts, [list(d) for d in dates]
        )
    common = {
        "starts": inputs.starts,
        "chart": chart,
        "direction": measure.direction,
        "target": measure.spc_target,
        "baseline_points": measure.baseline_points,
        "segment_breaks": breaks,
    }
    if chart is spc.ChartType.XMR:
        if measure.kind == MeasureKind.MEAN:
            with np.errstate(invalid="ignore", divide="ignore"):
                values = inputs.numerator / inputs.denominator
        else:
            values = inputs.numerator.copy()
        analysis = spc_batch.analyse_many(values * hidden, **common)
    else:
        analysis = spc_batch.analyse_many(
            inputs.numerator * hidden, inputs.denominator, laney=measure.laney, **common
        )
    scale = measure.scale
    columns = {
        "period": inputs.days,
        "rows": inputs.rows,
        "n": inputs.n,
        "numerator": inputs.numerator,
        "denominator": inputs.denominator,
        "suppressed": inputs.suppressed,
        "value": _round(analysis.y * scale),
        "centre": _round(analysis.centre * scale),
        "upper": _round(analysis.upper * scale),
        "lower": _round(analysis.lower * scale),
        "upper_2s": _round(analysis.upper_2s * scale),
        "lower_2s": _round(analysis.lower_2s * scale),
        "segment": analysis.segment,
        "signals": analysis.signals,
        "point_class": analysis.point_class,
    }
    encoded = encode_columns(columns)
    observations = np.add.reduceat(inputs.rows, inputs.starts[:-1]) if len(inputs.rows) else []
    out = []
    for i, (level, node, grain) in enumerate(inputs.keys):
        a, b = starts[i], starts[i + 1]
        out.append(
            ComputedSeries(
                measure_id=measure.id,
                level=level,
                node_id=node,
                grain=grain,
                observation_count=int(observations[i]) if b > a else 0,
                chart=str(chart),
                variation_icon=str(analysis.variation_icon[i] or ""),
                assurance_icon=str(analysis.assurance_icon[i] or ""),
                run_chart=_run_chart(analysis, i, scale),
                data=blob_of(encoded, a, b),
                digest=digests[i],
            )
        )
    return out


def _run_chart(analysis: spc_batch.BatchAnalysis, i: int, scale: float) -> dict[str, Any] | None:
    if not analysis.has_run_chart[i]:
        return None
    centre = float(analysis.run_centre[i])
    return {
        "centre": None if math.isnan(centre) else round(centre * scale, DISPLAY_DECIMALS),
        "n_useful": int(analysis.run_n_useful[i]),
        "longest_run": int(analysis.run_longest[i]),
        "longest_run_max": int(analysis.run_longest_max[i]),
        "crossings": int(analysis.run_crossings[i]),
        "crossings_min": int(analysis.run_crossings_min[i]),
        "signal": bool(analysis.run_signal[i]),
    }


def compute_series(
    cells: pd.DataFrame,
    suppressed: np.ndarray,
    measures: Mapping[int, MeasureConfig],
    *,
    rebase: RebaseDates | None = None,
    skip_digests: Mapping[tuple[int, str, str], str] | None = None,
) -> list[ComputedSeries]:
    """SPC of every (measure, level, node, grain) group of ``cells`` (in :func:`canonical`
    order), one vectorised call per measure."""
    rebase = rebase or {}
    out: list[ComputedSeries] = []
    if cells.empty:
        return out
    # Canonical order: each measure's cells are one contiguous run, series by series.
    measure_col = cells["measure_id"].to_numpy()
    bounds = np.flatnonzero(np.diff(measure_col)) + 1
    for start, stop in itertools.pairwise([0, *bounds.tolist(), len(cells)]):
        measure = measures[int(measure_col[start])]
        inputs = series_inputs(
            cells.iloc[start:stop], suppressed[start:stop], measure, ordered=True
        )
        out.extend(analyse_inputs(inputs, rebase=rebase, skip_digests=skip_digests))
    return out
