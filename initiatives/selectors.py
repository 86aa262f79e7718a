"""Reads of initiatives, for this app's services and for other apps.

:func:`unit_events` is the one place the dashboards take dated improvement events from: the
PDSA cycles units run and the dates initiatives were adopted in a unit's forum. Scale-up
adoptions (per unit, with how it adapted the practice) join it when they exist.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date

from django.db.models import CharField, F, Q, QuerySet, Value
from django.db.models.functions import TruncDate
from django.utils.translation import gettext

from .enums import State
from .models import Activity, Initiative, PDSACycle
from .workflow import BY_NAME, Move


@dataclass(frozen=True)
class UnitEvent:
    """A dated event on a unit, for one measure or (``measure_id`` None) for all."""

    unit_id: int
    measure_id: int | None
    date: date
    label: str
    kind: str


#: Event kinds, as the charts style them.
PDSA = "pdsa"
ADOPTION = "adoption"


def unit_events(unit_ids: Sequence[int], measure_ids: Sequence[int]) -> list[UnitEvent]:
    """Dated events of these units that concern these measures, in one query, by date.

    - a PDSA cycle on its start date, for the measure it watches (or all, if none);
    - a local adoption on the day the unit's forum adopted it, for each measure the
      initiative links (or all, if it links none).
    """
    if not unit_ids or not measure_ids:
        return []
    unit_ids, measure_ids = list(unit_ids), list(measure_ids)
    fields = ("e_unit", "e_measure", "e_day", "e_title", "e_kind")
    pdsa = (
        PDSACycle.objects.filter(unit_id__in=unit_ids)
        .filter(Q(measure_id__in=measure_ids) | Q(measure__isnull=True))
        .annotate(
            e_unit=F("unit_id"),
            e_measure=F("measure_id"),
            e_day=F("start_date"),
            e_title=F("initiative__title"),
            e_kind=Value(PDSA, output_field=CharField()),
        )
        .order_by()  # the models' default ordering is not allowed inside a UNION
        .values_list(*fields)
    )
    # One filter() call, so the unit and measure joins the annotations read are the ones
    # filtered (a second call would join the many-to-many relations again).
    adoptions = (
        Activity.objects.filter(
            Q(initiative__measures__in=measure_ids) | Q(initiative__measures__isnull=True),
            to_state=State.ADOPTED_LOCALLY,
            to_forum__units__in=unit_ids,
        )
        .annotate(
            e_unit=F("to_forum__units"),
            e_measure=F("initiative__measures"),
            e_day=TruncDate("at"),
            e_title=F("initiative__title"),
            e_kind=Value(ADOPTION, output_field=CharField()),
        )
        .order_by()
        .values_list(*fields)
    )
    labels = {PDSA: gettext("PDSA: %(title)s"), ADOPTION: gettext("Adopted: %(title)s")}
    rows = pdsa.union(adoptions, all=True).order_by("e_day", "e_kind", "e_title")
    return [
        UnitEvent(
            unit_id=unit_id,
            measure_id=measure_id,
            date=day,
            label=labels[kind] % {"title": title},
            kind=kind,
        )
        for unit_id, measure_id, day, title, kind in rows
    ]


def initiative_timeline(initiative: Initiative) -> QuerySet[Activity]:
    """The initiative's history, oldest first, with who and where (for its timeline)."""
    return initiative.activities.select_related("actor", "from_forum", "to_forum").order_by("pk")


def sending_forum_id(initiative: Initiative) -> int | None:
    """The forum that sent the initiative to the one it sits in (where a return goes).

    The moves form a stack: each move to another forum pushes the forum it left, a return
    pops it. So a board's return goes to the department group, the group's next return to
    the unit forum that escalated it.
    """
    stack: list[int] = []
    for name, from_forum, to_forum in initiative.activities.order_by("pk").values_list(
        "transition", "from_forum_id", "to_forum_id"
    ):
        if from_forum is None or from_forum == to_forum:
            continue
        step = BY_NAME.get(name)
        if step is not None and step.move == Move.PREVIOUS:
            if stack:
                stack.pop()
        else:
            stack.append(from_forum)
    return stack[-1] if stack else None
