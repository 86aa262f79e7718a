"""Writes for initiatives: logging one, moving it through the workflow, PDSA cycles.

Every refusal is a ``ValidationError`` with a message for the user and a code the API maps
to its status: ``not_permitted`` → 403, ``stale`` → 409, every other code → 400.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date

from django.contrib.auth.models import AbstractBaseUser
from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import F, Q
from django.utils import timezone
from django.utils.translation import gettext as _

from forums.enums import ForumKind
from forums.models import Forum, Meeting
from measures.enums import Scope
from measures.models import Measure
from units.models import Unit

from . import workflow
from .enums import OriginKind, State
from .models import Activity, Initiative, PDSACycle
from .notifications import notify_activity
from .rules import can_edit_initiative, can_log_in_forum, can_run_pdsa_in
from .selectors import measures_applying_to_forum, move_candidates
from .workflow import Move, Transition


def _refuse(message: str, code: str, field: str | None = None) -> ValidationError:
    """A refusal with its code kept (a dict given to ValidationError drops ``code=``)."""
    error = ValidationError(message, code=code)
    return ValidationError({field: error}) if field else error


def _forum_department_id(forum: Forum) -> int | None:
    """A department group's department; a unit forum's, if its units share one."""
    if forum.department_id:
        return forum.department_id
    if forum.kind != ForumKind.UNIT_FORUM:
        return None
    departments = set(forum.units.values_list("department_id", flat=True))
    return departments.pop() if len(departments) == 1 else None


def _check_origin_unit(forum: Forum, unit: Unit) -> None:
    """A unit origin lies within the forum's reach: its units, its department, its division."""
    if forum.kind == ForumKind.UNIT_FORUM:
        ok = forum.units.filter(pk=unit.pk).exists()
    elif forum.kind == ForumKind.DEPARTMENT_GROUP:
        ok = unit.department_id == forum.department_id
    else:
        ok = unit.department.division_id == forum.division_id
    if not ok:
        raise _refuse(
            _("%(unit)s is not a unit this forum serves.") % {"unit": unit},
            "bad_origin_unit",
            "origin_unit",
        )


@transaction.atomic
def initiative_create(
    *,
    user: AbstractBaseUser,
    forum: Forum,
    title: str,
    kind: str,
    origin_kind: str,
    origin_unit: Unit | None = None,
    origin_reference: str = "",
    description: str = "",
    measures: Iterable[Measure] = (),
    expected_benefit: str = "",
    effort: str = "",
) -> Initiative:
    """Log an initiative in ``forum``; it starts in the workflow's entry state there.

    A unit origin defaults to the forum's unit when a unit forum serves exactly one; an
    external origin needs its reference (which article, guideline, hospital or product).
    """
    if not can_log_in_forum(user, forum):
        raise _refuse(
            _("You may not log initiatives in %(forum)s.") % {"forum": forum}, "not_permitted"
        )
    if origin_kind == OriginKind.UNIT:
        if origin_unit is None and forum.kind == ForumKind.UNIT_FORUM:
            served = list(forum.units.all()[:2])
            origin_unit = served[0] if len(served) == 1 else None
        if origin_unit is None:
            raise _refuse(
                _("Name the unit the initiative comes from."), "origin_unit_required", "origin_unit"
            )
        _check_origin_unit(forum, origin_unit)
    else:
        if origin_unit is not None:
            raise _refuse(
                _("An external source has no unit of origin."), "bad_origin_unit", "origin_unit"
            )
        if not origin_reference.strip():
            raise _refuse(
                _("Say where it comes from (article, guideline, …)."),
                "reference_required",
                "origin_reference",
            )
    initiative = Initiative(
        title=title.strip(),
        description=description.strip(),
        kind=kind,
        origin_kind=origin_kind,
        origin_unit=origin_unit,
        origin_reference=origin_reference.strip(),
        forum=forum,
        department_id=(origin_unit.department_id if origin_unit else _forum_department_id(forum)),
        state=workflow.ENTRY_STATE,
        expected_benefit=expected_benefit.strip(),
        effort=effort,
        created_by=user,
    )
    initiative.full_clean()
    measures = _check_measures(forum, measures)
    initiative.save()
    if measures:
        initiative.measures.set(measures)
    activity = Activity.objects.create(
        initiative=initiative,
        actor=user,
        transition=workflow.LOG_NAME,
        from_state="",
        to_state=initiative.state,
        from_forum=None,
        to_forum=forum,
    )
    notify_activity(activity)  # the forum's members, in this transaction
    return initiative


def _check_measures(forum: Forum, measures: Iterable[Measure]) -> list[Measure]:
    """Linked measures are recorded somewhere in the forum's reach."""
    measures = list(measures)
    if not measures:
        return measures
    applying = set(
        measures_applying_to_forum(forum)
        .filter(pk__in=[m.pk for m in measures])
        .values_list("pk", flat=True)
    )
    foreign = [m for m in measures if m.pk not in applying]
    if foreign:
        raise _refuse(
            _("%(measures)s is not measured where %(forum)s works.")
            % {"measures": ", ".join(str(m) for m in foreign), "forum": forum},
            "bad_measure",
            "measures",
        )
    return measures


def _stale(initiative: Initiative) -> ValidationError:
    now_state = Initiative.objects.filter(pk=initiative.pk).values_list("state", flat=True).first()
    return _refuse(
        _(
            "Someone else moved this initiative meanwhile: it is now “%(state)s”. "
            "Reload it and try again."
        )
        % {"state": str(State(now_state).label) if now_state else "—"},
        "stale",
    )


def initiative_update(
    *,
    initiative: Initiative,
    user: AbstractBaseUser,
    title: str,
    description: str = "",
    expected_benefit: str = "",
    effort: str = "",
    measures: Iterable[Measure] | None = None,
    version: int | None = None,
) -> Initiative:
    """Change what an open initiative says (not where it is: that is a step of the table).

    For the current forum's chair or secretary and the person who logged it
    (``initiatives.change_initiative``). ``version``: the one the editor read; if the
    initiative has moved since, the edit is refused as stale (their view of it was old).
    ``measures`` None keeps the linked measures. Not written to the activity log, which
    records the workflow's steps (the dashboards read local adoptions off it).
    """
    if not can_edit_initiative(user, initiative):
        if initiative.state in workflow.TERMINAL:
            message = _("The initiative is finished: it can no longer be changed.")
        else:
            message = _(
                "Only the chair or secretary of the forum it sits in, or the person who "
                "logged it, may change it."
            )
        raise _refuse(message, "not_permitted")
    if version is not None and version != initiative.version:
        raise _stale(initiative)
    initiative.title = title.strip()
    initiative.description = description.strip()
    initiative.expected_benefit = expected_benefit.strip()
    initiative.effort = effort
    initiative.full_clean()
    with transaction.atomic():
        if measures is not None:
            measures = _check_measures(initiative.forum, measures)
        # Only what it says is written: a step taken meanwhile stays taken (and then the
        # version differs, so the edit is refused).
        now = timezone.now()
        changed = Initiative.objects.filter(pk=initiative.pk, version=initiative.version).update(
            title=initiative.title,
            description=initiative.description,
            expected_benefit=initiative.expected_benefit,
            effort=initiative.effort,
            updated_at=now,
        )
        if changed != 1:
            raise _stale(initiative)
        if measures is not None:
            initiative.measures.set(measures)
    initiative.updated_at = now
    return initiative


def _pick(candidates: list[Forum], chosen: Forum | None, *, missing: str) -> Forum:
    if chosen is not None:
        if chosen.pk not in {forum.pk for forum in candidates}:
            raise _refuse(
                _("%(forum)s cannot take this initiative.") % {"forum": chosen},
                "bad_target_forum",
                "target_forum",
            )
        return chosen
    if not candidates:
        raise _refuse(missing, "no_target_forum", "target_forum")
    if len(candidates) > 1:
        raise _refuse(_("Choose the forum to send it to."), "target_forum_required", "target_forum")
    return candidates[0]


def _destination(
    step: Transition, initiative: Initiative, chosen: Forum | None
) -> tuple[Forum, int | None]:
    """The forum a step takes the initiative to, and its department there."""
    here = initiative.forum
    if step.move == Move.STAY:
        if chosen is not None and chosen.pk != here.pk:
            raise _refuse(
                _("“%(step)s” does not move the initiative.") % _names(step),
                "bad_target_forum",
                "target_forum",
            )
        return here, initiative.department_id
    candidates = move_candidates(step, initiative)
    missing = {
        Move.DEPARTMENT: _("Its department has no coordinating group to escalate to."),
        Move.BOARD: _("The division has no board to refer to."),
        Move.UNIT_FORUM: _("There is no unit forum to hand it down to."),
        Move.PREVIOUS: _("It was logged here: there is no forum to return it to."),
    }[step.move]
    target = _pick(candidates, chosen, missing=missing)
    department_id = initiative.department_id or _forum_department_id(target)
    return target, department_id


def _names(step: Transition, state: str | None = None) -> dict[str, str]:
    names = {"step": str(step.label)}
    if state is not None:
        names["state"] = str(State(state).label)
    return names


def initiative_transition(
    *,
    initiative: Initiative,
    user: AbstractBaseUser | None,
    transition: str,
    comment: str = "",
    target_forum: Forum | None = None,
    meeting: Meeting | None = None,
    via: str = "",
    version: int | None = None,
) -> Activity:
    """Take the step ``transition`` of the workflow table; returns the activity written.

    Checks, in order: the step exists, the table has it from the current state and kind of
    forum, the user holds a role it names (or is an admin), the caller is the service the
    step goes through (``via``, e.g. the voting round's), its guards (e.g. every adoption
    settled before the spread is complete), a comment where it needs one, a forum to move
    to. Then a conditional UPDATE on the state and version the caller read: of two people
    taking a step at once exactly one updates the row, the other is told the initiative has
    moved. The activity is written in the same transaction.
    ``initiative`` is updated in place. ``user`` None is the system (a voting round closing
    by itself): it may take only the steps whose actors name ``Relation.SYSTEM``.
    ``version``: the one the caller's user read (a form, an API client); if the initiative
    has moved since, refused as stale before anything else is judged.
    """
    if version is not None and version != initiative.version:
        raise _stale(initiative)
    step = workflow.BY_NAME.get(transition)
    if step is None:
        raise _refuse(
            _("There is no step called “%(name)s”.") % {"name": transition}, "unknown_transition"
        )
    forum = initiative.forum
    if initiative.state not in step.sources:
        raise _refuse(
            _("“%(step)s” is not possible from “%(state)s”.") % _names(step, initiative.state),
            "not_from_state",
        )
    if forum.kind not in step.at:
        raise _refuse(
            _("“%(step)s” is not possible while the initiative sits in a %(kind)s.")
            % {**_names(step), "kind": str(ForumKind(forum.kind).label).lower()},
            "not_here",
        )
    standing = workflow.standing_of(user, initiative)
    if not step.permits(standing, is_admin=workflow.is_admin(user)):
        who = "; ".join(actor.label() for actor in step.actors)
        raise _refuse(
            _("“%(step)s” is for: %(who)s.") % {**_names(step), "who": who}, "not_permitted"
        )
    if step.via != via:
        raise _refuse(
            _("“%(step)s” needs its own form (%(via)s), not a plain step.")
            % {**_names(step), "via": step.via or "—"},
            "needs_form",
        )
    for reason, guard in ((g.check(initiative), g) for g in step.guards):
        if reason:
            raise _refuse(reason, guard.code)
    comment = comment.strip()
    if step.needs_comment and not comment:
        raise _refuse(
            _("“%(step)s” is a decision: say why.") % _names(step), "comment_required", "comment"
        )
    if meeting is not None and meeting.forum_id != forum.pk:
        raise _refuse(
            _("The decision must be taken in a meeting of %(forum)s.") % {"forum": forum},
            "bad_meeting",
            "meeting",
        )
    to_forum, department_id = _destination(step, initiative, target_forum)

    with transaction.atomic():
        now = timezone.now()
        moved = Initiative.objects.filter(
            pk=initiative.pk, state=initiative.state, version=initiative.version
        ).update(
            state=step.target,
            forum=to_forum,
            department_id=department_id,
            version=F("version") + 1,
            updated_at=now,
        )
        if moved != 1:
            raise _stale(initiative)
        activity = Activity.objects.create(
            initiative=initiative,
            actor=user,
            at=now,
            transition=step.name,
            from_state=initiative.state,
            to_state=step.target,
            from_forum=forum,
            to_forum=to_forum,
            comment=comment,
            meeting=meeting,
        )
        # Arrival where the forum changes, a decision where the step records one.
        notify_activity(activity)
    initiative.state = step.target
    initiative.forum = to_forum
    initiative.department_id = department_id
    initiative.version += 1
    initiative.updated_at = now
    return activity


def initiative_move(
    *,
    initiative: Initiative,
    user: AbstractBaseUser,
    to_state: str,
    comment: str = "",
    target_forum: Forum | None = None,
    meeting: Meeting | None = None,
    version: int | None = None,
) -> Activity:
    """Move the initiative to ``to_state`` by the one step of the table that leads there.

    For callers that name the target state rather than the step (the API's transitions).
    """
    if version is not None and version != initiative.version:
        raise _stale(initiative)
    step = workflow.find(initiative.state, initiative.forum.kind, to_state)
    if step is None:
        try:
            target = str(State(to_state).label)
        except ValueError:
            target = to_state
        raise _refuse(
            _("An initiative cannot go from “%(state)s” to “%(target)s” where it sits.")
            % {"state": str(State(initiative.state).label), "target": target},
            "no_such_step",
        )
    return initiative_transition(
        initiative=initiative,
        user=user,
        transition=step.name,
        comment=comment,
        target_forum=target_forum,
        meeting=meeting,
        version=version,
    )


@transaction.atomic
def pdsa_cycle_create(
    *,
    user: AbstractBaseUser,
    initiative: Initiative,
    unit: Unit,
    plan: str,
    start_date: date,
    end_date: date | None = None,
    measure: Measure | None = None,
    do: str = "",
    study: str = "",
    act: str = "",
) -> PDSACycle:
    """Record a PDSA cycle a unit runs on an open initiative (marked on the unit's charts)."""
    if not can_run_pdsa_in(user, initiative, unit):
        if initiative.state in workflow.CLOSED:
            message = _("The initiative is closed: no more cycles on it.")
        else:
            message = _("You may not record PDSA cycles for %(unit)s.") % {"unit": unit}
        raise _refuse(message, "not_permitted")
    if unit.department.division_id != initiative.forum.division_id:
        raise _refuse(_("The unit is in another division."), "bad_unit", "unit")
    if measure is not None:
        applies = Measure.objects.filter(pk=measure.pk).filter(
            Q(scope=Scope.DIVISION)
            | Q(scope=Scope.DEPARTMENT, department_id=unit.department_id)
            | Q(scope=Scope.UNIT, unit_id=unit.pk)
        )
        if not applies.exists():
            raise _refuse(
                _("%(measure)s is not measured in this unit.") % {"measure": measure},
                "bad_measure",
                "measure",
            )
    if end_date is not None and end_date < start_date:
        raise _refuse(_("A cycle cannot end before it starts."), "bad_dates", "end_date")
    cycle = PDSACycle(
        initiative=initiative,
        unit=unit,
        measure=measure,
        plan=plan.strip(),
        do=do.strip(),
        study=study.strip(),
        act=act.strip(),
        start_date=start_date,
        end_date=end_date,
        created_by=user,
    )
    cycle.full_clean()
    cycle.save()
    return cycle
