"""Writes for spreading an initiative: a scale-up plan, a department's spread, each unit's
adoption (DESIGN.md §1 "Translation, not copying", §4 "Scale-up").

- :func:`scale_up_plan_create` takes the table's ``start_scale_up`` step (the board, once
  approved) with its plan: scope, deadline, and a planned adoption for each target unit of
  the division.
- :func:`department_spread_start` takes ``spread_in_department`` (the department group) with
  the department's units that are to adopt it. It makes no plan: a plan is the division
  board's (one per initiative), so an initiative a department spread first can still be
  scaled up across the division later; the department's adoptions carry over into that
  plan as they stand.
- :func:`adoption_update` moves one unit's adoption on: planned → started → adopted, or
  declined (before or after starting), and records *how the unit adapted it* (or why it
  declined). ``complete_spread`` waits until every adoption is settled
  (``workflow.ADOPTIONS_SETTLED``).

Refusals are ``ValidationError`` with a code, as in ``services``: ``not_permitted`` → 403,
``stale`` / ``conflict`` → 409, any other → 400.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable
from datetime import date

from django.contrib.auth.models import AbstractBaseUser
from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import F, QuerySet
from django.utils import timezone
from django.utils.translation import gettext as _

from forums.models import Meeting
from units.models import Unit

from . import workflow
from .enums import AdoptionState
from .models import Adoption, Initiative, ScaleUpPlan
from .rules import can_update_adoption
from .selectors_scale_up import UNSETTLED, department_target_units, plan_target_units
from .services import initiative_transition

#: The ``via`` names of the two steps these services take (``workflow.TRANSITIONS``).
VIA_PLAN = "scale_up_plan"
VIA_DEPARTMENT = "department_spread"

A = AdoptionState
#: Where a unit's adoption may go from each state. A unit may decline before it starts; a
#: settled adoption stays settled, but its text (how it was adapted, why it was declined) and
#: date may be corrected; a started one may note its adaptation as it goes.
ADOPTION_MOVES: dict[str, frozenset[str]] = {
    A.PLANNED: frozenset({A.STARTED, A.DECLINED}),
    A.STARTED: frozenset({A.STARTED, A.ADOPTED, A.DECLINED}),
    A.ADOPTED: frozenset({A.ADOPTED}),
    A.DECLINED: frozenset({A.DECLINED}),
}


def _refuse(message: str, code: str, field: str | None = None) -> ValidationError:
    error = ValidationError(message, code=code)
    return ValidationError({field: error}) if field else error


def _targets(units: Iterable[Unit], allowed: QuerySet[Unit]) -> tuple[list[Unit], dict]:
    """The chosen units, once each, and the field error if any is not a possible target."""
    chosen = list({unit.pk: unit for unit in units}.values())
    if not chosen:
        return chosen, {
            "units": ValidationError(_("Choose the units that are to adopt it."), "units_required")
        }
    possible = set(allowed.filter(pk__in=[u.pk for u in chosen]).values_list("pk", flat=True))
    foreign = [u for u in chosen if u.pk not in possible]
    if foreign:
        return chosen, {
            "units": ValidationError(
                _("%(units)s cannot be asked to adopt it here.")
                % {"units": ", ".join(str(u) for u in foreign)},
                "bad_unit",
            )
        }
    return chosen, {}


def _not_past(day: date | None, field: str, errors: dict) -> None:
    if day is not None and day < timezone.localdate():
        errors[field] = ValidationError(_("The date cannot be in the past."), "date_in_past")


def _plan_adoptions(
    *, initiative: Initiative, units: list[Unit], due: date | None, user: AbstractBaseUser
) -> list[Adoption]:
    """A planned adoption for each unit that has none; the unsettled ones get the new due
    date. Settled ones (a unit that adopted or declined during an earlier spread) stay."""
    existing = set(
        Adoption.objects.filter(initiative=initiative, unit__in=units).values_list(
            "unit_id", flat=True
        )
    )
    Adoption.objects.bulk_create(
        [
            Adoption(
                initiative=initiative,
                unit=unit,
                state=AdoptionState.PLANNED,
                due_date=due,
                updated_by=user,
            )
            for unit in units
            if unit.pk not in existing
        ]
    )
    if due is not None and existing:
        # Not a change of what the unit said: its version stays (nobody's form goes stale).
        Adoption.objects.filter(
            initiative=initiative, unit_id__in=existing, state__in=UNSETTLED
        ).update(due_date=due)
    return list(
        Adoption.objects.filter(initiative=initiative, unit__in=units).select_related("unit")
    )


def _taken(initiative: Initiative, moved: Initiative) -> None:
    """Copy where the step took ``moved`` onto the caller's object."""
    initiative.state = moved.state
    initiative.forum = moved.forum
    initiative.department_id = moved.department_id
    initiative.version = moved.version
    initiative.updated_at = moved.updated_at


def scale_up_plan_create(
    *,
    user: AbstractBaseUser,
    initiative: Initiative,
    scope: str,
    deadline: date,
    units: Iterable[Unit],
    comment: str = "",
    meeting: Meeting | None = None,
    version: int | None = None,
) -> ScaleUpPlan:
    """Make the scale-up plan of an initiative approved for scale-up and start scaling up.

    The step is the table's ``start_scale_up`` (the board's chair or secretary); it is judged
    first, so a person who may not take it is told so before anything about the plan. Then
    the plan: what is to spread and where (``scope``), a ``deadline`` not in the past, and at
    least one target unit, all of them active units of the division. Each target unit gets a
    planned adoption due by the deadline. All in one transaction: a refused plan leaves the
    initiative where it was. ``initiative`` is updated in place.
    """
    moved = copy.copy(initiative)
    scope = scope.strip()
    with transaction.atomic():
        initiative_transition(
            initiative=moved,
            user=user,
            transition="start_scale_up",
            comment=comment,
            meeting=meeting,
            via=VIA_PLAN,
            version=version,
        )
        chosen, errors = _targets(units, plan_target_units(initiative))
        if not scope:
            errors["scope"] = ValidationError(
                _("Say what is to spread, and where."), "scope_required"
            )
        if deadline is None:
            errors["deadline"] = ValidationError(_("Give the deadline."), "deadline_required")
        _not_past(deadline, "deadline", errors)
        if errors:
            raise ValidationError(errors)
        if ScaleUpPlan.objects.filter(initiative=initiative).exists():
            raise _refuse(_("This initiative already has a scale-up plan."), "conflict")
        plan = ScaleUpPlan.objects.create(
            initiative=initiative, scope=scope, deadline=deadline, created_by=user
        )
        _plan_adoptions(initiative=initiative, units=chosen, due=deadline, user=user)
    _taken(initiative, moved)
    return plan


def department_spread_start(
    *,
    user: AbstractBaseUser,
    initiative: Initiative,
    units: Iterable[Unit],
    comment: str,
    due_date: date | None = None,
    meeting: Meeting | None = None,
    version: int | None = None,
) -> list[Adoption]:
    """Spread a prioritised initiative in its department: the table's
    ``spread_in_department`` (the department group's chair or secretary, with the reason),
    and a planned adoption for each of the department's units named (by ``due_date`` if
    given). Returns the adoptions of those units; ``initiative`` is updated in place.
    """
    moved = copy.copy(initiative)
    with transaction.atomic():
        initiative_transition(
            initiative=moved,
            user=user,
            transition="spread_in_department",
            comment=comment,
            meeting=meeting,
            via=VIA_DEPARTMENT,
            version=version,
        )
        chosen, errors = _targets(units, department_target_units(initiative))
        _not_past(due_date, "due_date", errors)
        if errors:
            raise ValidationError(errors)
        adoptions = _plan_adoptions(initiative=initiative, units=chosen, due=due_date, user=user)
    _taken(initiative, moved)
    return adoptions


def _adoption_stale(adoption: Adoption) -> ValidationError:
    now = Adoption.objects.filter(pk=adoption.pk).values_list("state", flat=True).first()
    return _refuse(
        _(
            "Someone else updated the adoption of %(unit)s meanwhile: it is now “%(state)s”. "
            "Reload it and try again."
        )
        % {"unit": adoption.unit, "state": str(AdoptionState(now).label) if now else "—"},
        "stale",
    )


def adoption_update(
    *,
    user: AbstractBaseUser,
    adoption: Adoption,
    state: str,
    adaptation: str = "",
    adopted_on: date | None = None,
    version: int | None = None,
) -> Adoption:
    """Move a unit's adoption on (:data:`ADOPTION_MOVES`) and say how the unit adapted it.

    For the chair or secretary of a unit forum serving the unit, and the deciders of the
    forum the initiative sits in (``initiatives.change_adoption``). Adopted needs the
    adaptation and the date, not in the future; declined needs the reason (in
    ``adaptation``). ``version``: the one the person read (a form's, an API client's); the
    update is a conditional UPDATE on it, so of two people saving at once one wins and the
    other is told it changed (stale). ``adoption`` is updated in place.
    """
    if not can_update_adoption(user, adoption):
        if adoption.initiative.state in workflow.CLOSED:
            message = _("The initiative is closed: its adoptions no longer change.")
        else:
            message = _(
                "Only the chair or secretary of the forum of %(unit)s, or the deciders of the "
                "forum the initiative sits in, may update its adoption."
            ) % {"unit": adoption.unit}
        raise _refuse(message, "not_permitted")
    if version is not None and version != adoption.version:
        raise _adoption_stale(adoption)
    try:
        new = AdoptionState(state)
    except ValueError:
        raise _refuse(_("There is no such state."), "bad_state", "state") from None
    if new not in ADOPTION_MOVES[adoption.state]:
        raise _refuse(
            _("The adoption cannot go from “%(from)s” to “%(to)s”.")
            % {"from": AdoptionState(adoption.state).label, "to": new.label},
            "bad_move",
            "state",
        )
    adaptation = adaptation.strip()
    errors: dict[str, ValidationError] = {}
    if new == A.ADOPTED:
        if not adaptation:
            errors["adaptation"] = ValidationError(
                _("Say how the unit adapted it to its own context."), "adaptation_required"
            )
        if adopted_on is None:
            errors["adopted_on"] = ValidationError(
                _("Give the date the unit adopted it."), "date_required"
            )
        elif adopted_on > timezone.localdate():
            errors["adopted_on"] = ValidationError(
                _("The adoption date cannot be in the future."), "future_date"
            )
    else:
        adopted_on = None
        if new == A.DECLINED and not adaptation:
            errors["adaptation"] = ValidationError(
                _("Say why the unit declined it."), "reason_required"
            )
    if errors:
        raise ValidationError(errors)
    now = timezone.now()
    with transaction.atomic():
        changed = Adoption.objects.filter(pk=adoption.pk, version=adoption.version).update(
            state=new,
            adaptation=adaptation,
            adopted_on=adopted_on,
            updated_by=user,
            updated_at=now,
            version=F("version") + 1,
        )
        if changed != 1:
            raise _adoption_stale(adoption)
    adoption.state = new
    adoption.adaptation = adaptation
    adoption.adopted_on = adopted_on
    adoption.updated_by = user
    adoption.updated_at = now
    adoption.version += 1
    return adoption


__all__ = [
    "ADOPTION_MOVES",
    "VIA_DEPARTMENT",
    "VIA_PLAN",
    "adoption_update",
    "department_spread_start",
    "scale_up_plan_create",
]
