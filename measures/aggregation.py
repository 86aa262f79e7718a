"""Aggregation engine: observations → series per (measure, org node, grain) with SPC.

The flow (DESIGN.md §3, §5, §7):

1. **Unit-level period sums from the database.** One ``GROUP BY`` per batch of measures over
   the observations, at the lowest level only (DESIGN.md §7: a ``GROUPING SETS`` query over
   all levels spilled to disk; rolling up the small unit-level result took ~0.1 s). One scan
   yields weeks *and* months: the rows are grouped by (measure, unit, ISO week, month), so a
   week that straddles two months splits into two groups, and summing the groups by week or by
   month is then exact. Per group: the number of rows, ``n`` (below), Σ numerator and
   Σ denominator, where a patient-level row counts as numerator = its value and
   denominator = 1, and a pre-aggregated row brings its own numerator and denominator.
2. **Roll-ups in pandas** on those small frames: quarter = Σ months; department = Σ its units;
   division = Σ departments. Pooling is by sums, never a mean of unit figures (DESIGN.md §5
   "Pooling up the hierarchy"): a proportion is Σ numerators / Σ denominators, a rate
   Σ events / Σ exposure, a mean Σ values / Σ ratings (the n-weighted mean of every rating),
   a count Σ events.
3. **Suppression** (DESIGN.md §5): a period with 0 < n < the measure's minimum n is suppressed,
   and *complementary* cells are suppressed too, so that no suppressed figure can be recovered
   by subtraction (see :func:`suppress`).
4. **SPC** per series with :func:`measures.spc.analyse` (chart by kind, direction, target,
   baseline, re-basing, Laney); suppressed periods are passed as missing, so that neither the
   centre line nor the limits carry their values.
5. **Replace** each measure's series in one short transaction under a per-measure lock.

``n``, the number a period is suppressed on: for patient-level rows, the number of rows (one
rating, one patient's 0/1, one event record each); for pre-aggregated rows, the number of
people or ratings behind them, which is the denominator of a proportion or a mean, and the
numerator (the number of events) of a count or a rate.

Works on PostgreSQL (date_trunc, ``COPY … TO STDOUT`` for the result) and on SQLite (the
embedded default: the same grouping with SQLite date functions).
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

import numpy as np
import pandas as pd
from django.db import connection, transaction
from django.utils import timezone

from . import spc
from .enums import Direction, Frequency, MeasureKind, Scope, SeriesLevel
from .models import Measure, Observation, Series

logger = logging.getLogger(__name__)

#: Part of every series' input digest: raise it when the statistics or the stored fields
#: change, so that the next run recomputes every series instead of keeping unchanged ones.
ENGINE_VERSION = 1

#: The grains a measure gets: its own frequency and every coarser one.
GRAINS: Mapping[str, tuple[str, ...]] = {
    Frequency.WEEK: (Frequency.WEEK, Frequency.MONTH, Frequency.QUARTER),
    Frequency.MONTH: (Frequency.MONTH, Frequency.QUARTER),
    Frequency.QUARTER: (Frequency.QUARTER,),
}
#: Namespace of the per-measure advisory lock (pg_advisory_xact_lock(namespace, measure id)).
LOCK_NAMESPACE = 0x5E1E5
#: Period sums columns, as read from the database and stored in ``Series.points``.
SUM_COLUMNS = ("rows", "n", "numerator", "denominator")
#: Decimals kept for displayed figures (values, centre lines, limits): far below what a chart
#: or a table shows, and it halves the stored JSON.
DISPLAY_DECIMALS = 6

_EPOCH = np.datetime64("1970-01-01", "D")

#: (measure id, level, node id) → dates at which that series is re-based.
RebaseDates = Mapping[tuple[int, str, int], Sequence[date]]
#: Gives re-basing dates for the given measures (e.g. initiatives: adoption dates per unit).
RebaseProvider = Callable[[Sequence[int]], RebaseDates]
_rebase_providers: list[RebaseProvider] = []


def register_rebase_provider(provider: RebaseProvider) -> None:
    """Let another app supply re-basing dates (DESIGN.md §5 "Baseline and re-basing").

    ``initiatives`` imports ``measures``, not the reverse, so it registers here from its
    ``AppConfig.ready``: ``provider(measure_ids)`` returns ``{(measure_id, level, node_id):
    [date, …]}``, e.g. the date an initiative was adopted in a unit. Idempotent.
    """
    if provider not in _rebase_providers:
        _rebase_providers.append(provider)


def rebase_dates(measure_ids: Sequence[int]) -> dict[tuple[int, str, int], list[date]]:
    """Re-basing dates of every registered provider, merged and sorted."""
    merged: dict[tuple[int, str, int], set[date]] = {}
    for provider in _rebase_providers:
        for key, dates in provider(measure_ids).items():
            merged.setdefault(key, set()).update(dates)
    return {key: sorted(dates) for key, dates in merged.items()}


# --------------------------------------------------------------------------------------------
# Measures and the organisation
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class MeasureConfig:
    """What aggregation and SPC need of a measure (plain values: picklable, hashable)."""

    id: int
    code: str
    kind: str
    direction: str
    frequency: str
    scope: str
    department_id: int | None
    unit_id: int | None
    minimum_n: int
    target: float | None
    rate_per: int | None
    baseline_points: int | None
    laney: bool

    @classmethod
    def of(cls, measure: Measure) -> MeasureConfig:
        return cls(
            id=measure.pk,
            code=measure.code,
            kind=measure.kind,
            direction=measure.direction,
            frequency=measure.frequency,
            scope=measure.scope,
            department_id=measure.department_id,
            unit_id=measure.unit_id,
            minimum_n=measure.minimum_n,
            target=None if measure.target is None else float(measure.target),
            rate_per=measure.rate_per,
            baseline_points=measure.baseline_points,
            laney=measure.laney,
        )

    @property
    def grains(self) -> tuple[str, ...]:
        return GRAINS[self.frequency]

    @property
    def chart(self) -> spc.ChartType:
        """XmR for means and counts, p for proportions, u for rates (DESIGN.md §5)."""
        return {
            MeasureKind.PROPORTION: spc.ChartType.P,
            MeasureKind.RATE: spc.ChartType.U,
        }.get(self.kind, spc.ChartType.XMR)

    @property
    def scale(self) -> float:
        """Display units per unit of the SPC statistic: % for a proportion, per ``rate_per``."""
        if self.kind == MeasureKind.PROPORTION:
            return 100.0
        if self.kind == MeasureKind.RATE:
            return float(self.rate_per or 1)
        return 1.0

    @property
    def spc_target(self) -> float | None:
        """The target in the SPC statistic's units (a proportion's target is in %)."""
        if self.target is None or self.direction == Direction.NEITHER:
            return None
        return self.target / self.scale

    @property
    def n_from_numerator(self) -> bool:
        """Pre-aggregated rows count their numerator (events) as n, else their denominator."""
        return self.kind in (MeasureKind.COUNT, MeasureKind.RATE)


@dataclass(frozen=True)
class Organisation:
    """Unit → department → division, as plain ids."""

    unit_department: Mapping[int, int]
    department_division: Mapping[int, int]

    @classmethod
    def load(cls) -> Organisation:
        from units.models import Department, Unit

        return cls(
            unit_department=dict(Unit.objects.values_list("id", "department_id")),
            department_division=dict(Department.objects.values_list("id", "division_id")),
        )


def node_key(level: str, node_id: int) -> str:
    return f"{level}:{node_id}"


# --------------------------------------------------------------------------------------------
# 1. Unit-level period sums
# --------------------------------------------------------------------------------------------


def _in_list(values: Sequence[int]) -> str:
    # Ids are ints from our own queries: safe to inline, and SQLite has no arrays.
    return ", ".join(str(int(v)) for v in values)


def unit_period_sums(
    measures: Sequence[MeasureConfig], unit_ids: Sequence[int] | None = None
) -> pd.DataFrame:
    """Σ per (measure, unit, ISO week, month) straight from the observations: one query.

    Columns: measure_id, unit_id, week, month (both ``datetime64[s]``, the period's first
    day; weeks start on Monday, ISO 8601), rows, n, numerator, denominator.
    """
    columns = ["measure_id", "unit_id", "week", "month", *SUM_COLUMNS]
    if not measures or (unit_ids is not None and not unit_ids):
        return _empty_sums(columns)
    table = Observation._meta.db_table
    by_numerator = [m.id for m in measures if m.n_from_numerator] or [0]
    where = f"measure_id IN ({_in_list([m.id for m in measures])})"
    if unit_ids is not None:
        where += f" AND unit_id IN ({_in_list(unit_ids)})"
    n_expr = (
        "CASE WHEN value IS NOT NULL THEN 1 "
        f"WHEN measure_id IN ({_in_list(by_numerator)}) THEN numerator ELSE denominator END"
    )
    sums = f"""count(*) AS rows, sum({n_expr}) AS n,
        sum(COALESCE(numerator, value)) AS numerator,
        sum(COALESCE(denominator, 1)) AS denominator"""
    if connection.vendor == "postgresql":
        # date_trunc on a timestamp is faster than on the bare date (DESIGN.md §7); periods
        # leave the server as days since 1970 and the result as one COPY (no row objects).
        sql = f"""SELECT measure_id, unit_id,
                (week::date - DATE '1970-01-01') AS week,
                (month::date - DATE '1970-01-01') AS month, rows, n, numerator, denominator
            FROM (SELECT measure_id, unit_id,
                    date_trunc('week', date::timestamp) AS week,
                    date_trunc('month', date::timestamp) AS month, {sums}
                FROM {table} WHERE {where} GROUP BY 1, 2, 3, 4) AS g"""
        frame = _copy_out(sql, columns)
    else:
        # SQLite: 'weekday 0' moves to the next Sunday (a Sunday stays), -6 days its Monday.
        sql = f"""SELECT measure_id, unit_id,
                CAST(julianday(date(date, 'weekday 0', '-6 days')) - 2440587.5 AS INTEGER),
                CAST(julianday(date(date, 'start of month')) - 2440587.5 AS INTEGER), {sums}
            FROM {table} WHERE {where} GROUP BY 1, 2, 3, 4"""
        with connection.cursor() as cursor:
            cursor.execute(sql)
            frame = pd.DataFrame(cursor.fetchall(), columns=columns)
    if frame.empty:
        return _empty_sums(columns)
    for name in ("week", "month"):
        frame[name] = (_EPOCH + frame[name].to_numpy(dtype="int64")).astype("datetime64[s]")
    return frame.astype({"measure_id": "int64", "unit_id": "int64", "rows": "int64"}).astype(
        {"n": "float64", "numerator": "float64", "denominator": "float64"}
    )


def _empty_sums(columns: list[str]) -> pd.DataFrame:
    frame = pd.DataFrame({name: pd.Series(dtype="float64") for name in columns})
    for name in ("week", "month"):
        if name in frame:
            frame[name] = frame[name].astype("datetime64[s]")
    return frame.astype({"measure_id": "int64", "unit_id": "int64", "rows": "int64"})


def _copy_out(sql: str, columns: list[str]) -> pd.DataFrame:
    """Run a query and read its result through ``COPY … TO STDOUT`` and Arrow's CSV reader.

    A GROUP BY over 10 M observations returns ~0.8 M groups; as Python tuples they took
    longer than the query.
    """
    from pyarrow import csv as pa_csv

    buffer = io.BytesIO()
    with connection.cursor() as cursor, cursor.copy(f"COPY ({sql}) TO STDOUT") as copy:
        for block in copy:
            buffer.write(block)
    if not buffer.tell():
        return pd.DataFrame(columns=columns)
    buffer.seek(0)
    table = pa_csv.read_csv(
        buffer,
        read_options=pa_csv.ReadOptions(column_names=columns),
        parse_options=pa_csv.ParseOptions(delimiter="\t"),
        convert_options=pa_csv.ConvertOptions(null_values=[r"\N"]),
    )
    return table.to_pandas()


def unit_cells(sums: pd.DataFrame, measures: Sequence[MeasureConfig]) -> pd.DataFrame:
    """Unit-level cells at every grain each measure needs, from :func:`unit_period_sums`.

    Columns: measure_id, unit_id, grain, period, rows, n, numerator, denominator.
    Out-of-scope rows are dropped: a unit-scoped measure aggregates only its own unit, a
    department-scoped one only its department's units (DESIGN.md §4 "scope").
    """
    by_id = {m.id: m for m in measures}
    keep = _in_scope(sums, by_id)
    sums = sums[keep]
    frames = []
    keys = ["measure_id", "unit_id"]
    sum_cols = list(SUM_COLUMNS)
    needs = {g: [m.id for m in measures if g in m.grains] for g in Frequency.values}
    weekly = sums[sums["measure_id"].isin(needs[Frequency.WEEK])]
    if len(weekly):
        week = weekly.groupby([*keys, "week"], sort=False)[sum_cols].sum().reset_index()
        frames.append(week.rename(columns={"week": "period"}).assign(grain=Frequency.WEEK))
    monthly = sums[sums["measure_id"].isin(needs[Frequency.QUARTER])]
    if len(monthly):
        month = monthly.groupby([*keys, "month"], sort=False)[sum_cols].sum().reset_index()
        month = month.rename(columns={"month": "period"})
        frames.append(
            month[month["measure_id"].isin(needs[Frequency.MONTH])].assign(grain=Frequency.MONTH)
        )
        quarter = month.assign(period=_quarter_start(month["period"]))
        quarter = quarter.groupby([*keys, "period"], sort=False)[sum_cols].sum().reset_index()
        frames.append(quarter.assign(grain=Frequency.QUARTER))
    if not frames:
        return _empty_cells("unit_id")
    return pd.concat(frames, ignore_index=True)


def _quarter_start(periods: pd.Series) -> np.ndarray:
    months = periods.to_numpy().astype("datetime64[M]").astype("int64")
    return (months - months % 3).astype("datetime64[M]").astype("datetime64[s]")


def _in_scope(frame: pd.DataFrame, by_id: Mapping[int, MeasureConfig]) -> np.ndarray:
    """Rows whose unit lies within its measure's scope."""
    local = {m.id: m.unit_id for m in by_id.values() if m.scope == Scope.UNIT}
    departmental = {m.id: m.department_id for m in by_id.values() if m.scope == Scope.DEPARTMENT}
    keep = np.ones(len(frame), dtype=bool)
    if local:
        owner = frame["measure_id"].map(local)
        keep &= owner.isna().to_numpy() | (owner == frame["unit_id"]).to_numpy()
    if departmental:
        from units.models import Unit

        unit_department = dict(Unit.objects.values_list("id", "department_id"))
        owner = frame["measure_id"].map(departmental)
        department = frame["unit_id"].map(unit_department)
        keep &= owner.isna().to_numpy() | (owner == department).to_numpy()
    return keep


def _empty_cells(node_column: str = "node_id") -> pd.DataFrame:
    return pd.DataFrame(
        {
            "measure_id": pd.Series(dtype="int64"),
            node_column: pd.Series(dtype="int64"),
            "grain": pd.Series(dtype="object"),
            "period": pd.Series(dtype="datetime64[s]"),
            "rows": pd.Series(dtype="int64"),
            "n": pd.Series(dtype="float64"),
            "numerator": pd.Series(dtype="float64"),
            "denominator": pd.Series(dtype="float64"),
        }
    )


# --------------------------------------------------------------------------------------------
# 2. Roll-ups up the hierarchy
# --------------------------------------------------------------------------------------------


def all_levels(
    units: pd.DataFrame, measures: Sequence[MeasureConfig], org: Organisation
) -> pd.DataFrame:
    """Unit cells plus department and division cells pooled from them by sums.

    A department's numerator, denominator, n and rows are the sums of its units'; the
    division's the sums of its departments' (DESIGN.md §5 "Pooling up the hierarchy").
    Returns columns measure_id, level, node_id, grain, period, rows, n, numerator, denominator.
    """
    sum_cols = list(SUM_COLUMNS)
    frames = [units.rename(columns={"unit_id": "node_id"}).assign(level=SeriesLevel.UNIT)]
    pooled = [m.id for m in measures if m.scope in (Scope.DEPARTMENT, Scope.DIVISION)]
    if len(units) and pooled:
        base = units[units["measure_id"].isin(pooled)]
        base = base.assign(department_id=base["unit_id"].map(org.unit_department).astype("int64"))
        keys = ["measure_id", "grain", "period"]
        department = (
            base.groupby(["department_id", *keys], sort=False)[sum_cols].sum().reset_index()
        )
        frames.append(
            department.rename(columns={"department_id": "node_id"}).assign(
                level=SeriesLevel.DEPARTMENT
            )
        )
        wide = [m.id for m in measures if m.scope == Scope.DIVISION]
        department = department[department["measure_id"].isin(wide)]
        department = department.assign(
            division_id=department["department_id"].map(org.department_division).astype("int64")
        )
        division = (
            department.groupby(["division_id", *keys], sort=False)[sum_cols].sum().reset_index()
        )
        frames.append(
            division.rename(columns={"division_id": "node_id"}).assign(level=SeriesLevel.DIVISION)
        )
    cells = pd.concat(frames, ignore_index=True)
    return cells[["measure_id", "level", "node_id", "grain", "period", *sum_cols]]


# --------------------------------------------------------------------------------------------
# 3. Suppression
# --------------------------------------------------------------------------------------------


def suppress(cells: pd.DataFrame, minimum_n: Mapping[int, int], org: Organisation) -> np.ndarray:
    """Which cells are suppressed: primary (0 < n < minimum n) and complementary.

    Primary suppression is DESIGN.md §5. Complementary suppression keeps a suppressed figure
    from being recovered by subtraction from published ones (the "differencing" attack of
    statistical disclosure control; Hundepool et al., *Statistical Disclosure Control*, Wiley
    2012, §5.2 and §5.6 on secondary cell suppression). A published parent is the sum of its
    children, exactly, in three relations: department = Σ its units, division = Σ its
    departments, quarter = Σ its three months (same node). Until nothing changes:

    * a shown parent with exactly one suppressed child (n > 0) would give that child away:
      also suppress its smallest shown sibling;
    * a suppressed parent whose children (n > 0) are all shown would be their sum: also
      suppress its smallest child.

    (Weeks are not summed to months: a week that straddles two months is not published by
    parts, so no month is a sum of published weeks.)
    """
    count = len(cells)
    n = cells["n"].to_numpy(dtype="float64")
    min_n = cells["measure_id"].map(minimum_n).to_numpy(dtype="float64")
    suppressed = (n > 0) & (n < min_n)
    if not suppressed.any():
        return suppressed
    parent, child = _relations(cells, org)
    if not len(parent):
        return suppressed
    live = n[child] > 0
    parent, child = parent[live], child[live]
    groups, group_of = np.unique(parent, return_inverse=True)
    for _round in range(count + 1):
        child_sup = suppressed[child]
        sup_count = np.bincount(group_of, weights=child_sup, minlength=len(groups))
        shown_count = np.bincount(group_of, weights=~child_sup, minlength=len(groups))
        parent_sup = suppressed[groups]
        needs = (shown_count > 0) & (
            (~parent_sup & (sup_count == 1)) | (parent_sup & (n[groups] > 0) & (sup_count == 0))
        )
        if not needs.any():
            break
        # The smallest shown child of each parent that needs one (ties: the first cell).
        candidate = needs[group_of] & ~child_sup
        rel = np.flatnonzero(candidate)
        order = np.lexsort((child[rel], n[child[rel]], group_of[rel]))
        rel = rel[order]
        first = np.ones(len(rel), dtype=bool)
        first[1:] = group_of[rel][1:] != group_of[rel][:-1]
        suppressed[child[rel[first]]] = True
    return suppressed


def _relations(cells: pd.DataFrame, org: Organisation) -> tuple[np.ndarray, np.ndarray]:
    """(parent cell index, child cell index) pairs of the three sum relations."""
    frame = cells[["measure_id", "level", "node_id", "grain", "period"]].reset_index(drop=True)
    frame["cell"] = np.arange(len(frame))
    parents, children = [], []

    def link(child_rows: pd.DataFrame, parent_rows: pd.DataFrame, on: list[str]) -> None:
        if child_rows.empty or parent_rows.empty:
            return
        joined = child_rows.merge(parent_rows, on=on, suffixes=("_child", "_parent"))
        parents.append(joined["cell_parent"].to_numpy())
        children.append(joined["cell_child"].to_numpy())

    units = frame[frame["level"] == SeriesLevel.UNIT]
    departments = frame[frame["level"] == SeriesLevel.DEPARTMENT]
    divisions = frame[frame["level"] == SeriesLevel.DIVISION]
    keys = ["measure_id", "grain", "period", "parent_id"]
    link(
        units.assign(parent_id=units["node_id"].map(org.unit_department))[[*keys, "cell"]],
        departments.rename(columns={"node_id": "parent_id"})[[*keys, "cell"]],
        keys,
    )
    link(
        departments.assign(parent_id=departments["node_id"].map(org.department_division))[
            [*keys, "cell"]
        ],
        divisions.rename(columns={"node_id": "parent_id"})[[*keys, "cell"]],
        keys,
    )
    months = frame[frame["grain"] == Frequency.MONTH]
    quarters = frame[frame["grain"] == Frequency.QUARTER]
    link(
        months.assign(quarter=_quarter_start(months["period"]))[
            ["measure_id", "level", "node_id", "quarter", "cell"]
        ],
        quarters.rename(columns={"period": "quarter"})[
            ["measure_id", "level", "node_id", "quarter", "cell"]
        ],
        ["measure_id", "level", "node_id", "quarter"],
    )
    if not parents:
        return np.array([], dtype=np.int64), np.array([], dtype=np.int64)
    return np.concatenate(parents), np.concatenate(children)


# --------------------------------------------------------------------------------------------
# 4. SPC per series
# --------------------------------------------------------------------------------------------


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
    points: dict[str, list]
    digest: str = ""

    @property
    def node_key(self) -> str:
        return node_key(self.level, self.node_id)

    def model(self, computed_at: datetime) -> Series:
        return Series(
            measure_id=self.measure_id,
            level=self.level,
            grain=self.grain,
            unit_id=self.node_id if self.level == SeriesLevel.UNIT else None,
            department_id=self.node_id if self.level == SeriesLevel.DEPARTMENT else None,
            division_id=self.node_id if self.level == SeriesLevel.DIVISION else None,
            node_key=self.node_key,
            computed_at=computed_at,
            observation_count=self.observation_count,
            chart=self.chart,
            variation_icon=self.variation_icon,
            assurance_icon=self.assurance_icon,
            run_chart=self.run_chart,
            points=self.points,
            inputs_digest=self.digest,
        )


_NO_SIGNALS: list[str] = []
_POINT_CLASS_TEXT: dict[spc.PointClass | None, str | None] = {
    None: None,
    **{c: c.value for c in spc.PointClass},
}


def _floats(values: np.ndarray, decimals: int | None = None) -> list[float | None]:
    """Floats for JSON, NaN as None; in numpy, since a Python loop per point dominated."""
    if decimals is not None:
        values = np.round(values, decimals)
    missing = np.isnan(values)
    if not missing.any():
        return values.tolist()
    out = values.astype(object)
    out[missing] = None
    return out.tolist()


def series_digest(
    measure: MeasureConfig, periods: np.ndarray, sums: np.ndarray, rebase: Sequence[date]
) -> str:
    """A fingerprint of everything a series' SPC depends on (to skip unchanged series)."""
    digest = hashlib.blake2b(digest_size=16)
    digest.update(f"engine {ENGINE_VERSION}".encode())
    digest.update(repr(measure).encode())
    digest.update(repr(list(rebase)).encode())
    digest.update(np.ascontiguousarray(periods).tobytes())
    digest.update(np.ascontiguousarray(sums).tobytes())
    return digest.hexdigest()


def analyse_series(
    measure: MeasureConfig,
    periods: np.ndarray,
    rows: np.ndarray,
    n: np.ndarray,
    numerator: np.ndarray,
    denominator: np.ndarray,
    suppressed: np.ndarray,
    *,
    rebase_at: Sequence[date] = (),
) -> dict[str, Any]:
    """SPC of one series (periods oldest first) → the stored fields (points and icons).

    The statistic per kind (DESIGN.md §5): proportion p = Σnum/Σden on a p-chart; rate
    u = Σevents/Σexposure on a u-chart; mean Σvalues/Σratings and count Σevents on an XmR
    chart. Suppressed periods go in as missing: the centre line and limits must not carry
    them. Figures are stored in display units (a proportion in %, a rate per ``rate_per``).
    """
    chart = measure.chart
    hidden = np.where(suppressed, np.nan, 1.0)
    if chart is spc.ChartType.XMR:
        if measure.kind == MeasureKind.MEAN:
            with np.errstate(invalid="ignore", divide="ignore"):
                values = numerator / denominator
        else:
            values = numerator.copy()
        analysis = spc.analyse(
            values * hidden,
            chart=chart,
            direction=measure.direction,
            target=measure.spc_target,
            baseline_points=measure.baseline_points,
            rebase_at=rebase_at,
            dates=periods if rebase_at else None,
        )
    else:
        analysis = spc.analyse(
            numerator * hidden,
            denominator,
            chart=chart,
            direction=measure.direction,
            target=measure.spc_target,
            baseline_points=measure.baseline_points,
            rebase_at=rebase_at,
            dates=periods if rebase_at else None,
            laney=measure.laney,
        )
    scale = measure.scale
    d = DISPLAY_DECIMALS
    run = analysis.run_chart
    return {
        "chart": str(chart),
        "variation_icon": str(analysis.variation_icon or ""),
        "assurance_icon": str(analysis.assurance_icon or ""),
        "run_chart": None
        if run is None
        else {
            "centre": None if math.isnan(run.centre) else round(run.centre * scale, d),
            "n_useful": run.n_useful,
            "longest_run": run.longest_run,
            "longest_run_max": run.longest_run_max,
            "crossings": run.crossings,
            "crossings_min": run.crossings_min,
            "signal": run.signal,
        },
        "points": {
            "period": np.datetime_as_string(periods.astype("datetime64[D]")).tolist(),
            "rows": rows.astype("int64").tolist(),
            "n": _floats(n),
            "numerator": _floats(numerator),
            "denominator": _floats(denominator),
            "suppressed": suppressed.tolist(),
            "value": _floats(analysis.y * scale, d),
            "segment": analysis.segment.tolist(),
            "centre": _floats(analysis.centre * scale, d),
            "upper": _floats(analysis.upper * scale, d),
            "lower": _floats(analysis.lower * scale, d),
            "upper_2s": _floats(analysis.upper_2s * scale, d),
            "lower_2s": _floats(analysis.lower_2s * scale, d),
            # One shared empty list and a dict lookup: these run once per point of every series.
            "signals": [sorted(s) if s else _NO_SIGNALS for s in analysis.signals],
            "point_class": [_POINT_CLASS_TEXT[c] for c in analysis.point_class],
        },
    }


def compute_series(
    cells: pd.DataFrame,
    suppressed: np.ndarray,
    measures: Mapping[int, MeasureConfig],
    *,
    rebase: RebaseDates | None = None,
    skip_digests: Mapping[tuple[int, str, str], str] | None = None,
) -> list[ComputedSeries]:
    """Run :func:`analyse_series` on every (measure, level, node, grain) group of ``cells``.

    ``skip_digests``: (measure id, node key, grain) → the digest stored with that series; a
    series whose inputs have the same digest is unchanged and left out of the result.
    """
    rebase = rebase or {}
    frame = cells.assign(suppressed=suppressed).sort_values(
        ["measure_id", "level", "node_id", "grain", "period"], kind="stable"
    )
    keys = frame[["measure_id", "level", "node_id", "grain"]]
    if frame.empty:
        return []
    change = np.ones(len(frame), dtype=bool)
    change[1:] = (keys.iloc[1:].to_numpy() != keys.iloc[:-1].to_numpy()).any(axis=1)
    starts = np.flatnonzero(change)
    stops = np.append(starts[1:], len(frame))
    measure_col = frame["measure_id"].to_numpy()
    level_col = frame["level"].to_numpy()
    node_col = frame["node_id"].to_numpy()
    grain_col = frame["grain"].to_numpy()
    periods = frame["period"].to_numpy()
    rows = frame["rows"].to_numpy()
    n = frame["n"].to_numpy(dtype="float64")
    numerator = frame["numerator"].to_numpy(dtype="float64")
    denominator = frame["denominator"].to_numpy(dtype="float64")
    hidden = frame["suppressed"].to_numpy()
    stacked = np.column_stack([rows.astype("float64"), n, numerator, denominator, hidden])
    out = []
    for start, stop in zip(starts.tolist(), stops.tolist(), strict=True):
        measure = measures[int(measure_col[start])]
        level, node, grain = str(level_col[start]), int(node_col[start]), str(grain_col[start])
        dates = rebase.get((measure.id, level, node), ())
        digest = series_digest(measure, periods[start:stop], stacked[start:stop], dates)
        if skip_digests and skip_digests.get((measure.id, node_key(level, node), grain)) == digest:
            continue
        fields = analyse_series(
            measure,
            periods[start:stop],
            rows[start:stop],
            n[start:stop],
            numerator[start:stop],
            denominator[start:stop],
            hidden[start:stop],
            rebase_at=dates,
        )
        out.append(
            ComputedSeries(
                measure_id=measure.id,
                level=level,
                node_id=node,
                grain=grain,
                observation_count=int(rows[start:stop].sum()),
                digest=digest,
                **fields,
            )
        )
    return out


# --------------------------------------------------------------------------------------------
# 5. Writing: compute first, then lock and replace in one short transaction
# --------------------------------------------------------------------------------------------


def lock_measure(measure_id: int) -> None:
    """Serialise writers of one measure's series until the transaction ends.

    PostgreSQL: a transaction-level advisory lock, released by commit or rollback, also when
    the worker dies (its connection closes). SQLite: transactions are ``BEGIN IMMEDIATE``
    (lhs/settings.py), which already serialises all writers.
    """
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_xact_lock(%s, %s)", [LOCK_NAMESPACE, measure_id])


def replace_series(
    measure_id: int,
    computed: Sequence[ComputedSeries],
    computed_at: datetime,
    *,
    present: set[tuple[str, str]],
) -> tuple[int, int]:
    """Write one measure's computed series; call inside a transaction holding its lock.

    A series stored from newer data (a later ``computed_at``) is left alone, so a slow full
    run cannot overwrite what a refresh after a later import wrote. Stored series of the
    measure whose (node key, grain) is not in ``present`` have lost their observations and
    are deleted. Returns (written, deleted).
    """
    stored = {
        (key, grain): (pk, at)
        for pk, key, grain, at in Series.objects.filter(measure_id=measure_id).values_list(
            "pk", "node_key", "grain", "computed_at"
        )
    }
    newer = {key for key, (_pk, at) in stored.items() if at > computed_at}
    rows = [s.model(computed_at) for s in computed if (s.node_key, s.grain) not in newer]
    if rows:
        _upsert(rows)
    gone = [pk for key, (pk, at) in stored.items() if key not in present and at <= computed_at]
    deleted = Series.objects.filter(pk__in=gone).delete()[0] if gone else 0
    return len(rows), deleted


def _upsert(rows: Sequence[Series]) -> None:
    """INSERT … ON CONFLICT DO UPDATE of whole series, JSON serialised once, by executemany.

    Django's ``bulk_create`` on PostgreSQL sends arrays of JSON strings, which psycopg escapes
    character by character: that took longer than computing the series.
    """
    jsonb = "CAST(%s AS jsonb)" if connection.vendor == "postgresql" else "%s"
    columns = {
        "measure_id": "%s",
        "level": "%s",
        "grain": "%s",
        "unit_id": "%s",
        "department_id": "%s",
        "division_id": "%s",
        "node_key": "%s",
        "computed_at": "%s",
        "observation_count": "%s",
        "chart": "%s",
        "variation_icon": "%s",
        "assurance_icon": "%s",
        "run_chart": jsonb,
        "points": jsonb,
        "inputs_digest": "%s",
    }
    update = ", ".join(
        f"{name} = EXCLUDED.{name}"
        for name in columns
        if name not in ("measure_id", "node_key", "grain")
    )
    sql = (
        f"INSERT INTO {Series._meta.db_table} ({', '.join(columns)}) "
        f"VALUES ({', '.join(columns.values())}) "
        f"ON CONFLICT (measure_id, node_key, grain) DO UPDATE SET {update}"
    )
    adapt = connection.ops.adapt_datetimefield_value
    params = [
        (
            row.measure_id,
            row.level,
            row.grain,
            row.unit_id,
            row.department_id,
            row.division_id,
            row.node_key,
            adapt(row.computed_at),
            row.observation_count,
            row.chart,
            row.variation_icon,
            row.assurance_icon,
            None if row.run_chart is None else json.dumps(row.run_chart),
            json.dumps(row.points, separators=(",", ":")),
            row.inputs_digest,
        )
        for row in rows
    ]
    with connection.cursor() as cursor:
        cursor.executemany(sql, params)


def present_keys(cells: pd.DataFrame, *, by_measure: bool = False):
    """(node key, grain) of every series the cells make; per measure id with ``by_measure``."""
    if cells.empty:
        return {} if by_measure else set()
    series = cells[["measure_id", "level", "node_id", "grain"]].drop_duplicates()
    keys = zip(
        series["measure_id"].tolist(),
        (series["level"] + ":" + series["node_id"].astype(str)).tolist(),
        series["grain"].tolist(),
        strict=True,
    )
    if not by_measure:
        return {(key, grain) for _m, key, grain in keys}
    out: dict[int, set[tuple[str, str]]] = {}
    for measure_id, key, grain in keys:
        out.setdefault(measure_id, set()).add((key, grain))
    return out


# --------------------------------------------------------------------------------------------
# Entry points
# --------------------------------------------------------------------------------------------


@dataclass
class RefreshResult:
    measures: int = 0
    series_written: int = 0
    series_deleted: int = 0
    series_unchanged: int = 0
    observations: int = 0
    timings: dict[str, float] = field(default_factory=dict)

    def add(self, other: RefreshResult) -> None:
        self.measures += other.measures
        self.series_written += other.series_written
        self.series_deleted += other.series_deleted
        self.series_unchanged += other.series_unchanged
        self.observations += other.observations
        for key, value in other.timings.items():
            self.timings[key] = self.timings.get(key, 0.0) + value


def _configs(measure_ids: Iterable[int] | None) -> list[MeasureConfig]:
    measures = (
        Measure.objects.all()
        if measure_ids is None
        else Measure.objects.filter(pk__in=list(measure_ids))
    )
    if measure_ids is None:
        measures = measures.filter(active=True)
    return [MeasureConfig.of(m) for m in measures.order_by("pk")]


def series_recompute(
    *,
    measure_ids: Iterable[int] | None = None,
    rebase: RebaseDates | None = None,
    force: bool = False,
) -> RefreshResult:
    """Recompute every series of the given measures (default: all active) from raw data.

    One GROUP BY for all of them, roll-ups, suppression and SPC outside any transaction; then
    per measure one short transaction that takes its lock and replaces its series (a worker
    killed before the commit leaves the previous series as they were). Idempotent.
    ``rebase``: re-basing dates per series; default: those of the registered providers.

    A series whose inputs (sums, suppression, measure settings, re-basing dates and
    :data:`ENGINE_VERSION`) hash to its stored digest would come out identical: its SPC and
    writing are skipped and only its ``computed_at`` moves on, unless ``force``. The nightly
    run over unchanged data is then little more than the GROUP BY.
    """
    import time

    clock = time.perf_counter
    result = RefreshResult()
    configs = _configs(measure_ids)
    if not configs:
        return result
    computed_at = timezone.now()
    started = clock()
    sums = unit_period_sums(configs)
    result.timings["sql"] = clock() - started
    started = clock()
    org = Organisation.load()
    cells = all_levels(unit_cells(sums, configs), configs, org)
    del sums
    suppressed = suppress(cells, {m.id: m.minimum_n for m in configs}, org)
    result.timings["rollup"] = clock() - started
    started = clock()
    if rebase is None:
        rebase = rebase_dates([m.id for m in configs])
    by_id = {m.id: m for m in configs}
    skip = None if force else stored_digests(list(by_id))
    computed = compute_series(cells, suppressed, by_id, rebase=rebase, skip_digests=skip)
    result.timings["spc"] = clock() - started
    started = clock()
    per_measure: dict[int, list[ComputedSeries]] = {m.id: [] for m in configs}
    for item in computed:
        per_measure[item.measure_id].append(item)
    present = present_keys(cells, by_measure=True)
    for measure_id, items in per_measure.items():
        with transaction.atomic():
            lock_measure(measure_id)
            written, deleted = replace_series(
                measure_id, items, computed_at, present=present.get(measure_id, set())
            )
            # Unchanged series were checked against this very data: say so.
            Series.objects.filter(measure_id=measure_id, computed_at__lt=computed_at).update(
                computed_at=computed_at
            )
        result.series_written += written
        result.series_deleted += deleted
    result.series_unchanged = sum(len(keys) for keys in present.values()) - len(computed)
    result.timings["write"] = clock() - started
    result.measures = len(configs)
    result.observations = _observations(cells, configs)
    return result


def _observations(cells: pd.DataFrame, measures: Sequence[MeasureConfig]) -> int:
    """Observations behind the unit cells (counted once, at each measure's own grain)."""
    if cells.empty:
        return 0
    own = cells["measure_id"].map({m.id: m.frequency for m in measures})
    unit = cells["level"] == SeriesLevel.UNIT if "level" in cells else True
    return int(cells.loc[unit & (cells["grain"] == own), "rows"].sum())


def series_refresh_units(
    *, measure_id: int, unit_ids: Sequence[int], rebase: RebaseDates | None = None
) -> RefreshResult:
    """Refresh one measure after new data for some of its units: see :func:`series_refresh_pairs`."""
    return series_refresh_pairs(pairs={measure_id: unit_ids}, rebase=rebase)


def series_refresh_pairs(
    *, pairs: Mapping[int, Sequence[int]], rebase: RebaseDates | None = None
) -> RefreshResult:
    """Refresh measures after new data for some of their units (e.g. one import).

    ``pairs``: measure id → the unit ids that got new rows. Those (measure, unit) pairs are
    read from the observations (primary-key range scans); every other unit's period sums come
    from its stored series, and departments and the division are pooled from those sums again,
    not from the raw rows. Each measure's suppression is redone whole (a new figure can make a
    sibling's complementary suppression necessary); series whose inputs are unchanged are not
    rewritten, so their ``computed_at`` stays. All measures go through one pass of the engine.

    Everything happens inside one transaction holding the measures' locks (taken in id order,
    so two refreshes cannot deadlock): two refreshes of one measure then cannot both build
    their parents from the other's stale sums.
    """
    import time

    clock = time.perf_counter
    configs = _configs(pairs.keys())
    result = RefreshResult(measures=len(configs))
    if not configs:
        return result
    by_id = {m.id: m for m in configs}
    touched = {(m, int(u)) for m, units in pairs.items() if m in by_id for u in units}
    touched_units = sorted({u for _m, u in touched})
    with transaction.atomic():
        for measure_id in sorted(by_id):
            lock_measure(measure_id)
        computed_at = timezone.now()
        started = clock()
        sums = unit_period_sums(configs, touched_units)
        if len(sums):
            keys = pd.MultiIndex.from_arrays([sums["measure_id"], sums["unit_id"]])
            sums = sums[keys.isin(list(touched))]
        fresh = unit_cells(sums, configs)
        stored = stored_unit_cells(list(by_id), exclude=touched)
        result.timings["read"] = clock() - started
        started = clock()
        org = Organisation.load()
        cells = all_levels(pd.concat([fresh, stored], ignore_index=True), configs, org)
        suppressed = suppress(cells, {m.id: m.minimum_n for m in configs}, org)
        digests = stored_digests(list(by_id))
        # The touched units and their parents are always rewritten (fresh computed_at);
        # others only when their inputs changed (e.g. a complementary suppression moved).
        forced = {
            (m, key)
            for m in by_id
            for key in _ancestor_keys(by_id[m], [u for mm, u in touched if mm == m], org)
        } | {(m, node_key(SeriesLevel.UNIT, u)) for m, u in touched}
        skip = {key: value for key, value in digests.items() if key[:2] not in forced}
        if rebase is None:
            rebase = rebase_dates(list(by_id))
        computed = compute_series(cells, suppressed, by_id, rebase=rebase, skip_digests=skip)
        result.timings["compute"] = clock() - started
        started = clock()
        present = present_keys(cells, by_measure=True)
        for measure_id in sorted(by_id):
            written, deleted = replace_series(
                measure_id,
                [c for c in computed if c.measure_id == measure_id],
                computed_at,
                present=present.get(measure_id, set()),
            )
            result.series_written += written
            result.series_deleted += deleted
        result.timings["write"] = clock() - started
    result.series_unchanged = sum(len(keys) for keys in present.values()) - len(computed)
    result.observations = _observations(fresh, configs)
    return result


def _ancestor_keys(measure: MeasureConfig, unit_ids: Sequence[int], org: Organisation) -> set:
    keys: set[str] = set()
    if measure.scope == Scope.UNIT:
        return keys
    for unit in unit_ids:
        department = org.unit_department.get(unit)
        if department is None:
            continue
        keys.add(node_key(SeriesLevel.DEPARTMENT, department))
        if measure.scope == Scope.DIVISION:
            keys.add(node_key(SeriesLevel.DIVISION, org.department_division[department]))
    return keys


def stored_digests(measure_ids: Sequence[int]) -> dict[tuple[int, str, str], str]:
    """(measure id, node key, grain) → the input digest stored with each series."""
    return {
        (measure_id, key, grain): digest
        for measure_id, key, grain, digest in Series.objects.filter(
            measure_id__in=list(measure_ids)
        ).values_list("measure_id", "node_key", "grain", "inputs_digest")
    }


def stored_unit_cells(
    measure_ids: Sequence[int], *, exclude: set[tuple[int, int]] = frozenset()
) -> pd.DataFrame:
    """Unit-level period sums of measures as stored in their unit series (not raw rows).

    ``exclude``: (measure id, unit id) pairs not to read. Only the columns the roll-up needs
    are read (PostgreSQL: ``->``; SQLite: json_extract), and parsed once, into flat arrays.
    """
    if not measure_ids:
        return _empty_cells("unit_id")
    fields = ("period", *SUM_COLUMNS)
    if connection.vendor == "postgresql":
        parts = ", ".join(f"points->'{name}'" for name in fields)
    else:
        parts = ", ".join(f"json_extract(points, '$.{name}')" for name in fields)
    sql = (
        f"SELECT measure_id, unit_id, grain, {parts} FROM {Series._meta.db_table} "
        f"WHERE measure_id IN ({_in_list(measure_ids)}) AND level = %s"
    )
    dtypes = {"period": "datetime64[D]", "rows": "int64"}
    columns: dict[str, list] = {name: [] for name in ("measure_id", "unit_id", "grain", *fields)}
    with connection.cursor() as cursor:
        cursor.execute(sql, [SeriesLevel.UNIT])
        for measure_id, unit_id, grain, *values in cursor.fetchall():
            if (measure_id, unit_id) in exclude:
                continue
            size = 0
            for name, value in zip(fields, values, strict=True):
                # One C-level conversion per series and column (a null is NaN): flattening
                # Python lists element by element took most of a refresh.
                array = np.array(
                    json.loads(value) if isinstance(value, str) else value,
                    dtype=dtypes.get(name, "float64"),
                )
                columns[name].append(array)
                size = len(array)
            columns["measure_id"].append(np.full(size, measure_id, dtype="int64"))
            columns["unit_id"].append(np.full(size, unit_id, dtype="int64"))
            columns["grain"].append(np.full(size, grain, dtype=object))
    if not columns["measure_id"]:
        return _empty_cells("unit_id")
    frame = pd.DataFrame({name: np.concatenate(arrays) for name, arrays in columns.items()})
    frame["period"] = frame["period"].astype("datetime64[s]")
    return frame[["measure_id", "unit_id", "grain", "period", *SUM_COLUMNS]]


def touched_pairs(batch_id: int) -> dict[int, list[int]]:
    """measure id → unit ids that an import batch wrote rows for (index on batch_id)."""
    table = Observation._meta.db_table
    pairs: dict[int, list[int]] = {}
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT measure_id, unit_id FROM {table} WHERE batch_id = %s GROUP BY 1, 2",
            [batch_id],
        )
        for measure_id, unit_id in cursor.fetchall():
            pairs.setdefault(measure_id, []).append(unit_id)
    return pairs


def series_refresh_for_batch(*, batch_id: int) -> RefreshResult:
    """Refresh exactly the series an import batch touched: its measures × units, and parents."""
    pairs = touched_pairs(batch_id)
    return series_refresh_pairs(pairs=pairs) if pairs else RefreshResult()


def series_refresh(
    *,
    measure_ids: Iterable[int] | None = None,
    unit_ids: Sequence[int] | None = None,
    force: bool = False,
) -> RefreshResult:
    """Recompute series: all of some measures, or (with ``unit_ids``) those units' and parents'.

    ``force`` recomputes whole measures even where nothing changed (after an upgrade).
    """
    if unit_ids is None:
        return series_recompute(measure_ids=measure_ids, force=force)
    return series_refresh_pairs(pairs={m.id: unit_ids for m in _configs(measure_ids)})


def series_recompute_chunks(chunk_measures: int | None = None) -> list[list[int]]:
    """Active measures in chunks for parallel full runs, balanced by observation count."""
    from django.conf import settings

    size = chunk_measures or settings.LHS_AGGREGATION_CHUNK_MEASURES
    ids = list(Measure.objects.filter(active=True).order_by("pk").values_list("pk", flat=True))
    if not ids:
        return []
    count = max(1, math.ceil(len(ids) / max(1, size)))
    # Round-robin: neighbouring ids (often similar measures) end up in different chunks.
    return [ids[i::count] for i in range(count)]
