"""Logging initiatives and recording PDSA cycles: what the services accept and refuse."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest
from django.core.exceptions import ValidationError

from forums.models import Meeting
from initiatives.enums import Effort, InitiativeKind, OriginKind, State
from initiatives.models import Activity
from initiatives.services import (
    initiative_create,
    initiative_move,
    initiative_transition,
    pdsa_cycle_create,
)
from tests.factories import ForumFactory

from .conftest import log
from .helpers import codes_of


def _create(wf, person="chair", forum="unit", **fields):
    base = {
        "title": "  Walks after lunch ",
        "kind": InitiativeKind.IDEA,
        "origin_kind": OriginKind.UNIT,
    }
    base.update(fields)
    return initiative_create(user=wf.people[person], forum=wf.forums[forum], **base)


def _codes(call) -> set[str]:
    with pytest.raises(ValidationError) as error:
        call()
    return codes_of(error.value)


def test_logging_records_everything_and_one_activity(wf):
    idea = _create(
        wf,
        measures=[wf.measures["local"], wf.measures["incidents"]],
        expected_benefit="Fewer incidents",
        effort=Effort.SMALL,
        description="After lunch, staff walk with patients.",
    )
    assert idea.title == "Walks after lunch"
    assert (idea.state, idea.forum, idea.origin_unit, idea.department) == (
        State.LOGGED,
        wf.forums["unit"],
        wf.a1,
        wf.dept_a,
    )
    assert set(idea.measures.all()) == {wf.measures["local"], wf.measures["incidents"]}
    (activity,) = Activity.objects.filter(initiative=idea)
    assert (activity.transition, activity.from_state, activity.to_state) == ("log", "", "logged")
    assert activity.actor == wf.people["chair"] and activity.to_forum == wf.forums["unit"]


def test_what_logging_refuses(wf):
    assert _codes(lambda: _create(wf, person="clinician")) == {"not_permitted"}
    assert _codes(lambda: _create(wf, person="admin", forum="support")) == {"not_permitted"}
    # A unit of another forum; a unit of another department at the department's group.
    assert _codes(lambda: _create(wf, origin_unit=wf.a2)) == {"bad_origin_unit"}
    assert _codes(lambda: _create(wf, "dept_chair", "dept", origin_unit=wf.b1)) == {
        "bad_origin_unit"
    }
    assert _codes(lambda: _create(wf, "dept_chair", "dept")) == {"origin_unit_required"}
    external = {"origin_kind": OriginKind.LITERATURE}
    assert _codes(lambda: _create(wf, **external)) == {"reference_required"}
    assert _codes(lambda: _create(wf, **external, origin_reference="x", origin_unit=wf.a1)) == {
        "bad_origin_unit"
    }
    assert _codes(lambda: _create(wf, title="   ")) == {"blank"}
    assert _codes(lambda: _create(wf, kind="wish")) == {"invalid_choice"}
    assert not Activity.objects.exists()


def test_a_unit_forum_of_two_units_asks_which(wf):
    shared = ForumFactory(name="Shared forum", division=wf.division)
    shared.units.add(wf.a1, wf.b1)
    from forums.models import Membership

    Membership.objects.create(forum=shared, user=wf.people["chair"], role="chair")
    forum = {"forum": "shared"}
    wf.forums["shared"] = shared
    assert _codes(lambda: _create(wf, **forum)) == {"origin_unit_required"}
    idea = _create(wf, **forum, origin_unit=wf.b1)
    assert idea.department == wf.dept_b  # escalates to department B's group
    external = _create(wf, **forum, origin_kind=OriginKind.VENDOR, origin_reference="App")
    assert external.department is None  # two departments: none to escalate to
    codes = _codes(
        lambda: initiative_transition(
            initiative=external, user=wf.people["chair"], transition="escalate", comment="Up."
        )
    )
    assert codes == {"no_target_forum"}


def test_an_unknown_step_or_target_is_a_clear_refusal(wf):
    idea = log(wf, "unit")
    chair = wf.people["chair"]
    with pytest.raises(ValidationError) as error:
        initiative_transition(initiative=idea, user=chair, transition="teleport")
    assert codes_of(error.value) == {"unknown_transition"}
    assert "teleport" in error.value.messages[0]
    with pytest.raises(ValidationError) as error:
        initiative_move(initiative=idea, user=chair, to_state="voting")
    assert codes_of(error.value) == {"no_such_step"}
    assert error.value.messages == [
        "An initiative cannot go from “Logged” to “Voting” where it sits."
    ]
    with pytest.raises(ValidationError) as error:
        initiative_move(initiative=idea, user=chair, to_state="nirvana")
    assert codes_of(error.value) == {"no_such_step"}


def test_refusals_say_who_may(wf):
    idea = log(wf, "unit")
    with pytest.raises(ValidationError) as error:
        initiative_transition(
            initiative=idea, user=wf.people["clinician"], transition="escalate", comment="Up."
        )
    message = error.value.messages[0]
    assert "chair, secretary of the forum it sits in" in message
    assert "chair of its department's coordinating group" in message


def test_the_meeting_and_comment_are_kept(wf):
    idea = log(wf, "unit")
    meeting = Meeting.objects.create(
        forum=wf.forums["unit"],
        starts_at=datetime(2024, 3, 4, 13, tzinfo=UTC),
        created_by=wf.people["chair"],
    )
    activity = initiative_transition(
        initiative=idea,
        user=wf.people["chair"],
        transition="escalate",
        comment="  Agreed by all.  ",
        meeting=meeting,
    )
    activity.refresh_from_db()
    assert (activity.comment, activity.meeting) == ("Agreed by all.", meeting)
    assert list(meeting.decisions.all()) == [activity]
    assert (activity.from_forum, activity.to_forum) == (wf.forums["unit"], wf.forums["dept"])


def test_a_decision_cannot_name_another_forums_meeting(wf):
    idea = log(wf, "unit")
    elsewhere = Meeting.objects.create(
        forum=wf.forums["dept"],
        starts_at=datetime(2024, 3, 4, 13, tzinfo=UTC),
        created_by=wf.people["chair"],
    )
    with pytest.raises(ValidationError) as error:
        initiative_transition(
            initiative=idea,
            user=wf.people["chair"],
            transition="escalate",
            comment="Agreed.",
            meeting=elsewhere,
        )
    assert error.value.error_dict["meeting"][0].code == "bad_meeting"
    idea.refresh_from_db()
    assert idea.state == "logged" and idea.activities.count() == 1


def test_pdsa_cycles(wf):
    idea = log(wf, "unit")
    clinician = wf.people["clinician"]
    kw = {"user": clinician, "initiative": idea, "plan": "Try it for two weeks."}
    cycle = pdsa_cycle_create(
        **kw, unit=wf.a1, start_date=date(2024, 3, 4), end_date=date(2024, 3, 18)
    )
    assert (cycle.unit, cycle.measure, cycle.created_by) == (wf.a1, None, clinician)
    assert _codes(lambda: pdsa_cycle_create(**kw, unit=wf.a2, start_date=date(2024, 3, 4))) == {
        "not_permitted"
    }
    assert _codes(
        lambda: pdsa_cycle_create(
            **kw, unit=wf.a1, start_date=date(2024, 3, 4), end_date=date(2024, 3, 3)
        )
    ) == {"bad_dates"}
    # a1's local measure applies to a1 only.
    local = wf.measures["local"]
    secretary = {**kw, "user": wf.people["dept_secretary"]}
    assert pdsa_cycle_create(**secretary, unit=wf.a1, measure=local, start_date=date(2024, 4, 1))
    assert _codes(
        lambda: pdsa_cycle_create(
            **secretary, unit=wf.a2, measure=local, start_date=date(2024, 4, 1)
        )
    ) == {"bad_measure"}
    assert _codes(
        lambda: pdsa_cycle_create(**{**kw, "plan": " "}, unit=wf.a1, start_date=date(2024, 3, 4))
    ) == {"blank"}


def test_a_step_with_its_own_form_is_refused_as_a_plain_step(wf, monkeypatch):
    """A step that goes through another service (``via``) cannot be taken by a button or the
    API's transitions, and the service that records it can."""
    import dataclasses

    from initiatives import workflow

    step = dataclasses.replace(workflow.BY_NAME["start_testing"], via="special")
    monkeypatch.setitem(workflow.BY_NAME, "start_testing", step)
    idea = log(wf, "unit")
    with pytest.raises(ValidationError) as error:
        initiative_transition(initiative=idea, user=wf.people["chair"], transition="start_testing")
    assert codes_of(error.value) == {"needs_form"}
    # Someone without the role hears that first (403 in the API, not 400).
    with pytest.raises(ValidationError) as error:
        initiative_transition(
            initiative=idea, user=wf.people["clinician"], transition="start_testing"
        )
    assert codes_of(error.value) == {"not_permitted"}
    initiative_transition(
        initiative=idea, user=wf.people["chair"], transition="start_testing", via="special"
    )
    assert idea.state == State.LOCAL_TESTING
