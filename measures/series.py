"""Reads of computed series for dashboards, exports and the API (selectors).

Every figure that leaves the server goes through :func:`public_points`: a suppressed period
keeps only its date and the flag, never its value, n, numerator, denominator or limits
(DESIGN.md §5 "Suppression"); every total over periods through :func:`published_totals`,
which counts shown periods only. A total that included a suppressed period would give its n
away by subtraction (total − Σ shown n), so no page, export or API answer may sum a series'
periods any other way, nor publish ``Series.observation_count`` (the engine's internal count
of every row, suppressed periods included).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from typing import Any

from django.db.models import Q, QuerySet

from .enums import SeriesLevel
from .models import Series
from .spc import COLOURS, PointClass

#: Per-point fields a shown period carries, in this order.
PUBLIC_FIELDS = (
    "n",
    "numerator",
    "denominator",
    "value",
    "centre",
    "upper",
    "lower",
    "upper_2s",
    "lower_2s",
    "segment",
    "signals",
    "point_class",
)
_COLOUR = {str(cls): colour for cls, colour in COLOURS.items()}


def series_list(
    *,
    measure_codes: Sequence[str] = (),
    level: str | None = None,
    unit_code: str | None = None,
    department_code: str | None = None,
    division_code: str | None = None,
    grain: str | None = None,
) -> QuerySet[Series]:
    """Series filtered by measure, org node and grain; one query with the node names."""
    queryset = Series.objects.select_related("measure", "unit", "department", "division").order_by(
        "measure__code", "level", "node_key", "grain"
    )
    if measure_codes:
        queryset = queryset.filter(measure__code__in=list(measure_codes))
    if level:
        queryset = queryset.filter(level=level)
    node = Q()
    if unit_code:
        node |= Q(level=SeriesLevel.UNIT, unit__code__iexact=unit_code)
    if department_code:
        node |= Q(level=SeriesLevel.DEPARTMENT, department__code=department_code)
    if division_code:
        node |= Q(level=SeriesLevel.DIVISION, division__code=division_code)
    if node:
        queryset = queryset.filter(node)
    if grain:
        queryset = queryset.filter(grain=grain)
    return queryset


def _in_range(
    periods: Sequence[str], period_from: date | None, period_to: date | None
) -> list[bool]:
    low = period_from.isoformat() if period_from else None
    high = period_to.isoformat() if period_to else None
    # ISO dates compare correctly as strings.
    return [not ((low and p < low) or (high and p > high)) for p in periods]


def public_points(
    series: Series, *, period_from: date | None = None, period_to: date | None = None
) -> list[dict[str, Any]]:
    """The series' periods as one dict each, suppressed figures removed.

    ``period_from``/``period_to`` (inclusive) compare with the period's first day.
    """
    points = series.points or {}
    periods: list[str] = points.get("period", [])
    columns = {name: points.get(name) or [None] * len(periods) for name in PUBLIC_FIELDS}
    suppressed = points.get("suppressed") or [False] * len(periods)
    wanted = _in_range(periods, period_from, period_to)
    out = []
    for i, period in enumerate(periods):
        if not wanted[i]:
            continue
        if suppressed[i]:
            out.append({"period_start": period, "suppressed": True})
            continue
        point: dict[str, Any] = {"period_start": period, "suppressed": False}
        for name in PUBLIC_FIELDS:
            point[name] = columns[name][i]
        point["colour"] = _COLOUR.get(point["point_class"]) if point["point_class"] else None
        out.append(point)
    return out


def public_columns(
    series: Series, *, period_from: date | None = None, period_to: date | None = None
) -> dict[str, list[Any]]:
    """The series' periods column-wise (what charts and tables are built from), suppressed
    figures blanked: ``period`` and ``suppressed`` for every period in range, and every field
    of :data:`PUBLIC_FIELDS` (and ``colour``) with ``None`` where the period is suppressed.

    Column-wise because a chart spec wants one list per trace; blanking here, in the one
    selector every chart and export reads, keeps a suppressed value out of every of them.
    """
    points = series.points or {}
    periods: list[str] = points.get("period", [])
    suppressed = points.get("suppressed") or [False] * len(periods)
    wanted = _in_range(periods, period_from, period_to)
    keep = [i for i in range(len(periods)) if wanted[i]]
    hidden = [bool(suppressed[i]) for i in keep]
    out: dict[str, list[Any]] = {
        "period": [periods[i] for i in keep],
        "suppressed": hidden,
    }
    for name in PUBLIC_FIELDS:
        column = points.get(name) or [None] * len(periods)
        empty = [] if name == "signals" else None
        out[name] = [empty if gone else column[i] for i, gone in zip(keep, hidden, strict=True)]
    out["colour"] = [_COLOUR.get(c) if c else None for c in out["point_class"]]
    return out


@dataclass(frozen=True)
class PublishedTotals:
    """Totals over a series' shown periods: the only totals that may be published."""

    observations: int
    n: float
    periods: int
    suppressed_periods: int


def published_totals(
    series: Series, *, period_from: date | None = None, period_to: date | None = None
) -> PublishedTotals:
    """Σ over the shown periods (in the same range as :func:`public_points`).

    ``observations`` counts the rows behind the shown periods; a suppressed period, primary
    or complementary, adds nothing to any total (only to ``suppressed_periods``, which its
    flag in the points shows anyway).
    """
    points = series.points or {}
    periods: list[str] = points.get("period", [])
    suppressed = points.get("suppressed") or [False] * len(periods)
    rows = points.get("rows") or [0] * len(periods)
    ns = points.get("n") or [0] * len(periods)
    wanted = _in_range(periods, period_from, period_to)
    shown = [i for i in range(len(periods)) if wanted[i] and not suppressed[i]]
    hidden = sum(1 for i in range(len(periods)) if wanted[i] and suppressed[i])
    return PublishedTotals(
        observations=int(sum(rows[i] for i in shown)),
        n=float(sum(ns[i] for i in shown)),
        periods=len(shown),
        suppressed_periods=hidden,
    )


def node_code(series: Series) -> str:
    """The org node's code: the unit's, the department's or the division's."""
    node = series.unit or series.department or series.division
    return node.code if node is not None else ""


def node_name(series: Series) -> str:
    node = series.unit or series.department or series.division
    return node.name if node is not None else ""


__all__ = [
    "PUBLIC_FIELDS",
    "PointClass",
    "PublishedTotals",
    "node_code",
    "node_name",
    "public_columns",
    "public_points",
    "published_totals",
    "series_list",
]
