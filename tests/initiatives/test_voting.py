"""Board voting, through the services: opening, casting, changing, closing, the outcome.

The board of the ``wf`` fixture has four members: ``board_chair`` (chair), ``board_secretary``,
``board`` and ``dept_chair_on_board`` (who chairs department A's group: an interest in
anything from department A).
"""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.conf import settings
from django.core.exceptions import ValidationError
from django.utils import timezone

from initiatives.enums import RoundOutcome, RoundStatus, State
from initiatives.models import Activity, Initiative, Vote, VotingRound
from initiatives.services import initiative_transition
from initiatives.tasks import voting_rounds_close_due_task
from initiatives.voting import (
    vote_cast,
    voting_round_close,
    voting_round_open,
    voting_rounds_close_due,
)
from tests.factories import AffiliationFactory

from .conftest import log
from .helpers import codes_of

MEMBERS = ("board_chair", "board_secretary", "board", "dept_chair_on_board")


def referred(wf) -> Initiative:
    """An idea of unit a1 (department A), escalated, prioritised and referred to the board."""
    idea = log(wf, "unit")
    for name in ("escalate", "prioritise", "refer_to_board"):
        initiative_transition(
            initiative=idea, user=wf.people["admin"], transition=name, comment="On."
        )
    assert idea.state == State.REFERRED_TO_BOARD and idea.forum == wf.forums["board"]
    return idea


def soon(hours: float = 48):
    return timezone.now() + timedelta(hours=hours)


def opened(wf, initiative=None, *, quorum=3, **kw) -> VotingRound:
    initiative = initiative or referred(wf)
    return voting_round_open(
        user=wf.people["board_chair"],
        initiative=initiative,
        deadline=kw.pop("deadline", soon()),
        quorum=quorum,
        **kw,
    )


def cast(wf, voting_round, person, choice, **kw) -> Vote:
    return vote_cast(user=wf.people[person], round=voting_round, choice=choice, **kw)


def refusal(call) -> set[str]:
    with pytest.raises(ValidationError) as error:
        call()
    return codes_of(error.value)


def past_deadline(voting_round):
    VotingRound.objects.filter(pk=voting_round.pk).update(
        deadline=timezone.now() - timedelta(minutes=1)
    )
    voting_round.refresh_from_db()


# --- Opening ---------------------------------------------------------------------------------


def test_opening_a_round_takes_the_open_vote_step_with_it(wf):
    idea = referred(wf)
    deadline = soon()
    voting_round = opened(wf, idea, deadline=deadline, comment="Two weeks.")
    assert (voting_round.status, voting_round.quorum, voting_round.eligible) == ("open", 3, 4)
    assert voting_round.deadline == deadline and voting_round.forum == wf.forums["board"]
    idea = Initiative.objects.get(pk=idea.pk)
    assert idea.state == State.VOTING
    step = Activity.objects.filter(initiative=idea).latest("pk")
    assert (step.transition, step.actor, step.comment) == (
        "open_vote",
        wf.people["board_chair"],
        "Two weeks.",
    )
    assert voting_round.opened_at == step.at
    # A second round cannot be opened while voting.
    assert refusal(lambda: opened(wf, idea)) == {"not_from_state"}
    assert VotingRound.objects.filter(initiative=idea).count() == 1


@pytest.mark.parametrize(
    "person", ["board", "board_secretary", "dept_chair_on_board", "dept_chair", "clinician"]
)
def test_only_the_boards_chair_opens_a_round(wf, person):
    idea = referred(wf)
    codes = refusal(
        lambda: voting_round_open(
            user=wf.people[person], initiative=idea, deadline=soon(), quorum=2
        )
    )
    assert codes == {"not_permitted"}
    assert not VotingRound.objects.exists()
    assert Initiative.objects.get(pk=idea.pk).state == State.REFERRED_TO_BOARD


def test_a_round_is_held_at_the_board_only(wf):
    idea = log(wf, "unit")
    codes = refusal(
        lambda: voting_round_open(
            user=wf.people["admin"], initiative=idea, deadline=soon(), quorum=1
        )
    )
    assert codes == {"not_here"}


@pytest.mark.parametrize(
    ("quorum", "hours", "code"),
    [(0, 48, "bad_quorum"), (5, 48, "bad_quorum"), (2, -1, "bad_deadline"), (2, 0, "bad_deadline")],
)
def test_quorum_and_deadline_are_checked(wf, quorum, hours, code):
    idea = referred(wf)
    assert refusal(lambda: opened(wf, idea, quorum=quorum, deadline=soon(hours))) == {code}
    assert not VotingRound.objects.exists()
    assert Initiative.objects.get(pk=idea.pk).state == State.REFERRED_TO_BOARD


def test_the_quorum_may_be_every_member(wf):
    assert opened(wf, quorum=4).quorum == 4


# --- Casting ---------------------------------------------------------------------------------


def test_a_member_changes_their_vote_until_it_closes(wf):
    voting_round = opened(wf)
    first = cast(wf, voting_round, "board", "approve", comment="Good.")
    second = cast(wf, voting_round, "board", "reject", comment="On reflection, no.")
    assert first.pk == second.pk
    assert Vote.objects.filter(round=voting_round).count() == 1
    vote = Vote.objects.get(round=voting_round)
    assert (vote.choice, vote.comment) == ("reject", "On reflection, no.")
    assert vote.cast_at == first.cast_at and vote.updated_at >= first.updated_at


@pytest.mark.parametrize("person", ["clinician", "dept_chair", "chair", "support", "admin"])
def test_non_members_cannot_vote(wf, person):
    voting_round = opened(wf)
    assert refusal(lambda: cast(wf, voting_round, person, "approve")) == {"not_permitted"}
    assert not Vote.objects.exists()


def test_an_inactive_member_cannot_vote(wf):
    voting_round = opened(wf)
    wf.people["board"].is_active = False
    wf.people["board"].save()
    assert refusal(lambda: cast(wf, voting_round, "board", "approve")) == {"not_permitted"}


def test_a_choice_outside_the_three_is_refused(wf):
    voting_round = opened(wf)
    assert refusal(lambda: cast(wf, voting_round, "board", "maybe")) == {"bad_choice"}
    assert not Vote.objects.exists()


def test_nobody_votes_after_the_deadline_even_before_the_round_closes(wf):
    voting_round = opened(wf)
    cast(wf, voting_round, "board", "approve")
    past_deadline(voting_round)
    assert refusal(lambda: cast(wf, voting_round, "board", "reject")) == {"conflict"}
    assert refusal(lambda: cast(wf, voting_round, "board_secretary", "approve")) == {"conflict"}
    assert list(Vote.objects.values_list("choice", flat=True)) == ["approve"]


def test_nobody_votes_in_a_closed_round(wf):
    voting_round = opened(wf)
    cast(wf, voting_round, "board", "approve")
    voting_round_close(round=voting_round, user=wf.people["board_chair"])
    for person in ("board", "board_secretary"):
        assert refusal(lambda p=person: cast(wf, voting_round, p, "reject")) == {"conflict"}
    assert list(Vote.objects.values_list("choice", flat=True)) == ["approve"]


def test_interest_is_flagged_for_the_department_and_declared_by_anyone(wf):
    voting_round = opened(wf)
    # Chairs department A's group: flagged, though not declared.
    assert cast(wf, voting_round, "dept_chair_on_board", "approve").interest_flagged
    # Works in a unit of department A.
    AffiliationFactory(user=wf.people["board_secretary"], unit=wf.a2)
    assert cast(wf, voting_round, "board_secretary", "approve").interest_flagged
    plain = cast(wf, voting_round, "board", "abstain", interest_declared=True)
    assert plain.interest_declared and not plain.interest_flagged
    # Department B is another department.
    AffiliationFactory(user=wf.people["board_chair"], unit=wf.b1)
    assert not cast(wf, voting_round, "board_chair", "approve").interest_flagged


def test_an_external_innovation_at_the_board_flags_nobody(wf):
    voting_round = opened(wf, log(wf, "board"))
    assert not cast(wf, voting_round, "dept_chair_on_board", "approve").interest_flagged


# --- Closing and the outcome -----------------------------------------------------------------


def _result(voting_round):
    voting_round.refresh_from_db()
    return (
        voting_round.approve_count,
        voting_round.reject_count,
        voting_round.abstain_count,
        voting_round.quorum_met,
        voting_round.outcome,
    )


def test_the_chair_closes_early_and_the_majority_approves(wf):
    voting_round = opened(wf, quorum=3)
    cast(wf, voting_round, "board", "approve")
    cast(wf, voting_round, "dept_chair_on_board", "approve")
    cast(wf, voting_round, "board_secretary", "reject", comment="Too costly.")
    closed = voting_round_close(
        round=voting_round, user=wf.people["board_chair"], comment="Enough votes."
    )
    assert closed.status == RoundStatus.CLOSED and closed.closed_by == wf.people["board_chair"]
    assert _result(voting_round) == (2, 1, 0, True, RoundOutcome.APPROVED)
    idea = Initiative.objects.get(pk=voting_round.initiative_id)
    assert idea.state == State.APPROVED_FOR_SCALE_UP
    decision = voting_round.decision
    assert decision == Activity.objects.filter(initiative=idea).latest("pk")
    assert (decision.transition, decision.actor) == ("approve_scale_up", wf.people["board_chair"])
    assert "2 approve, 1 reject, 0 abstain" in decision.comment
    assert decision.comment.endswith("Enough votes.")


def test_a_majority_against_rejects(wf):
    voting_round = opened(wf, quorum=2)
    cast(wf, voting_round, "board", "reject")
    cast(wf, voting_round, "board_secretary", "reject")
    cast(wf, voting_round, "board_chair", "approve")
    voting_round_close(round=voting_round, user=wf.people["board_chair"])
    assert _result(voting_round) == (1, 2, 0, True, RoundOutcome.REJECTED)
    assert voting_round.initiative.state == State.REJECTED
    assert voting_round.decision.transition == "reject_scale_up"


def test_abstentions_count_for_the_quorum_not_the_majority(wf):
    voting_round = opened(wf, quorum=3)
    cast(wf, voting_round, "board", "approve")
    cast(wf, voting_round, "board_secretary", "abstain")
    cast(wf, voting_round, "board_chair", "abstain")
    voting_round_close(round=voting_round, user=wf.people["board_chair"])
    assert _result(voting_round) == (1, 0, 2, True, RoundOutcome.APPROVED)


def test_a_tie_sends_it_back_to_the_board_and_a_new_round_is_a_new_row(wf):
    idea = referred(wf)
    first = opened(wf, idea, quorum=2)
    cast(wf, first, "board", "approve")
    cast(wf, first, "board_secretary", "reject")
    voting_round_close(round=first, user=wf.people["board_chair"])
    assert _result(first) == (1, 1, 0, True, RoundOutcome.TIED)
    idea.refresh_from_db()
    assert (idea.state, idea.forum) == (State.REFERRED_TO_BOARD, wf.forums["board"])
    assert first.decision.transition == "voting_inconclusive"
    # Not reopened: a second round, its own row; the first keeps its result.
    second = opened(wf, idea, quorum=2)
    assert second.pk != first.pk and second.status == RoundStatus.OPEN
    assert _result(first) == (1, 1, 0, True, RoundOutcome.TIED)
    assert first.status == RoundStatus.CLOSED
    assert Vote.objects.filter(round=second).count() == 0
    assert list(idea.voting_rounds.values_list("status", flat=True)) == ["open", "closed"]


def test_no_quorum_at_the_deadline_is_closed_by_the_system(wf):
    voting_round = opened(wf, quorum=3)
    cast(wf, voting_round, "board", "approve")
    cast(wf, voting_round, "board_secretary", "approve")
    # Not due yet: the system leaves it.
    assert voting_rounds_close_due() == 0
    assert refusal(lambda: voting_round_close(round=voting_round)) == {"not_due"}
    past_deadline(voting_round)
    assert voting_rounds_close_due() == 1
    assert _result(voting_round) == (2, 0, 0, False, RoundOutcome.NO_QUORUM)
    assert voting_round.closed_by is None and voting_round.closed_at is not None
    assert voting_round.initiative.state == State.REFERRED_TO_BOARD
    decision = voting_round.decision
    assert (decision.transition, decision.actor) == ("voting_inconclusive", None)
    # Idempotent: nothing more to close, nothing recorded twice.
    assert voting_rounds_close_due() == 0
    assert Activity.objects.filter(transition="voting_inconclusive").count() == 1


def test_the_round_closes_itself_when_everyone_has_voted(wf):
    voting_round = opened(wf, quorum=4)
    for person, choice in zip(MEMBERS[:3], ["approve", "approve", "reject"], strict=True):
        cast(wf, voting_round, person, choice)
        assert voting_round.status == RoundStatus.OPEN
    cast(wf, voting_round, MEMBERS[3], "approve")
    assert voting_round.status == RoundStatus.CLOSED and voting_round.closed_by is None
    assert _result(voting_round) == (3, 1, 0, True, RoundOutcome.APPROVED)
    assert voting_round.initiative.state == State.APPROVED_FOR_SCALE_UP
    assert voting_round.decision.actor is None


def test_closing_twice_records_one_result(wf):
    voting_round = opened(wf, quorum=1)
    cast(wf, voting_round, "board", "approve")
    voting_round_close(round=voting_round, user=wf.people["board_chair"])
    stale = VotingRound.objects.get(pk=voting_round.pk)
    codes = refusal(lambda: voting_round_close(round=stale, user=wf.people["board_chair"]))
    assert codes == {"conflict"}
    past_deadline(voting_round)
    assert voting_rounds_close_due() == 0
    assert Activity.objects.filter(transition="approve_scale_up").count() == 1


@pytest.mark.parametrize("person", ["board", "board_secretary", "dept_chair", "clinician"])
def test_only_the_chair_closes_early(wf, person):
    voting_round = opened(wf)
    codes = refusal(lambda: voting_round_close(round=voting_round, user=wf.people[person]))
    assert codes == {"not_permitted"}
    voting_round.refresh_from_db()
    assert voting_round.status == RoundStatus.OPEN


def test_an_admin_may_close_early(wf):
    voting_round = opened(wf, quorum=1)
    voting_round_close(round=voting_round, user=wf.people["admin"])
    assert _result(voting_round)[4] == RoundOutcome.NO_QUORUM


def test_a_closed_round_is_not_reopened(wf):
    voting_round = opened(wf, quorum=1)
    cast(wf, voting_round, "board", "approve")
    voting_round_close(round=voting_round, user=wf.people["board_chair"])
    idea = Initiative.objects.get(pk=voting_round.initiative_id)
    # Approved: no new round from here, and the closed one stays as it was.
    assert refusal(lambda: opened(wf, idea)) == {"not_from_state"}
    assert VotingRound.objects.filter(initiative=idea).count() == 1
    voting_round.refresh_from_db()
    assert voting_round.status == RoundStatus.CLOSED
    # Nor can the table's closing steps be taken again, or without the round.
    codes = refusal(
        lambda: initiative_transition(
            initiative=idea,
            user=wf.people["board_chair"],
            transition="voting_inconclusive",
            comment="Again.",
            via="voting",
        )
    )
    assert codes == {"not_from_state"}


def test_a_person_cannot_pose_as_the_system_and_the_system_takes_only_closing_steps(wf):
    idea = referred(wf)
    codes = refusal(
        lambda: initiative_transition(
            initiative=idea, user=None, transition="reject", comment="No.", via=""
        )
    )
    assert codes == {"not_permitted"}
    codes = refusal(
        lambda: initiative_transition(
            initiative=idea, user=None, transition="open_vote", via="voting"
        )
    )
    assert codes == {"not_permitted"}


# --- The beat task ---------------------------------------------------------------------------


def test_the_beat_task_closes_due_rounds_only(wf):
    due = opened(wf, quorum=1)
    cast(wf, due, "board", "reject")
    later = opened(wf, log(wf, "board"), quorum=1)
    past_deadline(due)
    assert voting_rounds_close_due_task() == 1
    due.refresh_from_db()
    later.refresh_from_db()
    assert (due.status, due.outcome) == ("closed", RoundOutcome.REJECTED)
    assert later.status == "open"
    assert voting_rounds_close_due_task() == 0


def test_the_beat_schedule_names_the_task_every_minute():
    from lhs.celery import app

    entries = [
        entry
        for entry in settings.CELERY_BEAT_SCHEDULE.values()
        if entry["task"] == "initiatives.tasks.voting_rounds_close_due_task"
    ]
    assert len(entries) == 1
    assert float(entries[0]["schedule"]) <= 60
    # Registered with the app under that name, as a worker finds it (autodiscovery).
    app.loader.import_default_modules()
    task = app.tasks["initiatives.tasks.voting_rounds_close_due_task"]
    assert task.run is voting_rounds_close_due_task.run
