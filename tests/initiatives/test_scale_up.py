"""Scale-up plans, a department's spread and each unit's adoption (initiatives.scale_up)."""

from __future__ import annotations

import copy
import threading
from datetime import date, timedelta

import pytest
from django.core.exceptions import ValidationError
from django.db import connection
from django.utils import timezone

from forums.models import Meeting
from initiatives import scale_up, workflow
from initiatives.enums import AdoptionState, State
from initiatives.models import Activity, Adoption, Initiative, ScaleUpPlan
from initiatives.scale_up import adoption_update
from initiatives.selectors import UnitEvent, unit_events
from initiatives.services import initiative_transition
from tests.factories import UnitFactory

from .conftest import log
from .helpers import codes_of, db_snapshot, replay
from .scale_up_helpers import approved, in_a_month, plan, prioritised, spread

P, S, AD, D = (
    AdoptionState.PLANNED,
    AdoptionState.STARTED,
    AdoptionState.ADOPTED,
    AdoptionState.DECLINED,
)


def _adoption(initiative, unit) -> Adoption:
    return Adoption.objects.select_related("initiative__forum", "unit").get(
        initiative=initiative, unit=unit
    )


def _move(wf, adoption, state, person="admin", **fields) -> Adoption:
    if state == AD:
        fields.setdefault("adaptation", "Run by the nurses, at the morning meeting.")
        fields.setdefault("adopted_on", timezone.localdate())
    if state == D:
        fields.setdefault("adaptation", "We already do something equivalent.")
    return adoption_update(user=wf.people[person], adoption=adoption, state=state, **fields)


# --- The plan --------------------------------------------------------------------------------


def test_a_plan_makes_a_planned_adoption_per_target_unit_and_starts_scaling_up(wf):
    idea = approved(wf)
    meeting = Meeting.objects.create(
        forum=wf.forums["board"], starts_at=timezone.now(), created_by=wf.people["board_chair"]
    )
    deadline = in_a_month()
    made = plan(
        wf,
        idea,
        units=[wf.a1, wf.b1, wf.a1],
        deadline=deadline,
        comment="As voted.",
        meeting=meeting,
    )
    assert idea.state == State.SCALING_UP  # updated in place
    stored = ScaleUpPlan.objects.get(initiative=idea)
    assert stored == made
    assert (stored.scope, stored.deadline, stored.created_by) == (
        "Every ward of the division within a year.",
        deadline,
        wf.people["board_chair"],
    )
    rows = Adoption.objects.filter(initiative=idea).order_by("unit__code")
    assert [(a.unit, a.state, a.due_date, a.adopted_on) for a in rows] == [
        (wf.a1, P, deadline, None),
        (wf.b1, P, deadline, None),
    ]
    step = Activity.objects.filter(initiative=idea).order_by("-pk").first()
    assert (step.transition, step.from_state, step.to_state, step.comment, step.meeting) == (
        "start_scale_up",
        State.APPROVED_FOR_SCALE_UP,
        State.SCALING_UP,
        "As voted.",
        meeting,
    )
    assert Initiative.objects.get(pk=idea.pk).state == State.SCALING_UP


@pytest.mark.parametrize(
    ("person", "allowed"),
    [
        ("board_chair", True),
        ("board_secretary", True),
        ("admin", True),
        ("board", False),  # a member of the board
        ("dept_chair_on_board", False),
        ("dept_chair", False),
        ("chair", False),
        ("outsider", False),
    ],
)
def test_only_the_boards_deciders_make_the_plan(wf, person, allowed):
    idea = approved(wf)
    before = db_snapshot(idea.pk)
    if allowed:
        plan(wf, idea, person=person)
        assert Adoption.objects.filter(initiative=idea).count() == 3
        return
    with pytest.raises(ValidationError) as refused:
        plan(wf, idea, person=person)
    assert codes_of(refused.value) == {"not_permitted"}
    assert db_snapshot(idea.pk) == before and idea.state == State.APPROVED_FOR_SCALE_UP
    assert not ScaleUpPlan.objects.exists() and not Adoption.objects.exists()


def test_a_plan_only_once_it_is_approved_and_only_once(wf):
    voting = replay(wf, log(wf, "board"), [("open_vote", "board")])
    with pytest.raises(ValidationError) as refused:
        plan(wf, voting)
    assert codes_of(refused.value) == {"not_from_state"}
    idea = approved(wf)
    plan(wf, idea)
    with pytest.raises(ValidationError) as again:
        plan(wf, idea, units=[wf.a1])
    assert codes_of(again.value) == {"not_from_state"}
    assert ScaleUpPlan.objects.count() == 1 and Adoption.objects.count() == 3


def test_the_plain_step_is_refused_it_needs_the_plan(wf):
    idea = approved(wf)
    with pytest.raises(ValidationError) as refused:
        initiative_transition(
            initiative=idea, user=wf.people["board_chair"], transition="start_scale_up"
        )
    assert codes_of(refused.value) == {"needs_form"}


@pytest.mark.parametrize(
    ("fields", "code", "field"),
    [
        ({"units": []}, "units_required", "units"),
        ({"scope": "  \n"}, "scope_required", "scope"),
        ({"deadline": date(2020, 1, 1)}, "date_in_past", "deadline"),
        ({"units": "other division"}, "bad_unit", "units"),
        ({"units": "inactive"}, "bad_unit", "units"),
    ],
)
def test_a_plan_names_scope_deadline_and_units_of_the_division(wf, fields, code, field):
    idea = approved(wf)
    before = db_snapshot(idea.pk)
    if fields.get("units") == "other division":
        fields["units"] = [wf.a1, UnitFactory(department__division__code="elsewhere")]
    elif fields.get("units") == "inactive":
        fields["units"] = [UnitFactory(department=wf.dept_a, active=False)]
    with pytest.raises(ValidationError) as refused:
        plan(wf, idea, **fields)
    assert codes_of(refused.value) == {code}
    assert set(refused.value.error_dict) == {field}
    # Nothing was kept: the step was rolled back with the plan.
    assert db_snapshot(idea.pk) == before
    assert (idea.state, idea.version) == (State.APPROVED_FOR_SCALE_UP, before[2])
    assert not ScaleUpPlan.objects.exists() and not Adoption.objects.exists()


def test_the_deadline_may_be_today(wf):
    idea = approved(wf)
    assert plan(wf, idea, deadline=timezone.localdate()).deadline == timezone.localdate()


def test_a_plan_with_an_old_version_is_stale(wf):
    idea = approved(wf)
    with pytest.raises(ValidationError) as refused:
        plan(wf, idea, version=idea.version - 1)
    assert codes_of(refused.value) == {"stale"}


# --- A department's spread ---------------------------------------------------------------


def test_a_department_spreads_to_its_own_units(wf):
    idea = prioritised(wf)
    due = in_a_month()
    adoptions = spread(wf, idea, due_date=due)
    assert idea.state == State.SPREAD_IN_DEPARTMENT
    assert sorted((a.unit.code, a.state, a.due_date) for a in adoptions) == [
        ("AFF-01", P, due),
        ("AFF-02", P, due),
    ]
    assert not ScaleUpPlan.objects.exists()  # a plan is the board's
    step = Activity.objects.filter(initiative=idea).order_by("-pk").first()
    assert (step.transition, step.comment) == ("spread_in_department", "Both units.")


@pytest.mark.parametrize(
    ("person", "fields", "code"),
    [
        ("dept_chair", {"units": "b1"}, "bad_unit"),  # another department's unit
        ("dept_chair", {"comment": ""}, "comment_required"),
        ("dept_chair", {"units": []}, "units_required"),
        ("dept_chair", {"due_date": date(2020, 1, 1)}, "date_in_past"),
        ("other_dept_chair", {}, "not_permitted"),
        ("dept_member", {}, "not_permitted"),
        ("chair", {}, "not_permitted"),
    ],
)
def test_a_department_spread_refused(wf, person, fields, code):
    idea = prioritised(wf)
    before = db_snapshot(idea.pk)
    if fields.get("units") == "b1":
        fields["units"] = [wf.a1, wf.b1]
    with pytest.raises(ValidationError) as refused:
        spread(wf, idea, person=person, **fields)
    assert codes_of(refused.value) == {code}
    assert db_snapshot(idea.pk) == before and not Adoption.objects.exists()


def test_the_departments_adoptions_carry_over_into_the_boards_plan(wf):
    idea = prioritised(wf)
    spread(wf, idea, due_date=in_a_month())
    a1 = _adoption(idea, wf.a1)
    _move(wf, a1, S, person="chair")
    _move(wf, a1, AD, person="chair")
    replay(
        wf,
        idea,
        [("refer_to_board", "board"), ("open_vote", "board"), ("approve_scale_up", "board")],
    )
    deadline = in_a_month() + timedelta(days=60)
    plan(wf, idea, units=[wf.a1, wf.a2, wf.b1], deadline=deadline)
    rows = {a.unit.code: a for a in Adoption.objects.filter(initiative=idea).select_related("unit")}
    assert rows["AFF-01"].state == AD and rows["AFF-01"].due_date != deadline  # settled: kept
    assert rows["AFF-01"].adaptation == "Run by the nurses, at the morning meeting."
    assert (rows["AFF-02"].state, rows["AFF-02"].due_date) == (P, deadline)  # due by the plan
    assert (rows["PSY-01"].state, rows["PSY-01"].due_date) == (P, deadline)


# --- A unit's adoption -------------------------------------------------------------------

#: Written out by hand (not read off ADOPTION_MOVES): planned → started → adopted | declined,
#: declining before starting, and corrections of a started or settled one's text.
ALLOWED = {(P, S), (P, D), (S, S), (S, AD), (S, D), (AD, AD), (D, D)}


def _in_state(wf, idea, unit, state) -> Adoption:
    adoption = _adoption(idea, unit)
    path = {P: [], S: [S], AD: [S, AD], D: [D]}[state]
    for step in path:
        _move(wf, adoption, step)
    return _adoption(idea, unit)


@pytest.mark.parametrize("source", [P, S, AD, D])
def test_the_adoption_moves(wf, source):
    idea = approved(wf)
    plan(wf, idea)
    for target in (P, S, AD, D):
        # A fresh unit per attempt, brought to ``source`` first.
        unit = UnitFactory(department=wf.dept_a)
        Adoption.objects.create(initiative=idea, unit=unit, updated_by=wf.people["admin"])
        adoption = _in_state(wf, idea, unit, source)
        version = adoption.version
        if (source, target) in ALLOWED:
            _move(wf, adoption, target)
            stored = _adoption(idea, unit)
            assert (stored.state, stored.version) == (target, version + 1), (source, target)
            assert stored.updated_by == wf.people["admin"]
        else:
            with pytest.raises(ValidationError) as refused:
                _move(wf, adoption, target)
            assert codes_of(refused.value) == {"bad_move"}, (source, target)
            assert _adoption(idea, unit).version == version


@pytest.mark.parametrize(
    ("state", "fields", "code", "field"),
    [
        (AD, {"adaptation": "  "}, "adaptation_required", "adaptation"),
        (AD, {"adopted_on": None}, "date_required", "adopted_on"),
        (AD, {"adopted_on": "tomorrow"}, "future_date", "adopted_on"),
        (D, {"adaptation": ""}, "reason_required", "adaptation"),
        ("finished", {}, "bad_state", "state"),
    ],
)
def test_adopted_needs_how_and_when_declined_needs_why(wf, state, fields, code, field):
    idea = approved(wf)
    plan(wf, idea)
    adoption = _in_state(wf, idea, wf.a1, S)
    if fields.get("adopted_on") == "tomorrow":
        fields["adopted_on"] = timezone.localdate() + timedelta(days=1)
    with pytest.raises(ValidationError) as refused:
        _move(wf, adoption, state, **fields)
    assert codes_of(refused.value) == {code}
    assert set(refused.value.error_dict) == {field}
    stored = _adoption(idea, wf.a1)
    assert (stored.state, stored.version) == (S, 1)


def test_an_adoption_records_how_the_unit_adapted_it(wf):
    idea = approved(wf)
    plan(wf, idea)
    adoption = _in_state(wf, idea, wf.a1, S)
    day = timezone.localdate() - timedelta(days=3)
    _move(wf, adoption, AD, person="chair", adaptation="  Only on weekdays.\n", adopted_on=day)
    stored = _adoption(idea, wf.a1)
    assert (stored.state, stored.adaptation, stored.adopted_on, stored.updated_by) == (
        AD,
        "Only on weekdays.",
        day,
        wf.people["chair"],
    )
    declined = _adoption(idea, wf.b1)
    _move(wf, declined, D, adopted_on=day)  # a date given with a refusal is not kept
    assert _adoption(idea, wf.b1).adopted_on is None


@pytest.mark.parametrize(
    ("person", "unit", "allowed"),
    [
        ("chair", "a1", True),  # chairs a1's forum
        ("unit_secretary", "a1", True),
        ("clinician", "a1", False),  # a member of a1's forum
        ("other_unit_chair", "a1", False),  # chairs a2's forum
        ("other_unit_chair", "a2", True),
        ("chair", "b1", False),
        ("board_chair", "b1", True),  # deciders of the forum it sits in (the board)
        ("board_secretary", "a1", True),
        ("board", "a1", False),
        ("dept_chair", "a1", False),  # the department group is not where it sits now
        ("outsider", "a1", False),
        ("admin", "b1", True),
    ],
)
def test_who_updates_a_units_adoption(wf, person, unit, allowed):
    idea = approved(wf)
    plan(wf, idea)
    adoption = _adoption(idea, getattr(wf, unit))
    if allowed:
        _move(wf, adoption, S, person=person)
        assert _adoption(idea, adoption.unit).state == S
    else:
        with pytest.raises(ValidationError) as refused:
            _move(wf, adoption, S, person=person)
        assert codes_of(refused.value) == {"not_permitted"}
        assert _adoption(idea, adoption.unit).state == P


def test_the_department_group_updates_adoptions_while_it_spreads_there(wf):
    idea = prioritised(wf)
    spread(wf, idea)
    _move(wf, _adoption(idea, wf.a2), S, person="dept_secretary")
    assert _adoption(idea, wf.a2).state == S


def test_no_adoption_changes_on_a_closed_initiative(wf):
    idea = prioritised(wf)
    spread(wf, idea)
    replay(wf, idea, [("refer_to_board", "board"), ("reject", "board")])
    with pytest.raises(ValidationError) as refused:
        _move(wf, _adoption(idea, wf.a1), S)
    assert codes_of(refused.value) == {"not_permitted"}
    assert "closed" in refused.value.messages[0]


def test_two_people_saving_one_adoption_one_wins_the_other_is_stale(wf):
    idea = approved(wf)
    plan(wf, idea)
    adoption = _in_state(wf, idea, wf.a1, S)
    mine, theirs = copy.copy(adoption), copy.copy(adoption)  # both read version 1
    _move(wf, mine, AD, person="chair", adaptation="Ours.")
    with pytest.raises(ValidationError) as refused:
        _move(wf, theirs, D, person="unit_secretary", adaptation="Theirs.")
    assert codes_of(refused.value) == {"stale"}
    assert "Adopted" in refused.value.messages[0]
    stored = _adoption(idea, wf.a1)
    assert (stored.state, stored.adaptation, stored.version) == (AD, "Ours.", 2)
    # The version a form carried: an old one is stale even on a fresh object.
    with pytest.raises(ValidationError) as old:
        _move(wf, stored, AD, adaptation="Changed.", version=1)
    assert codes_of(old.value) == {"stale"}
    assert _adoption(idea, wf.a1).adaptation == "Ours."


@pytest.mark.django_db(transaction=True)
def test_two_people_saving_at_the_same_moment(wf, monkeypatch):
    """Both pass the permission check before either writes: the conditional UPDATE decides."""
    idea = approved(wf)
    plan(wf, idea)
    first, second = _adoption(idea, wf.a1), _adoption(idea, wf.a1)
    barrier = threading.Barrier(2, timeout=20)
    real = scale_up.can_update_adoption

    def check_then_wait(user, adoption):
        allowed = real(user, adoption)
        barrier.wait()
        return allowed

    monkeypatch.setattr(scale_up, "can_update_adoption", check_then_wait)
    results: list[object] = [None, None]

    def run(i, person, adoption, state):
        try:
            results[i] = _move(wf, adoption, state, person=person)
        except Exception as exc:
            results[i] = exc
        finally:
            connection.close()

    threads = [
        threading.Thread(target=run, args=(0, "chair", first, S)),
        threading.Thread(target=run, args=(1, "unit_secretary", second, D)),
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    wins = [r for r in results if isinstance(r, Adoption)]
    losses = [r for r in results if isinstance(r, ValidationError)]
    assert len(wins) == 1 and len(losses) == 1, results
    assert codes_of(losses[0]) == {"stale"}
    stored = _adoption(idea, wf.a1)
    assert (stored.state, stored.version) == (wins[0].state, 1)


# --- Completing the spread ---------------------------------------------------------------


def test_the_spread_is_complete_only_when_every_adoption_is_settled(wf):
    idea = approved(wf)
    plan(wf, idea)
    step = workflow.BY_NAME["complete_spread"]

    def complete():
        return initiative_transition(
            initiative=copy.copy(idea),
            user=wf.people["board_chair"],
            transition="complete_spread",
            comment="Done.",
        )

    assert workflow.blocked_by(step, idea) == ["3 units have not yet adopted or declined it."]
    with pytest.raises(ValidationError) as refused:
        complete()
    assert codes_of(refused.value) == {"adoptions_unsettled"}
    assert "3 units" in refused.value.messages[0]
    _move(wf, _in_state(wf, idea, wf.a1, S), AD)
    _move(wf, _adoption(idea, wf.a2), D)
    with pytest.raises(ValidationError) as still:
        complete()
    assert still.value.messages == ["1 unit has not yet adopted or declined it."]
    _move(wf, _adoption(idea, wf.b1), S)  # started is not settled either
    with pytest.raises(ValidationError):
        complete()
    _move(wf, _adoption(idea, wf.b1), AD)
    assert workflow.blocked_by(step, idea) == []
    activity = complete()
    assert activity.to_state == State.SPREAD_COMPLETE
    assert [d["guards"] for d in workflow.describe([step])] == [
        ["every unit has adopted or declined it"]
    ]


# --- The dashboards' events ---------------------------------------------------------------


def test_unit_events_mark_a_units_adoption_on_its_date(wf, django_assert_num_queries):
    honos, careplan, coercion = (wf.measures[k] for k in ("honos", "careplan", "coercion"))
    linked = approved(wf, title="Safe wards", measures=[careplan, honos])
    unlinked = approved(wf, title="Calm room")
    for idea in (linked, unlinked):
        plan(wf, idea, units=[wf.a1, wf.a2])
        _move(wf, _in_state(wf, idea, wf.a1, S), AD, adopted_on=date(2024, 6, 3))
        _move(wf, _adoption(idea, wf.a2), S)  # not adopted: no event
    with django_assert_num_queries(1):
        events = unit_events([wf.a1.pk, wf.a2.pk], [careplan.pk, coercion.pk])
    assert events == [
        UnitEvent(wf.a1.pk, None, date(2024, 6, 3), "Adopted: Calm room", "adoption"),
        UnitEvent(wf.a1.pk, careplan.pk, date(2024, 6, 3), "Adopted: Safe wards", "adoption"),
    ]
    assert unit_events([wf.a1.pk], [coercion.pk]) == [events[0]]
    assert unit_events([wf.b1.pk], [careplan.pk]) == []


def test_the_dashboards_annotations_show_the_adoption(wf):
    from dashboards.annotations import unit_annotations

    honos, careplan = wf.measures["honos"], wf.measures["careplan"]
    idea = approved(wf, title="Safe wards", measures=[honos])
    plan(wf, idea, units=[wf.a1])
    _move(wf, _in_state(wf, idea, wf.a1, S), AD, adopted_on=date(2024, 6, 3))
    annotations = unit_annotations(wf.a1.pk, [honos, careplan])
    assert annotations[honos.pk] == [
        {"date": "2024-06-03", "label": "Adopted: Safe wards", "kind": "adoption"}
    ]
    assert annotations[careplan.pk] == []
