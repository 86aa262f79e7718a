from django.db import models
from django.utils.translation import gettext_lazy as _


class MeasureKind(models.TextChoices):
    PROPORTION = "proportion", _("Proportion (numerator / denominator)")
    MEAN = "mean", _("Mean of a score")
    COUNT = "count", _("Count of events")
    RATE = "rate", _("Rate (events per exposure)")


class Direction(models.TextChoices):
    UP = "up", _("Higher is better")
    DOWN = "down", _("Lower is better")
    NEITHER = "neither", _("Neither")


class Frequency(models.TextChoices):
    WEEK = "week", _("Weekly")
    MONTH = "month", _("Monthly")
    QUARTER = "quarter", _("Quarterly")


class Scope(models.TextChoices):
    DIVISION = "division", _("Division")
    DEPARTMENT = "department", _("Department")
    UNIT = "unit", _("Unit (local measure)")


class Face(models.TextChoices):
    IMPROVEMENT = "improvement", _("Improvement (local, person-centred)")
    ACCOUNTABILITY = "accountability", _("Accountability (aggregable ratings)")
    RESEARCH = "research", _("Research / monitoring (process)")


class ImportSource(models.TextChoices):
    UPLOAD = "upload", _("Upload page")
    API = "api", _("API")
    COMMAND = "command", _("Management command")


class ImportStatus(models.TextChoices):
    QUEUED = "queued", _("Queued")
    RUNNING = "running", _("Running")
    SUCCEEDED = "succeeded", _("Imported")
    REJECTED = "rejected", _("Rejected")
    FAILED = "failed", _("Failed")
    REVERTED = "reverted", _("Reverted")


class RowShape(models.TextChoices):
    PATIENT = "patient", _("Patient-level rows")
    AGGREGATE = "aggregate", _("Pre-aggregated rows")


class SeriesLevel(models.TextChoices):
    """The organisational level a series describes (DESIGN.md §4: series per org node)."""

    UNIT = "unit", _("Unit")
    DEPARTMENT = "department", _("Department")
    DIVISION = "division", _("Division")
