"""Forums of the four kinds, who sits on them, and their meetings.

A meeting's agenda items and decisions name initiatives, so they live in ``initiatives``
(this app must not import it): ``initiatives.AgendaItem`` and ``initiatives.Activity.meeting``.
"""

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import models
from django.utils.translation import gettext_lazy as _

from units.models import Department, Division, Unit

from .enums import EmailFrequency, ForumKind, MembershipRole


class Forum(models.Model):
    kind = models.CharField(_("kind"), max_length=32, choices=ForumKind.choices)
    name = models.CharField(_("name"), max_length=200)
    division = models.ForeignKey(
        Division, on_delete=models.PROTECT, related_name="forums", verbose_name=_("division")
    )
    department = models.ForeignKey(
        Department,
        on_delete=models.PROTECT,
        related_name="forums",
        null=True,
        blank=True,
        verbose_name=_("department"),
        help_text=_("For a department coordinating group."),
    )
    units = models.ManyToManyField(
        Unit,
        related_name="forums",
        blank=True,
        verbose_name=_("units"),
        help_text=_("For a unit data-analysis forum: the unit, or the few units, it serves."),
    )
    members = models.ManyToManyField(
        settings.AUTH_USER_MODEL, through="Membership", related_name="forums", blank=True
    )
    members_may_log = models.BooleanField(
        _("members may log initiatives"),
        default=False,
        help_text=_("Chairs and secretaries always may; tick to let every member log one."),
    )

    class Meta:
        ordering = ["kind", "name"]
        verbose_name = _("forum")
        verbose_name_plural = _("forums")

    def __str__(self) -> str:
        return self.name

    def clean(self):
        if self.kind == ForumKind.DEPARTMENT_GROUP and not self.department_id:
            raise ValidationError(
                {"department": _("A department coordinating group must name its department.")}
            )
        if self.kind != ForumKind.DEPARTMENT_GROUP and self.department_id:
            raise ValidationError(
                {"department": _("Only a department coordinating group belongs to a department.")}
            )


class Membership(models.Model):
    forum = models.ForeignKey(
        Forum, on_delete=models.CASCADE, related_name="memberships", verbose_name=_("forum")
    )
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.CASCADE,
        related_name="memberships",
        verbose_name=_("user"),
    )
    role = models.CharField(
        _("role"), max_length=16, choices=MembershipRole.choices, default=MembershipRole.MEMBER
    )
    email_frequency = models.CharField(
        _("e-mail"),
        max_length=16,
        choices=EmailFrequency.choices,
        default=EmailFrequency.DAILY,
        help_text=_("At most one digest a day unless the member asks for every notice."),
    )

    class Meta:
        verbose_name = _("membership")
        verbose_name_plural = _("memberships")
        constraints = [
            models.UniqueConstraint(fields=["forum", "user"], name="membership_unique_forum_user")
        ]

    def __str__(self) -> str:
        return f"{self.user} – {self.get_role_display()} – {self.forum}"


class Meeting(models.Model):
    """A meeting of a forum: when, who was there, and the minutes.

    Its agenda is ``initiatives.AgendaItem`` (proposed from what waits for the forum); the
    decisions taken in it are the initiatives' activities that name it.
    """

    forum = models.ForeignKey(
        Forum, on_delete=models.CASCADE, related_name="meetings", verbose_name=_("forum")
    )
    starts_at = models.DateTimeField(_("starts"))
    location = models.CharField(_("place"), max_length=200, blank=True)
    present = models.ManyToManyField(
        settings.AUTH_USER_MODEL,
        related_name="meetings_attended",
        blank=True,
        verbose_name=_("present"),
    )
    minutes = models.TextField(_("minutes"), blank=True)
    # Counts saves of the minutes and agenda: two secretaries editing at once cannot overwrite
    # each other silently (the second save is refused as stale).
    version = models.PositiveIntegerField(_("version"), default=0, editable=False)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.PROTECT,
        related_name="meetings_created",
        verbose_name=_("created by"),
    )
    created_at = models.DateTimeField(_("created"), auto_now_add=True)
    updated_at = models.DateTimeField(_("updated"), auto_now=True)

    class Meta:
        ordering = ["-starts_at", "-pk"]
        verbose_name = _("meeting")
        verbose_name_plural = _("meetings")
        indexes = [models.Index(fields=["forum", "starts_at"], name="meeting_forum_starts")]

    def __str__(self) -> str:
        return f"{self.forum} · {self.starts_at:%Y-%m-%d}"
