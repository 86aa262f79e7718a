"""Forums of the four kinds and who sits on them (meetings and agendas come later)."""

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import models
from django.utils.translation import gettext_lazy as _

from units.models import Department, Division, Unit

from .enums import ForumKind, MembershipRole


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

    class Meta:
        verbose_name = _("membership")
        verbose_name_plural = _("memberships")
        constraints = [
            models.UniqueConstraint(fields=["forum", "user"], name="membership_unique_forum_user")
        ]

    def __str__(self) -> str:
        return f"{self.user} – {self.get_role_display()} – {self.forum}"
