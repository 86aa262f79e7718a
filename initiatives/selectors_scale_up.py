"""Reads for scale-up: target units, the adoptions of an initiative, progress, the spread
overview of the board. Each a fixed number of queries, however many units or initiatives.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date

from django.db.models import QuerySet
from django.utils import timezone

from units.models import Unit

from .enums import AdoptionState, State
from .models import Adoption, Initiative
from .rules import visible_initiatives

#: An adoption in one of these states is settled: the spread can be complete.
SETTLED = frozenset({AdoptionState.ADOPTED, AdoptionState.DECLINED})
UNSETTLED = frozenset({AdoptionState.PLANNED, AdoptionState.STARTED})


def plan_target_units(initiative: Initiative) -> QuerySet[Unit]:
    """Units a scale-up plan may name: the active units of the initiative's division."""
    return (
        Unit.objects.active()
        .filter(department__division_id=initiative.forum.division_id)
        .select_related("department")
        .order_by("department__name", "name")
    )


def department_target_units(initiative: Initiative) -> QuerySet[Unit]:
    """Units a department's spread may name: the active units of the department whose
    coordinating group the initiative sits in (none elsewhere)."""
    department_id = initiative.forum.department_id
    if not department_id:
        return Unit.objects.none()
    return (
        Unit.objects.active()
        .filter(department_id=department_id)
        .select_related("department")
        .order_by("name")
    )


def initiative_adoptions(initiative: Initiative) -> list[Adoption]:
    """The units' adoptions of ``initiative``, by department and unit (one query)."""
    return list(
        Adoption.objects.filter(initiative_id=initiative.pk)
        .select_related("unit__department", "updated_by")
        .order_by("unit__department__name", "unit__name", "pk")
    )


def visible_adoptions(user) -> QuerySet[Adoption]:
    """Adoptions of the initiatives ``user`` may see (the API's list and detail)."""
    return (
        Adoption.objects.filter(initiative__in=visible_initiatives(user))
        .select_related("unit__department", "initiative", "updated_by")
        .order_by("initiative_id", "unit__department__name", "unit__name", "pk")
    )


@dataclass(frozen=True)
class Progress:
    """How far a spread has come: counts of the units' adoptions by state."""

    planned: int = 0
    started: int = 0
    adopted: int = 0
    declined: int = 0

    @property
    def total(self) -> int:
        return self.planned + self.started + self.adopted + self.declined

    @property
    def settled(self) -> int:
        return self.adopted + self.declined

    @property
    def unsettled(self) -> int:
        return self.planned + self.started

    @property
    def percent_adopted(self) -> int:
        return round(100 * self.adopted / self.total) if self.total else 0


def progress_of(adoptions: Iterable[Adoption]) -> Progress:
    counts = dict.fromkeys(AdoptionState, 0)
    for adoption in adoptions:
        counts[AdoptionState(adoption.state)] += 1
    return Progress(**{str(state): n for state, n in counts.items()})


def is_overdue(adoption: Adoption, today: date | None = None) -> bool:
    today = today or timezone.localdate()
    return (
        adoption.state in UNSETTLED and adoption.due_date is not None and adoption.due_date < today
    )


@dataclass
class DepartmentProgress:
    name: str
    progress: Progress


@dataclass
class SpreadRow:
    """One initiative on the spread overview."""

    initiative: Initiative
    progress: Progress
    departments: list[DepartmentProgress] = field(default_factory=list)
    overdue: list[Adoption] = field(default_factory=list)

    @property
    def deadline(self) -> date | None:
        plan = getattr(self.initiative, "scale_up_plan", None)
        return plan.deadline if plan is not None else None


#: The states the spread overview shows, in its order.
SPREADING = (State.APPROVED_FOR_SCALE_UP, State.SCALING_UP, State.SPREAD_IN_DEPARTMENT)


def spread_overview(user, *, today: date | None = None) -> dict[str, list[SpreadRow]]:
    """Initiatives being spread, by state (approved and waiting for a plan, scaling up across
    the division, spreading in a department), each with its progress per department and the
    adoptions whose due date has passed. Two queries."""
    today = today or timezone.localdate()
    initiatives = list(
        visible_initiatives(user)
        .filter(state__in=SPREADING)
        .select_related("forum", "department", "scale_up_plan")
        .order_by("title", "pk")
    )
    by_initiative: dict[int, list[Adoption]] = {i.pk: [] for i in initiatives}
    adoptions = (
        Adoption.objects.filter(initiative_id__in=list(by_initiative))
        .select_related("unit__department")
        .order_by("unit__department__name", "unit__name", "pk")
    )
    for adoption in adoptions:
        by_initiative[adoption.initiative_id].append(adoption)
    out: dict[str, list[SpreadRow]] = {str(state): [] for state in SPREADING}
    for initiative in initiatives:
        mine = by_initiative[initiative.pk]
        departments: dict[str, list[Adoption]] = {}
        for adoption in mine:
            departments.setdefault(adoption.unit.department.name, []).append(adoption)
        out[initiative.state].append(
            SpreadRow(
                initiative=initiative,
                progress=progress_of(mine),
                departments=[
                    DepartmentProgress(name=name, progress=progress_of(group))
                    for name, group in departments.items()
                ],
                overdue=[a for a in mine if is_overdue(a, today)],
            )
        )
    return out


def units_by_department(units: Sequence[Unit]) -> list[tuple[str, list[Unit]]]:
    """Units grouped by their department's name, in the order given (for the checkboxes)."""
    groups: dict[str, list[Unit]] = {}
    for unit in units:
        groups.setdefault(unit.department.name, []).append(unit)
    return list(groups.items())
