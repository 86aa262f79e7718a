"""The same scores sent twice at the same moment (a double click, two tabs), with real threads
on real connections: the upsert on the unique constraint leaves one row per criterion.

Meant for PostgreSQL (CI runs it there); on SQLite every write transaction is serialised by
the database file's lock, so the test would say nothing about the constraint: it skips.
"""

from __future__ import annotations

import pytest
from django.db import connection

from initiatives.models import Score
from initiatives.prioritisation import criteria_ensure_defaults, score_set
from tests.concurrency import together

from .conftest import log

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(
        connection.vendor != "postgresql",
        reason="concurrent inserts on one unique constraint need PostgreSQL (CI runs it there)",
    ),
]


def _together(calls, timeout: float = 60) -> list[object]:
    return together(calls, timeout=timeout)


@pytest.mark.parametrize("attempt", range(3))
def test_the_same_scores_sent_at_once_make_one_row_per_criterion(wf, attempt):
    idea = log(wf, "dept")
    criteria = criteria_ensure_defaults(wf.forums["dept"])
    member = wf.people["dept_member"]

    def send(value):
        return lambda: score_set(
            user=member, initiative=idea, scores={c.pk: value for c in criteria}
        )

    results = _together([send(2), send(4), send(4), send(2)])
    assert not [r for r in results if isinstance(r, BaseException)], results
    rows = Score.objects.filter(initiative=idea, member=member)
    assert rows.count() == len(criteria)
    # One of the submissions won whole or per row; every row holds a value that was sent.
    assert set(rows.values_list("value", flat=True)) <= {2, 4}
