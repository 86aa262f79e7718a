"""Initiatives (ideas, needs, innovations) and everything done with them.

The activity log, PDSA cycles, attachments, support requests, agenda items of forum meetings,
prioritisation (criteria and scores), board voting (rounds and votes), scale-up (plans and
per-unit adoptions) and in-app notifications.

Every write goes through ``services.py``; the states and the moves between them are the table
in ``workflow.py``.
"""

from django.conf import settings
from django.db import models
from django.db.models import F, Q
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from forums.enums import EmailFrequency
from forums.models import Forum, Meeting
from measures.models import Measure
from units.models import Department, Unit

from .enums import (
    AdoptionState,
    Effort,
    InitiativeKind,
    NotificationKind,
    OriginKind,
    RoundOutcome,
    RoundStatus,
    State,
    SupportKind,
    SupportState,
    VoteChoice,
)


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
    # Empty for a step the system takes (a voting round closing at its deadline).
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
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
    # The meeting the decision was taken in (its minutes say more).
    meeting = models.ForeignKey(
        Meeting,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="decisions",
        verbose_name=_("meeting"),
    )

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


def _attachment_path(instance: "Attachment", filename: str) -> str:
    # The stored name is ours (a random one), never the uploader's: the original is kept in
    # ``original_name`` and given back only in the download's Content-Disposition.
    import uuid

    return f"attachments/{instance.initiative_id}/{uuid.uuid4().hex}"


class Attachment(models.Model):
    """A file attached to an initiative, kept outside the web root and served as a download."""

    initiative = models.ForeignKey(
        Initiative,
        on_delete=models.CASCADE,
        related_name="attachments",
        verbose_name=_("initiative"),
    )
    file = models.FileField(_("file"), upload_to=_attachment_path, max_length=300)
    original_name = models.CharField(_("name"), max_length=255)
    content_type = models.CharField(_("type"), max_length=100)
    size = models.PositiveBigIntegerField(_("size"))
    sha256 = models.CharField(_("checksum"), max_length=64)
    uploaded_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.PROTECT,
        related_name="initiative_attachments",
        verbose_name=_("uploaded by"),
    )
    uploaded_at = models.DateTimeField(_("uploaded"), auto_now_add=True)

    class Meta:
        ordering = ["uploaded_at", "pk"]
        verbose_name = _("attachment")
        verbose_name_plural = _("attachments")

    def __str__(self) -> str:
        return self.original_name


class SupportRequest(models.Model):
    """A request for help from the support unit, attached to an initiative at any stage."""

    initiative = models.ForeignKey(
        Initiative,
        on_delete=models.CASCADE,
        related_name="support_requests",
        verbose_name=_("initiative"),
    )
    support_forum = models.ForeignKey(
        Forum,
        on_delete=models.PROTECT,
        related_name="support_requests",
        verbose_name=_("support unit"),
    )
    kind = models.CharField(_("help with"), max_length=24, choices=SupportKind.choices)
    description = models.TextField(_("what is needed"))
    state = models.CharField(
        _("state"), max_length=8, choices=SupportState.choices, default=SupportState.OPEN
    )
    # Counts the state changes, for the same conditional UPDATE as an initiative's.
    version = models.PositiveIntegerField(_("version"), default=0, editable=False)
    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.PROTECT,
        related_name="support_requests_made",
        verbose_name=_("requested by"),
    )
    requested_at = models.DateTimeField(_("requested"), auto_now_add=True)
    taken_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="support_requests_taken",
        verbose_name=_("taken by"),
    )
    taken_at = models.DateTimeField(_("taken"), null=True, blank=True)
    answer = models.TextField(_("answer"), blank=True)
    done_at = models.DateTimeField(_("done"), null=True, blank=True)

    class Meta:
        ordering = ["-requested_at", "-pk"]
        verbose_name = _("support request")
        verbose_name_plural = _("support requests")
        indexes = [models.Index(fields=["state", "requested_at"], name="support_state_requested")]

    def __str__(self) -> str:
        return f"{self.initiative} · {self.get_kind_display()}"


class AgendaItem(models.Model):
    """One item of a forum meeting's agenda, in the order the chair gives it.

    Proposed from what waits for the forum (an initiative sent to it, a round closing, an
    adoption due, a measure that signalled) or written by the chair; the notes record what
    was said and decided under it.
    """

    meeting = models.ForeignKey(
        Meeting, on_delete=models.CASCADE, related_name="agenda_items", verbose_name=_("meeting")
    )
    position = models.PositiveIntegerField(_("position"), default=0)
    title = models.CharField(_("item"), max_length=300)
    # Why it was proposed (the code the agenda module uses): empty for an item added by hand.
    reason = models.CharField(_("reason"), max_length=32, blank=True)
    initiative = models.ForeignKey(
        Initiative,
        on_delete=models.CASCADE,
        null=True,
        blank=True,
        related_name="agenda_items",
        verbose_name=_("initiative"),
    )
    measure = models.ForeignKey(
        Measure,
        on_delete=models.CASCADE,
        null=True,
        blank=True,
        related_name="agenda_items",
        verbose_name=_("measure"),
    )
    notes = models.TextField(_("notes"), blank=True)

    class Meta:
        ordering = ["meeting", "position", "pk"]
        verbose_name = _("agenda item")
        verbose_name_plural = _("agenda items")

    def __str__(self) -> str:
        return self.title


class Criterion(models.Model):
    """A criterion a forum scores initiatives on (impact, evidence, effort, reach, alignment…)."""

    forum = models.ForeignKey(
        Forum, on_delete=models.CASCADE, related_name="criteria", verbose_name=_("forum")
    )
    name = models.CharField(_("name"), max_length=100)
    description = models.CharField(_("description"), max_length=300, blank=True)
    weight = models.DecimalField(_("weight"), max_digits=5, decimal_places=2, default=1)
    # Effort is scored so that more effort counts against an initiative.
    higher_is_better = models.BooleanField(_("higher is better"), default=True)
    position = models.PositiveIntegerField(_("position"), default=0)
    active = models.BooleanField(_("active"), default=True)

    class Meta:
        ordering = ["forum", "position", "pk"]
        verbose_name = _("criterion")
        verbose_name_plural = _("criteria")
        constraints = [
            models.UniqueConstraint(fields=["forum", "name"], name="criterion_unique_forum_name"),
            models.CheckConstraint(
                condition=Q(weight__gte=0), name="criterion_weight_not_negative"
            ),
        ]

    def __str__(self) -> str:
        return self.name


class Score(models.Model):
    """One member's score of one initiative on one of their forum's criteria (1–5)."""

    initiative = models.ForeignKey(
        Initiative, on_delete=models.CASCADE, related_name="scores", verbose_name=_("initiative")
    )
    criterion = models.ForeignKey(
        Criterion, on_delete=models.CASCADE, related_name="scores", verbose_name=_("criterion")
    )
    member = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.CASCADE,
        related_name="initiative_scores",
        verbose_name=_("member"),
    )
    value = models.PositiveSmallIntegerField(_("score"))
    updated_at = models.DateTimeField(_("updated"), auto_now=True)

    class Meta:
        verbose_name = _("score")
        verbose_name_plural = _("scores")
        constraints = [
            models.UniqueConstraint(
                fields=["initiative", "criterion", "member"], name="score_one_per_member"
            ),
            models.CheckConstraint(
                condition=Q(value__gte=1) & Q(value__lte=5), name="score_value_1_to_5"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.initiative} · {self.criterion} · {self.value}"


class VotingRound(models.Model):
    """A division board's vote on scaling an initiative up: deadline, quorum, and the result.

    Opened by the board's chair; closes at its deadline (a beat task) or when every member
    has voted. The counts are written once, when it closes, from the votes' rows.
    """

    initiative = models.ForeignKey(
        Initiative,
        on_delete=models.PROTECT,
        related_name="voting_rounds",
        verbose_name=_("initiative"),
    )
    forum = models.ForeignKey(
        Forum, on_delete=models.PROTECT, related_name="voting_rounds", verbose_name=_("board")
    )
    opened_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.PROTECT,
        related_name="voting_rounds_opened",
        verbose_name=_("opened by"),
    )
    opened_at = models.DateTimeField(_("opened"), default=timezone.now)
    deadline = models.DateTimeField(_("deadline"))
    quorum = models.PositiveIntegerField(
        _("quorum"), help_text=_("How many members must vote (abstaining counts) for a result.")
    )
    status = models.CharField(
        _("status"), max_length=8, choices=RoundStatus.choices, default=RoundStatus.OPEN
    )
    # Who could vote when it opened: the board's members then.
    eligible = models.PositiveIntegerField(_("eligible members"), default=0)
    closed_at = models.DateTimeField(_("closed"), null=True, blank=True)
    # Empty when it closed by itself (deadline reached, or everyone had voted).
    closed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="voting_rounds_closed",
        verbose_name=_("closed by"),
    )
    approve_count = models.PositiveIntegerField(_("approve"), default=0)
    reject_count = models.PositiveIntegerField(_("reject"), default=0)
    abstain_count = models.PositiveIntegerField(_("abstain"), default=0)
    quorum_met = models.BooleanField(_("quorum met"), null=True, blank=True)
    outcome = models.CharField(
        _("outcome"), max_length=16, choices=RoundOutcome.choices, blank=True
    )
    decision = models.OneToOneField(
        Activity,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="voting_round",
        verbose_name=_("decision"),
    )
    # Set when the "about to close" reminder has gone out, so it goes out once.
    reminded_at = models.DateTimeField(_("reminded"), null=True, blank=True)

    class Meta:
        ordering = ["-opened_at", "-pk"]
        verbose_name = _("voting round")
        verbose_name_plural = _("voting rounds")
        indexes = [models.Index(fields=["status", "deadline"], name="round_status_deadline")]
        constraints = [
            models.UniqueConstraint(
                fields=["initiative"],
                condition=Q(status=RoundStatus.OPEN),
                name="round_one_open_per_initiative",
            ),
            models.CheckConstraint(condition=Q(quorum__gte=1), name="round_quorum_positive"),
            models.CheckConstraint(
                condition=Q(status=RoundStatus.OPEN, closed_at__isnull=True)
                | Q(status=RoundStatus.CLOSED, closed_at__isnull=False),
                name="round_closed_iff_closed_at",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.initiative} · {self.opened_at:%Y-%m-%d}"


class Vote(models.Model):
    """A board member's vote in a round; they may change it until the round closes."""

    round = models.ForeignKey(
        VotingRound, on_delete=models.CASCADE, related_name="votes", verbose_name=_("round")
    )
    voter = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.PROTECT,
        related_name="votes",
        verbose_name=_("voter"),
    )
    choice = models.CharField(_("vote"), max_length=8, choices=VoteChoice.choices)
    comment = models.TextField(_("comment"), blank=True)
    interest_declared = models.BooleanField(
        _("interest declared"),
        default=False,
        help_text=_("The voter says they have an interest (e.g. it comes from their department)."),
    )
    # Set by us: the voter belongs to the department the initiative comes from.
    interest_flagged = models.BooleanField(_("interest flagged"), default=False)
    cast_at = models.DateTimeField(_("cast"), auto_now_add=True)
    updated_at = models.DateTimeField(_("changed"), auto_now=True)

    class Meta:
        ordering = ["round", "cast_at", "pk"]
        verbose_name = _("vote")
        verbose_name_plural = _("votes")
        constraints = [
            models.UniqueConstraint(fields=["round", "voter"], name="vote_one_per_member_per_round")
        ]

    def __str__(self) -> str:
        return f"{self.round} · {self.voter} · {self.choice}"


class ScaleUpPlan(models.Model):
    """How an approved initiative is to spread: scope, target units, deadline."""

    initiative = models.OneToOneField(
        Initiative,
        on_delete=models.CASCADE,
        related_name="scale_up_plan",
        verbose_name=_("initiative"),
    )
    scope = models.TextField(_("scope"))
    deadline = models.DateField(_("deadline"))
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.PROTECT,
        related_name="scale_up_plans",
        verbose_name=_("created by"),
    )
    created_at = models.DateTimeField(_("created"), auto_now_add=True)
    updated_at = models.DateTimeField(_("updated"), auto_now=True)

    class Meta:
        verbose_name = _("scale-up plan")
        verbose_name_plural = _("scale-up plans")

    def __str__(self) -> str:
        return f"{self.initiative} · {self.deadline}"


class Adoption(models.Model):
    """One unit's adoption of a spreading initiative, and how the unit adapted it."""

    initiative = models.ForeignKey(
        Initiative, on_delete=models.CASCADE, related_name="adoptions", verbose_name=_("initiative")
    )
    unit = models.ForeignKey(
        Unit, on_delete=models.PROTECT, related_name="adoptions", verbose_name=_("unit")
    )
    state = models.CharField(
        _("state"), max_length=8, choices=AdoptionState.choices, default=AdoptionState.PLANNED
    )
    # Translation, not copying (DESIGN.md §1): what the unit changed to make it fit.
    adaptation = models.TextField(_("how the unit adapted it"), blank=True)
    due_date = models.DateField(_("due"), null=True, blank=True)
    adopted_on = models.DateField(_("adopted on"), null=True, blank=True)
    # Counts the updates: two people saving one unit's adoption at once cannot overwrite each
    # other silently (the second is refused as stale, as for an initiative's version).
    version = models.PositiveIntegerField(_("version"), default=0, editable=False)
    updated_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.PROTECT,
        related_name="adoptions_updated",
        verbose_name=_("updated by"),
    )
    updated_at = models.DateTimeField(_("updated"), auto_now=True)

    class Meta:
        ordering = ["initiative", "unit"]
        verbose_name = _("adoption")
        verbose_name_plural = _("adoptions")
        constraints = [
            models.UniqueConstraint(fields=["initiative", "unit"], name="adoption_unique_unit"),
            models.CheckConstraint(
                condition=~Q(state=AdoptionState.ADOPTED) | Q(adopted_on__isnull=False),
                name="adoption_adopted_has_date",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.initiative} · {self.unit} · {self.state}"


class Notification(models.Model):
    """An in-app notice to one person; e-mailed at once or in the day's digest per forum."""

    recipient = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.CASCADE,
        related_name="notifications",
        verbose_name=_("recipient"),
    )
    kind = models.CharField(_("kind"), max_length=24, choices=NotificationKind.choices)
    # The forum whose business it is (the digest is per forum).
    forum = models.ForeignKey(
        Forum,
        on_delete=models.CASCADE,
        null=True,
        blank=True,
        related_name="notifications",
        verbose_name=_("forum"),
    )
    initiative = models.ForeignKey(
        Initiative,
        on_delete=models.CASCADE,
        null=True,
        blank=True,
        related_name="notifications",
        verbose_name=_("initiative"),
    )
    # Rendered in the reader's language when shown: a message id and its parameters.
    params = models.JSONField(_("details"), default=dict, blank=True)
    url = models.CharField(_("link"), max_length=300, blank=True)
    created_at = models.DateTimeField(_("created"), default=timezone.now)
    read_at = models.DateTimeField(_("read"), null=True, blank=True)
    emailed_at = models.DateTimeField(_("e-mailed"), null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-pk"]
        verbose_name = _("notification")
        verbose_name_plural = _("notifications")
        indexes = [
            models.Index(fields=["recipient", "read_at"], name="notification_unread"),
            models.Index(fields=["emailed_at", "created_at"], name="notification_unsent"),
        ]

    def __str__(self) -> str:
        return f"{self.recipient} · {self.kind}"


class NotificationPreference(models.Model):
    """What one person wants of e-mail beyond their forum memberships' choices.

    A member chooses per forum (``Membership.email_frequency``); notices about a forum one
    does not sit on (a decision on an initiative one logged, the answer to a support request)
    follow ``email_frequency`` here. E-mails are written in ``language`` (empty: the site's),
    which is remembered from the language the person reads the site in.
    """

    user = models.OneToOneField(
        settings.AUTH_USER_MODEL,
        on_delete=models.CASCADE,
        primary_key=True,
        related_name="notification_preference",
        verbose_name=_("user"),
    )
    language = models.CharField(
        _("language of e-mails"), max_length=8, choices=settings.LANGUAGES, blank=True
    )
    email_frequency = models.CharField(
        _("e-mail about other forums"),
        max_length=16,
        choices=EmailFrequency.choices,
        default=EmailFrequency.DAILY,
        help_text=_(
            "For notices from forums you do not sit on: decisions on initiatives you logged, "
            "answers to your support requests."
        ),
    )

    class Meta:
        verbose_name = _("notification preference")
        verbose_name_plural = _("notification preferences")

    def __str__(self) -> str:
        return str(self.user)


class EmailDigest(models.Model):
    """A digest e-mail of one forum's notices to one person on one (local) day.

    The unique constraint is the rule "at most one digest per person, forum and day": the
    worker that inserts the row sends the digest; a second worker (or a retried task) cannot.
    """

    recipient = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.CASCADE,
        related_name="email_digests",
        verbose_name=_("recipient"),
    )
    forum = models.ForeignKey(
        Forum, on_delete=models.CASCADE, related_name="email_digests", verbose_name=_("forum")
    )
    day = models.DateField(_("day"))
    sent_at = models.DateTimeField(_("sent"), default=timezone.now)
    notices = models.PositiveIntegerField(_("notices"), default=0)

    class Meta:
        ordering = ["-day", "-pk"]
        verbose_name = _("e-mail digest")
        verbose_name_plural = _("e-mail digests")
        constraints = [
            models.UniqueConstraint(
                fields=["recipient", "forum", "day"], name="email_digest_one_per_forum_per_day"
            )
        ]

    def __str__(self) -> str:
        return f"{self.recipient} · {self.forum} · {self.day}"
