"""Permission predicates that follow from where a person sits in the forums."""

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
