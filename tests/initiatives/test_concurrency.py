"""Two people press at once: exactly one step is taken, the other is told, one activity.

Both callers are held until both have passed the guard (a barrier in the role check), so
they race on the UPDATE itself: an implementation that read, checked and saved without the
conditional UPDATE would let both through. Meant for PostgreSQL
(``DATABASE_URL=postgres://…``); on SQLite the write lock serialises them the same way.
"""

from __future__ import annotations

import pytest
from django.core.exceptions import ValidationError

from initiatives import workflow
from initiatives.models import Activity, Initiative
from initiatives.services import initiative_transition
from tests.concurrency import race_past

from .conftest import log
from .helpers import codes_of


def _race(monkeypatch, calls):
    return race_past(monkeypatch, workflow, "standing_of", calls)


def _fresh(pk):
    return Initiative.objects.select_related("forum").get(pk=pk)


@pytest.mark.django_db(transaction=True)
def test_two_people_taking_the_same_step_at_once(wf, monkeypatch):
    pk = log(wf, "unit").pk
    chair, secretary = wf.people["chair"], wf.people["unit_secretary"]
    first, second = _fresh(pk), _fresh(pk)  # both read version 0
    results = _race(
        monkeypatch,
        [
            lambda: initiative_transition(initiative=first, user=chair, transition="start_testing"),
            lambda: initiative_transition(
                initiative=second, user=secretary, transition="start_testing"
            ),
        ],
    )
    wins = [r for r in results if isinstance(r, Activity)]
    losses = [r for r in results if isinstance(r, ValidationError)]
    assert len(wins) == 1 and len(losses) == 1, results
    assert codes_of(losses[0]) == {"stale"}
    assert "Local testing" in losses[0].messages[0]
    initiative = _fresh(pk)
    assert (initiative.state, initiative.version) == ("local_testing", 1)
    steps = Activity.objects.filter(initiative_id=pk).exclude(transition=workflow.LOG_NAME)
    assert [(a.transition, a.actor_id) for a in steps] == [("start_testing", wins[0].actor_id)]


@pytest.mark.django_db(transaction=True)
def test_two_different_decisions_at_once(wf, monkeypatch):
    """One escalates while the other rejects: one decision stands, never both."""
    pk = log(wf, "unit").pk
    chair, secretary = wf.people["chair"], wf.people["unit_secretary"]
    first, second = _fresh(pk), _fresh(pk)
    results = _race(
        monkeypatch,
        [
            lambda: initiative_transition(
                initiative=first, user=chair, transition="escalate", comment="Worth it."
            ),
            lambda: initiative_transition(
                initiative=second, user=secretary, transition="reject", comment="Not for us."
            ),
        ],
    )
    wins = [r for r in results if isinstance(r, Activity)]
    assert len(wins) == 1, results
    assert all(codes_of(r) == {"stale"} for r in results if isinstance(r, ValidationError))
    initiative = _fresh(pk)
    assert initiative.state == wins[0].to_state
    assert initiative.forum_id == wins[0].to_forum_id
    assert Activity.objects.filter(initiative_id=pk).count() == 2


@pytest.mark.django_db(transaction=True)
def test_a_caller_who_read_before_a_round_trip_is_refused(wf):
    """Returned and escalated again: same state as the caller read, but not the same
    initiative any more (the version tells)."""
    initiative = log(wf, "unit")
    admin = wf.people["admin"]
    initiative_transition(initiative=initiative, user=admin, transition="escalate", comment="Up.")
    stale = _fresh(initiative.pk)  # escalated, version 1
    initiative_transition(
        initiative=initiative, user=admin, transition="return_for_more_work", comment="More."
    )
    initiative_transition(
        initiative=initiative, user=admin, transition="escalate", comment="Again."
    )
    assert stale.state == _fresh(initiative.pk).state
    with pytest.raises(ValidationError) as refused:
        initiative_transition(initiative=stale, user=admin, transition="prioritise")
    assert codes_of(refused.value) == {"stale"}
    assert Activity.objects.filter(initiative=initiative).count() == 4
