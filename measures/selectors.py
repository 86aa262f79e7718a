"""Reads for measures and imports."""

from django.db.models import QuerySet

from .models import Measure


def measure_catalogue() -> QuerySet[Measure]:
    return Measure.objects.select_related("owner", "department", "unit").order_by("name")
