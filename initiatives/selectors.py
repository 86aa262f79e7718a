"""Reads of initiatives for other apps.

:func:`unit_events` is the one place the dashboards take dated improvement events from (PDSA
cycles, adoptions); the improvement-workflow models fill it. Until they exist it has nothing
to return, and the charts show only what the series themselves date (the end of the baseline,
re-basing).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date


@dataclass(frozen=True)
class UnitEvent:
    """A dated event on a unit, for one measure or (``measure_id`` None) for all."""

    unit_id: int
    measure_id: int | None
    date: date
    label: str
    kind: str


def unit_events(unit_ids: Sequence[int], measure_ids: Sequence[int]) -> list[UnitEvent]:
    """Dated events of these units that concern these measures (one query once filled)."""
    return []
