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
from forums.models import Forum, Membership
from forums.rules import forum_role
from forums.rules import is_board_member as _sits_on_a_board
from forums.rules import is_support_staff as _is_support_staff
from units.models import Unit

from . import workflow
from .enums import SupportState
from .models import Initiative
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
    """Chairs and secretaries log initiatives in a unit forum, department group or board;
    every member too where the forum allows it (``Forum.members_may_log``)."""
    if forum.kind not in workflow.LOG_AT or not _active(user):
        return False
    if workflow.is_admin(user):
        return True
    role = forum_role(user, forum)
    return role in workflow.LOG_ROLES or (role is not None and forum.members_may_log)


def loggable_forums(user) -> QuerySet[Forum]:
    """The forums ``user`` may log initiatives in (the log form's chooser), one query."""
    if not _active(user):
        return Forum.objects.none()
    forums = Forum.objects.filter(kind__in=workflow.LOG_AT)
    if workflow.is_admin(user):
        return forums
    mine = Membership.objects.filter(user=user)
    return forums.filter(
        Q(pk__in=mine.filter(role__in=workflow.LOG_ROLES).values("forum_id"))
        | Q(members_may_log=True, pk__in=mine.values("forum_id"))
    )


def visible_initiatives(user) -> QuerySet[Initiative]:
    """The initiatives ``user`` may see: the division works openly, so every active member of
    staff sees every initiative (``initiatives.view_initiative``); nobody else sees any.

    Views and the API fetch initiatives only through this, so what one may not see is a 404.
    """
    if not _active(user):
        return Initiative.objects.none()
    return Initiative.objects.all()


@rules.predicate
def can_edit_initiative(user, initiative) -> bool:
    """The current forum's chair or secretary, or the person who logged it, while it is open
    (some step of the table still leaves its state)."""
    if not _active(user) or initiative.state in workflow.TERMINAL:
        return False
    if workflow.is_admin(user) or initiative.created_by_id == user.pk:
        return True
    standing = workflow.standing_of(user, initiative)
    return any((Relation.CURRENT, role) in standing for role in workflow.DECIDERS)


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
rules.add_perm("initiatives.change_initiative", can_edit_initiative)


# --- Support requests and attachments -------------------------------------------------------
# Who may ask the support unit for help on an initiative, or attach a file to it: anyone who
# sits in the forum it sits in (any role), the person who logged it, and admins; never on a
# closed initiative. The support unit's members take the requests; the one who took a request
# (or the unit's chair) answers or releases it. Files: seen by whoever may see the initiative,
# deleted by the uploader or the deciders of the forum the initiative sits in.
# Every predicate answers False for a missing object, so a has_perm without one (the admin
# site's) is never granted here.


def _support_role(user, support_request) -> str | None:
    """The role ``user`` holds in the support unit the request went to."""
    if not _active(user):
        return None
    return (
        Membership.objects.filter(user=user, forum_id=support_request.support_forum_id)
        .values_list("role", flat=True)
        .first()
    )


@rules.predicate
def can_request_support(user, initiative) -> bool:
    """Sits in the initiative's current forum, logged it, or is an admin; it is not closed."""
    if initiative is None or not _active(user) or initiative.state in workflow.CLOSED:
        return False
    if workflow.is_admin(user):
        return True
    standing = workflow.standing_of(user, initiative)
    return (Relation.CREATOR, "") in standing or any(
        relation == Relation.CURRENT for relation, _role in standing
    )


@rules.predicate
def can_view_support_request(user, support_request) -> bool:
    return support_request is not None and user.has_perm(
        "initiatives.view_initiative", support_request.initiative
    )


@rules.predicate
def is_support_unit_member(user) -> bool:
    """Sits in a support unit (or is an admin): may see the support queue."""
    return _active(user) and (workflow.is_admin(user) or _is_support_staff(user))


def sits_in_support_unit_of(user, support_request) -> bool:
    """Sits in the support unit the request went to (any role), or is an admin."""
    return workflow.is_admin(user) or _support_role(user, support_request) is not None


def answers_for(user, support_request) -> bool:
    """Took the request, chairs the support unit it went to, or is an admin."""
    if not _active(user):
        return False
    if workflow.is_admin(user) or support_request.taken_by_id == user.pk:
        return True
    return _support_role(user, support_request) == MembershipRole.CHAIR


@rules.predicate
def can_take_support_request(user, support_request) -> bool:
    """An open request, and the person sits in the support unit it went to (or is an admin)."""
    if support_request is None or support_request.state != SupportState.OPEN:
        return False
    return sits_in_support_unit_of(user, support_request)


@rules.predicate
def can_answer_support_request(user, support_request) -> bool:
    """A taken request: its taker, or the support unit's chair, answers it (marks it done)."""
    if support_request is None or support_request.state != SupportState.TAKEN:
        return False
    return answers_for(user, support_request)


@rules.predicate
def can_release_support_request(user, support_request) -> bool:
    """A taken request: its taker, or the support unit's chair, gives it back to the queue."""
    return can_answer_support_request(user, support_request)


@rules.predicate
def can_add_attachment(user, initiative) -> bool:
    return can_request_support(user, initiative)


@rules.predicate
def can_view_attachment(user, attachment) -> bool:
    return attachment is not None and user.has_perm(
        "initiatives.view_initiative", attachment.initiative
    )


@rules.predicate
def can_delete_attachment(user, attachment) -> bool:
    """The uploader, the deciders of the forum the initiative sits in, or an admin."""
    if attachment is None or not _active(user):
        return False
    if workflow.is_admin(user) or attachment.uploaded_by_id == user.pk:
        return True
    standing = workflow.standing_of(user, attachment.initiative)
    return any((Relation.CURRENT, role) in standing for role in workflow.DECIDERS)


rules.add_perm("initiatives.add_supportrequest", can_request_support)
rules.add_perm("initiatives.view_supportrequest", can_view_support_request)
rules.add_perm("initiatives.view_support_queue", is_support_unit_member)
rules.add_perm("initiatives.take_supportrequest", can_take_support_request)
rules.add_perm("initiatives.answer_supportrequest", can_answer_support_request)
rules.add_perm("initiatives.release_supportrequest", can_release_support_request)
rules.add_perm("initiatives.add_attachment", can_add_attachment)
rules.add_perm("initiatives.view_attachment", can_view_attachment)
rules.add_perm("initiatives.delete_attachment", can_delete_attachment)
