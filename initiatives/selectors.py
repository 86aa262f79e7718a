"""Reads of initiatives, for this app's services and for other apps.

:func:`unit_events` is the one place the dashboards take dated improvement events from: the
PDSA cycles units run, the dates initiatives were adopted in a unit's forum, and the dates
units adopted an initiative that spread to them (scale-up and department spread).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, timedelta

from django.db.models import CharField, Count, F, Q, QuerySet, Value
from django.db.models.functions import TruncDate
from django.utils import timezone
from django.utils.translation import gettext

from forums.enums import ForumKind
from forums.models import Forum
from measures.enums import Scope
from measures.models import Measure
from units.models import Unit

from .enums import AdoptionState, OriginKind, State
from .models import Activity, Adoption, Initiative, PDSACycle
from .workflow import BY_NAME, TERMINAL, Move, Transition


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
      initiative links (or all, if it links none);
    - a unit's adoption of a spreading initiative (``Adoption``, adopted) on the date it
      adopted it, for the same measures.
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
    spread = (
        Adoption.objects.filter(
            Q(initiative__measures__in=measure_ids) | Q(initiative__measures__isnull=True),
            state=AdoptionState.ADOPTED,
            unit_id__in=unit_ids,
            adopted_on__isnull=False,
        )
        .annotate(
            e_unit=F("unit_id"),
            e_measure=F("initiative__measures"),
            e_day=F("adopted_on"),
            e_title=F("initiative__title"),
            e_kind=Value(ADOPTION, output_field=CharField()),
        )
        .order_by()
        .values_list(*fields)
    )
    labels = {PDSA: gettext("PDSA: %(title)s"), ADOPTION: gettext("Adopted: %(title)s")}
    rows = pdsa.union(adoptions, spread, all=True).order_by("e_day", "e_kind", "e_title")
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


def move_candidates(step: Transition, initiative: Initiative) -> list[Forum]:
    """The forums a step may take the initiative to (the service picks from these; the step
    form offers them where the actor must choose). Empty for a step that stays.
    """
    here = initiative.forum
    if step.move == Move.DEPARTMENT:
        if not initiative.department_id:
            return []
        found = Forum.objects.filter(
            kind=ForumKind.DEPARTMENT_GROUP, department_id=initiative.department_id
        )
    elif step.move == Move.BOARD:
        found = Forum.objects.filter(kind=ForumKind.DIVISION_BOARD, division_id=here.division_id)
    elif step.move == Move.UNIT_FORUM:
        found = Forum.objects.filter(kind=ForumKind.UNIT_FORUM, division_id=here.division_id)
        if here.kind == ForumKind.DEPARTMENT_GROUP:
            # A department hands down to its own units only.
            found = found.filter(units__department_id=here.department_id).distinct()
    elif step.move == Move.PREVIOUS:
        previous = sending_forum_id(initiative)
        if not previous:
            return []
        found = Forum.objects.filter(pk=previous)
    else:
        return []
    return list(found)


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


# Measures an initiative or a cycle may link -----------------------------------------------


def measures_applying_to_unit(unit: Unit) -> QuerySet[Measure]:
    """Measures recorded in the unit: the division's, its department's and its own."""
    return Measure.objects.filter(
        Q(scope=Scope.DIVISION)
        | Q(scope=Scope.DEPARTMENT, department_id=unit.department_id)
        | Q(scope=Scope.UNIT, unit_id=unit.pk)
    )


def measures_applying_to_forum(forum: Forum) -> QuerySet[Measure]:
    """Measures an initiative logged in ``forum`` may link: those recorded somewhere in its
    reach (a unit forum's units, a department group's department, the board's division)."""
    if forum.kind == ForumKind.UNIT_FORUM:
        units = Unit.objects.filter(forums=forum)
        return Measure.objects.filter(
            Q(scope=Scope.DIVISION)
            | Q(scope=Scope.DEPARTMENT, department_id__in=units.values("department_id"))
            | Q(scope=Scope.UNIT, unit_id__in=units.values("pk"))
        )
    if forum.kind == ForumKind.DEPARTMENT_GROUP:
        return Measure.objects.filter(
            Q(scope=Scope.DIVISION)
            | Q(scope=Scope.DEPARTMENT, department_id=forum.department_id)
            | Q(scope=Scope.UNIT, unit__department_id=forum.department_id)
        )
    return Measure.objects.filter(
        Q(scope=Scope.DIVISION)
        | Q(scope=Scope.DEPARTMENT, department__division_id=forum.division_id)
        | Q(scope=Scope.UNIT, unit__department__division_id=forum.division_id)
    )


def origin_units_of_forum(forum: Forum) -> QuerySet[Unit]:
    """Units an initiative logged in ``forum`` may come from: a unit forum's units, a
    department group's department's, the board's division's."""
    units = Unit.objects.select_related("department")
    if forum.kind == ForumKind.UNIT_FORUM:
        return units.filter(forums=forum)
    if forum.kind == ForumKind.DEPARTMENT_GROUP:
        return units.filter(department_id=forum.department_id)
    return units.filter(department__division_id=forum.division_id)


# Lists and pages ---------------------------------------------------------------------------

#: Sort keys of the initiative list and the API (``-`` first: descending).
INITIATIVE_ORDERINGS: dict[str, tuple[str, ...]] = {
    "updated": ("updated_at", "pk"),
    "created": ("created_at", "pk"),
    "title": ("title", "pk"),
    "state": ("state", "pk"),
    "forum": ("forum__name", "pk"),
    "kind": ("kind", "pk"),
}


def initiative_search(
    initiatives: QuerySet[Initiative],
    *,
    user=None,
    forum: Forum | None = None,
    state: str = "",
    kind: str = "",
    origin: str = "",
    department=None,
    q: str = "",
    mine: bool = False,
    ordering: str = "-updated",
) -> QuerySet[Initiative]:
    """``initiatives`` filtered as the list page and the API's list are, with what a row shows.

    ``mine``: logged by ``user`` or sitting in a forum ``user`` sits in. ``q`` looks in the
    title, description and reference. ``ordering`` is a key of :data:`INITIATIVE_ORDERINGS`,
    ``-`` first for descending.
    """
    found = initiatives.select_related("forum", "department", "origin_unit", "created_by")
    if forum is not None:
        found = found.filter(forum=forum)
    if state:
        found = found.filter(state=state)
    if kind:
        found = found.filter(kind=kind)
    if origin:
        found = found.filter(origin_kind=origin)
    if department is not None:
        found = found.filter(department=department)
    for word in q.split():
        found = found.filter(
            Q(title__icontains=word)
            | Q(description__icontains=word)
            | Q(origin_reference__icontains=word)
        )
    if mine and user is not None:
        found = found.filter(Q(created_by=user) | Q(forum__memberships__user=user)).distinct()
    descending = ordering.startswith("-")
    fields = INITIATIVE_ORDERINGS.get(ordering.lstrip("-"), INITIATIVE_ORDERINGS["updated"])
    return found.order_by(*(f"-{f}" if descending else f for f in fields))


def initiative_for_page(initiatives: QuerySet[Initiative], pk: int) -> Initiative:
    """One initiative with what its page shows (raises ``DoesNotExist`` if not among them)."""
    return (
        initiatives.select_related(
            "forum", "department", "origin_unit", "origin_unit__department", "created_by"
        )
        .prefetch_related("measures")
        .get(pk=pk)
    )


def pdsa_cycles_of(initiative: Initiative) -> QuerySet[PDSACycle]:
    """The initiative's PDSA cycles, by unit and start, with unit, measure and author."""
    return initiative.pdsa_cycles.select_related(
        "unit", "unit__department", "measure", "created_by"
    ).order_by("unit__name", "start_date", "pk")


@dataclass(frozen=True)
class PipelineRow:
    """One state of the workflow in a division: how many sit in it, from where, how many stall."""

    state: str
    label: str
    from_units: int
    from_outside: int
    stalled: int
    #: No step leaves it (adopted, spread, rejected, withdrawn …): nothing can stall there.
    final: bool

    @property
    def total(self) -> int:
        return self.from_units + self.from_outside


#: An open initiative that has not moved for this long stalls (shown on the division's page).
STALLED_AFTER_DAYS = 90


def pipeline(division_id: int, *, now=None) -> list[PipelineRow]:
    """The division's initiatives per state of the workflow, in the table's order, in one query.

    Bottom-up (from one of its units) and top-down (from literature, guidelines, other
    hospitals, vendors) are counted apart, so the balance DESIGN.md §1 asks to see is visible;
    and where they stall: open initiatives with no step for :data:`STALLED_AFTER_DAYS` days.
    """
    since = (now or timezone.now()) - timedelta(days=STALLED_AFTER_DAYS)
    counts = {
        (row["state"], row["origin_kind"] == OriginKind.UNIT): row
        for row in Initiative.objects.filter(forum__division_id=division_id)
        .values("state", "origin_kind")
        .annotate(n=Count("pk"), stalled=Count("pk", filter=Q(updated_at__lt=since)))
        .order_by()
    }
    rows = []
    for state in State:
        inside = [row for (s, unit), row in counts.items() if s == state and unit]
        outside = [row for (s, unit), row in counts.items() if s == state and not unit]
        final = state in TERMINAL
        rows.append(
            PipelineRow(
                state=state.value,
                label=str(state.label),
                from_units=sum(row["n"] for row in inside),
                from_outside=sum(row["n"] for row in outside),
                stalled=0 if final else sum(row["stalled"] for row in inside + outside),
                final=final,
            )
        )
    return rows
