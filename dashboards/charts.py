"""Chart specs for plotly.js, built as plain dicts from a series' public columns.

Never through ``plotly.graph_objects`` per request: a 12-trace figure cost ~22 ms to build and
serialise, the same chart as a dict with ``json.dumps`` 0.6 ms (DESIGN.md §7). The browser
draws the spec with the vendored plotly.js (``static/js/dashboards.js``).

Colours: the Making Data Count point colours (grey common cause, blue improvement, orange
concern, purple neither; blue and orange stay apart for the common colour-vision deficiencies),
and each class also has its own marker shape, so nothing is told by colour alone.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import date
from typing import Any

from django.utils.formats import date_format, number_format
from django.utils.translation import get_language, gettext, pgettext

from measures.enums import Frequency, MeasureKind
from measures.models import Measure
from measures.spc import COLOURS, PointClass

_COLOUR = {str(k): v for k, v in COLOURS.items()}
SYMBOLS = {
    str(PointClass.COMMON): "circle",
    str(PointClass.IMPROVEMENT): "circle",
    str(PointClass.CONCERN): "diamond",
    str(PointClass.NEITHER): "square",
}
LINE = "#4D4D4D"
LIMIT = "#7F7F7F"
TARGET = "#C00000"
COMPARISON = "#6A3D9A"
ANNOTATION = "#1F4E79"


def decimals(measure: Measure) -> int:
    return 0 if measure.kind == MeasureKind.COUNT else 1


def fmt(value: float | None, measure: Measure | None = None, places: int | None = None) -> str:
    """A number in the current language (decimal comma in Swedish)."""
    if value is None:
        return "–"
    if places is None:
        places = decimals(measure) if measure is not None else 1
    return number_format(round(value, places), places, use_l10n=True, force_grouping=True)


def with_unit(value: float | None, measure: Measure) -> str:
    text = fmt(value, measure)
    if value is None or not measure.display_unit:
        return text
    unit = measure.display_unit
    return f"{text} {unit}" if unit != "%" else f"{text} %"


def period_label(period: str, grain: str) -> str:
    """``2026-03-02`` as "week 10, 2026", "March 2026" or "Q1 2026", in the current language."""
    day = date.fromisoformat(period)
    if grain == Frequency.WEEK:
        year, week, _ = day.isocalendar()
        return pgettext("period", "week %(week)s, %(year)s") % {"week": week, "year": year}
    if grain == Frequency.QUARTER:
        quarter = (day.month - 1) // 3 + 1
        return pgettext("period", "Q%(quarter)s %(year)s") % {"quarter": quarter, "year": day.year}
    return date_format(day, "F Y")


def hover_period(grain: str) -> str:
    """A plotly hover template of the x value as a period (d3 time format, plotly's locale)."""
    if grain == Frequency.WEEK:
        return "%{x|" + pgettext("d3 time format", "week %V, %G") + "}"
    if grain == Frequency.QUARTER:
        return "%{x|" + pgettext("d3 time format", "Q%q %Y") + "}"
    return "%{x|" + pgettext("d3 time format", "%B %Y") + "}"


def hover_value(measure: Measure) -> str:
    """A plotly hover template of the y value with the measure's decimals and unit."""
    unit = f" {measure.display_unit}" if measure.display_unit else ""
    return "%{y:,." + str(decimals(measure)) + "f}" + unit


def _one_or_each(values: list[str]) -> str | list[str]:
    """One value for every point when they are all alike (most series): a smaller spec."""
    return values[0] if values and all(v == values[0] for v in values) else values


def _thin(xs: list[Any], ys: list[Any]) -> tuple[list[Any], list[Any]]:
    """A line without the inner points of its flat stretches (XmR limits are flat within a
    segment): it draws the same, with two points a stretch instead of one a period."""
    keep_x: list[Any] = []
    keep_y: list[Any] = []
    last = len(ys) - 1
    for i, y in enumerate(ys):
        if 0 < i < last and y is not None and ys[i - 1] == y and ys[i + 1] == y:
            continue
        keep_x.append(xs[i])
        keep_y.append(y)
    return keep_x, keep_y


def _rounded(values: Sequence[Any], places: int = 4) -> list[Any]:
    return [None if v is None else round(v, places) for v in values]


def separators() -> str:
    """plotly's decimal and thousands separators for the current language."""
    return ", " if (get_language() or "").startswith("sv") else ".,"


def _break_segments(x: Sequence[Any], y: Sequence[Any], segment: Sequence[Any]):
    """Centre and limit lines drawn as separate pieces per re-based segment: a ``None`` point
    between segments breaks the line."""
    xs: list[Any] = []
    ys: list[Any] = []
    previous = None
    for xi, yi, si in zip(x, y, segment, strict=True):
        if previous is not None and si is not None and si != previous:
            xs.append(xi)
            ys.append(None)
        xs.append(xi)
        ys.append(yi)
        if si is not None:
            previous = si
    return xs, ys


def spc_chart(
    *,
    measure: Measure,
    grain: str,
    columns: Mapping[str, list[Any]],
    run_chart: Mapping[str, Any] | None = None,
    comparison: Mapping[str, list[Any]] | None = None,
    comparison_name: str = "",
    annotations: Sequence[Mapping[str, Any]] = (),
    title: str = "",
) -> dict[str, Any]:
    """The SPC chart of one series: values coloured by MDC class, centre line, process limits
    (2σ lines in the legend, off until clicked), the target, re-basing breaks, suppressed
    periods as markers on the axis with "fewer than N" and no number, annotations as vertical
    lines; with no limits (too few points) a run chart: the median and the points."""
    x = columns["period"]
    values = columns["value"]
    has_limits = any(v is not None for v in columns["upper"])
    minimum = measure.minimum_n
    # Hover texts are formatted by plotly from templates (numbers with the layout's
    # separators, dates by its locale): one string per trace instead of one per point keeps
    # a unit page of forty charts small.
    when = hover_period(grain)
    amount = hover_value(measure)
    classes = columns["point_class"]
    traces: list[dict[str, Any]] = [
        {
            "type": "scatter",
            "mode": "lines+markers",
            "name": gettext("Value"),
            "x": x,
            "y": _rounded(values),
            "customdata": [None if n is None else round(n) for n in columns["n"]],
            "hovertemplate": f"{when}: {amount} (n = %{{customdata:,.0f}})<extra></extra>",
            "connectgaps": False,
            "line": {"color": LINE, "width": 1.5},
            "marker": {
                "size": 7,
                "color": _one_or_each([_COLOUR.get(c or "", _COLOUR["common"]) for c in classes]),
                "symbol": _one_or_each([SYMBOLS.get(c or "", "circle") for c in classes]),
                "line": {"width": 0},
            },
        }
    ]
    segment = columns["segment"]
    per_point = measure.kind in (MeasureKind.PROPORTION, MeasureKind.RATE)
    if has_limits:
        for name, key, dash, visible, group in (
            (gettext("Centre line (mean)"), "centre", "solid", True, "centre"),
            (gettext("Process limits"), "upper", "dash", True, "limits"),
            (gettext("Process limits"), "lower", "dash", True, "limits"),
            (gettext("2σ lines"), "upper_2s", "dot", "legendonly", "2s"),
            (gettext("2σ lines"), "lower_2s", "dot", "legendonly", "2s"),
        ):
            xs, ys = _thin(*_break_segments(x, _rounded(columns[key]), segment))
            traces.append(
                {
                    "type": "scatter",
                    "mode": "lines",
                    "name": name,
                    "legendgroup": group,
                    # One legend entry per pair: clicking it shows or hides both lines.
                    "showlegend": not key.startswith("lower"),
                    "x": xs,
                    "y": ys,
                    "hoverinfo": "skip",
                    "connectgaps": False,
                    "visible": visible,
                    "line": {
                        "color": LINE if key == "centre" else LIMIT,
                        "width": 1.5 if key == "centre" else 1,
                        "dash": dash,
                        "shape": "hvh" if per_point else "linear",
                    },
                }
            )
    elif run_chart and run_chart.get("centre") is not None and x:
        traces.append(
            {
                "type": "scatter",
                "mode": "lines",
                "name": gettext("Median (run chart)"),
                "x": [x[0], x[-1]],
                "y": [run_chart["centre"], run_chart["centre"]],
                "hoverinfo": "skip",
                "line": {"color": LINE, "width": 1.5},
            }
        )
    if measure.target is not None and x:
        target = float(measure.target)
        traces.append(
            {
                "type": "scatter",
                "mode": "lines",
                "name": gettext("Target: %(target)s") % {"target": with_unit(target, measure)},
                "x": [x[0], x[-1]],
                "y": [target, target],
                "hoverinfo": "skip",
                "line": {"color": TARGET, "width": 1.5, "dash": "dashdot"},
            }
        )
    if comparison is not None:
        traces.append(
            {
                "type": "scatter",
                "mode": "lines",
                "name": comparison_name,
                "x": comparison["period"],
                "y": _rounded(comparison["value"]),
                "hovertemplate": f"{comparison_name}, {when}: {amount}<extra></extra>",
                "connectgaps": False,
                "line": {"color": COMPARISON, "width": 1.5, "dash": "longdash"},
            }
        )
    hidden = [p for p, s in zip(x, columns["suppressed"], strict=True) if s]
    if hidden:
        note = gettext("Suppressed: fewer than %(n)s observations") % {"n": minimum}
        traces.append(
            {
                "type": "scatter",
                "mode": "markers",
                "name": gettext("Suppressed"),
                "x": hidden,
                # On an axis of its own from 0 to 1: the marker's height says nothing.
                "y": [0.04] * len(hidden),
                "yaxis": "y2",
                "hovertemplate": f"{when}: {note}<extra></extra>",
                "marker": {
                    "symbol": "x-thin-open",
                    "size": 9,
                    "color": "#595959",
                    "line": {"width": 2},
                },
            }
        )
    shapes = []
    notes = []
    for annotation in annotations:
        when = annotation["date"]
        shapes.append(
            {
                "type": "line",
                "xref": "x",
                "yref": "paper",
                "x0": when,
                "x1": when,
                "y0": 0,
                "y1": 1,
                "line": {"color": ANNOTATION, "width": 1, "dash": "dot"},
            }
        )
        notes.append(
            {
                "x": when,
                "xref": "x",
                "y": 1,
                "yref": "paper",
                "yanchor": "bottom",
                "text": annotation["label"],
                "showarrow": False,
                "font": {"size": 10, "color": ANNOTATION},
            }
        )
    unit = measure.display_unit or ""
    layout: dict[str, Any] = {
        "height": 320,
        "margin": {"l": 56, "r": 16, "t": 28 if notes else 12, "b": 40},
        "separators": separators(),
        "hovermode": "closest",
        "showlegend": True,
        "legend": {
            "orientation": "h",
            "x": 0,
            "xanchor": "left",
            "y": -0.12,
            "yanchor": "top",
            "font": {"size": 11},
        },
        "xaxis": {"type": "date", "showgrid": False},
        "yaxis": {
            "title": {"text": unit},
            "zeroline": False,
            "rangemode": "tozero" if measure.kind != MeasureKind.MEAN else "normal",
        },
        "yaxis2": {"overlaying": "y", "range": [0, 1], "visible": False, "fixedrange": True},
        "shapes": shapes,
        "annotations": notes,
        "plot_bgcolor": "#FFFFFF",
        "paper_bgcolor": "#FFFFFF",
        "font": {"family": "system-ui, sans-serif", "size": 12, "color": "#1A1A1A"},
    }
    if title:
        layout["title"] = {"text": title}
    return {"data": traces, "layout": layout}


def funnel_chart(
    *,
    measure: Measure,
    names: Sequence[str],
    values: Sequence[float],
    denominators: Sequence[float],
    theta: float,
    limits: Mapping[str, Sequence[Sequence[float]]],
    curve_n: Sequence[float],
    outside: Sequence[int],
    direction: str = "neither",
) -> dict[str, Any]:
    """A funnel plot (Spiegelhalter 2005): each unit's value against its denominator, the
    pooled value θ, and the 95 % and 99.8 % limits drawn over a smooth range of denominators.
    ``values``, ``theta`` and the limits are in display units. A unit outside the limits is
    coloured as an improvement or a concern by the measure's direction (MDC colours)."""
    high, low = {
        "up": (_COLOUR["improvement"], _COLOUR["concern"]),
        "down": (_COLOUR["concern"], _COLOUR["improvement"]),
    }.get(direction, (_COLOUR["neither"], _COLOUR["neither"]))
    colour = {1: high, -1: low, 0: _COLOUR["common"]}
    texts = [
        f"{name}: {with_unit(v, measure)} (n = {fmt(d, places=0)})"
        for name, v, d in zip(names, values, denominators, strict=True)
    ]
    traces: list[dict[str, Any]] = [
        {
            "type": "scatter",
            "mode": "markers",
            "name": gettext("Units"),
            "x": list(denominators),
            "y": list(values),
            "text": texts,
            "hovertemplate": "%{text}<extra></extra>",
            "marker": {
                "size": 9,
                "color": [colour[o] for o in outside],
                "symbol": ["diamond" if o else "circle" for o in outside],
            },
        },
        {
            "type": "scatter",
            "mode": "lines",
            "name": gettext("Pooled value: %(value)s") % {"value": with_unit(theta, measure)},
            "x": [curve_n[0], curve_n[-1]] if curve_n else [],
            "y": [theta, theta],
            "hoverinfo": "skip",
            "line": {"color": LINE, "width": 1.5},
        },
    ]
    for name, key, dash in (
        # xgettext:no-python-format
        (gettext("95 % limits"), "95", "dash"),
        # xgettext:no-python-format
        (gettext("99.8 % limits"), "99.8", "dot"),
    ):
        lower, upper = limits[key]
        for i, side in enumerate((upper, lower)):
            traces.append(
                {
                    "type": "scatter",
                    "mode": "lines",
                    "name": name,
                    "legendgroup": key,
                    "showlegend": i == 0,
                    "x": list(curve_n),
                    "y": list(side),
                    "hoverinfo": "skip",
                    "line": {"color": LIMIT, "width": 1, "dash": dash},
                }
            )
    layout = {
        "height": 320,
        "margin": {"l": 56, "r": 16, "t": 12, "b": 48},
        "separators": separators(),
        "hovermode": "closest",
        "legend": {"orientation": "h", "y": -0.22, "font": {"size": 11}},
        "xaxis": {"title": {"text": gettext("Denominator (n)")}, "rangemode": "tozero"},
        "yaxis": {"title": {"text": measure.display_unit or ""}},
        "plot_bgcolor": "#FFFFFF",
        "paper_bgcolor": "#FFFFFF",
        "font": {"family": "system-ui, sans-serif", "size": 12, "color": "#1A1A1A"},
    }
    return {"data": traces, "layout": layout}
