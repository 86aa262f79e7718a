"""Meetings and their agendas, through the services: who may plan and record, attendance,
the stale-save refusal, removal, what the agenda proposes and why, idempotent adding,
reordering with dense positions."""

from __future__ import annotations

from datetime import date, timedelta

import pytest
from django.core.exceptions import ValidationError
from django.utils import timezone

from forums.models import Meeting, Membership
from forums.services import meeting_create, meeting_delete, meeting_update
from initiatives import agenda, workflow
from initiatives.enums import AdoptionState, RoundStatus
from initiatives.models import Activity, Adoption, AgendaItem, VotingRound
from initiatives.services import initiative_transition
from measures.aggregation import series_recompute
from measures.models import Series
from measures.series import public_columns
from tests.aggregation.conftest import Rows

from .conftest import log
from .helpers import codes_of

pytestmark = pytest.mark.django_db


def _meeting(wf, forum="unit", *, days=2, by="chair", **extra) -> Meeting:
    return meeting_create(
        user=wf.people[by],
        forum=wf.forums[forum],
        starts_at=timezone.now() + timedelta(days=days),
        **extra,
    )


def _refused(call) -> set[str]:
    with pytest.raises(ValidationError) as caught:
        call()
    return codes_of(caught.value)


# --------------------------------------------------------------------------------------------
# Planning and recording
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("person", "allowed"),
    [
        ("chair", True),
        ("unit_secretary", True),
        ("admin", True),
        ("clinician", False),  # a member
        ("other_unit_chair", False),  # another forum's chair
        ("dept_chair", False),  # the group above: reads, does not keep the unit's meetings
        ("board_chair", False),
        ("outsider", False),
    ],
)
def test_who_plans_a_meeting(wf, person, allowed):
    call = lambda: _meeting(wf, by=person)  # noqa: E731
    if allowed:
        meeting = call()
        assert meeting.forum == wf.forums["unit"] and meeting.created_by == wf.people[person]
        assert meeting.version == 0
    else:
        assert _refused(call) == {"not_permitted"}
        assert not Meeting.objects.exists()


def test_present_must_be_members_of_the_forum(wf):
    members = [wf.people["chair"], wf.people["clinician"]]
    meeting = _meeting(wf, present=members)
    assert set(meeting.present.all()) == set(members)

    stranger = wf.people["other_unit_chair"]
    assert _refused(
        lambda: meeting_update(
            user=wf.people["chair"], meeting=meeting, version=0, present=[*members, stranger]
        )
    ) == {"not_a_member"}
    assert set(meeting.present.all()) == set(members)
    assert Meeting.objects.get(pk=meeting.pk).version == 0  # nothing saved
    assert _refused(lambda: _meeting(wf, present=[stranger])) == {"not_a_member"}


def test_a_member_who_left_stays_recorded_but_no_new_stranger_comes_in(wf):
    clinician = wf.people["clinician"]
    meeting = _meeting(wf, present=[clinician])
    Membership.objects.filter(forum=wf.forums["unit"], user=clinician).delete()
    meeting = meeting_update(
        user=wf.people["chair"], meeting=meeting, version=0, present=[clinician], minutes="Held."
    )
    assert list(meeting.present.all()) == [clinician] and meeting.version == 1
    # Taken off the list, the former member cannot be put back.
    meeting = meeting_update(user=wf.people["chair"], meeting=meeting, version=1, present=[])
    assert _refused(
        lambda: meeting_update(
            user=wf.people["chair"], meeting=meeting, version=2, present=[clinician]
        )
    ) == {"not_a_member"}


def test_two_secretaries_saving_at_once_the_second_is_told(wf):
    meeting = _meeting(wf)
    mine = Meeting.objects.get(pk=meeting.pk)
    theirs = Meeting.objects.get(pk=meeting.pk)  # both read version 0
    meeting_update(user=wf.people["chair"], meeting=mine, version=mine.version, minutes="Chair's")
    assert _refused(
        lambda: meeting_update(
            user=wf.people["unit_secretary"],
            meeting=theirs,
            version=theirs.version,
            minutes="Secretary's",
            location="Room 2",
        )
    ) == {"stale"}
    saved = Meeting.objects.get(pk=meeting.pk)
    assert (saved.minutes, saved.location, saved.version) == ("Chair's", "", 1)
    # Having read the new version, the secretary's save goes through.
    meeting_update(
        user=wf.people["unit_secretary"], meeting=theirs, version=1, minutes="Both", location="R2"
    )
    saved.refresh_from_db()
    assert (saved.minutes, saved.location, saved.version) == ("Both", "R2", 2)


def test_a_member_may_not_record_and_a_removed_meeting_is_not_found(wf):
    meeting = _meeting(wf)
    assert _refused(
        lambda: meeting_update(user=wf.people["clinician"], meeting=meeting, version=0, minutes="x")
    ) == {"not_permitted"}
    copy = Meeting.objects.get(pk=meeting.pk)
    meeting_delete(user=wf.people["chair"], meeting=meeting)
    assert _refused(
        lambda: meeting_update(user=wf.people["chair"], meeting=copy, version=0, minutes="x")
    ) == {"not_found"}


def test_a_meeting_with_decisions_is_not_removed(wf):
    meeting = _meeting(wf)
    agenda.agenda_item_add(user=wf.people["chair"], meeting=meeting, title="Any other business")
    empty = _meeting(wf, days=9)
    initiative = log(wf, "unit")
    decision = initiative_transition(
        initiative=initiative,
        user=wf.people["chair"],
        transition="start_testing",
        meeting=meeting,
    )
    assert list(meeting.decisions.all()) == [decision]
    assert _refused(lambda: meeting_delete(user=wf.people["chair"], meeting=meeting)) == {
        "conflict"
    }
    assert Meeting.objects.filter(pk=meeting.pk).exists()
    assert _refused(lambda: meeting_delete(user=wf.people["clinician"], meeting=empty)) == {
        "not_permitted"
    }
    meeting_delete(user=wf.people["unit_secretary"], meeting=empty)
    assert not Meeting.objects.filter(pk=empty.pk).exists()
    # The other meeting's agenda is untouched; the removed one's went with it.
    assert AgendaItem.objects.filter(meeting=meeting).count() == 1


def test_starts_at_and_place_are_checked(wf):
    assert _refused(lambda: _meeting(wf, location="x" * 201)) == {"location_too_long"}
    assert _refused(
        lambda: meeting_create(user=wf.people["chair"], forum=wf.forums["unit"], starts_at=None)
    ) == {"starts_at_required"}


# --------------------------------------------------------------------------------------------
# What the agenda proposes
# --------------------------------------------------------------------------------------------


def _reasons(meeting) -> dict[str, str]:
    return {p.key: p.reason for p in agenda.agenda_propose(meeting)}


def test_waiting_states_come_from_the_table():
    unit = agenda.waiting_states("unit_forum")
    assert {"logged", "local_testing", "adopted_locally", "returned_for_more_work"} <= unit
    board = agenda.waiting_states("division_board")
    assert {"referred_to_board", "approved_for_scale_up", "scaling_up"} <= board
    for kind in ("unit_forum", "department_group", "division_board"):
        assert not agenda.waiting_states(kind) & workflow.TERMINAL
    # The support unit holds no initiatives: nothing waits there.
    assert agenda.waiting_states("support_unit") == frozenset()


def test_arrived_since_the_last_meeting_or_waiting_for_a_decision(wf):
    earlier = log(wf, "unit", title="Older idea")
    Activity.objects.filter(initiative=earlier).update(at=timezone.now() - timedelta(days=20))
    _meeting(wf, days=-7)  # the previous meeting, after the older idea was logged
    new = log(wf, "unit", title="New idea")
    closed = log(wf, "unit", title="Closed idea")
    initiative_transition(
        initiative=closed, user=wf.people["chair"], transition="reject", comment="No."
    )
    meeting = _meeting(wf)
    proposals = {p.key: p for p in agenda.agenda_propose(meeting)}
    assert proposals[f"initiative:{new.pk}"].reason == agenda.ARRIVED
    assert "Logged here" in proposals[f"initiative:{new.pk}"].detail
    assert proposals[f"initiative:{earlier.pk}"].reason == agenda.WAITING
    assert f"initiative:{closed.pk}" not in proposals
    # Arrivals first.
    keys = list(proposals)
    assert keys.index(f"initiative:{new.pk}") < keys.index(f"initiative:{earlier.pk}")


def test_an_initiative_sent_up_arrives_at_the_department_group(wf):
    initiative = log(wf, "unit")
    initiative_transition(
        initiative=initiative, user=wf.people["chair"], transition="escalate", comment="Up."
    )
    group_meeting = _meeting(wf, "dept", by="dept_chair")
    proposal = next(p for p in agenda.agenda_propose(group_meeting) if p.initiative == initiative)
    assert proposal.reason == agenda.ARRIVED and "Forum AFF-01" in proposal.detail
    # It has left the unit forum: not proposed there any more.
    assert f"initiative:{initiative.pk}" not in _reasons(_meeting(wf))
    # Another department's group does not see it.
    other = _meeting(wf, "dept_b", by="other_dept_chair")
    assert f"initiative:{initiative.pk}" not in _reasons(other)


def _round(wf, initiative, deadline) -> VotingRound:
    return VotingRound.objects.create(
        initiative=initiative,
        forum=wf.forums["board"],
        opened_by=wf.people["board_chair"],
        deadline=deadline,
        quorum=1,
        status=RoundStatus.OPEN,
    )


def test_a_vote_closing_within_two_weeks_is_proposed(wf):
    meeting = _meeting(wf, "board", by="board_chair")
    soon = log(wf, "board", title="Soon")
    later = log(wf, "board", title="Later")
    _round(wf, soon, meeting.starts_at + timedelta(days=10))
    _round(wf, later, meeting.starts_at + timedelta(days=30))
    proposals = {p.key: p for p in agenda.agenda_propose(meeting)}
    assert proposals[f"initiative:{soon.pk}"].reason == agenda.ROUND_CLOSING
    assert "closes" in proposals[f"initiative:{soon.pk}"].detail
    # The later one is still business of the board, but not as a closing vote.
    assert proposals[f"initiative:{later.pk}"].reason != agenda.ROUND_CLOSING
    assert next(iter(proposals)) == f"initiative:{soon.pk}"


def test_adoptions_due_in_the_forums_units(wf):
    meeting = _meeting(wf)
    spreading = log(wf, "board", title="Spreading")
    done = log(wf, "board", title="Done")
    far = log(wf, "board", title="Far")
    other_unit = log(wf, "board", title="Other unit")
    today = timezone.localdate()
    for initiative, unit, state, due in (
        (spreading, wf.a1, AdoptionState.PLANNED, today + timedelta(days=5)),
        (done, wf.a1, AdoptionState.ADOPTED, today + timedelta(days=5)),
        (far, wf.a1, AdoptionState.STARTED, today + timedelta(days=60)),
        (other_unit, wf.b1, AdoptionState.PLANNED, today + timedelta(days=5)),
    ):
        Adoption.objects.create(
            initiative=initiative,
            unit=unit,
            state=state,
            due_date=due,
            adopted_on=today if state == AdoptionState.ADOPTED else None,
            updated_by=wf.people["board_chair"],
        )
    proposals = {p.key: p for p in agenda.agenda_propose(meeting)}
    assert proposals[f"initiative:{spreading.pk}"].reason == agenda.ADOPTION_DUE
    assert "AFF-01" in proposals[f"initiative:{spreading.pk}"].detail
    for absent in (done, far, other_unit):
        assert f"initiative:{absent.pk}" not in proposals
    # The department group follows its units' adoptions too; the other department's does not.
    group = _meeting(wf, "dept", by="dept_chair")
    assert _reasons(group).get(f"initiative:{spreading.pk}") == agenda.ADOPTION_DUE
    assert f"initiative:{spreading.pk}" not in _reasons(
        _meeting(wf, "dept_b", by="other_dept_chair")
    )


def _honos_weeks(wf, weeks: int, *, outlier: int | None, unit=None, ending_weeks_ago: int = 0):
    """Weekly HoNOS ratings, eight a week around 12, the last week ``ending_weeks_ago``
    before this one; the week ``outlier`` (0 = the oldest) far above."""
    measure = wf.measures["honos"]
    today = timezone.localdate()
    monday = today - timedelta(days=today.weekday(), weeks=ending_weeks_ago)
    first = monday - timedelta(weeks=weeks - 1)
    batch = Rows(wf.people["support"])
    for week in range(weeks):
        day = first + timedelta(weeks=week)
        for i in range(8):
            score = 40 + i % 3 if week == outlier else 10 + (week + i) % 5
            batch.value(measure, unit or wf.a1, day, score)
    batch.save()
    series_recompute(measure_ids=[measure.pk])
    return measure, first


def _special_periods(measure, unit) -> list[str]:
    series = Series.objects.get(
        measure=measure, node_key=f"unit:{unit.pk}", grain=measure.frequency
    )
    columns = public_columns(series)
    return [
        p
        for p, c in zip(columns["period"], columns["point_class"], strict=True)
        if c and c != "common"
    ]


def test_a_measure_that_signalled_since_the_last_meeting(wf):
    measure, first = _honos_weeks(wf, 20, outlier=19)
    last = (first + timedelta(weeks=19)).isoformat()
    assert last in _special_periods(measure, wf.a1)  # the data do what the test says
    _meeting(wf, days=-3)
    meeting = _meeting(wf)
    proposal = next(p for p in agenda.agenda_propose(meeting) if p.measure == measure)
    assert proposal.reason == agenda.MEASURE_SIGNAL and proposal.key == f"measure:{measure.pk}"
    assert "AFF-01 (concern)" in proposal.detail and proposal.title.startswith(measure.name)
    # a2's forum watches a2 only; the department group sees its unit's signal.
    assert f"measure:{measure.pk}" not in _reasons(_meeting(wf, "unit_a2", by="other_unit_chair"))
    assert _reasons(_meeting(wf, "dept", by="dept_chair")).get(f"measure:{measure.pk}") == (
        agenda.MEASURE_SIGNAL
    )


def test_a_signal_already_over_at_the_last_meeting_is_not_proposed(wf):
    measure, first = _honos_weeks(wf, 20, outlier=19, ending_weeks_ago=3)
    outlier = (first + timedelta(weeks=19)).isoformat()
    assert outlier in _special_periods(measure, wf.a1)
    # The previous meeting was after the outlier's week (and every other) had ended.
    previous = _meeting(wf, days=-7)
    meeting = _meeting(wf)
    assert f"measure:{measure.pk}" not in _reasons(meeting)
    # Had the previous meeting been before the week ended, it would be new.
    Meeting.objects.filter(pk=previous.pk).update(starts_at=timezone.now() - timedelta(weeks=3))
    assert f"measure:{measure.pk}" in _reasons(meeting)
    # A series not recomputed since the previous meeting held nothing new.
    Series.objects.filter(measure=measure).update(computed_at=timezone.now() - timedelta(weeks=4))
    assert f"measure:{measure.pk}" not in _reasons(meeting)


def test_a_suppressed_period_is_never_flagged(wf):
    measure, _first = _honos_weeks(wf, 20, outlier=19)
    measure.minimum_n = 9  # every week has 8 ratings: all suppressed
    measure.save()
    series_recompute(measure_ids=[measure.pk])
    assert _special_periods(measure, wf.a1) == []
    assert f"measure:{measure.pk}" not in _reasons(_meeting(wf))


def test_the_period_end_of_each_grain():
    assert agenda.period_end(date(2025, 1, 6), "week") == date(2025, 1, 13)
    assert agenda.period_end(date(2025, 12, 1), "month") == date(2026, 1, 1)
    assert agenda.period_end(date(2025, 10, 1), "quarter") == date(2026, 1, 1)


# --------------------------------------------------------------------------------------------
# Editing the agenda
# --------------------------------------------------------------------------------------------


def _positions(meeting) -> list[tuple[str, int]]:
    return list(
        AgendaItem.objects.filter(meeting=meeting)
        .order_by("position", "pk")
        .values_list("title", "position")
    )


def test_adding_the_proposed_items_twice_adds_them_once(wf):
    first, second = log(wf, "unit", title="First"), log(wf, "unit", title="Second")
    meeting = _meeting(wf)
    by_hand = agenda.agenda_item_add(user=wf.people["chair"], meeting=meeting, title="Welcome")
    added = agenda.agenda_proposals_add(user=wf.people["unit_secretary"], meeting=meeting)
    assert {item.initiative for item in added} == {first, second}
    assert all(item.reason == agenda.ARRIVED for item in added)
    assert agenda.agenda_proposals_add(user=wf.people["chair"], meeting=meeting) == []
    assert agenda.agenda_propose(meeting) == []
    titles = [t for t, _p in _positions(meeting)]
    assert titles[0] == by_hand.title and sorted(titles[1:]) == ["First", "Second"]
    assert [p for _t, p in _positions(meeting)] == [1, 2, 3]


def test_adding_one_proposal_and_a_duplicate_by_hand(wf):
    first, second = log(wf, "unit", title="First"), log(wf, "unit", title="Second")
    meeting = _meeting(wf)
    added = agenda.agenda_proposals_add(
        user=wf.people["chair"], meeting=meeting, keys=[f"initiative:{second.pk}"]
    )
    assert [item.initiative for item in added] == [second]
    assert [p.initiative for p in agenda.agenda_propose(meeting)] == [first]
    assert _refused(
        lambda: agenda.agenda_item_add(user=wf.people["chair"], meeting=meeting, initiative=second)
    ) == {"duplicate"}
    item = agenda.agenda_item_add(user=wf.people["chair"], meeting=meeting, initiative=first)
    assert item.title == "First" and item.position == 2
    assert agenda.agenda_propose(meeting) == []


@pytest.mark.parametrize("person", ["clinician", "other_unit_chair", "dept_chair", "outsider"])
def test_only_the_chair_and_secretary_keep_the_agenda(wf, person):
    log(wf, "unit")
    meeting = _meeting(wf)
    item = agenda.agenda_item_add(user=wf.people["chair"], meeting=meeting, title="Item")
    user = wf.people[person]
    calls = [
        lambda: agenda.agenda_item_add(user=user, meeting=meeting, title="Mine"),
        lambda: agenda.agenda_proposals_add(user=user, meeting=meeting),
        lambda: agenda.agenda_item_update(user=user, item=item, notes="Mine"),
        lambda: agenda.agenda_item_move(user=user, item=item, direction="down"),
        lambda: agenda.agenda_item_delete(user=user, item=item),
    ]
    for call in calls:
        assert _refused(call) == {"not_permitted"}
    assert _positions(meeting) == [("Item", 1)]


def test_reordering_keeps_positions_dense(wf):
    meeting = _meeting(wf)
    chair = wf.people["chair"]
    a, b, c = (
        agenda.agenda_item_add(user=chair, meeting=meeting, title=t) for t in ("A", "B", "C")
    )
    agenda.agenda_item_move(user=chair, item=c, direction="up")
    assert _positions(meeting) == [("A", 1), ("C", 2), ("B", 3)]
    agenda.agenda_item_move(user=chair, item=a, direction="up")  # already first
    assert _positions(meeting) == [("A", 1), ("C", 2), ("B", 3)]
    agenda.agenda_item_move(user=chair, item=a, position=99)
    assert _positions(meeting) == [("C", 1), ("B", 2), ("A", 3)]
    agenda.agenda_item_move(user=chair, item=a, position=1)
    assert _positions(meeting) == [("A", 1), ("C", 2), ("B", 3)]
    agenda.agenda_item_delete(user=chair, item=c)
    assert _positions(meeting) == [("A", 1), ("B", 2)]
    d = agenda.agenda_item_add(user=chair, meeting=meeting, title="D")
    assert d.position == 3
    assert _refused(lambda: agenda.agenda_item_move(user=chair, item=b, direction="sideways")) == {
        "bad_direction"
    }
    agenda.agenda_item_delete(user=chair, item=b)
    assert _refused(lambda: agenda.agenda_item_move(user=chair, item=b, direction="up")) == {
        "not_found"
    }


def test_an_item_edit_over_text_changed_meanwhile_is_refused(wf):
    meeting = _meeting(wf)
    item = agenda.agenda_item_add(user=wf.people["chair"], meeting=meeting, title="Budget")
    read = agenda.item_digest(item)
    agenda.agenda_item_update(
        user=wf.people["unit_secretary"], item=item, notes="Secretary's note", digest=read
    )
    stale = AgendaItem.objects.get(pk=item.pk)
    assert _refused(
        lambda: agenda.agenda_item_update(
            user=wf.people["chair"], item=stale, notes="Chair's note", digest=read
        )
    ) == {"stale"}
    assert AgendaItem.objects.get(pk=item.pk).notes == "Secretary's note"
    assert _refused(
        lambda: agenda.agenda_item_update(user=wf.people["chair"], item=stale, title="  ")
    ) == {"title_required"}


def test_the_same_meeting_planned_twice_is_planned_once(wf):
    when = timezone.now() + timedelta(days=3)
    meeting_create(user=wf.people["chair"], forum=wf.forums["unit"], starts_at=when)
    assert _refused(
        lambda: meeting_create(
            user=wf.people["unit_secretary"], forum=wf.forums["unit"], starts_at=when
        )
    ) == {"duplicate"}
    # Another forum may meet at that time.
    meeting_create(user=wf.people["dept_chair"], forum=wf.forums["dept"], starts_at=when)
    assert Meeting.objects.count() == 2
