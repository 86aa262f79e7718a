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
import itertools
import json
import logging
import math
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any

import numpy as np
import pandas as pd
from django.db import connection, transaction
from django.utils import timezone

from . import spc, spc_batch
from .enums import Direction, Frequency, MeasureKind, Scope, SeriesLevel
from .models import Measure, Observation, PeriodSums, Series
from .packing import (
    UNIT_SUMS_COLUMNS,
    blob_of,
    days_to_periods,
    encode_columns,
    periods_to_days,
    unpack_columns,
)

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
#: Level and grain columns of cell frames are categoricals in this (canonical) order: sorting
#: and comparing them as strings cost more than the SPC of every series.
LEVEL_DTYPE = pd.CategoricalDtype(
    [str(SeriesLevel.UNIT), str(SeriesLevel.DEPARTMENT), str(SeriesLevel.DIVISION)]
)
GRAIN_DTYPE = pd.CategoricalDtype(
    [str(Frequency.WEEK), str(Frequency.MONTH), str(Frequency.QUARTER)]
)
#: Namespace of the per-measure advisory lock (pg_advisory_xact_lock(namespace, measure id)).
LOCK_NAMESPACE = 0x5E1E5
#: Period sums columns, as read from the database and stored in ``Series.points``.
SUM_COLUMNS = ("rows", "n", "numerator", "denominator")
#: Decimals kept for displayed figures (values, centre lines, limits): far below what a chart
#: or a table shows, and it halves the stored JSON.
DISPLAY_DECIMALS = 6

_EPOCH = np.datetime64("1970-01-01", "D")
_EPOCH_DATE = date(1970, 1, 1)

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


def _category(value: str):
    """A constant categorical column for ``DataFrame.assign`` (a callable: any length)."""
    dtype = GRAIN_DTYPE if value in GRAIN_DTYPE.categories else LEVEL_DTYPE
    code = dtype.categories.get_loc(str(value))
    return lambda frame: pd.Categorical.from_codes(
        np.full(len(frame), code, dtype="int8"), dtype=dtype
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
    measures: Sequence[MeasureConfig],
    unit_ids: Sequence[int] | None = None,
    *,
    windows: Sequence[tuple[int, int, date, date]] | None = None,
) -> pd.DataFrame:
    """Σ per (measure, unit, ISO week, month) straight from the observations: one query.

    Columns: measure_id, unit_id, week, month (both ``datetime64[s]``, the period's first
    day; weeks start on Monday, ISO 8601), rows, n, numerator, denominator.
    ``windows``: only these (measure id, unit id, first day, last day) ranges, each read by a
    primary-key range scan (a refresh after an import).
    """
    columns = ["measure_id", "unit_id", "week", "month", *SUM_COLUMNS]
    if (
        not measures
        or (unit_ids is not None and not unit_ids)
        or (windows is not None and not windows)
    ):
        return _empty_sums(columns)
    table = Observation._meta.db_table
    where = _measure_filter([m.id for m in measures], whole=unit_ids is None and windows is None)
    if unit_ids is not None:
        where += f" AND o.unit_id IN ({_in_list(unit_ids)})"
    source, prefix = f"{table} AS o", ""
    if windows is not None:
        # Ids are ints and days dates from our own code: safe to inline.
        cast = "::date" if connection.vendor == "postgresql" else ""
        values = ", ".join(
            f"({int(m)}, {int(u)}, '{lo.isoformat()}'{cast}, '{hi.isoformat()}'{cast})"
            for m, u, lo, hi in windows
        )
        prefix = f"WITH w(m, u, lo, hi) AS (VALUES {values}) "
        source += (
            " JOIN w ON o.measure_id = w.m AND o.unit_id = w.u AND o.date BETWEEN w.lo AND w.hi"
        )
    # Plain aggregates only (no CASE per row): n is derived per measure from them below.
    sums = (
        "count(*) AS c4, count(o.value) AS c5, count(o.denominator) AS c6, "
        "COALESCE(sum(o.value), 0) AS c7, COALESCE(sum(o.numerator), 0) AS c8, "
        "COALESCE(sum(o.denominator), 0) AS c9"
    )
    raw = [
        "measure_id",
        "unit_id",
        "week",
        "month",
        "rows",
        "values",
        "dens",
        "value_sum",
        "num",
        "den",
    ]
    if connection.vendor == "postgresql":
        # The days listed: those of the windows, or of the years data usually has.
        span = (date(1990, 1, 1), timezone.localdate() + timedelta(days=400))
        if windows is not None:
            span = (
                max(span[0], min(w[2] for w in windows)),
                min(span[1], max(w[3] for w in windows)),
            )
        for _attempt in range(2):
            sql = _pg_sums_sql(prefix, source, where, sums, span)
            frame = _fetch_frame(sql, raw, full=windows is None and unit_ids is None)
            if frame.empty:
                break
            first = _EPOCH_DATE + timedelta(days=int(frame["week"].min()))
            last = _EPOCH_DATE + timedelta(days=int(frame["week"].max()) + 6)
            if span[0] <= first and last <= span[1]:
                break
            # Rows outside the span the later-month days were listed for: once more with
            # the data's own span (an unusually old or distant date).
            span = (min(span[0], first), max(span[1], last))
        week = frame["week"].to_numpy(dtype="int64")
        later = frame["month"].to_numpy(dtype="int64")
        month_of_week = (_EPOCH + week).astype("datetime64[M]")
        frame["month"] = ((month_of_week + later).astype("datetime64[D]") - _EPOCH).astype("int64")
    else:
        # SQLite: 'weekday 0' moves to the next Sunday (a Sunday stays), -6 days its Monday.
        sql = f"""{prefix}SELECT o.measure_id, o.unit_id,
                CAST(julianday(date(o.date, 'weekday 0', '-6 days')) - 2440587.5 AS INTEGER),
                CAST(julianday(date(o.date, 'start of month')) - 2440587.5 AS INTEGER), {sums}
            FROM {source} WHERE {where} GROUP BY 1, 2, 3, 4"""
        with connection.cursor() as cursor:
            cursor.execute(sql)
            frame = pd.DataFrame(cursor.fetchall(), columns=raw)
    if frame.empty:
        return _empty_sums(columns)
    value_sum = frame["value_sum"].to_numpy(dtype="float64")
    num = frame["num"].to_numpy(dtype="float64")
    den = frame["den"].to_numpy(dtype="float64")
    values = frame["values"].to_numpy(dtype="float64")
    by_numerator = frame["measure_id"].isin([m.id for m in measures if m.n_from_numerator])
    # A patient-level row is numerator = its value, denominator = 1, n = 1; a pre-aggregated
    # row brings its numerator and denominator, and n from one of them (module docstring).
    num0, den0 = np.nan_to_num(num), np.nan_to_num(den)
    out = pd.DataFrame(
        {
            "measure_id": frame["measure_id"].to_numpy(dtype="int64"),
            "unit_id": frame["unit_id"].to_numpy(dtype="int64"),
            "week": _EPOCH + frame["week"].to_numpy(dtype="int64"),
            "month": _EPOCH + frame["month"].to_numpy(dtype="int64"),
            "rows": frame["rows"].to_numpy(dtype="int64"),
            "n": values + np.where(by_numerator.to_numpy(), num0, den0),
            "numerator": np.nan_to_num(value_sum) + num0,
            # A row without a denominator counts 1 (a patient-level row; a count's total).
            "denominator": frame["rows"].to_numpy(dtype="float64")
            - frame["dens"].to_numpy(dtype="float64")
            + den0,
        }
    )
    for name in ("week", "month"):
        out[name] = out[name].astype("datetime64[s]")
    return out


def _later_month_days(first: date, last: date) -> list[str]:
    """Days from ``first`` to ``last`` whose week began in the month before (the 1st to the
    Sunday of a month that did not start on a Monday)."""
    out, day = [], first
    while day <= last:
        if day.day <= 6 and day.day <= day.weekday():
            out.append(day.isoformat())
        day += timedelta(days=1)
    return out


def _pg_sums_sql(prefix: str, source: str, where: str, sums: str, span: tuple[date, date]) -> str:
    """The PostgreSQL GROUP BY of :func:`unit_period_sums`.

    Grouped by (measure, unit, ISO week, part): ``part`` is 1 for the days of a week that lie
    in the month after the one its Monday is in, else 0, so both weeks and months are exact
    sums of the groups. The week start is integer arithmetic on days since 1970 (a Thursday);
    the part is one lookup in a hashed list of such days. Grouping by ``date_trunc('month',
    …)`` instead cost half as much again as the whole GROUP BY by week (DESIGN.md §7).
    """
    days = "{" + ",".join(_later_month_days(*span)) + "}"
    return f"""{prefix}SELECT measure_id AS c0, unit_id AS c1, d - (d + 3) % 7 AS c2,
            (day = ANY('{days}'::date[]))::int AS c3, {sums}
        FROM (SELECT o.measure_id, o.unit_id, o.date - DATE '1970-01-01' AS d,
                o.date AS day, o.value, o.numerator, o.denominator
            FROM {source} WHERE {where}) AS o
        GROUP BY 1, 2, 3, 4"""


def _measure_filter(measure_ids: Sequence[int], *, whole: bool) -> str:
    """The WHERE clause for these measures' rows: when they are (nearly) all measures, by the
    few left out, as a test against 40 ids on each of 10 M rows cost ~10 % of the scan."""
    if whole:
        others = list(
            Measure.objects.exclude(pk__in=list(measure_ids)).values_list("pk", flat=True)
        )
        if not others:
            return "TRUE"
        if len(others) < len(measure_ids):
            return f"o.measure_id NOT IN ({_in_list(others)})"
    return f"o.measure_id IN ({_in_list(measure_ids)})"


def _empty_sums(columns: list[str]) -> pd.DataFrame:
    frame = pd.DataFrame({name: pd.Series(dtype="float64") for name in columns})
    for name in ("week", "month"):
        if name in frame:
            frame[name] = frame[name].astype("datetime64[s]")
    return frame.astype({"measure_id": "int64", "unit_id": "int64", "rows": "int64"})


def _fetch_frame(sql: str, columns: list[str], *, full: bool = False) -> pd.DataFrame:
    """Run a query whose columns are named c0, c1, … and read it as one text value.

    A GROUP BY over 10 M observations returns ~0.6 M groups. As Python tuples they took
    longer than the query, and read row by row through ``COPY … TO STDOUT`` ~0.3 s of a
    client process competing with the server for the cores: the server joins them into
    tab-separated text (``string_agg``, one value per measure in column c0), which Arrow's CSV
    reader parses. Columns must not be NULL. ``full``: a scan of the whole table, given the memory to hash all groups at once in
    parallel workers (the server's default ``work_mem`` of 4 MB made it spill to disk or
    sort), as many as ``LHS_AGGREGATION_DB_WORKERS``; settings local to this transaction
    (DESIGN.md §7).
    """
    from pyarrow import csv as pa_csv

    fields = ", ".join(f"c{i}" for i in range(len(columns)))
    with transaction.atomic(), connection.cursor() as cursor:
        if full:
            from django.conf import settings

            cursor.execute("SET LOCAL work_mem = '256MB'")
            cursor.execute("SET LOCAL enable_sort = off")
            # The leader scans too: workers + 1 processes should not outnumber the cores
            # (three processes on two cores took 5.9 s where two took 4.7 s).
            cursor.execute(
                "SELECT set_config('max_parallel_workers_per_gather', %s, true)",
                [str(settings.LHS_AGGREGATION_DB_WORKERS)],
            )
        # One text per measure (c0): a few MB each, far below the 1 GB a text value can hold
        # however many units and years there are.
        cursor.execute(
            f"SELECT string_agg(concat_ws(E'\\t', {fields}), E'\\n') FROM ({sql}) AS g GROUP BY c0"
        )
        texts = [row[0] for row in cursor.fetchall()]
    if not texts:
        return pd.DataFrame(columns=columns)
    table = pa_csv.read_csv(
        io.BytesIO("\n".join(texts).encode()),
        read_options=pa_csv.ReadOptions(column_names=columns),
        parse_options=pa_csv.ParseOptions(delimiter="\t"),
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
        frames.append(
            week.rename(columns={"week": "period"}).assign(grain=_category(Frequency.WEEK))
        )
    monthly = sums[sums["measure_id"].isin(needs[Frequency.QUARTER])]
    if len(monthly):
        month = monthly.groupby([*keys, "month"], sort=False)[sum_cols].sum().reset_index()
        month = month.rename(columns={"month": "period"})
        frames.append(
            month[month["measure_id"].isin(needs[Frequency.MONTH])].assign(
                grain=_category(Frequency.MONTH)
            )
        )
        quarter = month.assign(period=_quarter_start(month["period"]))
        quarter = quarter.groupby([*keys, "period"], sort=False)[sum_cols].sum().reset_index()
        frames.append(quarter.assign(grain=_category(Frequency.QUARTER)))
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
            "grain": pd.Series(dtype=GRAIN_DTYPE),
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
    frames = [
        units.rename(columns={"unit_id": "node_id"}).assign(level=_category(SeriesLevel.UNIT))
    ]
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
                level=_category(SeriesLevel.DEPARTMENT)
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
            division.rename(columns={"division_id": "node_id"}).assign(
                level=_category(SeriesLevel.DIVISION)
            )
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
    """(parent cell index, child cell index) pairs of the three sum relations.

    Each cell is one packed integer key (measure, level, node, grain, period); a child's
    parent key is computed from it and looked up in the sorted keys (pandas merges of the
    ~650,000 cells of a full run took four times as long).
    """
    count = len(cells)
    empty = np.array([], dtype=np.int64)
    if not count:
        return empty, empty
    measure = cells["measure_id"].to_numpy(dtype="int64")
    level = _codes(cells["level"], LEVEL_DTYPE)
    node = cells["node_id"].to_numpy(dtype="int64")
    grain = _codes(cells["grain"], GRAIN_DTYPE)
    days = periods_to_days(cells["period"].to_numpy())
    unit_parent = _lookup(org.unit_department)
    department_parent = _lookup(org.department_division)
    top_node = max(int(node.max()), len(unit_parent), len(department_parent))
    day_base = int(days.min())
    widths = (
        max(1, int(measure.max()).bit_length()),
        2,
        max(1, top_node.bit_length()),
        2,
        max(1, int(days.max() - day_base).bit_length()),
    )
    if sum(widths) > 63:
        raise ValueError("ids too large to pack")  # ~a million ids and centuries of periods

    def pack(m, lv, nd, gr, dy):
        key = m
        for part, width in zip((lv, nd, gr, dy - day_base), widths[1:], strict=True):
            key = (key << width) | part
        return key

    keys = pack(measure, level, node, grain, days)
    order = np.argsort(keys, kind="stable")
    ordered = keys[order]
    parents, children = [], []

    def link(child: np.ndarray, parent_keys: np.ndarray) -> None:
        at = np.searchsorted(ordered, parent_keys)
        found = at < count
        found[found] = ordered[at[found]] == parent_keys[found]
        parents.append(order[at[found]])
        children.append(child[found])

    unit_level, department_level, division_level = 0, 1, 2
    for child_level, lookup, parent_level in (
        (unit_level, unit_parent, department_level),
        (department_level, department_parent, division_level),
    ):
        child = np.flatnonzero(level == child_level)
        up = np.full(len(child), -1, dtype="int64")
        known = node[child] < len(lookup)
        up[known] = lookup[node[child][known]]
        child, up = child[up >= 0], up[up >= 0]
        link(child, pack(measure[child], parent_level, up, grain[child], days[child]))
    month, quarter = 1, 2
    child = np.flatnonzero(grain == month)
    months = days_to_periods(days[child]).astype("datetime64[M]").astype("int64")
    starts = periods_to_days((months - months % 3).astype("datetime64[M]").astype("datetime64[D]"))
    link(child, pack(measure[child], level[child], node[child], quarter, starts))
    return np.concatenate(parents), np.concatenate(children)


def _lookup(mapping: Mapping[int, int]) -> np.ndarray:
    """An array a with a[key] = value (-1 where no key), for vectorised mapping of ids."""
    if not mapping:
        return np.empty(0, dtype="int64")
    out = np.full(max(mapping) + 1, -1, dtype="int64")
    out[list(mapping)] = list(mapping.values())
    return out


# --------------------------------------------------------------------------------------------
# 4. SPC, many series at once
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
    measure_ids: Sequence[int],
    computed: Sequence[ComputedSeries],
    computed_at: datetime,
    *,
    present: Mapping[int, set[tuple[str, str]]] | None,
) -> tuple[int, int]:
    """Write computed series; call inside a transaction holding the measures' locks.

    A series stored from newer data (a later ``computed_at``) is left alone, so a slow full
    run cannot overwrite what a refresh after a later import wrote. With ``present`` (measure
    id → every (node key, grain) the data still makes), stored series of those measures not
    in it have lost their observations and are deleted. Returns (written, deleted).
    """
    rows = Series.objects.filter(measure_id__in=list(measure_ids))
    if present is None:
        # Only these series are looked at: not the measures' thousands of others.
        rows = rows.filter(node_key__in=sorted({s.node_key for s in computed}))
    stored = {
        (measure_id, key, grain): (pk, at)
        for pk, measure_id, key, grain, at in rows.values_list(
            "pk", "measure_id", "node_key", "grain", "computed_at"
        )
    }
    newer = {key for key, (_pk, at) in stored.items() if at > computed_at}
    rows = [s for s in computed if (s.measure_id, s.node_key, s.grain) not in newer]
    if rows:
        _upsert(rows, computed_at, {key: pk for key, (pk, _at) in stored.items()})
    deleted = 0
    if present is not None:
        gone = [
            pk
            for (measure_id, key, grain), (pk, at) in stored.items()
            if (key, grain) not in present.get(measure_id, ()) and at <= computed_at
        ]
        deleted = Series.objects.filter(pk__in=gone).delete()[0] if gone else 0
    return len(rows), deleted


_SERIES_COLUMNS = (
    "measure_id",
    "level",
    "grain",
    "unit_id",
    "department_id",
    "division_id",
    "node_key",
    "computed_at",
    "observation_count",
    "chart",
    "variation_icon",
    "assurance_icon",
    "run_chart",
    "data",
    "inputs_digest",
)


def _series_row(s: ComputedSeries, computed_at: Any, run_chart: Callable = json.dumps) -> tuple:
    return (
        s.measure_id,
        s.level,
        s.grain,
        s.node_id if s.level == SeriesLevel.UNIT else None,
        s.node_id if s.level == SeriesLevel.DEPARTMENT else None,
        s.node_id if s.level == SeriesLevel.DIVISION else None,
        s.node_key,
        computed_at,
        s.observation_count,
        s.chart,
        s.variation_icon,
        s.assurance_icon,
        None if s.run_chart is None else run_chart(s.run_chart),
        s.data,
        s.digest,
    )


_SERIES_COPY_TYPES = (
    "int8",
    "varchar",
    "varchar",
    "int8",
    "int8",
    "int8",
    "varchar",
    "timestamptz",
    "int8",
    "varchar",
    "varchar",
    "varchar",
    "jsonb",
    "bytea",
    "varchar",
)


def _upsert(
    rows: Sequence[ComputedSeries],
    computed_at: datetime,
    stored_ids: Mapping[tuple[int, str, str], int],
) -> None:
    """Write whole series, keeping the id of a series that is stored already.

    PostgreSQL: the stored rows are deleted and all rows go in by one binary ``COPY`` with
    their ids (new ones drawn from the sequence): no statement per series and the blobs are
    written once (through a temporary table and ``INSERT … ON CONFLICT`` they were written
    twice, which took a third of a full run's writing). Safe because every writer of a
    measure's series holds its lock. SQLite: ``INSERT … ON CONFLICT DO UPDATE``.
    """
    table = Series._meta.db_table
    names = ", ".join(_SERIES_COLUMNS)
    if connection.vendor == "postgresql":
        from psycopg.types.json import Jsonb

        keys = [(s.measure_id, s.node_key, s.grain) for s in rows]
        existing = [stored_ids[key] for key in keys if key in stored_ids]
        with connection.cursor() as cursor:
            if existing:
                cursor.execute(f"DELETE FROM {table} WHERE id = ANY(%s)", [existing])
            fresh: list[int] = []
            if len(existing) < len(rows):
                cursor.execute(
                    f"SELECT nextval(pg_get_serial_sequence('{table}', 'id')) "
                    "FROM generate_series(1, %s)",
                    [len(rows) - len(existing)],
                )
                fresh = [row[0] for row in cursor.fetchall()]
            new_ids = iter(fresh)
            with cursor.copy(f"COPY {table} (id, {names}) FROM STDIN (FORMAT BINARY)") as copy:
                copy.set_types(["int8", *_SERIES_COPY_TYPES])
                for key, s in zip(keys, rows, strict=True):
                    pk = stored_ids.get(key) or next(new_ids)
                    copy.write_row((pk, *_series_row(s, computed_at, Jsonb)))
        return
    update = ", ".join(
        f"{name} = EXCLUDED.{name}"
        for name in _SERIES_COLUMNS
        if name not in ("measure_id", "node_key", "grain")
    )
    adapt = connection.ops.adapt_datetimefield_value
    sql = (
        f"INSERT INTO {table} ({names}) VALUES ({', '.join(['%s'] * len(_SERIES_COLUMNS))}) "
        f"ON CONFLICT (measure_id, node_key, grain) DO UPDATE SET {update}"
    )
    with connection.cursor() as cursor:
        cursor.executemany(sql, [_series_row(s, adapt(computed_at)) for s in rows])


def present_keys(cells: pd.DataFrame) -> dict[int, set[tuple[str, str]]]:
    """measure id → (node key, grain) of every series the cells make."""
    if cells.empty:
        return {}
    series = cells[["measure_id", "level", "node_id", "grain"]].drop_duplicates()
    out: dict[int, set[tuple[str, str]]] = {}
    for measure_id, level, node, grain in zip(
        series["measure_id"].tolist(),
        series["level"].tolist(),
        series["node_id"].tolist(),
        series["grain"].tolist(),
        strict=True,
    ):
        out.setdefault(measure_id, set()).add((node_key(level, node), grain))
    return out


# --------------------------------------------------------------------------------------------
# Period sums: the unit-level cells, kept for refreshes
# --------------------------------------------------------------------------------------------


def write_period_sums(
    measure_ids: Sequence[int],
    units: pd.DataFrame,
    *,
    window: Mapping[int, tuple[date, date]] | None = None,
) -> int:
    """Replace the stored unit-level cells of measures (all, or within each measure's window).

    ``units``: unit-level cells (measure_id, unit_id, grain, period, sums). ``window``:
    measure id → (first, last) period start replaced; absent: every period of the measures,
    and then only rows whose content changed are written (a nightly run over unchanged data
    writes none: reading them back costs a third of rewriting them). Returns rows written.
    """
    table = PeriodSums._meta.db_table
    rows = _period_sums_rows(units)
    if window is not None:
        with connection.cursor() as cursor:
            for measure_id in measure_ids:
                lo, hi = window[measure_id]
                cursor.execute(
                    f"DELETE FROM {table} WHERE measure_id = %s AND period BETWEEN %s AND %s",
                    [measure_id, lo, hi],
                )
    else:
        stored = _stored_period_sums(measure_ids)
        fresh = {row[:3]: row[3] for row in rows}
        gone = [pk for key, (pk, blob) in stored.items() if fresh.get(key) != blob]
        rows = [row for row in rows if stored.get(row[:3], (None, None))[1] != row[3]]
        if gone:
            with connection.cursor() as cursor:
                cursor.execute(f"DELETE FROM {table} WHERE id IN ({_in_list(gone)})")
    if not rows:
        return 0
    if connection.vendor == "postgresql":
        with (
            connection.cursor() as cursor,
            cursor.copy(
                f"COPY {table} (measure_id, grain, period, data) FROM STDIN (FORMAT BINARY)"
            ) as copy,
        ):
            copy.set_types(["int8", "varchar", "date", "bytea"])
            for row in rows:
                copy.write_row(row)
    else:
        with connection.cursor() as cursor:
            cursor.executemany(
                f"INSERT INTO {table} (measure_id, grain, period, data) VALUES (%s, %s, %s, %s)",
                rows,
            )
    return len(rows)


def _period_sums_rows(units: pd.DataFrame) -> list[tuple[int, str, date, bytes]]:
    """(measure id, grain, period, packed unit sums) per period of unit-level cells."""
    if units.empty:
        return []
    frame = units.take(
        _sort_order(
            units["measure_id"].to_numpy(),
            _codes(units["grain"], GRAIN_DTYPE),
            periods_to_days(units["period"].to_numpy()),
            units["unit_id"].to_numpy(),
        )
    )
    measure = frame["measure_id"].to_numpy()
    grain = _codes(frame["grain"], GRAIN_DTYPE)
    days = periods_to_days(frame["period"].to_numpy())
    change = np.ones(len(frame), dtype=bool)
    change[1:] = (measure[1:] != measure[:-1]) | (grain[1:] != grain[:-1]) | (days[1:] != days[:-1])
    starts = np.append(np.flatnonzero(change), len(frame)).tolist()
    grains = list(GRAIN_DTYPE.categories)
    encoded = encode_columns(
        {name: frame[name].to_numpy() for name, _d in UNIT_SUMS_COLUMNS}, UNIT_SUMS_COLUMNS
    )
    return [
        (
            int(measure[a]),
            grains[grain[a]],
            _EPOCH_DATE + timedelta(days=int(days[a])),
            blob_of(encoded, a, b),
        )
        for a, b in itertools.pairwise(starts)
    ]


def _stored_period_sums(
    measure_ids: Sequence[int],
) -> dict[tuple[int, str, date], tuple[int, bytes]]:
    """(measure id, grain, period) → (id, packed sums) as stored."""
    sql = (
        f"SELECT id, measure_id, grain, period, data FROM {PeriodSums._meta.db_table} "
        f"WHERE measure_id IN ({_in_list(measure_ids)})"
    )
    if connection.vendor == "postgresql":
        import psycopg

        connection.ensure_connection()
        # Binary results: bytea as text would be hex, twice the bytes to send and decode.
        # (Django's cursors bind client-side, which has no binary results.)
        with psycopg.Cursor(connection.connection) as cursor:
            cursor.execute(sql, binary=True)
            found = cursor.fetchall()
    else:
        with connection.cursor() as cursor:
            cursor.execute(sql)
            found = cursor.fetchall()
    return {
        (measure_id, grain, _as_date(period)): (pk, bytes(blob))
        for pk, measure_id, grain, period, blob in found
    }


def read_period_sums(windows: Mapping[int, tuple[date, date] | None]) -> pd.DataFrame:
    """Stored unit-level cells of measures: measure id → (first, last) period start, or None."""
    table = PeriodSums._meta.db_table
    parts: dict[str, list[np.ndarray]] = {
        name: [] for name in ("measure_id", "grain", "period", *(n for n, _d in UNIT_SUMS_COLUMNS))
    }
    with connection.cursor() as cursor:
        for measure_id, window in windows.items():
            sql = f"SELECT grain, period, data FROM {table} WHERE measure_id = %s"
            params: list[Any] = [measure_id]
            if window is not None:
                sql += " AND period BETWEEN %s AND %s"
                params += list(window)
            cursor.execute(sql, params)
            for grain, period, blob in cursor.fetchall():
                columns = unpack_columns(blob, UNIT_SUMS_COLUMNS)
                size = len(columns["unit_id"])
                for name, values in columns.items():
                    parts[name].append(values)
                parts["measure_id"].append(np.full(size, measure_id, dtype="int64"))
                parts["grain"].append(np.full(size, grain, dtype=object))
                parts["period"].append(np.full(size, np.datetime64(period, "s")))
    if not parts["measure_id"]:
        return _empty_cells("unit_id")
    frame = pd.DataFrame({name: np.concatenate(arrays) for name, arrays in parts.items()})
    frame["period"] = frame["period"].astype("datetime64[s]")
    frame = frame.astype({"rows": "int64", "unit_id": "int64", "grain": GRAIN_DTYPE})
    return frame[["measure_id", "unit_id", "grain", "period", *SUM_COLUMNS]]


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


def _codes(values: pd.Series, dtype: pd.CategoricalDtype) -> np.ndarray:
    if not isinstance(values.dtype, pd.CategoricalDtype):
        values = values.astype(str).astype(dtype)
    return values.cat.codes.to_numpy(dtype="int64")


def canonical(cells: pd.DataFrame) -> pd.DataFrame:
    """Cells in one fixed order: measure, level, node, grain, period.

    Suppression then breaks ties the same way in a full run and in a refresh that sees only
    some periods (see :func:`suppress`), and each series is one contiguous run of rows. By
    integer codes: sorting the level and grain strings took longer than the SPC.
    """
    if cells.empty:
        return cells.reset_index(drop=True)
    order = _sort_order(
        cells["measure_id"].to_numpy(),
        _codes(cells["level"], LEVEL_DTYPE),
        cells["node_id"].to_numpy(),
        _codes(cells["grain"], GRAIN_DTYPE),
        periods_to_days(cells["period"].to_numpy()),
    )
    return cells.take(order).reset_index(drop=True)


def _sort_order(*keys: np.ndarray) -> np.ndarray:
    """The (stable) order sorting by these integer keys, the first one first.

    The keys are packed into one int64 and argsorted when they fit (ids, codes and days
    since 1970 take ~60 bits together): a third of the time of ``np.lexsort`` on five keys.
    """
    arrays = [np.asarray(key, dtype="int64") for key in keys]
    if not len(arrays[0]):
        return np.arange(0)
    shifted = [a - a.min() for a in arrays]
    widths = [max(1, int(a.max()).bit_length()) for a in shifted]
    if sum(widths) > 63:
        return np.lexsort(tuple(reversed(arrays)))
    packed = np.zeros(len(arrays[0]), dtype="int64")
    for key, width in zip(shifted, widths, strict=True):
        packed = (packed << width) | key
    return np.argsort(packed, kind="stable")


def series_recompute(
    *,
    measure_ids: Iterable[int] | None = None,
    rebase: RebaseDates | None = None,
    force: bool = False,
) -> RefreshResult:
    """Recompute every series of the given measures (default: all active) from raw data.

    One GROUP BY for all of them, roll-ups, suppression and SPC outside any transaction; then
    one short transaction that takes the measures' locks (in id order) and replaces their
    series and period sums (a worker killed before the commit leaves the previous series as
    they were). Idempotent. ``rebase``: re-basing dates per series; default: those of the
    registered providers.

    A series whose inputs (sums, suppression, measure settings, re-basing dates and
    :data:`ENGINE_VERSION`) hash to its stored digest would come out identical: its SPC and
    writing are skipped and only its ``computed_at`` moves on, unless ``force``.
    """
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
    units = unit_cells(sums, configs)
    del sums
    cells = canonical(all_levels(units, configs, org))
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
    present = present_keys(cells)
    ids = sorted(by_id)
    with transaction.atomic():
        if connection.vendor == "postgresql":
            # Derived data, rewritten by the next run if a crash loses it: the commit need
            # not wait for the ~60 MB of WAL to reach the disk.
            with connection.cursor() as cursor:
                cursor.execute("SET LOCAL synchronous_commit = off")
        for measure_id in ids:
            lock_measure(measure_id)
        written, deleted = replace_series(ids, computed, computed_at, present=present)
        # Unchanged series were checked against this very data: say so.
        Series.objects.filter(measure_id__in=ids, computed_at__lt=computed_at).update(
            computed_at=computed_at
        )
        write_period_sums(ids, units)
    result.series_written, result.series_deleted = written, deleted
    result.series_unchanged = sum(len(keys) for keys in present.values()) - len(computed)
    result.timings["write"] = clock() - started
    result.measures = len(configs)
    result.observations = _observations(cells, configs)
    return result


def _observations(cells: pd.DataFrame, measures: Sequence[MeasureConfig]) -> int:
    """Observations behind the unit cells (counted once, at each measure's own grain)."""
    if cells.empty:
        return 0
    own = {m.id: GRAIN_DTYPE.categories.get_loc(str(m.frequency)) for m in measures}
    mask = _codes(cells["grain"], GRAIN_DTYPE) == cells["measure_id"].map(own).to_numpy()
    if "level" in cells:
        mask &= _codes(cells["level"], LEVEL_DTYPE) == 0  # units
    return int(cells["rows"].to_numpy()[mask].sum())


def series_refresh_units(
    *, measure_id: int, unit_ids: Sequence[int], rebase: RebaseDates | None = None
) -> RefreshResult:
    """Refresh one measure after new data for some of its units: see :func:`series_refresh_pairs`."""
    return series_refresh_pairs(pairs={measure_id: unit_ids}, rebase=rebase)


#: (measure id, unit id) → first and last day whose rows changed; None: any day.
Windows = Mapping[tuple[int, int], tuple[date, date] | None]


def _quarter_bounds(lo: date, hi: date) -> tuple[date, date]:
    first = date(lo.year, lo.month - (lo.month - 1) % 3, 1)
    last_month = hi.month - (hi.month - 1) % 3 + 2
    last = date(hi.year + last_month // 13, (last_month - 1) % 12 + 1, 1)
    following = date(last.year + last.month // 12, last.month % 12 + 1, 1)
    return first, following - timedelta(days=1)


def series_refresh_pairs(
    *,
    pairs: Mapping[int, Sequence[int]] | None = None,
    windows: Windows | None = None,
    rebase: RebaseDates | None = None,
) -> RefreshResult:
    """Refresh measures after their rows changed for some units (an import, a revert).

    ``windows``: (measure, unit) → the first and last day whose rows changed (None: any day);
    or ``pairs``: measure id → unit ids, any day. Only the whole quarters around the changed
    days are looked at again (a quarter holds whole months; weeks are counted from the Monday
    on or before it):

    1. those (measure, unit) rows are aggregated again from the observations (primary-key
       range scans), and every other unit's cells in those periods come from the stored
       :class:`PeriodSums`, so departments and the division are pooled again from exact sums;
    2. suppression is redone for those periods — complementary suppression links cells only
       within a week, or within a quarter and its months, so no other period can change — and
       compared with the suppression of the stored cells;
    3. every series with a changed cell (the units', their parents', a sibling whose
       complementary suppression moved) is spliced: its stored periods outside the window
       plus the new ones, and its SPC redone; series that lost every period are deleted.

    Everything happens inside one transaction holding the measures' locks (taken in id order,
    so two refreshes cannot deadlock). A measure without stored period sums (never
    aggregated, or without data until now) is recomputed whole.
    """
    clock = time.perf_counter
    if windows is None:
        windows = {(m, int(u)): None for m, units in (pairs or {}).items() for u in units}
    configs = _configs({m for m, _u in windows})
    result = RefreshResult(measures=len(configs))
    if not configs:
        return result
    by_id = {m.id: m for m in configs}
    windows = {key: value for key, value in windows.items() if key[0] in by_id}
    measure_window: dict[int, tuple[date, date] | None] = {}
    for (measure_id, _unit), window in windows.items():
        if window is None or measure_window.get(measure_id, ()) is None:
            measure_window[measure_id] = None
            continue
        lo, hi = _quarter_bounds(*window)
        if measure_id in measure_window:
            old_lo, old_hi = measure_window[measure_id]
            lo, hi = min(lo, old_lo), max(hi, old_hi)
        measure_window[measure_id] = (lo, hi)
    with transaction.atomic():
        for measure_id in sorted(by_id):
            lock_measure(measure_id)
        missing = _without_period_sums(list(by_id))
        if missing:
            # Recompute those whole; its own transaction nests in this one (same locks).
            result.add(series_recompute(measure_ids=missing, rebase=rebase, force=True))
            for measure_id in missing:
                by_id.pop(measure_id)
            if not by_id:
                return result
        computed_at = timezone.now()
        started = clock()
        configs = [by_id[m] for m in sorted(by_id)]
        # Week cells start on the Monday on or before the window; months within it.
        reads, week_window, month_window = [], {}, {}
        for measure_id in by_id:
            window = measure_window[measure_id]
            if window is None:
                week_window[measure_id] = month_window[measure_id] = None
                continue
            lo, hi = window
            monday_lo = lo - timedelta(days=lo.weekday())
            monday_hi = hi - timedelta(days=hi.weekday())
            week_window[measure_id] = (monday_lo, monday_hi)
            month_window[measure_id] = (lo, hi)
        for (measure_id, unit_id), _w in windows.items():
            if measure_id not in by_id:
                continue
            if week_window[measure_id] is None:
                reads.append((measure_id, unit_id, date(1, 1, 1), date(9999, 12, 31)))
            else:
                monday_lo, monday_hi = week_window[measure_id]
                reads.append((measure_id, unit_id, monday_lo, monday_hi + timedelta(days=6)))
        fresh = unit_cells(unit_period_sums(configs, windows=reads), configs)
        fresh = _within(fresh, week_window, month_window)
        stored_windows = {
            m: None if week_window[m] is None else (week_window[m][0], month_window[m][1])
            for m in by_id
        }
        old_units = _within(read_period_sums(stored_windows), week_window, month_window)
        touched = pd.MultiIndex.from_tuples(
            [(m, u) for m, u in windows if m in by_id], names=["measure_id", "unit_id"]
        )
        keep = ~pd.MultiIndex.from_arrays([old_units["measure_id"], old_units["unit_id"]]).isin(
            touched
        )
        new_units = pd.concat([old_units[keep], fresh], ignore_index=True)
        result.timings["read"] = clock() - started
        started = clock()
        org = Organisation.load()
        minimum_n = {m.id: m.minimum_n for m in configs}
        old_cells = canonical(all_levels(old_units, configs, org))
        new_cells = canonical(all_levels(new_units, configs, org))
        old_cells["suppressed"] = suppress(old_cells, minimum_n, org)
        new_cells["suppressed"] = suppress(new_cells, minimum_n, org)
        affected = _changed_series(old_cells, new_cells) | {
            (m, level, node, grain)
            for m, u in touched
            for level, node in [
                (SeriesLevel.UNIT, u),
                *_ancestors(by_id[m], u, org),
            ]
            for grain in by_id[m].grains
        }
        if rebase is None:
            rebase = rebase_dates(list(by_id))
        computed, gone = [], []
        wanted = {
            measure.id: sorted(k[1:] for k in affected if k[0] == measure.id) for measure in configs
        }
        stored = _stored_blobs({m: keys for m, keys in wanted.items() if keys})
        for measure in configs:
            if not wanted[measure.id]:
                continue
            inputs, empty = _spliced_inputs(
                measure,
                wanted[measure.id],
                stored,
                new_cells,
                week_window[measure.id],
                month_window[measure.id],
            )
            gone.extend((measure.id, node_key(level, node), grain) for level, node, grain in empty)
            computed.extend(analyse_inputs(inputs, rebase=rebase))
        result.timings["compute"] = clock() - started
        started = clock()
        written, _deleted = replace_series(sorted(by_id), computed, computed_at, present=None)
        deleted = 0
        for measure_id, key, grain in gone:
            deleted += Series.objects.filter(
                measure_id=measure_id, node_key=key, grain=grain, computed_at__lte=computed_at
            ).delete()[0]
        bounded = {m: stored_windows[m] for m in by_id if stored_windows[m] is not None}
        unbounded = [m for m in by_id if stored_windows[m] is None]
        if bounded:
            write_period_sums(
                list(bounded),
                new_units[new_units["measure_id"].isin(list(bounded))],
                window=bounded,
            )
        if unbounded:
            write_period_sums(unbounded, new_units[new_units["measure_id"].isin(unbounded)])
        result.series_written += written
        result.series_deleted += deleted
        result.timings["write"] = clock() - started
    result.observations += _observations(fresh.assign(level=SeriesLevel.UNIT), configs)
    return result


def _without_period_sums(measure_ids: Sequence[int]) -> list[int]:
    """Measures without any stored period sums: never aggregated since they existed (just
    upgraded from an engine without them), or without data until now. Either way a refresh
    could not pool their departments from stored sums, and a whole recompute is right (and
    cheap for a measure with no data)."""
    from django.db.models import Exists, OuterRef

    return list(
        Measure.objects.filter(pk__in=list(measure_ids))
        .exclude(Exists(PeriodSums.objects.filter(measure_id=OuterRef("pk"))))
        .order_by("pk")
        .values_list("pk", flat=True)
    )


def _within(
    cells: pd.DataFrame,
    week_window: Mapping[int, tuple[date, date] | None],
    month_window: Mapping[int, tuple[date, date] | None],
) -> pd.DataFrame:
    """Cells whose period lies in its measure's window (week cells: the week window)."""
    if cells.empty:
        return cells
    keep = np.ones(len(cells), dtype=bool)
    measure = cells["measure_id"].to_numpy()
    period = cells["period"].to_numpy().astype("datetime64[D]")
    weekly = (cells["grain"] == Frequency.WEEK).to_numpy()
    for measure_id in np.unique(measure).tolist():
        for grain_mask, window in (
            (weekly, week_window.get(measure_id)),
            (~weekly, month_window.get(measure_id)),
        ):
            if window is None:
                continue
            mask = (measure == measure_id) & grain_mask
            lo, hi = (np.datetime64(d, "D") for d in window)
            keep[mask] = (period[mask] >= lo) & (period[mask] <= hi)
    return cells[keep]


def _ancestors(measure: MeasureConfig, unit_id: int, org: Organisation) -> list[tuple[str, int]]:
    if measure.scope == Scope.UNIT:
        return []
    department = org.unit_department.get(unit_id)
    if department is None:
        return []
    out = [(SeriesLevel.DEPARTMENT, department)]
    if measure.scope == Scope.DIVISION:
        out.append((SeriesLevel.DIVISION, org.department_division[department]))
    return out


def _changed_series(old: pd.DataFrame, new: pd.DataFrame) -> set[tuple[int, str, int, str]]:
    """(measure, level, node, grain) of series with a cell added, removed or changed."""
    keys = ["measure_id", "level", "node_id", "grain", "period"]
    values = [*SUM_COLUMNS, "suppressed"]
    merged = old[keys + values].merge(
        new[keys + values], on=keys, how="outer", suffixes=("_old", "_new"), indicator=True
    )
    changed = (merged["_merge"] != "both").to_numpy().copy()
    for name in values:
        a, b = merged[f"{name}_old"].to_numpy(), merged[f"{name}_new"].to_numpy()
        changed |= ~((a == b) | (pd.isna(a) & pd.isna(b)))
    rows = merged.loc[changed, ["measure_id", "level", "node_id", "grain"]].drop_duplicates()
    return set(
        zip(
            rows["measure_id"].tolist(),
            rows["level"].tolist(),
            rows["node_id"].tolist(),
            rows["grain"].tolist(),
            strict=True,
        )
    )


def _spliced_inputs(
    measure: MeasureConfig,
    keys: Sequence[tuple[str, int, str]],
    stored: Mapping[tuple[int, str, int, str], bytes],
    new_cells: pd.DataFrame,
    week_window: tuple[date, date] | None,
    month_window: tuple[date, date] | None,
) -> tuple[SeriesInputs, list[tuple[str, int, str]]]:
    """The stored periods of these series outside the window, plus the new cells inside it.

    Returns the inputs of the series that still have periods, and the keys of those that
    have none left (to delete). Flat numpy throughout: a data frame per series cost ~10 ms.
    """
    levels, grains = list(LEVEL_DTYPE.categories), list(GRAIN_DTYPE.categories)

    def code(level_code, node, grain_code):
        return node * 100 + level_code * 10 + grain_code

    key_codes = np.array(
        [code(levels.index(lv), node, grains.index(gr)) for lv, node, gr in keys], dtype="int64"
    )
    names = ("rows", "n", "numerator", "denominator", "suppressed")
    parts: dict[str, list[np.ndarray]] = {name: [] for name in ("series", "days", *names)}
    for i, key in enumerate(keys):
        columns = unpack_columns(stored.get((measure.id, *key)))
        window = week_window if key[2] == Frequency.WEEK else month_window
        days = columns["period"].astype("int64")
        if window is None:
            outside = np.zeros(len(days), dtype=bool)
        else:
            lo, hi = ((np.datetime64(d, "D") - _EPOCH).astype("int64") for d in window)
            outside = (days < lo) | (days > hi)
        parts["series"].append(np.full(int(outside.sum()), i, dtype="int64"))
        parts["days"].append(days[outside])
        for name in names:
            parts[name].append(columns[name][outside])
    own = new_cells[new_cells["measure_id"] == measure.id]
    if len(own):
        own_codes = code(
            _codes(own["level"], LEVEL_DTYPE),
            own["node_id"].to_numpy(dtype="int64"),
            _codes(own["grain"], GRAIN_DTYPE),
        )
        order = np.argsort(key_codes)
        at = np.clip(np.searchsorted(key_codes[order], own_codes), 0, len(keys) - 1)
        match = key_codes[order][at] == own_codes
        parts["series"].append(order[at][match])
        parts["days"].append(periods_to_days(own["period"].to_numpy())[match])
        for name in names:
            parts[name].append(own[name].to_numpy()[match])
    flat = {name: np.concatenate(arrays) for name, arrays in parts.items()}
    order = np.lexsort((flat["days"], flat["series"]))
    flat = {name: values[order] for name, values in flat.items()}
    counts = np.bincount(flat["series"], minlength=len(keys))
    empty = [key for key, count in zip(keys, counts.tolist(), strict=True) if not count]
    return (
        SeriesInputs(
            measure=measure,
            keys=[key for key, count in zip(keys, counts.tolist(), strict=True) if count],
            starts=np.concatenate([[0], np.cumsum(counts[counts > 0])]).astype("int64"),
            days=flat["days"],
            rows=flat["rows"].astype("int64"),
            n=flat["n"].astype("float64"),
            numerator=flat["numerator"].astype("float64"),
            denominator=flat["denominator"].astype("float64"),
            suppressed=flat["suppressed"].astype(bool),
        ),
        empty,
    )


def _stored_blobs(
    wanted: Mapping[int, Sequence[tuple[str, int, str]]],
) -> dict[tuple[int, str, int, str], bytes]:
    """(measure id, level, node id, grain) → stored points of these series, in one query."""
    by_key = {
        (measure_id, node_key(level, node), grain): (measure_id, level, node, grain)
        for measure_id, keys in wanted.items()
        for level, node, grain in keys
    }
    rows = Series.objects.filter(
        measure_id__in=list(wanted), node_key__in=sorted({key for _m, key, _g in by_key})
    ).values_list("measure_id", "node_key", "grain", "data")
    return {
        by_key[(measure_id, key, grain)]: bytes(blob)
        for measure_id, key, grain, blob in rows
        if (measure_id, key, grain) in by_key
    }


def stored_digests(measure_ids: Sequence[int]) -> dict[tuple[int, str, str], str]:
    """(measure id, node key, grain) → the input digest stored with each series."""
    return {
        (measure_id, key, grain): digest
        for measure_id, key, grain, digest in Series.objects.filter(
            measure_id__in=list(measure_ids)
        ).values_list("measure_id", "node_key", "grain", "inputs_digest")
    }


def batch_windows(batch_id: int) -> dict[tuple[int, int], tuple[date, date]]:
    """(measure id, unit id) → first and last day an import batch wrote rows for."""
    table = Observation._meta.db_table
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT measure_id, unit_id, min(date), max(date) FROM {table} "
            "WHERE batch_id = %s GROUP BY 1, 2",
            [batch_id],
        )
        return {
            (measure_id, unit_id): (_as_date(lo), _as_date(hi))
            for measure_id, unit_id, lo, hi in cursor.fetchall()
        }


def _as_date(value: Any) -> date:
    return value if isinstance(value, date) else date.fromisoformat(str(value)[:10])


def touched_pairs(batch_id: int) -> dict[int, list[int]]:
    """measure id → unit ids that an import batch wrote rows for (index on batch_id)."""
    pairs: dict[int, list[int]] = {}
    for measure_id, unit_id in batch_windows(batch_id):
        pairs.setdefault(measure_id, []).append(unit_id)
    return pairs


def series_refresh_for_batch(*, batch_id: int) -> RefreshResult:
    """Refresh exactly the series an import batch touched: its measures × units, and parents."""
    windows = batch_windows(batch_id)
    return series_refresh_pairs(windows=windows) if windows else RefreshResult()


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
    """Active measures in chunks for full runs.

    One chunk by default: the GROUP BY then scans the observations once, in parallel on the
    database server; chunks each scan the whole table again (DESIGN.md §7).
    """
    from django.conf import settings

    size = chunk_measures or settings.LHS_AGGREGATION_CHUNK_MEASURES
    ids = list(Measure.objects.filter(active=True).order_by("pk").values_list("pk", flat=True))
    if not ids:
        return []
    count = max(1, math.ceil(len(ids) / max(1, size)))
    return [ids[i::count] for i in range(count)]
