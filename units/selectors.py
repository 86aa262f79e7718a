"""Reads for the organisation."""

from django.db.models import QuerySet

from .models import Department, Unit


def units_for_user(user) -> QuerySet[Unit]:
    """The units a person is affiliated to."""
    if not user.is_authenticated:
        return Unit.objects.none()
    return Unit.objects.filter(affiliations__user=user).select_related("department")


def organisation_tree() -> QuerySet[Department]:
    return Department.objects.select_related("division").prefetch_related("units")
