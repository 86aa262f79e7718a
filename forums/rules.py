"""Permission predicates that follow from where a person sits in the forums."""

import rules
from django.db.models import Q

from .enums import ForumKind, MembershipRole
from .models import Forum, Meeting, Membership


def _memberships(user):
    if not user.is_authenticated or not user.is_active:
        return Membership.objects.none()
    return Membership.objects.filter(user=user)


def is_support_staff(user) -> bool:
    return _memberships(user).filter(forum__kind=ForumKind.SUPPORT_UNIT).exists()


def is_board_member(user) -> bool:
    return _memberships(user).filter(forum__kind=ForumKind.DIVISION_BOARD).exists()


def seats(user) -> frozenset[tuple[str, str]]:
    """(kind of forum, role) of every seat the person holds: one query, kept on the user
    object for the rest of the request (the navigation asks three times)."""
    if not user.is_authenticated or not user.is_active:
        return frozenset()
    seats = getattr(user, "_lhs_forum_seats", None)
    if seats is None:
        seats = frozenset(Membership.objects.filter(user=user).values_list("forum__kind", "role"))
        user._lhs_forum_seats = seats
    return seats


@rules.predicate
def sits_in_support_unit(user) -> bool:
    return any(kind == ForumKind.SUPPORT_UNIT for kind, _role in seats(user))


@rules.predicate
def sits_on_board(user) -> bool:
    return any(kind == ForumKind.DIVISION_BOARD for kind, _role in seats(user))


@rules.predicate
def chairs_a_forum(user) -> bool:
    return any(role == MembershipRole.CHAIR for _kind, role in seats(user))


# Where a person sits, for the navigation's badges: as rules (``{% test_rule %}``: the
# predicate's own answer, so an admin is not shown seats they do not hold) and as permissions.
for _name, _predicate in (
    ("forums.is_support_staff", sits_in_support_unit),
    ("forums.sits_on_board", sits_on_board),
    ("forums.chairs_a_forum", chairs_a_forum),
):
    rules.add_rule(_name, _predicate)
    rules.add_perm(_name, _predicate)


def chaired_memberships(user):
    return _memberships(user).filter(role=MembershipRole.CHAIR).select_related("forum")


def forum_role(user, forum) -> str | None:
    """The role ``user`` holds in ``forum`` (chair, secretary, member), or None."""
    return _memberships(user).filter(forum=forum).values_list("role", flat=True).first()


@rules.predicate
def is_forum_member(user, forum) -> bool:
    return forum_role(user, forum) is not None


@rules.predicate
def is_forum_chair(user, forum) -> bool:
    return forum_role(user, forum) == MembershipRole.CHAIR


@rules.predicate
def records_decisions_in(user, forum) -> bool:
    """Chair or secretary: they record what the forum decides and move its business on."""
    return forum_role(user, forum) in (MembershipRole.CHAIR, MembershipRole.SECRETARY)


# --- Forum pages and meetings (issue 9) ---------------------------------------------------------
# The division works openly: every active member of staff sees the forums, who sits on them
# and in which role, and when they meet. A meeting's own record (who was there, the agenda
# and its notes, the minutes) is read by the forum's members and by the forums its business
# goes up to: the coordinating group of a unit forum's department, and the division board
# for every forum of its division (the heads of departments sit there). Their minutes name
# colleagues and half-formed plans; the decisions themselves are public on each initiative's
# timeline anyway. The chair and the secretary plan meetings, keep the agenda and the
# minutes; admins may too. Every predicate answers False for a missing object, so a
# ``has_perm`` without one (the admin site's) is never granted here.


def _is_admin(user) -> bool:
    return bool(user.is_authenticated and user.is_active and user.is_superuser)


def _is_active(user) -> bool:
    return bool(user.is_authenticated and user.is_active)


def forums_with_readable_meetings(user):
    """The forums whose meetings ``user`` may read (a queryset, one query when evaluated)."""
    if not _is_active(user):
        return Forum.objects.none()
    if user.is_superuser:
        return Forum.objects.all()
    mine = Membership.objects.filter(user=user)
    boards = mine.filter(forum__kind=ForumKind.DIVISION_BOARD).values("forum__division_id")
    groups = mine.filter(forum__kind=ForumKind.DEPARTMENT_GROUP).values("forum__department_id")
    # A subquery over the units' table, so the result needs no DISTINCT.
    overseen = Forum.units.through.objects.filter(unit__department_id__in=groups).values("forum_id")
    return Forum.objects.filter(
        Q(pk__in=mine.values("forum_id"))
        | Q(division_id__in=boards)
        | Q(kind=ForumKind.UNIT_FORUM, pk__in=overseen)
    )


def readable_meetings(user):
    """The meetings ``user`` may open; views and the API fetch meetings only through this."""
    return Meeting.objects.filter(forum__in=forums_with_readable_meetings(user))


@rules.predicate
def can_see_forum(user, forum) -> bool:
    return forum is not None and _is_active(user)


@rules.predicate
def can_read_meetings_of(user, forum) -> bool:
    if forum is None or not _is_active(user):
        return False
    return forums_with_readable_meetings(user).filter(pk=forum.pk).exists()


@rules.predicate
def can_read_meeting(user, meeting) -> bool:
    return meeting is not None and can_read_meetings_of(user, meeting.forum)


@rules.predicate
def can_plan_meeting(user, forum) -> bool:
    """The forum's chair or secretary (or an admin) plans its meetings."""
    if forum is None or not _is_active(user):
        return False
    return _is_admin(user) or records_decisions_in(user, forum)


@rules.predicate
def can_record_meeting(user, meeting) -> bool:
    """The chair or secretary of the meeting's forum (or an admin): place, time, who was
    there, the agenda and the minutes."""
    return meeting is not None and can_plan_meeting(user, meeting.forum)


@rules.predicate
def can_remove_meeting(user, meeting) -> bool:
    """As :func:`can_record_meeting`, while no decision names the meeting."""
    return can_record_meeting(user, meeting) and not meeting.decisions.exists()


rules.add_perm("forums.see_forum", can_see_forum)
rules.add_perm("forums.read_meetings_of", can_read_meetings_of)
rules.add_perm("forums.read_meeting", can_read_meeting)
rules.add_perm("forums.plan_meeting", can_plan_meeting)
rules.add_perm("forums.record_meeting", can_record_meeting)
rules.add_perm("forums.remove_meeting", can_remove_meeting)
