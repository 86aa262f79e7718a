"""Who may do what with initiatives: django-rules predicates and the permissions built on them.

Views, the API and templates all ask ``user.has_perm("initiatives.<name>", obj)`` (templates:
``{% has_perm "initiatives.transition" user initiative as can_move %}``); the service asks the
same predicates. Which *step* a user may take is the workflow table's answer
(:func:`workflow.transitions_for`); these predicates are built on it, never beside it.

Note: Django answers ``has_perm`` with True for every active superuser before any backend is
asked. The services therefore check the table themselves (admins may take only the steps the
table has from where the initiative is), and ``rules.has_perm(name, user, obj)`` gives the
predicate's own answer where that matters (e.g. whether to show a button at all).
"""

from __future__ import annotations

import rules
from django.db.models import Q, QuerySet

from forums.enums import ForumKind, MembershipRole
from forums.models import Membership
from forums.rules import is_board_member as _sits_on_a_board
from forums.rules import records_decisions_in
from units.models import Unit

from . import workflow
from .workflow import Relation


def _active(user) -> bool:
    return bool(user.is_authenticated and user.is_active)


@rules.predicate
def is_active_user(user) -> bool:
    return _active(user)


@rules.predicate
def is_admin(user) -> bool:
    return workflow.is_admin(user)


@rules.predicate
def is_chair_of_current_forum(user, initiative) -> bool:
    return (Relation.CURRENT, MembershipRole.CHAIR) in workflow.standing_of(user, initiative)


@rules.predicate
def records_decisions_in_current_forum(user, initiative) -> bool:
    standing = workflow.standing_of(user, initiative)
    return any((Relation.CURRENT, role) in standing for role in workflow.DECIDERS)


@rules.predicate
def is_board_member(user) -> bool:
    """Sits on a division board, in any role."""
    return _active(user) and _sits_on_a_board(user)


@rules.predicate
def is_initiative_creator(user, initiative) -> bool:
    return _active(user) and initiative.created_by_id == user.pk


@rules.predicate
def can_take_transition(user, initiative) -> bool:
    """May take at least one step of the table on the initiative now."""
    return bool(workflow.transitions_for(user, initiative))


def can_take(user, initiative, name: str) -> bool:
    """May take the step called ``name`` now."""
    return any(t.name == name for t in workflow.transitions_for(user, initiative))


@rules.predicate
def can_log_in_forum(user, forum) -> bool:
    """Chairs and secretaries log initiatives in a unit forum, department group or board."""
    if forum.kind not in workflow.LOG_AT or not _active(user):
        return False
    return workflow.is_admin(user) or records_decisions_in(user, forum)


def pdsa_units(user) -> QuerySet[Unit]:
    """Units a person may run PDSA cycles in.

    Any member of a unit forum for the units it serves (the professionals run the cycles);
    chairs and secretaries of a department group for the department's units; admins: all.
    """
    if not _active(user):
        return Unit.objects.none()
    if user.is_superuser:
        return Unit.objects.all()
    mine = Membership.objects.filter(user=user)
    unit_forums = mine.filter(forum__kind=ForumKind.UNIT_FORUM).values("forum_id")
    departments = mine.filter(
        forum__kind=ForumKind.DEPARTMENT_GROUP, role__in=workflow.DECIDERS
    ).values("forum__department_id")
    return Unit.objects.filter(
        Q(forums__in=unit_forums) | Q(department_id__in=departments)
    ).distinct()


def can_run_pdsa_in(user, initiative, unit: Unit) -> bool:
    return initiative.state not in workflow.CLOSED and pdsa_units(user).filter(pk=unit.pk).exists()


@rules.predicate
def can_add_pdsa_cycle(user, initiative) -> bool:
    """The initiative is still open and the person may run cycles in some unit."""
    return initiative.state not in workflow.CLOSED and pdsa_units(user).exists()


rules.add_perm("initiatives.view_initiative", is_active_user)
rules.add_perm("initiatives.log_initiative", can_log_in_forum)
rules.add_perm("initiatives.transition", can_take_transition)
rules.add_perm("initiatives.add_pdsacycle", can_add_pdsa_cycle)
