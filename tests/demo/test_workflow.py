"""The demo's improvement work: every state of the workflow, alive and consistent with its data."""

from __future__ import annotations

from datetime import date, timedelta

import pytest
from django.db.models import Count
from django.utils import timezone

from demo.division import INTERVENTIONS, demo_delete, demo_load
from demo.workflow import load_stories
from forums.models import Meeting
from initiatives import workflow
from initiatives.enums import AdoptionState, RoundStatus, State
from initiatives.models import (
    Activity,
    Adoption,
    AgendaItem,
    Initiative,
    Notification,
    PDSACycle,
    Score,
    SupportRequest,
    Vote,
    VotingRound,
)
from initiatives.selectors import unit_events
from measures.models import Measure
from units.models import Unit

END = date(2025, 6, 1)


@pytest.fixture
def demo(db):
    return demo_load(end=END, weeks=8, scale=0.1)


def test_every_state_of_the_workflow_has_an_initiative(demo):
    states = set(Initiative.objects.values_list("state", flat=True))
    assert states == set(State.values)
    assert demo.initiatives == Initiative.objects.count() == len(load_stories()["initiative"])


def test_each_intervention_has_its_pdsa_cycle_on_the_date_its_data_steps(demo):
    for intervention in INTERVENTIONS:
        unit = Unit.objects.get(code=intervention.unit)
        measure = Measure.objects.get(code=intervention.measure)
        start = intervention.starts(END)
        assert PDSACycle.objects.filter(unit=unit, measure=measure, start_date=start).exists()
        events = unit_events([unit.pk], [measure.pk])
        assert any(e.kind == "pdsa" and e.date == start for e in events), intervention


def test_the_history_is_dated_in_order_and_never_in_the_future(demo):
    now = timezone.now()
    for initiative in Initiative.objects.all():
        times = list(initiative.activities.order_by("pk").values_list("at", flat=True))
        assert times == sorted(times), initiative
        assert times[-1] <= now
        assert initiative.created_at == times[0]
        assert initiative.updated_at == times[-1]
    # Every step is an edge of the table taken from where it was.
    for activity in Activity.objects.exclude(transition=workflow.LOG_NAME):
        step = workflow.BY_NAME[activity.transition]
        assert activity.from_state in step.sources and activity.to_state == step.target


def test_one_vote_is_open_with_the_demo_board_member_still_to_vote(demo):
    open_round = VotingRound.objects.get(status=RoundStatus.OPEN)
    assert open_round.deadline > timezone.now()
    assert open_round.initiative.state == State.VOTING
    voters = set(open_round.votes.values_list("voter__username", flat=True))
    assert "board" not in voters and len(voters) == 3
    for closed in VotingRound.objects.filter(status=RoundStatus.CLOSED):
        assert closed.decision is not None
        assert closed.approve_count + closed.reject_count + closed.abstain_count == (
            closed.votes.count()
        )
        assert closed.opened_at < closed.deadline and closed.closed_at <= timezone.now()
    # The member from the proposing department is flagged.
    assert Vote.objects.filter(voter__username="per.ekstrom", interest_flagged=True).exists()


def test_meetings_have_minutes_decisions_and_proposed_agendas(demo):
    past = Meeting.objects.filter(starts_at__lt=timezone.now())
    assert past.exclude(minutes="").count() == past.count() > 0
    assert Activity.objects.filter(meeting__isnull=False).count() >= 8
    upcoming = Meeting.objects.filter(starts_at__gt=timezone.now())
    assert upcoming.count() == 3
    for meeting in upcoming:
        assert AgendaItem.objects.filter(meeting=meeting).exists(), meeting
    # The unit forum's next agenda has the idea logged last week.
    avd1 = upcoming.get(forum__units__code="AFF-AVD1")
    assert AgendaItem.objects.filter(
        meeting=avd1, initiative__title="Morgonmöte med patienterna på avdelningen"
    ).exists()


def test_spread_records_how_each_unit_adapted_the_practice(demo):
    adopted = Adoption.objects.filter(state=AdoptionState.ADOPTED)
    assert adopted.count() >= 8
    assert not adopted.filter(adaptation="").exists()
    assert not adopted.filter(adopted_on__isnull=True).exists()
    complete = Initiative.objects.get(state=State.SPREAD_COMPLETE)
    assert not complete.adoptions.exclude(
        state__in=[AdoptionState.ADOPTED, AdoptionState.DECLINED]
    ).exists()
    scaling = Initiative.objects.get(state=State.SCALING_UP)
    states = set(scaling.adoptions.values_list("state", flat=True))
    assert {AdoptionState.PLANNED, AdoptionState.ADOPTED, AdoptionState.DECLINED} <= states


def test_scores_support_and_notices(demo):
    per_forum = dict(
        Score.objects.values_list("criterion__forum__kind").annotate(n=Count("pk")).order_by()
    )
    assert set(per_forum) == {"department_group", "division_board"}
    assert set(SupportRequest.objects.values_list("state", flat=True)) == {"open", "taken", "done"}
    stale = timezone.now() - timedelta(days=14)
    assert not Notification.objects.filter(created_at__lt=stale, read_at__isnull=True).exists()


def test_reset_deletes_the_work_and_builds_it_again(demo):
    first = Initiative.objects.count()
    demo_load(end=END, weeks=8, scale=0.1, reset=True)
    assert Initiative.objects.count() == first
    demo_delete()
    assert not Initiative.objects.exists() and not Meeting.objects.exists()
