"""Each path the design names, end to end through the services, taken by the real roles."""

from __future__ import annotations

from datetime import date

import pytest
from django.core.exceptions import ValidationError

from initiatives import workflow
from initiatives.enums import InitiativeKind, OriginKind, State
from initiatives.selectors import initiative_timeline, unit_events
from initiatives.services import initiative_create, initiative_transition, pdsa_cycle_create

from .conftest import log
from .helpers import codes_of


def step(wf, initiative, person, name, comment="", **kw):
    kw.setdefault("via", workflow.BY_NAME[name].via)
    return initiative_transition(
        initiative=initiative, user=wf.people[person], transition=name, comment=comment, **kw
    )


def refused(wf, initiative, person, name, comment="Because.", **kw) -> set[str]:
    with pytest.raises(ValidationError) as error:
        step(wf, initiative, person, name, comment, **kw)
    return codes_of(error.value)


def timeline(initiative):
    return [
        (a.transition, a.actor.username, a.from_forum and a.from_forum.name, a.to_forum.name)
        for a in initiative_timeline(initiative)
    ]


def test_local_adoption(wf):
    careplan = wf.measures["careplan"]
    idea = log(wf, "unit", title="Care plan at admission", measures=[careplan])
    assert (idea.origin_unit, idea.department) == (wf.a1, wf.dept_a)  # the forum's one unit
    step(wf, idea, "unit_secretary", "start_testing")
    cycle = pdsa_cycle_create(
        user=wf.people["clinician"],
        initiative=idea,
        unit=wf.a1,
        measure=careplan,
        plan="Write the plan on day one.",
        start_date=date(2024, 3, 4),
    )
    assert refused(wf, idea, "clinician", "adopt_locally") == {"not_permitted"}
    assert refused(wf, idea, "chair", "adopt_locally", comment="") == {"comment_required"}
    step(wf, idea, "chair", "adopt_locally", "It works: 80 % have a plan.")
    assert idea.state == State.ADOPTED_LOCALLY and idea.forum == wf.forums["unit"]
    assert timeline(idea) == [
        ("log", "chair", None, "Forum AFF-01"),
        ("start_testing", "unit_secretary", "Forum AFF-01", "Forum AFF-01"),
        ("adopt_locally", "chair", "Forum AFF-01", "Forum AFF-01"),
    ]
    events = unit_events([wf.a1.pk], [careplan.pk])
    assert [(e.kind, e.measure_id) for e in events] == [
        ("pdsa", careplan.pk),
        ("adoption", careplan.pk),
    ]
    assert events[0].date == cycle.start_date


def test_department_spread(wf):
    idea = log(wf, "unit")
    step(wf, idea, "chair", "start_testing")
    # The department's chair may call it up too; a plain member may not.
    assert refused(wf, idea, "dept_member", "escalate") == {"not_permitted"}
    step(wf, idea, "dept_chair", "escalate", "Other units need this.")
    assert idea.state == State.ESCALATED_TO_DEPARTMENT and idea.forum == wf.forums["dept"]
    # Now the unit's forum has no say; the department's does.
    assert refused(wf, idea, "chair", "prioritise") == {"not_permitted"}
    assert refused(wf, idea, "other_dept_chair", "prioritise") == {"not_permitted"}
    step(wf, idea, "dept_secretary", "prioritise")
    step(wf, idea, "dept_chair", "spread_in_department", "All units of the department.")
    assert idea.state == State.SPREAD_IN_DEPARTMENT
    assert [a[0] for a in timeline(idea)] == [
        "log",
        "start_testing",
        "escalate",
        "prioritise",
        "spread_in_department",
    ]


def test_escalation_to_the_board_and_scale_up(wf):
    idea = log(wf, "unit")
    step(wf, idea, "chair", "escalate", "For the department.")
    step(wf, idea, "dept_chair", "prioritise")
    step(wf, idea, "dept_chair", "refer_to_board", "Division-wide potential.")
    assert idea.forum == wf.forums["board"] and idea.state == State.REFERRED_TO_BOARD
    assert refused(wf, idea, "board", "open_vote") == {"not_permitted"}  # a member
    assert refused(wf, idea, "board_secretary", "open_vote") == {"not_permitted"}
    step(wf, idea, "board_chair", "open_vote")
    # The round's outcome moves it (initiatives.voting); its closer is the chair or the system.
    assert refused(wf, idea, "dept_chair_on_board", "approve_scale_up") == {"not_permitted"}
    assert refused(wf, idea, "board_secretary", "approve_scale_up") == {"not_permitted"}
    assert refused(wf, idea, "board_chair", "approve_scale_up", via="") == {"needs_form"}
    step(wf, idea, "board_chair", "approve_scale_up", "Approved 7–1.")
    step(wf, idea, "board_chair", "start_scale_up")
    step(wf, idea, "board_chair", "complete_spread", "All 60 units.")
    assert idea.state == State.SPREAD_COMPLETE
    assert workflow.transitions_for(wf.people["admin"], idea) == []
    assert refused(wf, idea, "admin", "reject") == {"not_from_state"}
    forums = [a[3] for a in timeline(idea)]
    assert forums == [
        "Forum AFF-01",
        "Group A",
        "Group A",
        "Board",
        "Board",
        "Board",
        "Board",
        "Board",
    ]


def test_an_external_innovation_handed_down_from_the_board(wf):
    innovation = initiative_create(
        user=wf.people["board_secretary"],
        forum=wf.forums["board"],
        title="Safewards",
        kind=InitiativeKind.INNOVATION,
        origin_kind=OriginKind.NATIONAL_GUIDELINE,
        origin_reference="National guideline on coercion, 2023",
        measures=[wf.measures["coercion"]],
    )
    assert innovation.department is None and innovation.is_external
    # Starts where it was logged; unit-level steps are not possible up here.
    assert refused(wf, innovation, "admin", "start_testing") == {"not_here"}
    codes = refused(wf, innovation, "board_chair", "hand_down")
    assert codes == {"target_forum_required"}  # two unit forums: say which
    step(
        wf,
        innovation,
        "board_chair",
        "hand_down",
        "Pilot on AFF-02.",
        target_forum=wf.forums["unit_a2"],
    )
    assert innovation.state == State.LOCAL_TESTING
    assert innovation.forum == wf.forums["unit_a2"] and innovation.department == wf.dept_a
    assert refused(wf, innovation, "chair", "adopt_locally") == {"not_permitted"}  # a1's chair
    step(wf, innovation, "other_unit_chair", "adopt_locally", "Adapted: fewer rules, more talk.")
    # And it may go back up the usual way.
    step(wf, innovation, "other_unit_chair", "escalate", "Spread it in the department.")
    assert innovation.forum == wf.forums["dept"]


def test_an_external_innovation_entering_at_the_department(wf):
    innovation = log(
        wf, "dept", title="A vendor's relapse-prevention app", origin_kind=OriginKind.VENDOR
    )
    assert innovation.department == wf.dept_a
    step(wf, innovation, "dept_chair", "prioritise")
    # Only its own department's units.
    codes = refused(wf, innovation, "dept_chair", "hand_down", target_forum=wf.forums["dept_b"])
    assert codes == {"bad_target_forum"}
    step(
        wf,
        innovation,
        "dept_chair",
        "hand_down",
        "Try it on AFF-01.",
        target_forum=wf.forums["unit"],
    )
    step(wf, innovation, "chair", "adopt_locally", "Kept, for out-patients only.")
    assert innovation.state == State.ADOPTED_LOCALLY


def test_an_external_innovation_voted_on_at_the_board(wf):
    innovation = log(wf, "board")
    step(wf, innovation, "board_chair", "open_vote")
    step(wf, innovation, "board_chair", "approve_scale_up", "Unanimous.")
    step(wf, innovation, "board_chair", "start_scale_up")
    assert innovation.state == State.SCALING_UP


def test_rejection_and_return(wf):
    idea = log(wf, "unit")
    step(wf, idea, "chair", "escalate", "Please look.")
    step(wf, idea, "dept_chair", "return_for_more_work", "Test it first.")
    assert idea.state == State.RETURNED_FOR_MORE_WORK and idea.forum == wf.forums["unit"]
    step(wf, idea, "chair", "start_testing")
    step(wf, idea, "chair", "escalate", "Tested: it helps.")
    step(wf, idea, "dept_chair", "prioritise")
    step(wf, idea, "dept_chair", "refer_to_board", "For everyone.")
    step(wf, idea, "board_chair", "open_vote")
    # No plain step leaves a vote: the round closes (here short of quorum) and it is back.
    assert refused(wf, idea, "board_chair", "return_for_more_work") == {"not_from_state"}
    step(wf, idea, "board_chair", "voting_inconclusive", "No quorum.")
    assert idea.state == State.REFERRED_TO_BOARD
    # The board returns it to the department that referred it, not to the unit.
    step(wf, idea, "board_chair", "return_for_more_work", "Cost it.")
    assert idea.forum == wf.forums["dept"]
    # The department can pass it on down to the unit that escalated it.
    step(wf, idea, "dept_secretary", "return_for_more_work", "Costs per bed needed.")
    assert idea.forum == wf.forums["unit"] and idea.state == State.RETURNED_FOR_MORE_WORK
    step(wf, idea, "chair", "escalate", "Costed.")
    step(wf, idea, "dept_chair", "reject", "Too expensive this year.")
    assert idea.state == State.REJECTED and idea.forum == wf.forums["dept"]
    for person in ("admin", "chair", "dept_chair", "board_chair"):
        assert workflow.transitions_for(wf.people[person], idea) == []
    with pytest.raises(ValidationError) as closed:
        pdsa_cycle_create(
            user=wf.people["chair"],
            initiative=idea,
            unit=wf.a1,
            plan="x",
            start_date=date(2024, 1, 1),
        )
    assert codes_of(closed.value) == {"not_permitted"}
    assert len(timeline(idea)) == 13


def test_the_person_who_logged_it_may_withdraw_it_wherever_it_is(wf):
    idea = log(wf, "unit")
    step(wf, idea, "chair", "escalate", "Up.")
    assert refused(wf, idea, "clinician", "withdraw") == {"not_permitted"}
    step(wf, idea, "chair", "withdraw", "Our unit is closing.")  # the creator, not in the group
    assert idea.state == State.WITHDRAWN
