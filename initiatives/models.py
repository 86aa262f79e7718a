"""Initiatives (ideas, needs, innovations), their activity log and the PDSA cycles units run.

Every write goes through ``services.py``; the states and the moves between them are the table
in ``workflow.py``.
"""

from django.conf import settings
from django.db import models
from django.db.models import F, Q
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from forums.models import Forum
from measures.models import Measure
from units.models import Department, Unit

from .enums import Effort, InitiativeKind, OriginKind, State


class Initiative(models.Model):
    title = models.CharField(_("title"), max_length=200)
    description = models.TextField(_("description"), blank=True)
    kind = models.CharField(_("kind"), max_length=16, choices=InitiativeKind.choices)
    origin_kind = models.CharField(
        _("origin"),
        max_length=24,
        choices=OriginKind.choices,
        help_text=_("One of our units, or a source outside the division."),
    )
    origin_unit = models.ForeignKey(
        Unit,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="initiatives_originated",
        verbose_name=_("unit of origin"),
    )
    origin_reference = models.CharField(
        _("reference"),
        max_length=500,
        blank=True,
        help_text=_("For an external source: the article, guideline, hospital or product."),
    )
    forum = models.ForeignKey(
        Forum,
        on_delete=models.PROTECT,
        related_name="initiatives",
        verbose_name=_("current forum"),
        help_text=_("The forum where the initiative sits now."),
    )
    # The department whose coordinating group it escalates to: from the unit it came from or
    # the forum it was logged in; empty for a division-level entry until handed down.
    department = models.ForeignKey(
        Department,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="initiatives",
        verbose_name=_("department"),
    )
    state = models.CharField(
        _("state"), max_length=32, choices=State.choices, default=State.LOGGED, db_index=True
    )
    # Counts the transitions: the conditional UPDATE checks it, so a caller who read the
    # initiative before someone else moved it (even back to the same state) is refused.
    version = models.PositiveIntegerField(_("version"), default=0, editable=False)
    measures = models.ManyToManyField(
        Measure, related_name="initiatives", blank=True, verbose_name=_("linked measures")
    )
    expected_benefit = models.TextField(_("expected benefit"), blank=True)
    effort = models.CharField(_("effort"), max_length=8, choices=Effort.choices, blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.PROTECT,
        related_name="initiatives_created",
        verbose_name=_("logged by"),
    )
    created_at = models.DateTimeField(_("logged"), auto_now_add=True)
    updated_at = models.DateTimeField(_("updated"), auto_now=True)

    class Meta:
        ordering = ["-updated_at", "-pk"]
        verbose_name = _("initiative")
        verbose_name_plural = _("initiatives")
        indexes = [models.Index(fields=["forum", "state"], name="initiative_forum_state")]
        constraints = [
            # A unit origin names its unit; an external one does not.
            models.CheckConstraint(
                condition=(
                    Q(origin_kind=OriginKind.UNIT, origin_unit__isnull=False)
                    | (~Q(origin_kind=OriginKind.UNIT) & Q(origin_unit__isnull=True))
                ),
                name="initiative_origin_unit_iff_unit_origin",
            )
        ]

    def __str__(self) -> str:
        return self.title

    @property
    def is_external(self) -> bool:
        return self.origin_kind != OriginKind.UNIT


class Activity(models.Model):
    """One step of an initiative's history: who moved it, when, from where to where, and why."""

    initiative = models.ForeignKey(
        Initiative,
        on_delete=models.CASCADE,
        related_name="activities",
        verbose_name=_("initiative"),
    )
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.PROTECT,
        related_name="initiative_activities",
        verbose_name=_("by"),
    )
    at = models.DateTimeField(_("at"), default=timezone.now)
    transition = models.CharField(
        _("transition"), max_length=32, help_text=_("The name of the step in the workflow table.")
    )
    from_state = models.CharField(_("from"), max_length=32, choices=State.choices, blank=True)
    to_state = models.CharField(_("to"), max_length=32, choices=State.choices)
    from_forum = models.ForeignKey(
        Forum,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="+",
        verbose_name=_("from forum"),
    )
    to_forum = models.ForeignKey(
        Forum, on_delete=models.PROTECT, related_name="+", verbose_name=_("to forum")
    )
    comment = models.TextField(_("comment"), blank=True)
    # Meetings do not exist yet: this becomes a foreign key to forums' meetings.
    meeting_reference = models.CharField(_("meeting"), max_length=200, blank=True)

    class Meta:
        ordering = ["at", "pk"]
        verbose_name = _("activity")
        verbose_name_plural = _("activities")
        indexes = [models.Index(fields=["to_state", "at"], name="activity_state_at")]

    def __str__(self) -> str:
        return f"{self.initiative} · {self.transition} · {self.at:%Y-%m-%d %H:%M}"


class PDSACycle(models.Model):
    """A Plan-Do-Study-Act cycle a unit runs on an initiative (shown on the unit's charts)."""

    initiative = models.ForeignKey(
        Initiative,
        on_delete=models.CASCADE,
        related_name="pdsa_cycles",
        verbose_name=_("initiative"),
    )
    unit = models.ForeignKey(
        Unit, on_delete=models.PROTECT, related_name="pdsa_cycles", verbose_name=_("unit")
    )
    measure = models.ForeignKey(
        Measure,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="pdsa_cycles",
        verbose_name=_("measure watched"),
        help_text=_("Empty: the cycle is marked on every chart of the unit."),
    )
    plan = models.TextField(_("plan"))
    do = models.TextField(_("do"), blank=True)
    study = models.TextField(_("study"), blank=True)
    act = models.TextField(_("act"), blank=True)
    start_date = models.DateField(_("start"))
    end_date = models.DateField(_("end"), null=True, blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.PROTECT,
        related_name="pdsa_cycles",
        verbose_name=_("created by"),
    )
    created_at = models.DateTimeField(_("created"), auto_now_add=True)

    class Meta:
        ordering = ["start_date", "pk"]
        verbose_name = _("PDSA cycle")
        verbose_name_plural = _("PDSA cycles")
        indexes = [models.Index(fields=["unit", "start_date"], name="pdsa_unit_start")]
        constraints = [
            models.CheckConstraint(
                condition=Q(end_date__isnull=True) | Q(end_date__gte=F("start_date")),
                name="pdsa_end_not_before_start",
            )
        ]

    def __str__(self) -> str:
        return f"{self.initiative} · {self.unit} · {self.start_date}"
