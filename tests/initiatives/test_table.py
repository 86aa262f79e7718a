"""The workflow table, exhaustively: every step from every place it reaches, for everyone.

Generated from ``initiatives.workflow.TRANSITIONS``: the contexts are the (state, forum,
can-return) places the table reaches from each entry (unit forum, department group, board),
the expectation for each (person × step) and (person × target state) comes from the table's
actors read against the fixture's seats (``conftest.SEATS``). Nothing here lists a transition
by hand.
"""

from __future__ import annotations

import copy

import pytest
from django.core.exceptions import ValidationError

from initiatives import workflow
from initiatives.enums import State
from initiatives.models import Activity
from initiatives.services import initiative_move, initiative_transition
from initiatives.workflow import TRANSITIONS, Move

from .conftest import KIND, PERSONAS, log
from .helpers import attempt, codes_of, db_snapshot, replay
from .model import applies, outcome, reachable

CONTEXTS = reachable()


def _id(case) -> str:
    entry, _, ctx = case
    return f"{entry}-entry:{ctx.state}@{ctx.forum}{'+back' if ctx.stack else ''}"


def _judge(wf, person, step, ctx, expected, before):
    """A check for :func:`attempt`: the service did what the model says, and only that."""
    verdict, detail = expected

    def check(result, initiative):
        label = f"{person} · {step.name if step else '—'} · {ctx}"
        if verdict == "ok":
            assert isinstance(result, Activity), f"{label}: refused {result}"
            assert (result.from_state, result.to_state, result.transition) == (
                ctx.state,
                step.target,
                step.name,
            ), label
            assert result.actor == wf.people[person]
            assert result.to_forum_id == wf.forums[detail].pk, label
            state, forum_id, version, n = db_snapshot(initiative.pk)
            assert (state, forum_id, version, n) == (
                step.target,
                wf.forums[detail].pk,
                before[2] + 1,
                before[3] + 1,
            ), label
        else:
            assert isinstance(result, ValidationError), f"{label}: allowed, expected {detail}"
            assert detail in codes_of(result), f"{label}: {codes_of(result)} ≠ {detail}"
            assert initiative.state == ctx.state, label  # the object is left as it was

    return check


@pytest.mark.parametrize("case", CONTEXTS, ids=_id)
def test_every_step_from_every_place(wf, case):
    """From one place the table reaches: each (person × step), each (person × target state),
    a decision without its reason, and each forum named as the destination."""
    entry, path, ctx = case
    initiative = replay(wf, log(wf, entry), path)
    assert wf.forum_key[initiative.forum_id] == ctx.forum and initiative.state == ctx.state
    before = db_snapshot(initiative.pk)
    _each_step_for_each_person(wf, initiative, ctx, before)
    _each_target_state_for_each_person(wf, initiative, ctx, before)
    _decisions_need_a_comment(wf, initiative, ctx)
    _only_the_tables_destinations(wf, initiative, ctx, before)
    # No refusal wrote anything, and every success was rolled back.
    assert db_snapshot(initiative.pk) == before


def _each_step_for_each_person(wf, initiative, ctx, before):
    allowed = 0
    for step in TRANSITIONS:
        target = "unit" if step.move == Move.UNIT_FORUM else None
        for person in PERSONAS:
            expected = outcome(step, person, ctx, comment="Because.", target=target)
            allowed += expected[0] == "ok"

            def call(i, step=step, person=person, target=target):
                return initiative_transition(
                    initiative=i,
                    user=wf.people[person],
                    transition=step.name,
                    via=step.via,
                    comment="Because.",
                    target_forum=wf.forums[target] if target else None,
                )

            check = _judge(wf, person, step, ctx, expected, before)
            attempt(call, initiative, check, undo=expected[0] == "ok")
    # Not a vacuous pass: the admin at least takes every step the table has from here.
    assert allowed >= len([t for t in TRANSITIONS if applies(t, ctx) and t.move != Move.PREVIOUS])


def _each_target_state_for_each_person(wf, initiative, ctx, before):
    """As the API will ask: "move it to this state". Only the table's one step there works."""
    for to_state in State:
        steps = [t for t in TRANSITIONS if applies(t, ctx) and t.target == to_state]
        assert len(steps) <= 1, f"two steps lead from {ctx} to {to_state}"
        step = steps[0] if steps else None
        target = "unit" if step and step.move == Move.UNIT_FORUM else None
        for person in PERSONAS:
            if step is None:
                expected = ("refused", "no_such_step")
            else:
                # A plain caller: a step that goes through a service of its own is refused.
                expected = outcome(step, person, ctx, comment="Because.", target=target, via="")

            def call(i, to_state=to_state, person=person, target=target):
                return initiative_move(
                    initiative=i,
                    user=wf.people[person],
                    to_state=to_state,
                    comment="Because.",
                    target_forum=wf.forums[target] if target else None,
                )

            check = _judge(wf, person, step, ctx, expected, before)
            attempt(call, initiative, check, undo=expected[0] == "ok")


def _decisions_need_a_comment(wf, initiative, ctx):
    for step in TRANSITIONS:
        if not (step.needs_comment and applies(step, ctx)):
            continue
        target = wf.forums["unit"] if step.move == Move.UNIT_FORUM else None
        for comment in ("", "   \n"):
            with pytest.raises(ValidationError) as refused:
                initiative_transition(
                    initiative=copy.copy(initiative),
                    user=wf.people["admin"],
                    transition=step.name,
                    via=step.via,
                    comment=comment,
                    target_forum=target,
                )
            assert codes_of(refused.value) == {"comment_required"}, step.name


def _only_the_tables_destinations(wf, initiative, ctx, before):
    """Naming a forum a step cannot go to is refused; each one it can go to is taken."""
    for step in TRANSITIONS:
        if not applies(step, ctx):
            continue
        for key in wf.forums:
            expected = outcome(step, "admin", ctx, comment="Because.", target=key)

            def call(i, step=step, key=key):
                return initiative_transition(
                    initiative=i,
                    user=wf.people["admin"],
                    transition=step.name,
                    via=step.via,
                    comment="Because.",
                    target_forum=wf.forums[key],
                )

            check = _judge(wf, "admin", step, ctx, expected, before)
            attempt(call, initiative, check, undo=expected[0] == "ok")


def test_the_table_is_well_formed():
    names = [t.name for t in TRANSITIONS]
    assert len(names) == len(set(names))
    assert workflow.LOG_NAME not in names
    for step in TRANSITIONS:
        assert step.sources and step.at and step.actors, step.name
        assert step.at <= set(KIND.values()) - {"support_unit"}, step.name
    assert {State.SPREAD_COMPLETE, State.REJECTED, State.WITHDRAWN} == workflow.TERMINAL


def test_every_state_is_reached_and_every_step_is_taken_somewhere():
    states = {ctx.state for _, _, ctx in CONTEXTS}
    assert states == set(State)
    taken = {name for _, path, _ in CONTEXTS for name, _ in path}
    # A vote's rejection ends where a plain rejection at the board already got first, so no
    # shortest path takes it; it applies from the voting place, where every role tries it.
    assert {t.name for t in TRANSITIONS} - taken == {"reject_scale_up"}
    assert all(any(applies(t, ctx) for _, _, ctx in CONTEXTS) for t in TRANSITIONS)
    # Each path the design names ends somewhere the model reaches.
    for entry, state in [
        ("unit", State.ADOPTED_LOCALLY),
        ("unit", State.SPREAD_IN_DEPARTMENT),
        ("unit", State.SPREAD_COMPLETE),
        ("dept", State.SPREAD_IN_DEPARTMENT),
        ("board", State.SPREAD_COMPLETE),
        ("board", State.ADOPTED_LOCALLY),
    ]:
        assert any(e == entry and c.state == state for e, _, c in CONTEXTS), (entry, state)


def test_the_steps_from_a_place_name_their_targets_once():
    for _, _, ctx in CONTEXTS:
        targets = [t.target for t in TRANSITIONS if applies(t, ctx)]
        assert len(targets) == len(set(targets)), ctx
        for target in targets:
            assert workflow.find(ctx.state, KIND[ctx.forum], target).target == target


def test_the_diagram_and_description_carry_every_edge():
    text = workflow.diagram()
    described = workflow.describe()
    for step in TRANSITIONS:
        for source in step.sources:
            assert f"{source} --> {step.target}: {step.label}" in text
    assert [d["name"] for d in described] == [t.name for t in TRANSITIONS]
    assert all(d["actors"] for d in described)
