from django.db import models
from django.utils.translation import gettext_lazy as _


class ForumKind(models.TextChoices):
    UNIT_FORUM = "unit_forum", _("Unit data-analysis forum")
    DEPARTMENT_GROUP = "department_group", _("Department coordinating group")
    SUPPORT_UNIT = "support_unit", _("Support unit")
    DIVISION_BOARD = "division_board", _("Division board")


class MembershipRole(models.TextChoices):
    CHAIR = "chair", _("Chair")
    SECRETARY = "secretary", _("Secretary")
    MEMBER = "member", _("Member")


class EmailFrequency(models.TextChoices):
    """How often a member gets e-mail about a forum's business (in-app notices come always)."""

    DAILY = "daily", _("One digest a day")
    IMMEDIATE = "immediate", _("Every notice as it happens")
    NEVER = "never", _("No e-mail")
