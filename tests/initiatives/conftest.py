"""The org fixture with a person in every seat the workflow asks about.

:data:`SEATS` is the truth the tests judge the service by: which role each person holds in
which forum. The permission oracle (:func:`expected_permitted`) reads the workflow table's
actors against it, never the code under test.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest

from forums.enums import ForumKind, MembershipRole
from forums.models import Membership
from initiatives.enums import InitiativeKind, OriginKind
from initiatives.services import initiative_create
from initiatives.workflow import Relation, Transition
from tests.factories import ForumFactory, UserFactory

CHAIR, SECRETARY, MEMBER = MembershipRole.CHAIR, MembershipRole.SECRETARY, MembershipRole.MEMBER

#: person → {forum key: role}. Forum keys: unit (a1's forum), unit_a2, dept (group A),
#: dept_b (group B), board, support. The first six people come with the org fixture.
SEATS: dict[str, dict[str, str]] = {
    "chair": {"unit": CHAIR},
    "clinician": {"unit": MEMBER},
    "dept_chair": {"dept": CHAIR},
    "support": {"support": MEMBER},
    "board": {"board": MEMBER},
    "outsider": {},
    "admin": {},
    "unit_secretary": {"unit": SECRETARY},
    "other_unit_chair": {"unit_a2": CHAIR},
    "dept_secretary": {"dept": SECRETARY},
    "dept_member": {"dept": MEMBER},
    "other_dept_chair": {"dept_b": CHAIR},
    "board_chair": {"board": CHAIR},
    "board_secretary": {"board": SECRETARY},
    # Sits in two forums, as department and division forums share participants.
    "dept_chair_on_board": {"dept": CHAIR, "board": MEMBER},
}
PERSONAS = tuple(SEATS)

#: Where each entry logs an initiative, and who logs it there.
ENTRIES = {"unit": "chair", "dept": "dept_chair", "board": "board_chair"}


@pytest.fixture
def wf(org):
    """``org`` plus forums for a2 and department B and the people of :data:`SEATS`."""
    unit_a2 = ForumFactory(kind=ForumKind.UNIT_FORUM, name="Forum AFF-02", division=org.division)
    unit_a2.units.add(org.a2)
    dept_b = ForumFactory(
        kind=ForumKind.DEPARTMENT_GROUP,
        name="Group B",
        division=org.division,
        department=org.dept_b,
    )
    org.forums.update({"unit_a2": unit_a2, "dept_b": dept_b})
    for name, seats in SEATS.items():
        if name not in org.people:
            org.people[name] = UserFactory(username=name)
        for key, role in seats.items():
            Membership.objects.get_or_create(
                forum=org.forums[key], user=org.people[name], defaults={"role": role}
            )
    # The fixture's people sit exactly where SEATS says (the oracle depends on it).
    for name, seats in SEATS.items():
        held = {(m.forum_id, m.role) for m in Membership.objects.filter(user=org.people[name])}
        assert held == {(org.forums[key].pk, role) for key, role in seats.items()}, name
    org.forum_key = {forum.pk: key for key, forum in org.forums.items()}
    return org


def log(wf, entry: str, **extra):
    """An initiative logged at ``entry`` (unit / dept / board) by the person who logs there."""
    forum = wf.forums[entry]
    fields = {"title": f"Idea at {entry}", "kind": InitiativeKind.IDEA}
    if entry == "unit":
        fields.update(origin_kind=OriginKind.UNIT)
    else:
        fields.update(
            kind=InitiativeKind.INNOVATION,
            origin_kind=OriginKind.LITERATURE,
            origin_reference="doi:10.1000/example",
        )
    fields.update(extra)
    return initiative_create(user=wf.people[ENTRIES[entry]], forum=forum, **fields)


@dataclass
class Context:
    """Where an initiative is, as the tests model it (independently of the service)."""

    state: str
    forum: str  # forum key
    department: str | None  # "dept" / "dept_b": the key of its department's group
    creator: str
    stack: tuple[str, ...] = field(default=())  # forums a return goes back to, last first
    # Units whose adoption is neither adopted nor declined yet (only a scale-up plan or a
    # department's spread makes adoptions; the table's own paths make none).
    unsettled: int = 0


def relative_forums(ctx: Context) -> dict[Relation, str | None]:
    return {
        Relation.CURRENT: ctx.forum,
        Relation.DEPARTMENT: ctx.department,
        Relation.BOARD: "board",
    }


def expected_permitted(step: Transition, person: str, ctx: Context) -> bool:
    """The table's actors read against SEATS: may ``person`` take ``step`` in ``ctx``?"""
    if person == "admin":
        return True
    seats = SEATS[person]
    forums = relative_forums(ctx)
    for actor in step.actors:
        if actor.relation == Relation.SYSTEM:
            continue  # no person is the system (it closes voting rounds by itself)
        if actor.relation == Relation.CREATOR:
            if person == ctx.creator:
                return True
        elif (
            forums[actor.relation] is not None and seats.get(forums[actor.relation]) in actor.roles
        ):
            return True
    return False


#: The kind of each forum key.
KIND = {
    "unit": ForumKind.UNIT_FORUM,
    "unit_a2": ForumKind.UNIT_FORUM,
    "dept": ForumKind.DEPARTMENT_GROUP,
    "dept_b": ForumKind.DEPARTMENT_GROUP,
    "board": ForumKind.DIVISION_BOARD,
    "support": ForumKind.SUPPORT_UNIT,
}
