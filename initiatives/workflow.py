"""The improvement workflow as one table: states, the steps between them, who may take each.

This module is the only description of the workflow (DESIGN.md §4). The service
(``services.initiative_transition``), the buttons a user sees, the API and the diagram on the
help page (:func:`diagram`) are all read off :data:`TRANSITIONS`, so it is never described in
two places.

Paths the table allows (see the tests for each end to end):

- local: logged → local testing → adopted locally;
- department: … → escalated to the department → prioritised → spread in the department;
- division: … → prioritised → referred to the division board → voting → approved for scale-up
  → scaling up → spread complete;
- top-down: an external innovation logged in a department group or the division board, then
  prioritised / voted on, or handed down to a unit forum to test;
- and out: rejected, returned for more work (to the forum that sent it), withdrawn.

Voting leads only through a voting round (``initiatives.voting``): the round's outcome takes
the initiative to approved, rejected, or back to referred-to-the-board when it was tied or
short of quorum; no plain step leaves it, so an open round is never left behind.

Who may take a step is a role (chair, secretary, member) in a forum *relative to the
initiative*: the forum it sits in, the coordinating group of its department, the division
board; or the person who logged it; or, for the steps a voting round takes when it closes
by itself, the system (no person, ``Relation.SYSTEM``). Active superusers (admins) may take
any step the table has from the current state and forum, and no other.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from enum import StrEnum
from typing import TYPE_CHECKING

from django.db.models import Q
from django.utils.functional import Promise
from django.utils.translation import gettext_lazy as _
from django.utils.translation import ngettext

from forums.enums import ForumKind, MembershipRole

from .enums import State

if TYPE_CHECKING:
    from .models import Initiative


class Relation(StrEnum):
    """Which forum a role is held in, seen from the initiative."""

    CURRENT = "current"  # the forum the initiative sits in
    DEPARTMENT = "department"  # the coordinating group of the initiative's department
    BOARD = "board"  # the division board of the initiative's division
    CREATOR = "creator"  # not a forum: the person who logged it
    # Not a person: a service acting on its own (a voting round closing at its deadline or
    # when everyone has voted). Only steps with a ``via`` name it, so only that service can.
    SYSTEM = "system"


class Move(StrEnum):
    """Where a step takes the initiative."""

    STAY = "stay"
    DEPARTMENT = "department"  # to the coordinating group of its department
    BOARD = "board"  # to the division board
    UNIT_FORUM = "unit_forum"  # to a unit forum the actor names (handing down)
    PREVIOUS = "previous"  # back to the forum that sent it to the current one


#: A role held relative to an initiative, e.g. ``(Relation.CURRENT, "chair")``; the creator
#: holds ``(Relation.CREATOR, "")``.
Standing = frozenset[tuple[Relation, str]]

CHAIR = frozenset({MembershipRole.CHAIR})
DECIDERS = frozenset({MembershipRole.CHAIR, MembershipRole.SECRETARY})

UNIT = frozenset({ForumKind.UNIT_FORUM})
DEPARTMENT = frozenset({ForumKind.DEPARTMENT_GROUP})
BOARD = frozenset({ForumKind.DIVISION_BOARD})
ANY_LEVEL = UNIT | DEPARTMENT | BOARD


@dataclass(frozen=True)
class Actor:
    """Who may take a step: one of ``roles`` in the forum ``relation`` names."""

    relation: Relation
    roles: frozenset[str] = frozenset()

    def held_by(self, standing: Standing) -> bool:
        if self.relation in (Relation.CREATOR, Relation.SYSTEM):
            return (self.relation, "") in standing
        return any((self.relation, role) in standing for role in self.roles)

    def label(self) -> str:
        if self.relation == Relation.CREATOR:
            return str(_("the person who logged it"))
        if self.relation == Relation.SYSTEM:
            return str(_("the system, when the voting round closes by itself"))
        roles = ", ".join(str(MembershipRole(role).label).lower() for role in sorted(self.roles))
        where = {
            Relation.CURRENT: _("%(roles)s of the forum it sits in"),
            Relation.DEPARTMENT: _("%(roles)s of its department's coordinating group"),
            Relation.BOARD: _("%(roles)s of the division board"),
        }[self.relation]
        return str(where) % {"roles": roles}


CURRENT_DECIDERS = Actor(Relation.CURRENT, DECIDERS)
#: The steps a closing voting round takes: by the board's chair closing it early, or by the
#: system (no person) when it closes at its deadline or once every member has voted.
ROUND_CLOSERS = (Actor(Relation.CURRENT, CHAIR), Actor(Relation.SYSTEM))


@dataclass(frozen=True)
class Guard:
    """A condition a step needs besides who takes it and where the initiative sits.

    ``check(initiative)`` answers "" when it holds, else why not (for the user); the service
    refuses the step with ``code`` and that message, and the pages show it by the step.
    """

    code: str
    label: Promise
    check: Callable[[Initiative], str]


def _adoptions_settled(initiative: Initiative) -> str:
    from .enums import AdoptionState
    from .models import Adoption

    unsettled = Adoption.objects.filter(
        initiative_id=initiative.pk, state__in=(AdoptionState.PLANNED, AdoptionState.STARTED)
    ).count()
    if not unsettled:
        return ""
    return ngettext(
        "%(count)d unit has not yet adopted or declined it.",
        "%(count)d units have not yet adopted or declined it.",
        unsettled,
    ) % {"count": unsettled}


#: The spread is complete only when every unit's adoption is settled (adopted or declined).
ADOPTIONS_SETTLED = Guard(
    code="adoptions_unsettled",
    label=_("every unit has adopted or declined it"),
    check=_adoptions_settled,
)


@dataclass(frozen=True)
class Transition:
    """One step of the workflow.

    ``at``: the kinds of forum the initiative must sit in (for everyone, admins too).
    ``actors``: who may take it (any one of them). ``needs_comment``: the step records a
    decision and must say why. ``move``: where the initiative goes; a step that moves to a
    forum the actor chooses (:attr:`Move.UNIT_FORUM`), or to one of several candidates, needs
    the target forum named. ``via``: the step needs more than a comment (a voting round, a
    scale-up plan …) and is taken only by the service that records it, which names itself
    in ``initiative_transition(via=…)``; the pages show that service's form instead of the
    plain one, and a plain call (a button, the API's transitions) is refused. ``guards``:
    conditions on the initiative's own data (:class:`Guard`) the service checks before it
    takes the step.
    """

    name: str
    label: Promise
    sources: frozenset[State]
    target: State
    at: frozenset[str]
    actors: tuple[Actor, ...]
    needs_comment: bool = False
    move: Move = Move.STAY
    via: str = ""
    guards: tuple[Guard, ...] = ()

    def permits(self, standing: Standing, *, is_admin: bool = False) -> bool:
        return is_admin or any(actor.held_by(standing) for actor in self.actors)

    def applies(self, state: str, forum_kind: str) -> bool:
        return state in self.sources and forum_kind in self.at


S = State

#: The table. Later sessions add needs to some steps (marked "later"); the shape stays.
TRANSITIONS: tuple[Transition, ...] = (
    Transition(
        name="start_testing",
        label=_("Start local testing"),
        sources=frozenset({S.LOGGED, S.RETURNED_FOR_MORE_WORK}),
        target=S.LOCAL_TESTING,
        at=UNIT,
        actors=(CURRENT_DECIDERS,),
    ),
    Transition(
        name="adopt_locally",
        label=_("Adopt locally"),
        sources=frozenset({S.LOCAL_TESTING}),
        target=S.ADOPTED_LOCALLY,
        at=UNIT,
        actors=(CURRENT_DECIDERS,),
        needs_comment=True,
    ),
    Transition(
        name="escalate",
        label=_("Escalate to the department"),
        sources=frozenset({S.LOGGED, S.LOCAL_TESTING, S.ADOPTED_LOCALLY, S.RETURNED_FOR_MORE_WORK}),
        target=S.ESCALATED_TO_DEPARTMENT,
        at=UNIT,
        # The department's chair may also call an initiative up.
        actors=(CURRENT_DECIDERS, Actor(Relation.DEPARTMENT, CHAIR)),
        needs_comment=True,
        move=Move.DEPARTMENT,
    ),
    Transition(
        name="prioritise",
        label=_("Prioritise"),
        # Logged: an external innovation that entered at the department.
        sources=frozenset({S.LOGGED, S.ESCALATED_TO_DEPARTMENT, S.RETURNED_FOR_MORE_WORK}),
        target=S.PRIORITISED,
        at=DEPARTMENT,
        actors=(CURRENT_DECIDERS,),
    ),
    Transition(
        name="spread_in_department",
        label=_("Spread in the department"),
        sources=frozenset({S.PRIORITISED}),
        target=S.SPREAD_IN_DEPARTMENT,
        at=DEPARTMENT,
        actors=(CURRENT_DECIDERS,),
        needs_comment=True,
        via="department_spread",  # the department's units that adopt: initiatives.scale_up
    ),
    Transition(
        name="refer_to_board",
        label=_("Refer to the division board"),
        sources=frozenset({S.PRIORITISED, S.SPREAD_IN_DEPARTMENT}),
        target=S.REFERRED_TO_BOARD,
        at=DEPARTMENT,
        # The board's chair may also call an initiative up.
        actors=(CURRENT_DECIDERS, Actor(Relation.BOARD, CHAIR)),
        needs_comment=True,
        move=Move.BOARD,
    ),
    Transition(
        name="open_vote",
        label=_("Open a vote on scale-up"),
        # Logged: an external innovation that entered at the division.
        sources=frozenset({S.LOGGED, S.REFERRED_TO_BOARD}),
        target=S.VOTING,
        at=BOARD,
        actors=(Actor(Relation.CURRENT, CHAIR),),
        via="voting",  # a voting round (deadline, quorum): initiatives.voting
    ),
    Transition(
        name="approve_scale_up",
        label=_("Approve for scale-up"),
        sources=frozenset({S.VOTING}),
        target=S.APPROVED_FOR_SCALE_UP,
        at=BOARD,
        actors=ROUND_CLOSERS,
        needs_comment=True,
        via="voting",  # the closed round's outcome
    ),
    Transition(
        name="reject_scale_up",
        label=_("Reject scale-up (the vote)"),
        sources=frozenset({S.VOTING}),
        target=S.REJECTED,
        at=BOARD,
        actors=ROUND_CLOSERS,
        needs_comment=True,
        via="voting",
    ),
    Transition(
        name="voting_inconclusive",
        label=_("Back to the board: the vote was tied or short of quorum"),
        sources=frozenset({S.VOTING}),
        target=S.REFERRED_TO_BOARD,
        at=BOARD,
        actors=ROUND_CLOSERS,
        needs_comment=True,
        via="voting",
    ),
    Transition(
        name="start_scale_up",
        label=_("Start scaling up"),
        sources=frozenset({S.APPROVED_FOR_SCALE_UP}),
        target=S.SCALING_UP,
        at=BOARD,
        actors=(CURRENT_DECIDERS,),
        via="scale_up_plan",  # scope, target units, deadline: initiatives.scale_up
    ),
    Transition(
        name="complete_spread",
        label=_("Mark the spread complete"),
        sources=frozenset({S.SCALING_UP}),
        target=S.SPREAD_COMPLETE,
        at=BOARD,
        actors=(CURRENT_DECIDERS,),
        needs_comment=True,
        guards=(ADOPTIONS_SETTLED,),
    ),
    Transition(
        name="hand_down",
        label=_("Hand down to a unit to test"),
        sources=frozenset({S.LOGGED, S.PRIORITISED, S.REFERRED_TO_BOARD}),
        target=S.LOCAL_TESTING,
        at=DEPARTMENT | BOARD,
        actors=(CURRENT_DECIDERS,),
        needs_comment=True,
        move=Move.UNIT_FORUM,
    ),
    Transition(
        name="return_for_more_work",
        label=_("Return for more work"),
        sources=frozenset(
            {
                S.ESCALATED_TO_DEPARTMENT,
                S.PRIORITISED,
                S.REFERRED_TO_BOARD,
                S.RETURNED_FOR_MORE_WORK,
            }
        ),
        target=S.RETURNED_FOR_MORE_WORK,
        at=DEPARTMENT | BOARD,
        actors=(CURRENT_DECIDERS,),
        needs_comment=True,
        move=Move.PREVIOUS,
    ),
    Transition(
        name="reject",
        label=_("Reject"),
        sources=frozenset(
            {
                S.LOGGED,
                S.LOCAL_TESTING,
                S.ESCALATED_TO_DEPARTMENT,
                S.PRIORITISED,
                S.REFERRED_TO_BOARD,
                S.RETURNED_FOR_MORE_WORK,
            }
        ),
        target=S.REJECTED,
        at=ANY_LEVEL,
        actors=(CURRENT_DECIDERS,),
        needs_comment=True,
    ),
    Transition(
        name="withdraw",
        label=_("Withdraw"),
        sources=frozenset(
            {
                S.LOGGED,
                S.LOCAL_TESTING,
                S.ESCALATED_TO_DEPARTMENT,
                S.PRIORITISED,
                S.REFERRED_TO_BOARD,
                S.RETURNED_FOR_MORE_WORK,
            }
        ),
        target=S.WITHDRAWN,
        at=ANY_LEVEL,
        actors=(CURRENT_DECIDERS, Actor(Relation.CREATOR)),
        needs_comment=True,
    ),
)

BY_NAME: dict[str, Transition] = {t.name: t for t in TRANSITIONS}

#: Every initiative starts here, in the forum it is logged in.
ENTRY_STATE = State.LOGGED
#: Where initiatives can be logged (the support unit takes support requests instead).
LOG_AT = ANY_LEVEL
#: Who may log one in a forum (members, where a forum allows it, come with a forum setting).
LOG_ROLES = DECIDERS
#: The activity-log name of the creation step.
LOG_NAME = "log"

#: States no step leaves.
TERMINAL: frozenset[State] = frozenset(
    state for state in State if not any(state in t.sources for t in TRANSITIONS)
)
#: States in which no more work is done on the initiative (no PDSA cycles).
CLOSED: frozenset[State] = frozenset({S.REJECTED, S.WITHDRAWN})


def transitions_from(state: str, forum_kind: str) -> list[Transition]:
    """The steps the table has from ``state`` while the initiative sits in that kind of forum."""
    return [t for t in TRANSITIONS if t.applies(state, forum_kind)]


def find(state: str, forum_kind: str, target: str) -> Transition | None:
    """The step from ``state`` to ``target`` where the initiative sits (the API names targets).

    At most one: the table is built so (state, kind of forum, target) names one step.
    """
    found = [t for t in transitions_from(state, forum_kind) if t.target == target]
    return found[0] if found else None


def is_admin(user) -> bool:
    return bool(user is not None and user.is_authenticated and user.is_active and user.is_superuser)


def standing_of(user, initiative: Initiative) -> Standing:
    """The roles ``user`` holds relative to ``initiative`` (one query).

    ``None`` is the system (no person): it holds :attr:`Relation.SYSTEM` and nothing else.
    """
    from forums.models import Membership

    if user is None:
        return frozenset({(Relation.SYSTEM, "")})
    if not user.is_authenticated or not user.is_active:
        return frozenset()
    held: set[tuple[Relation, str]] = set()
    if initiative.created_by_id == user.pk:
        held.add((Relation.CREATOR, ""))
    division_id = initiative.forum.division_id
    where = Q(forum_id=initiative.forum_id) | Q(
        forum__kind=ForumKind.DIVISION_BOARD, forum__division_id=division_id
    )
    if initiative.department_id:
        where |= Q(
            forum__kind=ForumKind.DEPARTMENT_GROUP, forum__department_id=initiative.department_id
        )
    rows = (
        Membership.objects.filter(user=user)
        .filter(where)
        .values_list(
            "forum_id", "forum__kind", "forum__division_id", "forum__department_id", "role"
        )
    )
    for forum_id, kind, forum_division, forum_department, role in rows:
        if forum_id == initiative.forum_id:
            held.add((Relation.CURRENT, role))
        if kind == ForumKind.DIVISION_BOARD and forum_division == division_id:
            held.add((Relation.BOARD, role))
        if (
            kind == ForumKind.DEPARTMENT_GROUP
            and initiative.department_id
            and forum_department == initiative.department_id
        ):
            held.add((Relation.DEPARTMENT, role))
    return frozenset(held)


def transitions_for(user, initiative: Initiative) -> list[Transition]:
    """The steps ``user`` may take on ``initiative`` now (buttons, API, the service's guard).

    Needs (a comment, a target forum) are not checked here: the form asks for them.
    """
    steps = transitions_from(initiative.state, initiative.forum.kind)
    if not steps:
        return []
    standing = standing_of(user, initiative)
    admin = is_admin(user)
    return [t for t in steps if t.permits(standing, is_admin=admin)]


def blocked_by(step: Transition, initiative: Initiative) -> list[str]:
    """Why ``step`` cannot be taken on ``initiative`` now, by its guards (empty: nothing
    stops it); for the page to show by the step's button, and the service's refusal."""
    return [reason for reason in (guard.check(initiative) for guard in step.guards) if reason]


def describe(transitions: Iterable[Transition] = TRANSITIONS) -> list[dict[str, object]]:
    """The table as plain data (for a help page or the API's schema)."""
    return [
        {
            "name": t.name,
            "label": str(t.label),
            "sources": sorted(t.sources),
            "target": str(t.target),
            "at": sorted(t.at),
            "actors": [actor.label() for actor in t.actors],
            "needs_comment": t.needs_comment,
            "move": str(t.move),
            "via": t.via,
            "guards": [str(g.label) for g in t.guards],
        }
        for t in transitions
    ]


def diagram() -> str:
    """The workflow as a Mermaid state diagram, for the help page."""
    lines = ["stateDiagram-v2", f"    [*] --> {ENTRY_STATE}"]
    for t in TRANSITIONS:
        for source in sorted(t.sources):
            lines.append(f"    {source} --> {t.target}: {t.label}")
    lines.extend(f"    {state} --> [*]" for state in sorted(TERMINAL))
    return "\n".join(lines) + "\n"
