"""Two workers sending the same e-mail at once, with real threads on real connections.

Meant for PostgreSQL (CI runs it there), where the second worker's conditional UPDATE and
its insert of the day's digest row wait for the first one's transaction. On SQLite every write
transaction is serialised by the file's lock, so they would pass without saying much: skipped.
"""

from __future__ import annotations

import threading
import time

import pytest
from django.core import mail
from django.core.mail.backends.locmem import EmailBackend as LocmemBackend
from django.db import connection
from django.utils import timezone

from forums.enums import EmailFrequency
from forums.models import Membership
from initiatives.models import EmailDigest, Notification
from initiatives.notifications import notifications_send_digests, notifications_send_immediate
from initiatives.services import initiative_transition
from tests.concurrency import together

from .conftest import log

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(
        connection.vendor != "postgresql",
        reason="row locks and concurrent inserts need PostgreSQL (CI runs these there)",
    ),
]

_lock = threading.Lock()


def _together(calls, timeout: float = 60) -> list[object]:
    return together(calls, timeout=timeout)


class SlowBackend(LocmemBackend):
    """Takes its time, as a mail server does: the other worker arrives meanwhile."""

    def send_messages(self, messages):
        time.sleep(0.3)
        with _lock:
            return super().send_messages(messages)


@pytest.fixture(autouse=True)
def _slow_mail(settings):
    settings.EMAIL_BACKEND = f"{__name__}.SlowBackend"
    settings.LHS_DIGEST_HOUR = 0


def test_two_workers_sending_the_days_digests_at_once_send_each_once(wf):
    idea = log(wf, "unit")
    initiative_transition(
        initiative=idea, user=wf.people["chair"], transition="escalate", comment="Up."
    )
    now = timezone.now()

    results = _together([lambda: notifications_send_digests(now=now) for _ in range(4)])

    assert all(isinstance(r, int) for r in results), results
    expected = Notification.objects.values("recipient_id", "forum_id").distinct().count()
    assert sum(results) == expected == len(mail.outbox) == EmailDigest.objects.count()
    assert len({(m.to[0], m.subject) for m in mail.outbox}) == expected
    assert not Notification.objects.filter(emailed_at__isnull=True).exists()


def test_two_workers_sending_immediate_notices_at_once_send_each_once(wf):
    Membership.objects.filter(forum=wf.forums["unit"]).update(
        email_frequency=EmailFrequency.IMMEDIATE
    )
    log(wf, "unit")
    ids = list(Notification.objects.values_list("pk", flat=True))
    assert len(ids) == 2

    results = _together([lambda: notifications_send_immediate(ids=ids) for _ in range(4)])

    assert sum(results) == 2, results
    assert sorted(m.to[0] for m in mail.outbox) == [
        "clinician@example.org",
        "unit_secretary@example.org",
    ]
