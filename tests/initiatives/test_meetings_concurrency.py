"""Two secretaries at once, with real threads on real connections.

Every caller is held until all have passed the permission check (a barrier there), so they
race on the writes themselves: a reorder that read the positions before taking the meeting's
lock would leave two items in one place; an "add the proposed items" that did would add them
twice; a minutes save without the conditional UPDATE would overwrite silently.

Meant for PostgreSQL (CI runs it there; locally ``DATABASE_URL=postgres://…``). On SQLite the
database file's lock serialises every write transaction, so these say little there: they skip.
"""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.core.exceptions import ValidationError
from django.db import connection
from django.utils import timezone

from forums import services as forum_services
from forums.models import Meeting
from forums.services import meeting_create, meeting_update
from initiatives import agenda
from initiatives.models import AgendaItem
from tests.concurrency import race_past

from .conftest import log
from .helpers import codes_of

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(
        connection.vendor != "postgresql",
        reason="row locks between connections need PostgreSQL (CI runs these there)",
    ),
]


def _race(monkeypatch, module, name, calls) -> list[object]:
    return race_past(monkeypatch, module, name, calls)


def _meeting(wf) -> Meeting:
    return meeting_create(
        user=wf.people["chair"],
        forum=wf.forums["unit"],
        starts_at=timezone.now() + timedelta(days=2),
    )


def _positions(meeting) -> list[int]:
    return list(
        AgendaItem.objects.filter(meeting=meeting)
        .order_by("position", "pk")
        .values_list("position", flat=True)
    )


def test_simultaneous_reorders_never_share_a_place(wf, monkeypatch):
    meeting = _meeting(wf)
    chair, secretary = wf.people["chair"], wf.people["unit_secretary"]
    items = [
        agenda.agenda_item_add(user=chair, meeting=meeting, title=f"Item {i}") for i in range(8)
    ]

    def move(i):
        user = chair if i % 2 else secretary
        item = AgendaItem.objects.get(pk=items[i].pk)
        if i % 3 == 0:
            return lambda: agenda.agenda_item_move(user=user, item=item, position=1)
        return lambda: agenda.agenda_item_move(user=user, item=item, direction="up")

    results = _race(monkeypatch, agenda, "_check", [move(i) for i in range(8)])
    assert all(isinstance(r, AgendaItem) for r in results), results
    assert _positions(meeting) == list(range(1, 9))
    assert AgendaItem.objects.filter(meeting=meeting).count() == 8


def test_simultaneous_adds_and_removes_keep_positions_dense(wf, monkeypatch):
    meeting = _meeting(wf)
    chair, secretary = wf.people["chair"], wf.people["unit_secretary"]
    first = [
        agenda.agenda_item_add(user=chair, meeting=meeting, title=f"Old {i}") for i in range(4)
    ]
    calls = [
        (lambda i=i: agenda.agenda_item_add(user=secretary, meeting=meeting, title=f"New {i}"))
        for i in range(4)
    ] + [(lambda item=item: agenda.agenda_item_delete(user=chair, item=item)) for item in first[:3]]
    results = _race(monkeypatch, agenda, "_check", calls)
    assert not [r for r in results if isinstance(r, BaseException)], results
    assert _positions(meeting) == [1, 2, 3, 4, 5]


def test_adding_the_proposals_twice_at_once_adds_them_once(wf, monkeypatch):
    for i in range(3):
        log(wf, "unit", title=f"Idea {i}")
    meeting = _meeting(wf)
    chair, secretary = wf.people["chair"], wf.people["unit_secretary"]
    results = _race(
        monkeypatch,
        agenda,
        "_check",
        [
            lambda: agenda.agenda_proposals_add(user=chair, meeting=meeting),
            lambda: agenda.agenda_proposals_add(user=secretary, meeting=meeting),
        ],
    )
    assert all(isinstance(r, list) for r in results), results
    assert sorted(len(r) for r in results) == [0, 3]
    keys = list(AgendaItem.objects.filter(meeting=meeting).values_list("initiative_id", flat=True))
    assert len(keys) == len(set(keys)) == 3
    assert _positions(meeting) == [1, 2, 3]


def test_two_secretaries_saving_the_minutes_at_once(wf, monkeypatch):
    meeting = _meeting(wf)
    people = [wf.people["chair"], wf.people["unit_secretary"]]

    def save(i):
        copy = Meeting.objects.get(pk=meeting.pk)  # both read version 0
        return lambda: meeting_update(
            user=people[i], meeting=copy, version=copy.version, minutes=f"Minutes {i}"
        )

    results = _race(monkeypatch, forum_services, "can_record_meeting", [save(0), save(1)])
    wins = [r for r in results if isinstance(r, Meeting)]
    losses = [r for r in results if isinstance(r, ValidationError)]
    assert len(wins) == 1 and len(losses) == 1, results
    assert codes_of(losses[0]) == {"stale"}
    saved = Meeting.objects.get(pk=meeting.pk)
    assert saved.version == 1 and saved.minutes == wins[0].minutes
