"""A model of the workflow in the fixture's terms, read off the table, for the tests' oracle.

It knows the fixture's forums (a1's and a2's unit forums are both in department A; group B
has no unit forums) and what each kind of move means; which steps exist, from where, for
whom, comes from ``initiatives.workflow.TRANSITIONS`` alone.
"""

from __future__ import annotations

from collections import deque
from dataclasses import replace

from initiatives.workflow import ADOPTIONS_SETTLED, TRANSITIONS, Move, Transition

from .conftest import ENTRIES, KIND, Context, expected_permitted

#: Unit forums a department group may hand down to, and the board's (every one).
UNIT_FORUMS_OF = {"dept": ["unit", "unit_a2"], "dept_b": [], "board": ["unit", "unit_a2"]}
#: The department (by its group's key) a forum belongs to.
DEPARTMENT_OF = {"unit": "dept", "unit_a2": "dept", "dept": "dept", "dept_b": "dept_b"}


def entry_context(entry: str) -> Context:
    return Context(
        state="logged", forum=entry, department=DEPARTMENT_OF.get(entry), creator=ENTRIES[entry]
    )


def candidates(step: Transition, ctx: Context) -> list[str]:
    if step.move == Move.STAY:
        return [ctx.forum]
    if step.move == Move.DEPARTMENT:
        return [ctx.department] if ctx.department else []
    if step.move == Move.BOARD:
        return ["board"]
    if step.move == Move.UNIT_FORUM:
        return UNIT_FORUMS_OF.get(ctx.forum, [])
    return [ctx.stack[-1]] if ctx.stack else []


def after(step: Transition, ctx: Context, dest: str) -> Context:
    if step.move == Move.STAY:
        stack = ctx.stack
    elif step.move == Move.PREVIOUS:
        stack = ctx.stack[:-1]
    else:
        stack = (*ctx.stack, ctx.forum)
    return replace(
        ctx,
        state=step.target,
        forum=dest,
        department=ctx.department or DEPARTMENT_OF.get(dest),
        stack=stack,
    )


def applies(step: Transition, ctx: Context) -> bool:
    return ctx.state in step.sources and KIND[ctx.forum] in step.at


def outcome(
    step: Transition,
    person: str,
    ctx: Context,
    *,
    comment: str,
    target: str | None,
    via: str | None = None,
) -> tuple[str, str]:
    """("ok", destination forum key) or ("refused", the error code), in the service's order.

    ``via``: the service the caller says it is; None: the one the step names (a plain caller,
    a button or the API's transitions, says "").
    """
    if ctx.state not in step.sources:
        return "refused", "not_from_state"
    if KIND[ctx.forum] not in step.at:
        return "refused", "not_here"
    if not expected_permitted(step, person, ctx):
        return "refused", "not_permitted"
    if via is not None and via != step.via:
        return "refused", "needs_form"
    if ctx.unsettled and ADOPTIONS_SETTLED in step.guards:
        return "refused", ADOPTIONS_SETTLED.code
    if step.needs_comment and not comment.strip():
        return "refused", "comment_required"
    found = candidates(step, ctx)
    if step.move == Move.STAY:
        if target is not None and target != ctx.forum:
            return "refused", "bad_target_forum"
        return "ok", ctx.forum
    if target is not None:
        return ("ok", target) if target in found else ("refused", "bad_target_forum")
    if not found:
        return "refused", "no_target_forum"
    if len(found) > 1:
        return "refused", "target_forum_required"
    return "ok", found[0]


def reachable(max_stack: int = 3) -> list[tuple[str, list[tuple[str, str]], Context]]:
    """Every (entry, state, forum, can-return) the table reaches, with a shortest path.

    A path is a list of (step name, destination forum key), taken by an admin.
    """
    found: dict[tuple, tuple[str, list[tuple[str, str]], Context]] = {}
    for entry in ENTRIES:
        start = entry_context(entry)
        queue = deque([(start, [])])
        seen = {(start.state, start.forum, start.department, start.stack)}
        while queue:
            ctx, path = queue.popleft()
            found.setdefault((entry, ctx.state, ctx.forum, bool(ctx.stack)), (entry, path, ctx))
            for step in TRANSITIONS:
                if not applies(step, ctx):
                    continue
                for dest in candidates(step, ctx)[:1]:
                    nxt = after(step, ctx, dest)
                    key = (nxt.state, nxt.forum, nxt.department, nxt.stack)
                    if len(nxt.stack) > max_stack or key in seen:
                        continue
                    seen.add(key)
                    queue.append((nxt, [*path, (step.name, dest)]))
    return list(found.values())
