"""The division's improvement pipeline: per state, bottom-up against top-down, and stalls."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from initiatives.enums import State
from initiatives.models import Initiative
from initiatives.selectors import STALLED_AFTER_DAYS, pipeline
from initiatives.services import initiative_transition

from .conftest import log


def _row(rows, state):
    return next(row for row in rows if row.state == state)


def test_counts_per_state_from_units_and_from_outside(wf):
    first = log(wf, "unit")
    log(wf, "unit")
    log(wf, "dept")
    initiative_transition(initiative=first, user=wf.people["chair"], transition="start_testing")
    rows = pipeline(wf.division.pk)
    assert [row.state for row in rows] == list(State.values)
    logged = _row(rows, State.LOGGED)
    assert (logged.from_units, logged.from_outside, logged.total) == (1, 1, 2)
    assert _row(rows, State.LOCAL_TESTING).from_units == 1
    assert sum(row.total for row in rows) == 3
    # Another division's initiatives are not counted.
    assert sum(row.total for row in pipeline(wf.division.pk + 1000)) == 0


def test_open_initiatives_without_a_step_for_long_stall_final_ones_never(wf):
    old, fresh = log(wf, "unit"), log(wf, "unit")
    done = log(wf, "unit")
    initiative_transition(
        initiative=done, user=wf.people["chair"], transition="withdraw", comment="No time."
    )
    long_ago = timezone.now() - timedelta(days=STALLED_AFTER_DAYS + 1)
    Initiative.objects.filter(pk__in=[old.pk, done.pk]).update(updated_at=long_ago)
    rows = pipeline(wf.division.pk)
    assert _row(rows, State.LOGGED).stalled == 1
    withdrawn = _row(rows, State.WITHDRAWN)
    assert withdrawn.final and withdrawn.total == 1 and withdrawn.stalled == 0
    assert fresh.pk  # the fresh one is open and counted, not stalled
    assert _row(rows, State.LOGGED).total == 2


@pytest.mark.parametrize("person", ["clinician", "board", "outsider"])
def test_every_member_of_staff_sees_it_anonymous_does_not(client, wf, person):
    log(wf, "unit")
    url = reverse("initiatives:pipeline", args=[wf.division.code])
    assert client.get(url).status_code == 302  # to the log-in page
    client.force_login(wf.people[person])
    page = client.get(url)
    assert page.status_code == 200
    body = page.content.decode()
    assert "From the units" in body and "<html" in body
    fragment = client.get(url, headers={"HX-Request": "true"}).content.decode()
    assert "<html" not in fragment and "pipeline-table" in fragment
    assert client.post(url).status_code == 405
    assert client.get(reverse("initiatives:pipeline", args=["nowhere"])).status_code == 404


def test_its_queries_do_not_grow_with_the_initiatives(client, wf):
    client.force_login(wf.people["board"])
    url = reverse("initiatives:pipeline", args=[wf.division.code])
    log(wf, "unit")
    client.get(url)
    with CaptureQueriesContext(connection) as one:
        client.get(url, headers={"HX-Request": "true"})
    for _ in range(6):
        log(wf, "unit")
        log(wf, "board")
    with CaptureQueriesContext(connection) as many:
        client.get(url, headers={"HX-Request": "true"})
    assert len(many) == len(one)


def test_the_division_dashboard_loads_it(client, wf):
    client.force_login(wf.people["board"])
    page = client.get(reverse("dashboards:division", args=[wf.division.code]))
    assert reverse("initiatives:pipeline", args=[wf.division.code]) in page.content.decode()
