"""Permission predicates that follow from where a person sits in the forums."""

import rules

from .enums import ForumKind, MembershipRole
from .models import Membership


def _memberships(user):
    if not user.is_authenticated or not user.is_active:
        return Membership.objects.none()
    return Membership.objects.filter(user=user)


def is_support_staff(user) -> bool:
    return _memberships(user).filter(forum__kind=ForumKind.SUPPORT_UNIT).exists()


def is_board_member(user) -> bool:
    return _memberships(user).filter(forum__kind=ForumKind.DIVISION_BOARD).exists()


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
