"""Reads of voting rounds, for the pages, the panel and the API.

Ballots are secret while a round is open: :func:`round_view` gives who has voted and the
reader's own vote, and every member's vote (choice, comment, interest) only once it has
closed.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from django.db.models import Count, Exists, OuterRef, QuerySet
from django.utils import timezone

from .enums import RoundStatus
from .models import Initiative, Vote, VotingRound
from .rules import can_close_round, can_see_ballots, can_vote, is_active_user


def visible_rounds(user) -> QuerySet[VotingRound]:
    """The rounds ``user`` may see: the division works openly (as its initiatives), so every
    active member of staff sees every round; nobody else any. Fetch rounds through this."""
    if not is_active_user(user):
        return VotingRound.objects.none()
    return VotingRound.objects.select_related(
        "initiative", "initiative__forum", "forum", "opened_by", "closed_by", "decision"
    )


def open_rounds_for_member(user) -> QuerySet[VotingRound]:
    """Open rounds of the boards ``user`` sits on (an admin: all), soonest deadline first,
    each with ``votes_cast`` and ``has_voted`` (whether ``user`` has)."""
    rounds = visible_rounds(user).filter(status=RoundStatus.OPEN)
    if not user.is_superuser:
        rounds = rounds.filter(forum__memberships__user=user)
    return rounds.annotate(
        votes_cast=Count("votes", distinct=True),
        has_voted=Exists(Vote.objects.filter(round=OuterRef("pk"), voter_id=user.pk)),
    ).order_by("deadline", "pk")


def initiative_rounds(initiative: Initiative) -> list[VotingRound]:
    """The initiative's rounds, the latest first (at most one of them open)."""
    rounds = list(
        VotingRound.objects.filter(initiative=initiative)
        .select_related("forum", "opened_by", "closed_by", "decision")
        .order_by("-opened_at", "-pk")
    )
    for voting_round in rounds:
        voting_round.initiative = initiative
    return rounds


def votes_visible_to(user, voting_round: VotingRound) -> QuerySet[Vote]:
    """The votes of the round ``user`` may read: all once it has closed, else only their own."""
    votes = Vote.objects.filter(round=voting_round).select_related("voter")
    if can_see_ballots(user, voting_round):
        return votes.order_by("voter__last_name", "voter__first_name", "voter__username")
    return votes.filter(voter_id=user.pk) if is_active_user(user) else votes.none()


def _name(user) -> str:
    return user.get_full_name() or user.get_username()


@dataclass
class RoundView:
    """What a page shows of one round to one reader."""

    round: VotingRound
    voters: list[str]  # who has voted (names), never how while it is open
    mine: Vote | None
    can_vote: bool
    can_close: bool
    ballots: list[Vote] = field(default_factory=list)  # every vote, once it has closed
    interests: int = 0  # votes with an interest declared or flagged (after closing)

    @property
    def is_open(self) -> bool:
        return self.round.status == RoundStatus.OPEN

    @property
    def deadline_passed(self) -> bool:
        return self.round.deadline <= timezone.now()

    @property
    def cast(self) -> int:
        return len(self.voters)

    @property
    def missing(self) -> int:
        return max(self.round.eligible - self.cast, 0)


def round_view(user, voting_round: VotingRound) -> RoundView:
    """The round as ``user`` sees it (three or four queries)."""
    votes = list(
        Vote.objects.filter(round=voting_round)
        .select_related("voter")
        .order_by("voter__last_name", "voter__first_name", "voter__username")
    )
    mine = next((vote for vote in votes if vote.voter_id == user.pk), None)
    view = RoundView(
        round=voting_round,
        voters=[_name(vote.voter) for vote in votes],
        mine=mine,
        can_vote=can_vote(user, voting_round),
        can_close=can_close_round(user, voting_round),
    )
    if can_see_ballots(user, voting_round):
        for vote in votes:
            vote.voter_name = _name(vote.voter)
        view.ballots = votes
        view.interests = sum(1 for v in votes if v.interest_declared or v.interest_flagged)
    return view
