"""Taking steps in tests: replaying a path, attempting a step without keeping it."""

from __future__ import annotations

import copy

from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import Count

from initiatives.models import Activity, Initiative
from initiatives.services import initiative_transition
from initiatives.workflow import BY_NAME, Move


def codes_of(error: ValidationError) -> set[str]:
    if hasattr(error, "error_dict"):
        return {e.code for errors in error.error_dict.values() for e in errors}
    return {e.code for e in error.error_list}


def replay(wf, initiative: Initiative, path) -> Initiative:
    """Take each (step, destination) of ``path`` as the admin."""
    for name, dest in path:
        step = BY_NAME[name]
        target = wf.forums[dest] if step.move == Move.UNIT_FORUM else None
        initiative_transition(
            initiative=initiative,
            user=wf.people["admin"],
            transition=name,
            via=step.via,
            comment="As decided.",
            target_forum=target,
        )
    return initiative


class _Undo(Exception):
    pass


def db_snapshot(pk: int) -> tuple:
    row = (
        Initiative.objects.filter(pk=pk)
        .annotate(n=Count("activities"))
        .values_list("state", "forum_id", "version", "n")
        .get()
    )
    return row


def attempt(call, initiative: Initiative, check, *, undo: bool = True) -> None:
    """Run ``call(copy of initiative)``, then ``check(result or error, copy)``.

    With ``undo`` inside a savepoint rolled back afterwards, so the next attempt starts from
    the same place. Attempts expected to be refused run without one (a savepoint per attempt
    costs more than the attempt); the caller checks the database once after them all.
    """
    mine = copy.copy(initiative)

    def run():
        try:
            result = call(mine)
        except ValidationError as error:
            check(error, mine)
        else:
            check(result, mine)

    if not undo:
        run()
        return
    try:
        with transaction.atomic():
            run()
            raise _Undo
    except _Undo:
        pass


def last_activity(pk: int) -> Activity:
    return Activity.objects.filter(initiative_id=pk).order_by("-pk").first()
