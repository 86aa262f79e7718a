from django.db import models
from django.utils.translation import gettext_lazy as _


class UnitKind(models.TextChoices):
    IN_PATIENT = "inpatient", _("In-patient")
    OUT_PATIENT = "outpatient", _("Out-patient")
    OTHER = "other", _("Other")
