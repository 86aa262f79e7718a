"""What each dashboard shows, composed from the selectors: panels, matrices, funnels.

Views stay thin: they parse the filters and call one function here. Chart specs are cached per
series version (the key holds every drawn series' ``computed_at``, the language, the filters
and the annotations), so a page with warm caches decodes no points at all.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Any

import numpy as np
from django.core.cache import cache
from django.utils import timezone
from django.utils.translation import get_language, gettext, ngettext

from lhs.collation import name_key
from measures.enums import Direction, Frequency, MeasureKind, SeriesLevel
from measures.models import Measure, Series
from measures.series import public_columns
from measures.spc import funnel, funnel_limits
from units.models import Department, Division, Unit

from . import charts
from .annotations import series_annotations, unit_annotations
from .selectors import (
    CACHE_VERSION,
    Figure,
    SeriesSet,
    Summary,
    department_nodes,
    division_nodes,
    grain_for,
    is_stale,
    measures_for_department,
    measures_for_division,
    measures_for_unit,
    node_key,
    series_set,
    unit_nodes,
    with_points,
)

CACHE_SECONDS = 7 * 24 * 3600


def body_key(*parts: Any) -> str:
    """The cache key of a page's rendered body from everything it depends on."""
    digest = hashlib.blake2b(json.dumps(parts, default=str).encode(), digest_size=16)
    return f"lhs:dash:{CACHE_VERSION}:body:{digest.hexdigest()}"


def spec_json(spec: dict[str, Any]) -> str:
    """A spec as JSON safe inside ``<script type="application/json">`` (as ``json_script``
    escapes it: a measure named ``</script>`` must not end the element)."""
    text = json.dumps(spec, separators=(",", ":"))
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


@dataclass(frozen=True)
class Filters:
    """The choices in the URL: grain ('' = each measure's own), range, comparison, view."""

    grain: str = ""
    start: date | None = None
    end: date | None = None
    compare: str = ""  # "", "department", "division"
    view: str = "charts"  # or "table"
    period: str = ""  # the funnel's period ('' = latest)

    def key(self) -> str:
        return f"{self.grain}|{self.start}|{self.end}|{self.compare}"


# --------------------------------------------------------------------------------------------
# Sentences under the icons
# --------------------------------------------------------------------------------------------


def _periods(grain: str, count: int) -> str:
    if grain == Frequency.WEEK:
        return ngettext("%(count)s week", "%(count)s weeks", count) % {"count": count}
    if grain == Frequency.QUARTER:
        return ngettext("%(count)s quarter", "%(count)s quarters", count) % {"count": count}
    return ngettext("%(count)s month", "%(count)s months", count) % {"count": count}


def variation_sentence(icon: str, summary: Summary | None, grain: str) -> str:
    """What the variation icon means, in plain words, with the evidence behind it."""
    if not icon or summary is None:
        return ""
    if icon == "common_cause":
        return gettext("Common cause variation: no sign of a change that is more than chance.")
    high = icon.endswith("_high")
    if icon.startswith("improvement"):
        kind = gettext("Special cause of improvement")
    elif icon.startswith("concern"):
        kind = gettext("Special cause of concern")
    else:
        kind = gettext("Special cause")
    signals = summary.last_signals
    reasons = []
    if any(s.startswith("astronomical") for s in signals):
        reasons.append(
            gettext("the latest value is above the upper process limit")
            if high
            else gettext("the latest value is below the lower process limit")
        )
    if any(s.startswith("shift") for s in signals):
        count = summary.run["above" if high else "below"]
        template = (
            gettext("%(periods)s in a row above the centre line")
            if high
            else gettext("%(periods)s in a row below the centre line")
        )
        reasons.append(template % {"periods": _periods(grain, count)})
    if any(s.startswith("trend") for s in signals):
        count = summary.run["rising" if high else "falling"]
        template = (
            gettext("%(periods)s rising in a row")
            if high
            else gettext("%(periods)s falling in a row")
        )
        reasons.append(template % {"periods": _periods(grain, count)})
    if any(s.startswith("two_of_three") for s in signals):
        reasons.append(
            gettext("2 of the last 3 points near the upper process limit")
            if high
            else gettext("2 of the last 3 points near the lower process limit")
        )
    if not reasons:
        return f"{kind}."
    return f"{kind}: {', '.join(reasons)}."


def assurance_sentence(icon: str, measure: Measure) -> str:
    if not icon:
        return ""
    target = charts.with_unit(float(measure.target), measure) if measure.target is not None else ""
    if icon == "consistent_pass":
        return gettext(
            "The process limits lie on the right side of the target (%(target)s): it will be met "
            "consistently unless something changes."
        ) % {"target": target}
    if icon == "consistent_fail":
        return gettext(
            "The process limits lie on the wrong side of the target (%(target)s): it will not be "
            "met unless the process changes."
        ) % {"target": target}
    return gettext(
        "The target (%(target)s) lies between the process limits: it will be met in some periods "
        "and missed in others."
    ) % {"target": target}


# --------------------------------------------------------------------------------------------
# Unit dashboard
# --------------------------------------------------------------------------------------------


@dataclass
class Panel:
    """One measure on a unit's dashboard."""

    measure: Measure
    grain: str
    series: Series | None
    summary: Summary | None
    department: Figure | None = None
    division: Figure | None = None
    spec: str = ""
    table: list[dict[str, Any]] = field(default_factory=list)
    stale: bool = False
    variation_text: str = ""
    assurance_text: str = ""
    run_chart: dict[str, Any] | None = None

    @property
    def anchor(self) -> str:
        return f"m-{self.measure.code}"

    @property
    def latest(self) -> Figure | None:
        return self.summary.latest if self.summary else None


def _chart_key(
    measure: Measure, series: Series, others: Sequence[Series | None], filters: Filters, notes
) -> str:
    # The measure's own version too: its target, name or unit are drawn and may change
    # before the series is next recomputed.
    parts = [f"{s.pk}@{s.computed_at.timestamp()}" for s in (series, *others) if s is not None]
    parts.append(f"m{measure.pk}@{measure.updated_at.timestamp() if measure.updated_at else 0}")
    digest = hashlib.blake2b(
        json.dumps([parts, filters.key(), get_language(), notes], default=str).encode(),
        digest_size=12,
    ).hexdigest()
    return f"lhs:dash:{CACHE_VERSION}:chart:{digest}"


def table_rows(measure: Measure, grain: str, columns: dict[str, list[Any]]) -> list[dict[str, Any]]:
    """The numbers of a chart as rows (the accessible alternative): suppressed rows say so."""
    rows = []
    for i, period in enumerate(columns["period"]):
        rows.append(
            {
                "period": period,
                "label": charts.period_label(period, grain),
                "suppressed": columns["suppressed"][i],
                "value": columns["value"][i],
                "n": columns["n"][i],
                "centre": columns["centre"][i],
                "lower": columns["lower"][i],
                "upper": columns["upper"][i],
                "point_class": columns["point_class"][i],
            }
        )
    return rows


def unit_panels(
    unit: Unit,
    filters: Filters,
    *,
    tables: bool = False,
    only: str | None = None,
    measures: Sequence[Measure] | None = None,
    events: dict[int, list[dict[str, Any]]] | None = None,
) -> list[Panel]:
    """Every measure of the unit (or ``only`` the one with that code) with its chart, figures,
    comparison and icons. ``measures`` and ``events``: as the caller has already read them."""
    measures = list(measures) if measures is not None else measures_for_unit(unit)
    if only is not None:
        measures = [m for m in measures if m.code == only]
    found = series_set(measures, filters.grain or None, unit_nodes(unit))
    unit_key = node_key(SeriesLevel.UNIT, unit.pk)
    dept_key = node_key(SeriesLevel.DEPARTMENT, unit.department_id)
    div_key = node_key(SeriesLevel.DIVISION, unit.department.division_id)
    if events is None:
        events = unit_annotations(unit.pk, measures)
    today = timezone.localdate()
    panels: list[Panel] = []
    for measure in measures:
        series = found.get(measure, unit_key)
        summary = found.summary(measure, unit_key)
        period = summary.latest.period if summary and summary.latest else None
        dept = found.summary(measure, dept_key)
        div = found.summary(measure, div_key)
        panels.append(
            Panel(
                measure=measure,
                grain=grain_for(measure, filters.grain or None),
                series=series,
                summary=summary,
                department=dept.at(period) if dept else None,
                division=div.at(period) if div else None,
                stale=is_stale(grain_for(measure, filters.grain or None), summary, today),
                run_chart=series.run_chart if series is not None else None,
            )
        )
    _fill_charts(panels, found, filters, events, dept_key, div_key, tables=tables)
    for panel in panels:
        if panel.series is not None:
            panel.variation_text = variation_sentence(
                panel.series.variation_icon, panel.summary, panel.grain
            )
            panel.assurance_text = assurance_sentence(panel.series.assurance_icon, panel.measure)
    return panels


def _fill_charts(
    panels: Sequence[Panel],
    found: SeriesSet,
    filters: Filters,
    events: dict[int, list[dict[str, Any]]],
    dept_key: str,
    div_key: str,
    *,
    tables: bool,
) -> None:
    """Chart specs from the cache; the missing ones (and tables) from points read at once."""
    compare_key = {"department": dept_key, "division": div_key}.get(filters.compare)
    keys: dict[int, str] = {}
    for i, panel in enumerate(panels):
        if panel.series is None:
            continue
        other = found.get(panel.measure, compare_key) if compare_key else None
        keys[i] = _chart_key(
            panel.measure, panel.series, [other], filters, events.get(panel.measure.pk)
        )
    cached = cache.get_many(list(keys.values())) if keys else {}
    need: list[Series] = []
    for i, key in keys.items():
        if key in cached and not tables:
            panels[i].spec = cached[key]
            continue
        panel = panels[i]
        need.append(panel.series)
        if compare_key and (other := found.get(panel.measure, compare_key)) is not None:
            need.append(other)
    if not need:
        return
    loaded = with_points(need)
    fresh: dict[str, str] = {}
    names = {"department": gettext("Department"), "division": gettext("Division")}
    for i, key in keys.items():
        panel = panels[i]
        if panel.spec:
            continue
        series = loaded[panel.series.pk]
        columns = public_columns(series, period_from=filters.start, period_to=filters.end)
        if tables:
            panel.table = table_rows(panel.measure, panel.grain, columns)
        if key in cached:
            panel.spec = cached[key]
            continue
        other = found.get(panel.measure, compare_key) if compare_key else None
        comparison = None
        if other is not None and other.pk in loaded:
            comparison = public_columns(
                loaded[other.pk], period_from=filters.start, period_to=filters.end
            )
        notes = series_annotations(panel.measure, columns) + events.get(panel.measure.pk, [])
        spec = charts.spc_chart(
            measure=panel.measure,
            grain=panel.grain,
            columns=columns,
            run_chart=series.run_chart,
            comparison=comparison,
            comparison_name=names.get(filters.compare, ""),
            annotations=notes,
        )
        panel.spec = spec_json(spec)
        fresh[key] = panel.spec
    if fresh:
        cache.set_many(fresh, timeout=CACHE_SECONDS)


# --------------------------------------------------------------------------------------------
# Matrices (department, division)
# --------------------------------------------------------------------------------------------


@dataclass
class Cell:
    measure: Measure
    grain: str
    summary: Summary | None

    @property
    def latest(self) -> Figure | None:
        return self.summary.latest if self.summary else None

    @property
    def sort_value(self) -> float | None:
        latest = self.latest
        return latest.value if latest is not None and not latest.suppressed else None


@dataclass
class Row:
    name: str
    code: str
    level: str
    cells: list[Cell]
    url_name: str = ""


@dataclass
class Matrix:
    measures: list[Measure]
    rows: list[Row]  # units (sortable)
    totals: list[Row]  # department, division (fixed)
    sort: str = ""
    descending: bool = False


def _row(name, code, level, url_name, measures, found: SeriesSet, key: str, grain) -> Row:
    cells = [Cell(m, grain_for(m, grain), found.summary(m, key)) for m in measures]
    return Row(name=name, code=code, level=level, cells=cells, url_name=url_name)


def sort_rows(
    rows: list[Row], measures: Sequence[Measure], sort: str, descending: bool
) -> list[Row]:
    """By a measure's latest value (no figure last, whichever the direction), else by name."""
    codes = [m.code for m in measures]
    if sort not in codes:
        return sorted(rows, key=lambda r: name_key(r.name), reverse=descending)
    i = codes.index(sort)
    shown = [r for r in rows if r.cells[i].sort_value is not None]
    blank = [r for r in rows if r.cells[i].sort_value is None]
    shown.sort(key=lambda r: (r.cells[i].sort_value, name_key(r.name)), reverse=descending)
    return shown + sorted(blank, key=lambda r: name_key(r.name))


def department_matrix(
    department: Department, filters: Filters, sort: str = "", descending: bool = False
) -> Matrix:
    measures = measures_for_department(department)
    found = series_set(measures, filters.grain or None, department_nodes(department))
    grain = filters.grain or None
    units = list(department.units.filter(active=True).order_by("name"))
    rows = [
        _row(
            u.name,
            u.code,
            SeriesLevel.UNIT,
            "dashboards:unit",
            measures,
            found,
            node_key(SeriesLevel.UNIT, u.pk),
            grain,
        )
        for u in units
    ]
    division = department.division
    totals = [
        _row(
            department.name,
            department.code,
            SeriesLevel.DEPARTMENT,
            "",
            measures,
            found,
            node_key(SeriesLevel.DEPARTMENT, department.pk),
            grain,
        ),
        _row(
            division.name,
            division.code,
            SeriesLevel.DIVISION,
            "dashboards:division",
            measures,
            found,
            node_key(SeriesLevel.DIVISION, division.pk),
            grain,
        ),
    ]
    return Matrix(measures, sort_rows(rows, measures, sort, descending), totals, sort, descending)


def division_matrix(
    division: Division,
    filters: Filters,
    *,
    units: bool = False,
    sort: str = "",
    descending: bool = False,
) -> Matrix:
    measures = measures_for_division()
    found = series_set(measures, filters.grain or None, division_nodes(division, units=units))
    grain = filters.grain or None
    departments = list(division.departments.order_by("name"))
    rows = [
        _row(
            d.name,
            d.code,
            SeriesLevel.DEPARTMENT,
            "dashboards:department",
            measures,
            found,
            node_key(SeriesLevel.DEPARTMENT, d.pk),
            grain,
        )
        for d in departments
    ]
    if units:
        all_units = Unit.objects.filter(active=True, department__division=division).order_by("name")
        rows = [
            _row(
                u.name,
                u.code,
                SeriesLevel.UNIT,
                "dashboards:unit",
                measures,
                found,
                node_key(SeriesLevel.UNIT, u.pk),
                grain,
            )
            for u in all_units
        ]
    totals = [
        _row(
            division.name,
            division.code,
            SeriesLevel.DIVISION,
            "",
            measures,
            found,
            node_key(SeriesLevel.DIVISION, division.pk),
            grain,
        )
    ]
    return Matrix(measures, sort_rows(rows, measures, sort, descending), totals, sort, descending)


# --------------------------------------------------------------------------------------------
# Funnel plots
# --------------------------------------------------------------------------------------------


@dataclass
class FunnelPlot:
    measure: Measure
    period: str
    grain: str
    spec: str
    rows: list[dict[str, Any]]
    periods: list[str]
    excluded: int = 0


def _period_end(period: str, grain: str) -> date:
    """The day after the period: a period is complete once that day has come."""
    start = date.fromisoformat(period)
    if grain == Frequency.WEEK:
        return start + timedelta(days=7)
    months = 3 if grain == Frequency.QUARTER else 1
    month = start.month - 1 + months
    return date(start.year + month // 12, month % 12 + 1, 1)


def funnel_measures(measures: Sequence[Measure]) -> list[Measure]:
    return [m for m in measures if m.kind in (MeasureKind.PROPORTION, MeasureKind.RATE)]


def funnel_plot(
    measure: Measure, units: Sequence[Unit], filters: Filters, pooled: Series | None
) -> FunnelPlot | None:
    """The units' values in one period against their denominators, with 95 % and 99.8 %
    limits around the pooled value (Spiegelhalter 2005). Units suppressed in the period are left
    out and counted; θ is the pooled value of the units shown, so the plot reveals nothing
    about those left out."""
    # Units compared by the month unless another grain is chosen: a week's figures are small.
    grain = grain_for(measure, filters.grain or Frequency.MONTH)
    unit_series = list(
        Series.objects.filter(
            measure=measure, grain=grain, level=SeriesLevel.UNIT, unit__in=[u.pk for u in units]
        )
        .select_related("unit")
        .defer("data")
    )
    if not unit_series:
        return None
    stamp = [f"{s.pk}@{s.computed_at.timestamp()}" for s in unit_series]
    key = "lhs:dash:{}:funnel:{}".format(
        CACHE_VERSION,
        hashlib.blake2b(
            json.dumps(
                [stamp, grain, filters.period, get_language(), str(measure.updated_at)]
            ).encode(),
            digest_size=12,
        ).hexdigest(),
    )
    hit = cache.get(key)
    if hit is not None:
        return hit
    loaded = with_points(unit_series)
    for series in unit_series:
        series.data = loaded[series.pk].data
    periods = sorted({p for s in unit_series for p in (s.points.get("period") or [])})
    if not periods:
        return None
    # By default the latest complete period in which some unit is shown: a period where every
    # unit is suppressed would leave nothing to compare.
    shown: set[str] = set()
    for series in unit_series:
        columns = public_columns(series)
        shown.update(
            p
            for p, hidden in zip(columns["period"], columns["suppressed"], strict=True)
            if not hidden
        )
    complete = [p for p in periods if _period_end(p, grain) <= timezone.localdate()]
    candidates = [p for p in complete if p in shown] or complete or periods
    period = filters.period if filters.period in periods else candidates[-1]
    rows = []
    excluded = 0
    for series in sorted(unit_series, key=lambda s: name_key(s.unit.name)):
        columns = public_columns(
            series, period_from=date.fromisoformat(period), period_to=date.fromisoformat(period)
        )
        if not columns["period"]:
            continue
        if columns["suppressed"][0]:
            excluded += 1
            continue
        num, den = columns["numerator"][0], columns["denominator"][0]
        if num is None or not den:
            continue
        rows.append({"unit": series.unit, "numerator": float(num), "denominator": float(den)})
    if not rows:
        result = FunnelPlot(measure, period, grain, "", [], periods[-24:], excluded)
        cache.set(key, result, CACHE_SECONDS)
        return result
    scale = 100.0 if measure.kind == MeasureKind.PROPORTION else float(measure.rate_per or 1)
    kind = "proportion" if measure.kind == MeasureKind.PROPORTION else "rate"
    num = np.array([r["numerator"] for r in rows])
    den = np.array([r["denominator"] for r in rows])
    # Exact binomial limits where some unit is small (DESIGN.md §5); the curve is drawn the
    # same way as the units are judged.
    exact = kind == "proportion" and bool((den < 100).any())
    result_stats = funnel(num, den, kind=kind, exact=exact)
    theta = result_stats.theta
    top = float(den.max()) * 1.1
    curve = np.unique(
        np.concatenate([np.geomspace(max(1.0, float(den.min()) * 0.5), top, 60), den])
    )
    limits = {}
    for label, z in (("95", 1.96), ("99.8", 3.09)):
        lo, hi = funnel_limits(theta, curve, kind=kind, z=z, exact=exact)
        limits[label] = ([float(v) * scale for v in lo], [float(v) * scale for v in hi])
    outside = [int(v) for v in result_stats.outside[1]]  # 99.8 %: the alarm level
    warn = [int(v) for v in result_stats.outside[0]]
    values = [float(v) * scale for v in result_stats.value]
    for row, value, out99, out95 in zip(rows, values, outside, warn, strict=True):
        row["value"] = value
        row["outside"] = out99 or out95
        row["alarm"] = bool(out99)
    spec = charts.funnel_chart(
        measure=measure,
        names=[r["unit"].name for r in rows],
        values=values,
        denominators=[r["denominator"] for r in rows],
        theta=theta * scale,
        limits=limits,
        curve_n=[float(v) for v in curve],
        outside=[o or w for o, w in zip(outside, warn, strict=True)],
        direction=measure.direction,
    )
    for row in rows:
        row["unit_name"] = row["unit"].name
        row["unit_code"] = row["unit"].code
        del row["unit"]
    result = FunnelPlot(
        measure,
        period,
        grain,
        spec_json(spec),
        rows,
        periods[-24:],
        excluded,
    )
    cache.set(key, result, CACHE_SECONDS)
    return result


def finite(value: float | None) -> bool:
    return value is not None and math.isfinite(value)


__all__ = [
    "Cell",
    "Direction",
    "Filters",
    "FunnelPlot",
    "Matrix",
    "Panel",
    "Row",
    "assurance_sentence",
    "department_matrix",
    "division_matrix",
    "funnel_measures",
    "funnel_plot",
    "sort_rows",
    "table_rows",
    "unit_panels",
    "variation_sentence",
]


# --------------------------------------------------------------------------------------------
# Measure page
# --------------------------------------------------------------------------------------------


def measure_overview(
    measure: Measure, filters: Filters, sort: str = "", descending: bool = False
) -> dict[str, Any]:
    """One measure across the organisation it applies to: every unit's latest figure and icons
    (sortable), the departments and the division as totals, the chart of the top level."""
    from django.db.models import Q

    from measures.enums import Scope

    from .selectors import visible_units

    units = visible_units()
    if measure.scope == Scope.DEPARTMENT:
        units = units.filter(department_id=measure.department_id)
    elif measure.scope == Scope.UNIT:
        units = units.filter(pk=measure.unit_id)
    units = list(units.order_by("name"))
    departments = {u.department_id: u.department for u in units}
    divisions = {d.division_id: d.division for d in departments.values()}
    nodes = Q(level=SeriesLevel.UNIT, unit_id__in=[u.pk for u in units])
    nodes |= Q(level=SeriesLevel.DEPARTMENT, department_id__in=list(departments))
    nodes |= Q(level=SeriesLevel.DIVISION, division_id__in=list(divisions))
    found = series_set([measure], filters.grain or None, nodes)
    grain = filters.grain or None
    rows = [
        _row(
            u.name,
            u.code,
            SeriesLevel.UNIT,
            "dashboards:unit",
            [measure],
            found,
            node_key(SeriesLevel.UNIT, u.pk),
            grain,
        )
        for u in units
    ]
    totals = [
        _row(
            d.name,
            d.code,
            SeriesLevel.DEPARTMENT,
            "dashboards:department",
            [measure],
            found,
            node_key(SeriesLevel.DEPARTMENT, d.pk),
            grain,
        )
        for d in sorted(departments.values(), key=lambda d: d.name)
    ]
    if measure.scope == Scope.DIVISION:
        totals += [
            _row(
                v.name,
                v.code,
                SeriesLevel.DIVISION,
                "dashboards:division",
                [measure],
                found,
                node_key(SeriesLevel.DIVISION, v.pk),
                grain,
            )
            for v in divisions.values()
        ]
    matrix = Matrix(
        [measure], sort_rows(rows, [measure], sort, descending), totals, sort, descending
    )
    # The chart of the level that owns the measure: the division, the department or the unit.
    if measure.scope == Scope.DIVISION and divisions:
        top_key = node_key(SeriesLevel.DIVISION, next(iter(divisions)))
    elif measure.scope == Scope.DEPARTMENT:
        top_key = node_key(SeriesLevel.DEPARTMENT, measure.department_id)
    else:
        top_key = node_key(SeriesLevel.UNIT, measure.unit_id)
    top = found.get(measure, top_key)
    panel = None
    if top is not None:
        panel = Panel(
            measure=measure,
            grain=grain_for(measure, grain),
            series=top,
            summary=found.summary(measure, top_key),
            run_chart=top.run_chart,
        )
        _fill_charts(
            [panel],
            found,
            Filters(filters.grain, filters.start, filters.end),
            {},
            "",
            "",
            tables=False,
        )
        panel.variation_text = variation_sentence(top.variation_icon, panel.summary, panel.grain)
        panel.assurance_text = assurance_sentence(top.assurance_icon, measure)
    return {
        "matrix": matrix,
        "panel": panel,
        "funnels": funnel_measures([measure]),
        "funnel_level": "division" if measure.scope == Scope.DIVISION else "department",
        "funnel_code": (
            next(iter(divisions.values())).code
            if measure.scope == Scope.DIVISION and divisions
            else (units[0].department.code if units else "")
        ),
    }
