"""The dated events a unit's chart marks: one selector for every chart.

From the series itself: the end of the baseline period (when the measure's limits come from
its first k points) and the dates a series is re-based at (where its segment changes). From
the improvement workflow: PDSA cycles and adoptions, through ``initiatives.selectors``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from django.utils.translation import gettext

from initiatives.selectors import unit_events
from measures.models import Measure


def series_annotations(measure: Measure, columns: Mapping[str, list[Any]]) -> list[dict[str, Any]]:
    """Baseline end and re-basing dates, read off the series' own segments."""
    out: list[dict[str, Any]] = []
    periods, segments = columns["period"], columns["segment"]
    previous = None
    starts: list[int] = []
    for i, segment in enumerate(segments):
        if segment is None:
            continue
        if previous is None or segment != previous:
            starts.append(i)
        previous = segment
    for i in starts[1:]:
        out.append({"date": periods[i], "label": gettext("Re-based"), "kind": "rebase"})
    k = measure.baseline_points
    if k:
        for start in starts or [0]:
            end = start + k
            if end < len(periods):
                out.append(
                    {"date": periods[end], "label": gettext("End of baseline"), "kind": "baseline"}
                )
    return out


def unit_annotations(unit_id: int, measures: Sequence[Measure]) -> dict[int, list[dict[str, Any]]]:
    """The workflow's events per measure of one unit (an event for all measures goes to each)."""
    by_measure: dict[int, list[dict[str, Any]]] = {m.pk: [] for m in measures}
    for event in unit_events([unit_id], [m.pk for m in measures]):
        entry = {"date": event.date.isoformat(), "label": event.label, "kind": event.kind}
        targets = [event.measure_id] if event.measure_id else list(by_measure)
        for measure_id in targets:
            if measure_id in by_measure:
                by_measure[measure_id].append(entry)
    return by_measure
