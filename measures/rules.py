"""Who may do what with measures and data. Used by views, the API and templates alike."""

from django.db.models import Q, QuerySet

from forums.enums import ForumKind
from forums.rules import chaired_memberships, is_support_staff
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


def can_upload(user) -> bool:
    return uploadable_units(user).exists()


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
