"""Reads for measures and imports."""

from django.db.models import QuerySet

from .models import Measure


def measure_catalogue() -> QuerySet[Measure]:
    return Measure.objects.select_related("owner", "department", "unit").order_by("name")


def measure_history(measure: Measure, limit: int = 20) -> list[dict]:
    """Who changed what in a measure's definition, and when; newest first.

    One query: django-simple-history's records, compared pairwise in Python.
    """
    records = list(
        measure.history.select_related("history_user").order_by("-history_date")[: limit + 1]
    )
    changes = []
    # Without ``strict``: a measure created without a history record (bulk_create) has none.
    for newer, older in zip(records, [*records[1:], None], strict=False):
        if len(changes) == limit:
            break
        fields = []
        if older is not None:
            delta = newer.diff_against(older)
            fields = [
                {
                    "field": Measure._meta.get_field(change.field).verbose_name,
                    "old": change.old,
                    "new": change.new,
                }
                for change in delta.changes
            ]
        changes.append(
            {
                "when": newer.history_date,
                "who": newer.history_user,
                "created": older is None,
                "fields": fields,
            }
        )
    return changes
