"""Getting initiatives to where they spread, for the scale-up tests."""

from __future__ import annotations

from datetime import timedelta

from django.utils import timezone

from initiatives.models import Initiative
from initiatives.scale_up import department_spread_start, scale_up_plan_create

from .conftest import log
from .helpers import replay


def approved(wf, **extra) -> Initiative:
    """An external innovation the board logged, voted on and approved for scale-up."""
    return replay(
        wf, log(wf, "board", **extra), [("open_vote", "board"), ("approve_scale_up", "board")]
    )


def prioritised(wf, **extra) -> Initiative:
    """An innovation logged in department A's group and prioritised there."""
    return replay(wf, log(wf, "dept", **extra), [("prioritise", "dept")])


def in_a_month():
    return timezone.localdate() + timedelta(days=30)


def plan(wf, initiative, units=None, person="board_chair", **extra):
    fields = {
        "scope": "Every ward of the division within a year.",
        "deadline": in_a_month(),
        "units": units if units is not None else [wf.a1, wf.a2, wf.b1],
    }
    fields.update(extra)
    return scale_up_plan_create(user=wf.people[person], initiative=initiative, **fields)


def spread(wf, initiative, units=None, person="dept_chair", **extra):
    fields = {"units": units if units is not None else [wf.a1, wf.a2], "comment": "Both units."}
    fields.update(extra)
    return department_spread_start(user=wf.people[person], initiative=initiative, **fields)
