from django.db import models
from django.utils.translation import gettext_lazy as _


class InitiativeKind(models.TextChoices):
    IDEA = "idea", _("Idea")
    NEED = "need", _("Need")
    INNOVATION = "innovation", _("Innovation")


class OriginKind(models.TextChoices):
    """Where an initiative comes from: one of our units, or a source outside the division."""

    UNIT = "unit", _("A unit")
    LITERATURE = "literature", _("Literature")
    NATIONAL_GUIDELINE = "national_guideline", _("National guideline")
    OTHER_HOSPITAL = "other_hospital", _("Other hospital")
    VENDOR = "vendor", _("Vendor")


class Effort(models.TextChoices):
    SMALL = "small", _("Small")
    MEDIUM = "medium", _("Medium")
    LARGE = "large", _("Large")


class State(models.TextChoices):
    """The states of the workflow; which moves lead between them is ``workflow.TRANSITIONS``."""

    LOGGED = "logged", _("Logged")
    LOCAL_TESTING = "local_testing", _("Local testing")
    ADOPTED_LOCALLY = "adopted_locally", _("Adopted locally")
    ESCALATED_TO_DEPARTMENT = "escalated_to_department", _("Escalated to the department")
    PRIORITISED = "prioritised", _("Prioritised by the department")
    SPREAD_IN_DEPARTMENT = "spread_in_department", _("Spread in the department")
    REFERRED_TO_BOARD = "referred_to_board", _("Referred to the division board")
    VOTING = "voting", _("Voting")
    APPROVED_FOR_SCALE_UP = "approved_for_scale_up", _("Approved for scale-up")
    SCALING_UP = "scaling_up", _("Scaling up")
    SPREAD_COMPLETE = "spread_complete", _("Spread complete")
    REJECTED = "rejected", _("Rejected")
    RETURNED_FOR_MORE_WORK = "returned_for_more_work", _("Returned for more work")
    WITHDRAWN = "withdrawn", _("Withdrawn")


class SupportKind(models.TextChoices):
    DATA = "data", _("Data")
    IT = "it", _("IT")
    IMPROVEMENT_SCIENCE = "improvement_science", _("Improvement science")


class SupportState(models.TextChoices):
    OPEN = "open", _("Open")
    TAKEN = "taken", _("Taken")
    DONE = "done", _("Done")


class RoundStatus(models.TextChoices):
    OPEN = "open", _("Open")
    CLOSED = "closed", _("Closed")


class VoteChoice(models.TextChoices):
    APPROVE = "approve", _("Approve")
    REJECT = "reject", _("Reject")
    ABSTAIN = "abstain", _("Abstain")


class RoundOutcome(models.TextChoices):
    APPROVED = "approved", _("Approved")
    REJECTED = "rejected", _("Rejected")
    TIED = "tied", _("Tied")
    NO_QUORUM = "no_quorum", _("No quorum")


class AdoptionState(models.TextChoices):
    PLANNED = "planned", _("Planned")
    STARTED = "started", _("Started")
    ADOPTED = "adopted", _("Adopted")
    DECLINED = "declined", _("Declined")


class NotificationKind(models.TextChoices):
    ARRIVED = "arrived", _("An initiative reached your forum")
    VOTE_OPENED = "vote_opened", _("A vote opened")
    VOTE_CLOSING = "vote_closing", _("A vote is about to close")
    DECISION = "decision", _("A decision was made")
    SUPPORT_ANSWERED = "support_answered", _("A support request was answered")
    SUPPORT_REQUESTED = "support_requested", _("A support request came in")
