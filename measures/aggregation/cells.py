"""Unit-level period sums from the observations, roll-ups up the hierarchy, suppression.

Steps 1-3 of the engine (see the package docstring).
"""

from __future__ import annotations

import io
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

import numpy as np
import pandas as pd
from django.db import connection, transaction
from django.utils import timezone

from .. import spc
from ..enums import Direction, Frequency, MeasureKind, Scope, SeriesLevel
from ..models import Measure, Observation
from ..packing import (
    days_to_periods,
    periods_to_days,
)

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

#: The sums of a cell, as read from the database and stored in each series' points.
SUM_COLUMNS = ("rows", "n", "numerator", "denominator")

_EPOCH = np.datetime64("1970-01-01", "D")

_EPOCH_DATE = date(1970, 1, 1)


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
      suppress its smallest child;
    * a shown parent whose one child (n > 0) is suppressed would be that child (a quarter with
      one month of data, a department with one unit with data): also suppress the parent;
    * a shown parent whose suppressed children hold no more than the least a reader can tell
      they hold would give them all away (a suppressed n is ≥ 1, and ≥ what its own
      suppressed children hold at the least: 2 between two suppressed units is 1 + 1): also
      suppress its smallest shown child, or the parent when it has none.

    Each relation is its own equation: a department quarter is both the sum of its units'
    quarters and the sum of its months, and the rules hold for each sum apart (counted
    together, a suppressed month would hide that every unit quarter was shown).

    Weeks are not summed to months, but over any span that both whole weeks and whole months
    cover (a month that begins on a Monday and ends on a Sunday, the whole series) Σ weeks =
    Σ months, so a shown month less its shown weeks can give a lone suppressed week away. So:

    * a shown month that one suppressed week (n > 0) overlaps: also suppress its smallest
      shown week that lies wholly in it, or the month when it has none;
    * a suppressed month whose weeks (n > 0) are all shown: also suppress its smallest week
      that lies wholly in it, or when it has none (its data lie only in the weeks across its
      ends), its smallest week across an end.

    Weeks wholly in the month come first, so that a complementary week does not reach into
    the next month: a refresh looks one quarter further on each side, which holds every such
    effect (a chain beyond it would need month after month with data only in the weeks across
    their ends).

    These rules protect each sum on its own. Combined, sums can still pin a cell down (a
    2-D table of units and months with its quarter; a week across two months whose sum the
    quarter gives): each (measure, quarter)'s months, quarters and the weeks linked to its
    months are then solved exactly, as if every cell outside the quarter were known, and one
    more cell hidden where one is determined (:func:`_audit_quarters`).
    """
    count = len(cells)
    n = cells["n"].to_numpy(dtype="float64")
    min_n = cells["measure_id"].map(minimum_n).to_numpy(dtype="float64")
    suppressed = (n > 0) & (n < min_n)
    if not suppressed.any():
        return suppressed
    parent, child, relation, interior = _relations(cells, org)
    if not len(parent):
        return suppressed
    live = n[child] > 0
    parent, child, relation, interior = parent[live], child[live], relation[live], interior[live]
    weekly = relation == WEEK_IN_MONTH
    month_of, week_of, whole_week = parent[weekly], child[weekly], interior[weekly]
    parent, child, relation = parent[~weekly], child[~weekly], relation[~weekly]
    months, month_group = np.unique(month_of, return_inverse=True)
    equations, group_of = np.unique(parent * 3 + relation, return_inverse=True)
    groups = equations // 3
    cell_quarter = _quarter_keys(cells)
    for _audit in range(count + 1):
        for _round in range(count + 1):
            child_sup = suppressed[child]
            sup_count = np.bincount(group_of, weights=child_sup, minlength=len(groups))
            shown_count = np.bincount(group_of, weights=~child_sup, minlength=len(groups))
            sup_n = np.bincount(
                group_of, weights=np.where(child_sup, n[child], 0.0), minlength=len(groups)
            )
            parent_sup = suppressed[groups]
            # The least n a reader can tell each suppressed cell holds: 1, or what its own
            # children add up to at the least (a suppressed department of two suppressed units
            # holds ≥ 2); shown cells their n. Up to four sums deep (unit month → department →
            # division → quarter).
            least = np.where(suppressed, 1.0, n)
            for _depth in range(4):
                floor = np.zeros(count)
                np.maximum.at(
                    floor,
                    groups,
                    np.bincount(group_of, weights=least[child], minlength=len(groups)),
                )
                least = np.where(suppressed, np.maximum(least, floor), n)
            sup_least = np.bincount(
                group_of, weights=np.where(child_sup, least[child], 0.0), minlength=len(groups)
            )
            # Lone: one suppressed child, or several that hold no more than the least they can
            # (2 between two suppressed units is 1 + 1).
            lone_ones = (sup_count == 1) | ((sup_count > 1) & (sup_n <= sup_least + 1e-9))
            lone = ~parent_sup & lone_ones & (shown_count == 0) & (n[groups] > 0)
            needs = (shown_count > 0) & (
                (~parent_sup & lone_ones) | (parent_sup & (n[groups] > 0) & (sup_count == 0))
            )
            week_sup = suppressed[week_of]
            weeks_sup = np.bincount(month_group, weights=week_sup, minlength=len(months))
            weeks_shown = np.bincount(month_group, weights=~week_sup, minlength=len(months))
            lone_week = ~suppressed[months] & (weeks_sup == 1)
            bare_month = suppressed[months] & (weeks_sup == 0) & (weeks_shown > 0)
            if not needs.any() and not lone.any() and not lone_week.any() and not bare_month.any():
                break
            suppressed[groups[lone]] = True
            if lone_week.any() or bare_month.any():
                # The smallest shown week wholly in the month (ties: the first cell); else, for a
                # shown month, the month itself, and for a suppressed one a week across its ends.
                rel = np.flatnonzero(
                    (lone_week[month_group] & whole_week | bare_month[month_group]) & ~week_sup
                )
                rel = rel[
                    np.lexsort((week_of[rel], n[week_of[rel]], ~whole_week[rel], month_group[rel]))
                ]
                first = np.ones(len(rel), dtype=bool)
                first[1:] = month_group[rel][1:] != month_group[rel][:-1]
                suppressed[week_of[rel[first]]] = True
                covered = np.zeros(len(months), dtype=bool)
                covered[month_group[rel[first]]] = True
                suppressed[months[lone_week & ~covered]] = True
            if not needs.any():
                continue
            # The smallest shown child of each parent that needs one (ties: the first cell).
            candidate = needs[group_of] & ~child_sup
            rel = np.flatnonzero(candidate)
            order = np.lexsort((child[rel], n[child[rel]], group_of[rel]))
            rel = rel[order]
            first = np.ones(len(rel), dtype=bool)
            first[1:] = group_of[rel][1:] != group_of[rel][:-1]
            suppressed[child[rel[first]]] = True
        # The rules hold each sum on its own; combined (units × months × quarter, a 2-D
        # table) they can still pin a cell down: solve for it, and hide one more where so.
        if not _audit_quarters(
            cells, suppressed, parent, child, group_of, month_of, week_of, cell_quarter
        ):
            break
    return suppressed


#: The relation code of a week and a month it overlaps (not a sum: see :func:`suppress`).
WEEK_IN_MONTH = 3


def _quarter_keys(cells: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """Per cell: (measure, quarter) packed in one int, of its first day and of its last day
    (they differ only for a week across a quarter's end)."""
    grain = _codes(cells["grain"], GRAIN_DTYPE)
    first = cells["period"].to_numpy().astype("datetime64[D]")
    last = first + np.where(grain == 0, 6, 0).astype("timedelta64[D]")
    quarters = []
    for days in (first, last):
        months = days.astype("datetime64[M]").astype("int64")
        quarters.append(months - months % 3)
    base = quarters[0].min()
    measure = cells["measure_id"].to_numpy(dtype="int64") * 100_000
    return measure + (quarters[0] - base), measure + (quarters[1] - base)


def _audit_quarters(
    cells: pd.DataFrame,
    suppressed: np.ndarray,
    parent: np.ndarray,
    child: np.ndarray,
    group_of: np.ndarray,
    month_of: np.ndarray,
    week_of: np.ndarray,
    keys: tuple[np.ndarray, np.ndarray],
) -> bool:
    """Hide one more cell for each suppressed cell that the published sums around its quarter
    determine; True if any was hidden.

    The equations: every sum (hierarchy, months → quarter, at every grain) and, per node,
    Σ weeks = Σ months over each set of weeks and months linked by overlapping days. Each
    (measure, quarter) is solved apart as if the reader knew every cell outside it exactly:
    its months and quarter, and the weeks that have data in its months (a week across the
    quarter's end is in both quarters). The equations restricted so still hold (with what
    lies outside as known constants), and a reader who knows more can work out more, so a
    cell left undetermined there is undetermined in truth. A cell is determined when its unit
    vector lies in the row space of the equations over the suppressed cells: zero in every
    vector of their null space. Only a quarter's own cells are read, so a refresh of whole
    quarters (and one more on each side for weeks) sees the same.
    """
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    n = cells["n"].to_numpy(dtype="float64")
    hidden = suppressed & (n > 0)
    if not hidden.any():
        return False
    first_key, _last_key = keys
    count = len(cells)
    weekly = _codes(cells["grain"], GRAIN_DTYPE) == 0
    # Membership (quarter, cell): months and quarters in theirs; a week in each quarter of a
    # month it is linked to (else that of its Monday).
    linked = np.zeros(count, dtype=bool)
    linked[week_of] = True
    plain = np.flatnonzero(~weekly | ~linked)
    pairs = np.unique(
        np.stack(
            [
                np.concatenate([first_key[plain], first_key[month_of]]),
                np.concatenate([plain, week_of]),
            ]
        ),
        axis=1,
    )
    member_key, member = pairs[0], pairs[1]
    # Equations as (quarter, equation, cell, coefficient). Sums: in every quarter of a cell
    # in them (cells outside a quarter count as known there).
    sum_parent = np.zeros(group_of.max() + 1 if len(group_of) else 0, dtype="int64")
    sum_parent[group_of] = parent
    entries_eq = np.concatenate([group_of, np.arange(len(sum_parent))])
    entries_cell = np.concatenate([child, sum_parent])
    entries_coef = np.concatenate([np.ones(len(child)), -np.ones(len(sum_parent))])
    # Per (cell, quarter) node the equations it is in: join entries with membership.
    order = np.argsort(member, kind="stable")
    by_cell = member[order]
    lo = np.searchsorted(by_cell, entries_cell, side="left")
    hi = np.searchsorted(by_cell, entries_cell, side="right")
    repeat = hi - lo
    entry_index = np.repeat(np.arange(len(entries_cell)), repeat)
    offsets = np.arange(repeat.sum()) - np.repeat(np.cumsum(repeat) - repeat, repeat)
    entry_key = member_key[order][np.repeat(lo, repeat) + offsets]
    # An equation belongs to each quarter one of its cells is in.
    eq_quarters = np.unique(np.stack([entries_eq[entry_index], entry_key]), axis=1)
    quarter_eq = [eq_quarters[1], eq_quarters[0]]
    # Weeks against months: per quarter, the connected sets of its months and the weeks
    # linked to them; one equation each, Σ weeks − Σ months.
    link_key = first_key[month_of]
    if len(month_of):
        nodes, node_of = np.unique(
            np.stack([np.concatenate([link_key, link_key]), np.concatenate([month_of, week_of])]),
            axis=1,
            return_inverse=True,
        )
        node_of = node_of.reshape(-1)
        half = len(month_of)
        graph = coo_matrix(
            (np.ones(half), (node_of[:half], node_of[half:])), shape=(nodes.shape[1],) * 2
        )
        _ncomp, label = connected_components(graph, directed=False)
        label = label + len(sum_parent)
        component_cell = nodes[1]
        component_coef = np.where(weekly[component_cell], 1.0, -1.0)
    else:
        label = component_cell = np.array([], dtype="int64")
        component_coef = np.array([])
        nodes = np.zeros((2, 0), dtype="int64")
    # All equations per quarter: (key, equation, cell, coefficient).
    sel = np.argsort(entries_eq, kind="stable")
    eq_sorted = entries_eq[sel]
    touched = np.unique(member_key[hidden[member]])
    q_order = np.argsort(quarter_eq[0], kind="stable")
    q_keys, q_ids = quarter_eq[0][q_order], quarter_eq[1][q_order]
    c_order = np.argsort(nodes[0], kind="stable")
    c_keys = nodes[0][c_order]
    m_order = np.argsort(member_key, kind="stable")
    m_keys = member_key[m_order]
    added = False
    for key in touched.tolist():
        members = member[m_order][
            np.searchsorted(m_keys, key) : np.searchsorted(m_keys, key, side="right")
        ]
        ids = q_ids[np.searchsorted(q_keys, key) : np.searchsorted(q_keys, key, side="right")]
        at = np.concatenate(
            [
                np.arange(a, b)
                for a, b in zip(
                    np.searchsorted(eq_sorted, ids),
                    np.searchsorted(eq_sorted, ids, side="right"),
                    strict=True,
                )
            ]
            or [np.array([], dtype="int64")]
        )
        comp = c_order[np.searchsorted(c_keys, key) : np.searchsorted(c_keys, key, side="right")]
        eq = np.concatenate([entries_eq[sel[at]], label[comp]])
        cell = np.concatenate([entries_cell[sel[at]], component_cell[comp]])
        coef = np.concatenate([entries_coef[sel[at]], component_coef[comp]])
        inside = np.isin(cell, members)
        eq, cell, coef = eq[inside], cell[inside], coef[inside]
        crossing = weekly[members] & (first_key[members] != keys[1][members])
        for _step in range(len(members)):
            unknown = members[suppressed[members] & (n[members] > 0)]
            determined = _determined(unknown, eq, cell, coef)
            if not len(determined):
                break
            target = determined[0]
            # One more hidden cell: the smallest shown one that leaves this cell undetermined,
            # those in an equation with it first, weeks across the quarter's ends last (they
            # reach into the next quarter; ties: the first cell).
            near = np.isin(members, cell[np.isin(eq, eq[cell == target])])
            shown = ~suppressed[members] & (n[members] > 0)
            choices = np.lexsort((members, n[members], crossing, ~near))
            choices = choices[shown[choices]]
            if not len(choices):
                break
            choice = members[choices[0]]
            for i in choices[:20]:
                if target not in _determined(np.append(unknown, members[i]), eq, cell, coef):
                    choice = members[i]
                    break
            suppressed[choice] = True
            added = True
    return added


def _determined(
    unknown: np.ndarray, eq: np.ndarray, cell: np.ndarray, coef: np.ndarray
) -> np.ndarray:
    """The unknown cells that the equations Σ coefficient · cell = known (one per ``eq``) pin
    down: zero in every vector of the null space of the equations over the unknowns.

    Solved per block of unknowns linked by equations (most blocks are a few cells: one SVD
    of a quarter's hundreds of unknowns cost a hundred times more)."""
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    ordered = np.sort(unknown)
    if not len(ordered):
        return ordered
    used = np.isin(cell, ordered)
    if not used.any():
        return ordered
    rows, row_of = np.unique(eq[used], return_inverse=True)
    column = np.searchsorted(ordered, cell[used])
    values = coef[used]
    # Unknowns and equations as one graph: nodes 0..k-1 the unknowns, k.. the equations.
    k = len(ordered)
    graph = coo_matrix(
        (np.ones(len(column)), (column, k + row_of)), shape=(k + len(rows), k + len(rows))
    )
    _count, label = connected_components(graph, directed=False)
    block_of_column = label[:k]
    block_of_entry = block_of_column[column]
    out = np.zeros(k, dtype=bool)
    entry_order = np.argsort(block_of_entry, kind="stable")
    column_order = np.argsort(block_of_column, kind="stable")
    blocks = np.unique(block_of_column)
    entry_bounds = (
        np.searchsorted(block_of_entry[entry_order], blocks, side="left"),
        np.searchsorted(block_of_entry[entry_order], blocks, side="right"),
    )
    column_bounds = (
        np.searchsorted(block_of_column[column_order], blocks, side="left"),
        np.searchsorted(block_of_column[column_order], blocks, side="right"),
    )
    for i in range(len(blocks)):
        columns = column_order[column_bounds[0][i] : column_bounds[1][i]]
        entries = entry_order[entry_bounds[0][i] : entry_bounds[1][i]]
        if not len(entries):
            continue  # in no equation: free
        block_rows, local_row = np.unique(row_of[entries], return_inverse=True)
        local_column = np.searchsorted(columns, column[entries])
        matrix = np.zeros((len(block_rows), len(columns)))
        matrix[local_row.reshape(-1), local_column] = values[entries]
        if len(block_rows) > len(columns):
            # The same row space in a square matrix: cheaper to decompose.
            matrix = np.linalg.qr(matrix, mode="r")
        _u, singular, vt = np.linalg.svd(matrix)
        null = vt[int((singular > 1e-9).sum()) :]
        out[columns] = True if not len(null) else np.abs(null).max(axis=0) < 1e-9
    return ordered[out]


def _relations(
    cells: pd.DataFrame, org: Organisation
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(parent cell index, child cell index, relation, whole) of the cells' relations.

    ``relation``: 0 unit → department, 1 department → division, 2 month → quarter (sums), and
    :data:`WEEK_IN_MONTH` (parent: a month, child: a week that overlaps it; ``whole``: the
    week lies wholly in the month).

    Each cell is one packed integer key (measure, level, node, grain, period); a child's
    parent key is computed from it and looked up in the sorted keys (pandas merges of the
    ~650,000 cells of a full run took four times as long).
    """
    count = len(cells)
    empty = np.array([], dtype=np.int64)
    if not count:
        return empty, empty, empty, np.array([], dtype=bool)
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
    parents, children, relations, wholes = [], [], [], []

    def link(child: np.ndarray, parent_keys: np.ndarray, code: int, whole=True) -> None:
        at = np.searchsorted(ordered, parent_keys)
        found = at < count
        found[found] = ordered[at[found]] == parent_keys[found]
        parents.append(order[at[found]])
        children.append(child[found])
        relations.append(np.full(int(found.sum()), code, dtype="int64"))
        wholes.append(np.broadcast_to(np.asarray(whole, dtype=bool), found.shape)[found])

    unit_level, department_level, division_level = 0, 1, 2
    for code, (child_level, lookup, parent_level) in enumerate(
        (
            (unit_level, unit_parent, department_level),
            (department_level, department_parent, division_level),
        )
    ):
        child = np.flatnonzero(level == child_level)
        up = np.full(len(child), -1, dtype="int64")
        known = node[child] < len(lookup)
        up[known] = lookup[node[child][known]]
        child, up = child[up >= 0], up[up >= 0]
        link(child, pack(measure[child], parent_level, up, grain[child], days[child]), code)
    week, month, quarter = 0, 1, 2
    child = np.flatnonzero(grain == month)
    months = days_to_periods(days[child]).astype("datetime64[M]").astype("int64")
    starts = periods_to_days((months - months % 3).astype("datetime64[M]").astype("datetime64[D]"))
    link(child, pack(measure[child], level[child], node[child], quarter, starts), 2)
    # Weeks → the month of their Monday and, when it differs, of their Sunday.
    child = np.flatnonzero(grain == week)
    mondays, sundays = (
        periods_to_days(
            days_to_periods(days[child] + offset).astype("datetime64[M]").astype("datetime64[D]")
        )
        for offset in (0, 6)
    )
    whole = mondays == sundays
    for start, keep, inside in (
        (mondays, np.ones(len(child), dtype=bool), whole),
        (sundays, ~whole, ~whole & False),
    ):
        # Only month starts within the cells' days can be cells (and pack within its widths).
        keep = keep & (start >= day_base) & (start <= int(days.max()))
        c = child[keep]
        link(
            c, pack(measure[c], level[c], node[c], month, start[keep]), WEEK_IN_MONTH, inside[keep]
        )
    return (
        np.concatenate(parents),
        np.concatenate(children),
        np.concatenate(relations),
        np.concatenate(wholes),
    )


def _lookup(mapping: Mapping[int, int]) -> np.ndarray:
    """An array a with a[key] = value (-1 where no key), for vectorised mapping of ids."""
    if not mapping:
        return np.empty(0, dtype="int64")
    out = np.full(max(mapping) + 1, -1, dtype="int64")
    out[list(mapping)] = list(mapping.values())
    return out


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


def _as_date(value: Any) -> date:
    return value if isinstance(value, date) else date.fromisoformat(str(value)[:10])
