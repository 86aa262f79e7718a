"""Board voting on scale-up: a round per initiative (deadline, quorum), one vote per member.

The board's chair opens a round (:func:`voting_round_open`), which takes the table's
``open_vote`` step; each member casts a vote and may change it while the round is open
(:func:`vote_cast`); the round closes at its deadline (the beat task calls
:func:`voting_rounds_close_due`), when every member has voted, or when the chair closes it
early (:func:`voting_round_close`). Closing records the counts, whether the quorum was met and
the outcome, and moves the initiative by the step the outcome names — approved for scale-up,
rejected, or back to the board when it was tied or short of quorum — whose activity is the
round's ``decision``. A closed round stays closed; a new round is a new row, opened again
from referred-to-the-board.

Concurrency: every write to a round's votes or status first locks the round's row
(``SELECT … FOR UPDATE``), so casting and closing take turns: the tally read when a round
closes is exactly its vote rows, and no vote is written after it. One vote per member per
round is the database's unique constraint; a cast updates the member's row or inserts it in
a savepoint, and an insert that lost a race anyway (SQLite has no row locks) becomes the
update. The status goes from open to closed by a conditional UPDATE whose row count is
checked, so two closers record one result.

Refusals are ``ValidationError``s with a code (``initiatives/services.py``): ``not_permitted``
→ 403, ``conflict`` (the round is closed, or its deadline has passed) → 409, others → 400.
"""

from __future__ import annotations

import logging
from datetime import datetime

from django.contrib.auth.models import AbstractBaseUser
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.db.models import Count, QuerySet
from django.utils import timezone
from django.utils.translation import gettext as _

from forums.enums import ForumKind
from forums.models import Meeting, Membership
from units.models import Affiliation

from .enums import RoundOutcome, RoundStatus, VoteChoice
from .models import Initiative, Vote, VotingRound
from .notifications import notify_vote_opened
from .rules import can_open_round, closes_rounds_of
from .services import initiative_transition
from .workflow import BY_NAME

logger = logging.getLogger(__name__)

#: The name the voting steps of the table give as their ``via``.
VIA = "voting"
#: The step the table takes when a round closes with each outcome.
STEP_FOR_OUTCOME = {
    RoundOutcome.APPROVED: "approve_scale_up",
    RoundOutcome.REJECTED: "reject_scale_up",
    RoundOutcome.TIED: "voting_inconclusive",
    RoundOutcome.NO_QUORUM: "voting_inconclusive",
}
#: The longest comment kept with a vote or a round.
MAX_COMMENT = 4000


def _refuse(message: str, code: str, field: str | None = None) -> ValidationError:
    error = ValidationError(message, code=code)
    return ValidationError({field: error}) if field else error


def board_members(forum_id: int) -> QuerySet[Membership]:
    """Who may vote in a round of this board: its active members, in any role."""
    return Membership.objects.filter(forum_id=forum_id, user__is_active=True)


def has_interest(user: AbstractBaseUser, initiative: Initiative) -> bool:
    """The voter belongs to the initiative's department: sits in its coordinating group or
    works in one of its units (flagged on the vote, whatever they declare)."""
    department_id = initiative.department_id
    if not department_id:
        return False
    in_group = Membership.objects.filter(
        user=user, forum__kind=ForumKind.DEPARTMENT_GROUP, forum__department_id=department_id
    ).exists()
    return (
        in_group
        or Affiliation.objects.filter(user=user, unit__department_id=department_id).exists()
    )


def _clean_comment(comment: str) -> str:
    comment = (comment or "").replace("\x00", "").strip()  # PostgreSQL refuses NUL in text
    if len(comment) > MAX_COMMENT:
        raise _refuse(
            _("A comment may be at most %(n)s characters.") % {"n": MAX_COMMENT},
            "comment_too_long",
            "comment",
        )
    return comment


@transaction.atomic
def voting_round_open(
    *,
    user: AbstractBaseUser,
    initiative: Initiative,
    deadline: datetime,
    quorum: int,
    comment: str = "",
    meeting: Meeting | None = None,
) -> VotingRound:
    """Open a round on ``initiative`` and take the table's ``open_vote`` step, together.

    For the chair of the board the initiative sits at (or an admin), from the states the
    table opens a vote from. The deadline lies in the future; the quorum (how many members
    must vote, abstaining counts) is between 1 and the number of members now.
    ``initiative`` is updated in place.
    """
    if not can_open_round(user, initiative):
        step = BY_NAME["open_vote"]
        if initiative.forum.kind not in step.at:
            raise _refuse(
                _("A vote is held by the division board: the initiative sits elsewhere."),
                "not_here",
            )
        if initiative.state not in step.sources:
            raise _refuse(
                _("A vote can be opened only on an initiative referred to the board."),
                "not_from_state",
            )
        raise _refuse(_("Only the board's chair opens a vote."), "not_permitted")
    comment = _clean_comment(comment)
    if not isinstance(deadline, datetime) or timezone.is_naive(deadline):
        raise _refuse(_("Give the deadline as a date and time."), "bad_deadline", "deadline")
    if deadline <= timezone.now():
        raise _refuse(_("The deadline must lie in the future."), "bad_deadline", "deadline")
    eligible = board_members(initiative.forum_id).count()
    if eligible == 0:
        raise _refuse(_("The board has no members to vote."), "no_members")
    if isinstance(quorum, bool) or not isinstance(quorum, int) or not 1 <= quorum <= eligible:
        raise _refuse(
            _("The quorum is between 1 and the board's %(n)s members.") % {"n": eligible},
            "bad_quorum",
            "quorum",
        )
    board_id = initiative.forum_id
    activity = initiative_transition(
        initiative=initiative,
        user=user,
        transition="open_vote",
        comment=comment,
        meeting=meeting,
        via=VIA,
    )
    try:
        with transaction.atomic():
            voting_round = VotingRound.objects.create(
                initiative=initiative,
                forum_id=board_id,
                opened_by=user,
                opened_at=activity.at,
                deadline=deadline,
                quorum=quorum,
                eligible=eligible,
            )
    except IntegrityError as exc:  # the one-open-round constraint; the step above rules it out
        raise _refuse(_("A vote on this initiative is open already."), "conflict") from exc
    notify_vote_opened(voting_round)  # the board's members, in this transaction
    return voting_round


def _locked(voting_round: VotingRound) -> VotingRound:
    """The round's row, locked until the transaction ends (casting and closing take turns)."""
    return VotingRound.objects.select_for_update().get(pk=voting_round.pk)


def _everyone_has_voted(locked: VotingRound) -> bool:
    return not board_members(locked.forum_id).exclude(user__votes__round=locked).exists()


def vote_cast(
    *,
    user: AbstractBaseUser,
    round: VotingRound,
    choice: str,
    comment: str = "",
    interest_declared: bool = False,
) -> Vote:
    """Cast ``user``'s vote in the round, or change it; returns the vote.

    For members of the round's board, while it is open and before its deadline. The vote is
    flagged with an interest when the voter belongs to the initiative's department, whatever
    they declare. When every member has voted the round closes (by the system) in the same
    transaction. Safe however often and however concurrently it is called: one row per
    member per round, the last call's choice.
    """
    if choice not in VoteChoice.values:
        raise _refuse(_("Choose approve, reject or abstain."), "bad_choice", "choice")
    comment = _clean_comment(comment)
    with transaction.atomic():
        locked = _locked(round)
        if not board_members(locked.forum_id).filter(user_id=user.pk).exists():
            raise _refuse(_("Only members of the board vote in its rounds."), "not_permitted")
        if locked.status != RoundStatus.OPEN:
            raise _refuse(_("The vote has closed: no more votes."), "conflict")
        if locked.deadline <= timezone.now():
            raise _refuse(_("The deadline has passed: the vote is closing."), "conflict")
        fields = {
            "choice": choice,
            "comment": comment,
            "interest_declared": bool(interest_declared),
            "interest_flagged": has_interest(user, locked.initiative),
        }
        mine = Vote.objects.filter(round=locked, voter_id=user.pk)
        if not mine.update(**fields, updated_at=timezone.now()):
            try:
                with transaction.atomic():
                    Vote.objects.create(round=locked, voter_id=user.pk, **fields)
            except IntegrityError:
                # Inserted meanwhile by a call not serialised by the lock (SQLite): change it.
                mine.update(**fields, updated_at=timezone.now())
        vote = mine.get()
        if _everyone_has_voted(locked):
            _close(locked, user=None, comment="", meeting=None)
    round.refresh_from_db()
    return vote


def voting_round_close(
    *,
    round: VotingRound,
    user: AbstractBaseUser | None = None,
    comment: str = "",
    meeting: Meeting | None = None,
) -> VotingRound:
    """Close the round: count its votes, record the result, move the initiative.

    ``user`` None is the system, which closes a round only at its deadline or once every
    member has voted; a person closing early is the board's chair (or an admin). A round
    closed already is refused (``conflict``): however many close it at once, one result is
    recorded. ``round`` is updated in place.
    """
    comment = _clean_comment(comment)
    with transaction.atomic():
        locked = _locked(round)
        if user is not None and not closes_rounds_of(user, locked):
            raise _refuse(_("Only the board's chair closes a vote early."), "not_permitted")
        if locked.status != RoundStatus.OPEN:
            raise _refuse(_("The vote has closed already."), "conflict")
        if user is None and locked.deadline > timezone.now() and not _everyone_has_voted(locked):
            raise _refuse(
                _("The vote closes by itself at its deadline or once everyone has voted."),
                "not_due",
            )
        _close(locked, user=user, comment=comment, meeting=meeting)
    round.refresh_from_db()
    return round


def _outcome(approve: int, reject: int, quorum_met: bool) -> RoundOutcome:
    if not quorum_met:
        return RoundOutcome.NO_QUORUM
    if approve > reject:
        return RoundOutcome.APPROVED
    if reject > approve:
        return RoundOutcome.REJECTED
    return RoundOutcome.TIED


def _close(
    locked: VotingRound,
    *,
    user: AbstractBaseUser | None,
    comment: str,
    meeting: Meeting | None,
) -> None:
    """Record the result and take the outcome's step; the round's row is locked by us."""
    counts = dict(
        Vote.objects.filter(round=locked)
        .order_by()
        .values_list("choice")
        .annotate(n=Count("pk"))
        .values_list("choice", "n")
    )
    approve = counts.get(VoteChoice.APPROVE, 0)
    reject = counts.get(VoteChoice.REJECT, 0)
    abstain = counts.get(VoteChoice.ABSTAIN, 0)
    cast = approve + reject + abstain
    quorum_met = cast >= locked.quorum
    outcome = _outcome(approve, reject, quorum_met)
    now = timezone.now()
    closed = VotingRound.objects.filter(pk=locked.pk, status=RoundStatus.OPEN).update(
        status=RoundStatus.CLOSED,
        closed_at=now,
        closed_by=user,
        approve_count=approve,
        reject_count=reject,
        abstain_count=abstain,
        quorum_met=quorum_met,
        outcome=outcome,
    )
    if closed != 1:
        raise _refuse(_("The vote has closed already."), "conflict")
    summary = _(
        "Vote closed: %(approve)s approve, %(reject)s reject, %(abstain)s abstain; "
        "%(cast)s of %(eligible)s members voted, quorum %(quorum)s %(met)s. Outcome: %(outcome)s."
    ) % {
        "approve": approve,
        "reject": reject,
        "abstain": abstain,
        "cast": cast,
        "eligible": locked.eligible,
        "quorum": locked.quorum,
        "met": _("met") if quorum_met else _("not met"),
        "outcome": str(outcome.label).lower(),
    }
    initiative = Initiative.objects.select_related("forum").get(pk=locked.initiative_id)
    activity = initiative_transition(
        initiative=initiative,
        user=user,
        transition=STEP_FOR_OUTCOME[outcome],
        comment=f"{summary} {comment}".strip(),
        meeting=meeting,
        via=VIA,
    )
    VotingRound.objects.filter(pk=locked.pk).update(decision=activity)


def voting_rounds_close_due() -> int:
    """Close every open round whose deadline has passed (the beat task); how many it closed.

    Idempotent: a round closed meanwhile (by its chair, the last vote, another beat) is
    skipped; a round that cannot close is logged and tried again next time.
    """
    closed = 0
    due = VotingRound.objects.filter(status=RoundStatus.OPEN, deadline__lte=timezone.now())
    for voting_round in due.order_by("deadline", "pk"):
        try:
            voting_round_close(round=voting_round, user=None)
        except ValidationError as error:
            still_open = VotingRound.objects.filter(pk=voting_round.pk, status=RoundStatus.OPEN)
            if still_open.exists():
                logger.warning("Voting round %s did not close: %s", voting_round.pk, error)
            continue
        closed += 1
    return closed
