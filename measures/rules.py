"""Who may do what with measures and data. Used by views, the API and templates alike."""

from django.db.models import Exists, Q, QuerySet

from forums.enums import ForumKind, MembershipRole
from forums.models import Membership
from forums.rules import chaired_memberships, is_support_staff, seats
from units.models import Unit

from .models import ImportBatch


def uploadable_units(user) -> QuerySet[Unit]:
    """Units a person may import data for.

    Admins and support-unit staff: every unit. A forum chair: the units their forum serves
    (a unit forum's units, a department group's department). Nobody else.
    """
    if not user.is_authenticated or not user.is_active:
        return Unit.objects.none()
    if user.is_superuser or is_support_staff(user):
        return Unit.objects.all()
    chaired = chaired_memberships(user)
    unit_forums = chaired.filter(forum__kind=ForumKind.UNIT_FORUM).values("forum_id")
    dept_groups = chaired.filter(forum__kind=ForumKind.DEPARTMENT_GROUP).values(
        "forum__department_id"
    )
    return Unit.objects.filter(
        Q(forums__in=unit_forums) | Q(department_id__in=dept_groups)
    ).distinct()


def _imports_from(kind: str, role: str) -> bool:
    """Whether a seat lets one import data (where the forum serves some unit)."""
    if kind == ForumKind.SUPPORT_UNIT:
        return True
    return role == MembershipRole.CHAIR and kind in (
        ForumKind.UNIT_FORUM,
        ForumKind.DEPARTMENT_GROUP,
    )


def can_upload(user) -> bool:
    """Whether :func:`uploadable_units` has any unit.

    The navigation asks it on every page. Most people hold no seat from which one imports, and
    their seats are read once per request for the navigation anyway (``forums.rules.seats``),
    so for them it costs no query; for the others, one.
    """
    if not user.is_authenticated or not user.is_active:
        return False
    if user.is_superuser:
        return Unit.objects.exists()
    if not any(_imports_from(kind, role) for kind, role in seats(user)):
        return False
    support = Membership.objects.filter(user=user, forum__kind=ForumKind.SUPPORT_UNIT)
    return Unit.objects.filter(
        Q(Exists(support))
        | Q(
            forums__memberships__user=user,
            forums__memberships__role=MembershipRole.CHAIR,
            forums__kind=ForumKind.UNIT_FORUM,
        )
        | Q(
            department__forums__memberships__user=user,
            department__forums__memberships__role=MembershipRole.CHAIR,
            department__forums__kind=ForumKind.DEPARTMENT_GROUP,
        )
    ).exists()


def can_upload_for(user, unit: Unit) -> bool:
    return uploadable_units(user).filter(pk=unit.pk).exists()


def can_configure_measures(user) -> bool:
    return user.is_authenticated and user.is_active and user.has_perm("measures.change_measure")


def visible_batches(user) -> QuerySet[ImportBatch]:
    """Admins and support staff see every batch; others the batches they uploaded."""
    if not user.is_authenticated or not user.is_active:
        return ImportBatch.objects.none()
    batches = ImportBatch.objects.select_related("uploaded_by", "reverted_by")
    if user.is_superuser or is_support_staff(user):
        return batches
    return batches.filter(uploaded_by=user)


def can_revert_batch(user, batch: ImportBatch) -> bool:
    """Only admins and support staff take data out again, and only of an imported batch."""
    from .enums import ImportStatus

    if batch.status != ImportStatus.SUCCEEDED or not user.is_authenticated:
        return False
    return user.is_superuser or is_support_staff(user)
