"""Votes and a closing round at the same moment, with real threads on real connections.

Meant for PostgreSQL (CI runs it there; locally ``DATABASE_URL=postgres://…``), where the
casts and the close race on the round's row lock and the unique constraint. On SQLite every
write transaction is serialised by the database file's lock (``transaction_mode IMMEDIATE``),
so the same tests pass there without saying much about row locks: they skip.
"""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.core.exceptions import ValidationError
from django.db import connection
from django.utils import timezone

from forums.enums import MembershipRole
from forums.models import Membership
from initiatives.enums import RoundStatus, State
from initiatives.models import Activity, Vote, VotingRound
from initiatives.services import initiative_transition
from initiatives.voting import vote_cast, voting_round_close, voting_round_open
from tests.concurrency import together
from tests.factories import UserFactory

from .conftest import log
from .helpers import codes_of

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(
        connection.vendor != "postgresql",
        reason="row locks and concurrent inserts need PostgreSQL (CI runs these there)",
    ),
]


def _together(calls, timeout: float = 60) -> list[object]:
    return together(calls, timeout=timeout)


def _open_round(wf, *, quorum: int = 1) -> VotingRound:
    idea = log(wf, "unit")
    for name in ("escalate", "prioritise", "refer_to_board"):
        initiative_transition(
            initiative=idea, user=wf.people["admin"], transition=name, comment="On."
        )
    return voting_round_open(
        user=wf.people["board_chair"],
        initiative=idea,
        deadline=timezone.now() + timedelta(days=2),
        quorum=quorum,
    )


def test_fifty_simultaneous_casts_by_one_member_leave_one_vote(wf):
    voting_round = _open_round(wf)
    member = wf.people["board"]
    choices = ["approve", "reject", "abstain"]

    def cast(i):
        return lambda: vote_cast(
            user=member,
            round=VotingRound.objects.get(pk=voting_round.pk),
            choice=choices[i % 3],
            comment=f"click {i}",
        )

    results = _together([cast(i) for i in range(50)])
    errors = [r for r in results if not isinstance(r, Vote)]
    assert errors == [], errors[:3]
    rows = list(Vote.objects.filter(round=voting_round))
    assert len(rows) == 1
    assert {r.pk for r in results} == {rows[0].pk}
    # The row holds one of the calls whole (choice and comment from the same click).
    i = int(rows[0].comment.split()[1])
    assert rows[0].choice == choices[i % 3]
    voting_round.refresh_from_db()
    assert voting_round.status == RoundStatus.OPEN


def test_twenty_members_voting_while_the_chair_closes_leave_a_tally_equal_to_the_rows(wf):
    voting_round = _open_round(wf)
    voters = [UserFactory(username=f"board-member-{i}") for i in range(20)]
    Membership.objects.bulk_create(
        Membership(forum=wf.forums["board"], user=user, role=MembershipRole.MEMBER)
        for user in voters
    )
    choices = ["approve", "reject", "abstain"]

    def cast(i, user):
        return lambda: vote_cast(
            user=user,
            round=VotingRound.objects.get(pk=voting_round.pk),
            choice=choices[i % 3],
        )

    calls = [cast(i, user) for i, user in enumerate(voters)]
    chair = wf.people["board_chair"]
    # The close goes in the middle, so some casts come before it and some after.
    calls.insert(
        10,
        lambda: voting_round_close(round=VotingRound.objects.get(pk=voting_round.pk), user=chair),
    )
    results = _together(calls)
    closing = results.pop(10)
    assert isinstance(closing, VotingRound), closing
    counted, refused = set(), set()
    for user, result in zip(voters, results, strict=True):
        if isinstance(result, Vote):
            counted.add(user.pk)
        else:
            assert isinstance(result, ValidationError), result
            assert codes_of(result) == {"conflict"}, result
            refused.add(user.pk)
    voting_round.refresh_from_db()
    assert voting_round.status == RoundStatus.CLOSED
    rows = Vote.objects.filter(round=voting_round)
    # Every cast that was accepted is counted; none that was refused left a row.
    assert set(rows.values_list("voter_id", flat=True)) == counted
    tally = voting_round.approve_count + voting_round.reject_count + voting_round.abstain_count
    assert tally == rows.count() == len(counted)
    for choice, field in [
        ("approve", "approve_count"),
        ("reject", "reject_count"),
        ("abstain", "abstain_count"),
    ]:
        assert rows.filter(choice=choice).count() == getattr(voting_round, field)
    # One result recorded, one step taken.
    decisions = Activity.objects.filter(
        initiative_id=voting_round.initiative_id,
        transition__in=["approve_scale_up", "reject_scale_up", "voting_inconclusive"],
    )
    assert decisions.count() == 1 and voting_round.decision_id == decisions.get().pk
    assert voting_round.initiative.state != State.VOTING


def test_the_chair_and_the_beat_closing_at_once_record_one_result(wf):
    voting_round = _open_round(wf)
    vote_cast(user=wf.people["board"], round=voting_round, choice="approve")
    VotingRound.objects.filter(pk=voting_round.pk).update(
        deadline=timezone.now() - timedelta(seconds=1)
    )
    chair = wf.people["board_chair"]

    def close(user):
        return lambda: voting_round_close(
            round=VotingRound.objects.get(pk=voting_round.pk), user=user
        )

    results = _together([close(chair), close(None), close(chair), close(None)])
    closed = [r for r in results if isinstance(r, VotingRound)]
    refused = [r for r in results if isinstance(r, ValidationError)]
    assert len(closed) == 1 and len(refused) == 3, results
    assert all(codes_of(r) == {"conflict"} for r in refused)
    assert (
        Activity.objects.filter(
            initiative_id=voting_round.initiative_id, transition="approve_scale_up"
        ).count()
        == 1
    )


def test_twenty_simultaneous_api_posts_by_one_member_answer_200_and_leave_one_vote(wf):
    """Two tabs, a double click, a retrying client: every post is answered, none with a 500."""
    from rest_framework.test import APIClient

    voting_round = _open_round(wf)
    member = wf.people["board"]

    def post(i):
        def call():
            client = APIClient()
            client.force_authenticate(member)
            return client.post(
                f"/api/voting-rounds/{voting_round.pk}/votes/",
                {"choice": ["approve", "reject"][i % 2]},
                format="json",
            ).status_code

        return call

    assert _together([post(i) for i in range(20)]) == [200] * 20
    assert Vote.objects.filter(round=voting_round).count() == 1
