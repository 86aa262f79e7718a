"""Reads about forums and the roles people hold in them."""

from .enums import ForumKind, MembershipRole
from .models import Membership


def roles_for_user(user) -> set[str]:
    """The roles a person has, from where they sit, for navigation and page headings.

    One query for the memberships; affiliation is checked separately by the caller that
    needs it. Values: clinician, forum_chair, forum_member, support, board, admin.
    """
    if not user.is_authenticated:
        return set()
    roles: set[str] = set()
    if user.is_superuser:
        roles.add("admin")
    for kind, role in Membership.objects.filter(user=user).values_list("forum__kind", "role"):
        roles.add("forum_chair" if role == MembershipRole.CHAIR else "forum_member")
        if kind == ForumKind.SUPPORT_UNIT:
            roles.add("support")
        elif kind == ForumKind.DIVISION_BOARD:
            roles.add("board")
    if user.affiliations.exists():
        roles.add("clinician")
    return roles


def support_staff_emails() -> list[str]:
    """E-mail addresses of the support unit's active members (who hear of server faults)."""
    return sorted(
        set(
            Membership.objects.filter(forum__kind=ForumKind.SUPPORT_UNIT, user__is_active=True)
            .exclude(user__email="")
            .values_list("user__email", flat=True)
        )
    )
