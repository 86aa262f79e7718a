"""Notifications e-mailed by a real Celery worker process, after the commit, and after an outage.

The worker of these tests is our own (not the session's): it writes e-mail to files
(``DJANGO_EMAIL_BACKEND`` file-based, ``DJANGO_EMAIL_FILE_PATH``) that the test reads, and it
may be stopped and started again. With ``REDIS_URL`` (CI) its broker is a redis-server of the
test's own (``test_faults.OwnRedis``), so the session's worker cannot take its messages; without
it, the embedded SQLite broker in the worker's private folder. Data must be committed for the
worker to see it, hence ``transaction=True``.
"""

from __future__ import annotations

import email
import os
import shutil
import time
from datetime import timedelta
from email.message import Message
from pathlib import Path

import pytest
from django.conf import settings as django_settings
from django.db import transaction
from django.utils import timezone

from forums.enums import EmailFrequency
from forums.models import Membership
from initiatives.enums import InitiativeKind, OriginKind
from initiatives.models import Notification, NotificationPreference
from initiatives.services import initiative_create, initiative_transition
from initiatives.tasks import notifications_send_immediate_task

from .test_faults import OwnRedis
from .worker import Worker

pytestmark = [pytest.mark.worker, pytest.mark.django_db(transaction=True)]

MAIL_TIMEOUT = 60.0
SITE = "https://lhs.example.org"
_SEPARATOR = b"\n" + b"-" * 79 + b"\n"


class MailWorker(Worker):
    """A worker whose e-mail goes to files in ``mail_dir``."""

    def __init__(self, base: Path, **kwargs):
        super().__init__(base, **kwargs)
        self.mail_dir = base / "mail"

    def environment(self) -> dict[str, str]:
        env = super().environment()
        env.update(
            DJANGO_EMAIL_BACKEND="django.core.mail.backends.filebased.EmailBackend",
            DJANGO_EMAIL_FILE_PATH=str(self.mail_dir),
            LHS_SITE_URL=SITE,
        )
        return env

    def mails(self) -> list[Message]:
        if not self.mail_dir.exists():
            return []
        found = []
        for path in sorted(self.mail_dir.iterdir()):
            for chunk in path.read_bytes().split(_SEPARATOR):
                if chunk.strip():
                    found.append(email.message_from_bytes(chunk.lstrip(b"\n")))
        return found

    def wait_for_mails(self, count: int, timeout: float = MAIL_TIMEOUT) -> list[Message]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            mails = self.mails()
            if len(mails) >= count:
                return mails
            self.assert_alive()
            time.sleep(0.2)
        pytest.fail(
            f"{len(self.mails())} of {count} e-mails after {timeout:.0f} s. "
            f"Worker log:\n{self.log_tail()}"
        )


def body(message: Message) -> str:
    return message.get_payload(decode=True).decode(message.get_content_charset() or "utf-8")


@pytest.fixture
def mail_worker(tmp_path, settings, org):
    redis = None
    if django_settings.REDIS_URL:
        if shutil.which("redis-server") is None:
            if os.environ.get("LHS_REQUIRE_BROWSER"):  # CI: every service is there
                pytest.fail("redis-server is missing")
            pytest.skip("redis-server is not installed (apt-get install redis-server)")
        redis = OwnRedis(tmp_path)
        redis.start()
    worker = MailWorker(tmp_path / "worker", redis_url=redis.url if redis else "")
    settings.CELERY_TASK_ALWAYS_EAGER = False
    worker.start()
    worker.use_here()
    yield worker
    worker.wait_until_idle()
    worker.stop()
    if redis is not None:
        redis.stop()


@pytest.fixture
def immediate_clinician(org):
    """The unit forum's member wants every notice at once, in Swedish."""
    Membership.objects.filter(forum=org.forums["unit"], user=org.people["clinician"]).update(
        email_frequency=EmailFrequency.IMMEDIATE
    )
    NotificationPreference.objects.create(user=org.people["clinician"], language="sv")
    return org.people["clinician"]


def _log(org, title: str):
    return initiative_create(
        user=org.people["chair"],
        forum=org.forums["unit"],
        title=title,
        kind=InitiativeKind.IDEA,
        origin_kind=OriginKind.UNIT,
    )


def test_the_worker_emails_an_immediate_notice_after_the_commit(
    org, mail_worker, immediate_clinician
):
    idea = _log(org, "Promenader efter lunch")
    (logged,) = mail_worker.wait_for_mails(1)
    assert logged["To"] == "clinician@example.org"
    assert f"{SITE}/initiatives/{idea.pk}/" in body(logged)

    with transaction.atomic():
        initiative_transition(
            initiative=idea,
            user=org.people["chair"],
            transition="escalate",
            comment="Värt att prova i hela verksamhetsområdet.",
        )
        time.sleep(1.5)  # the worker would have had time, had anything been sent
        assert len(mail_worker.mails()) == 1
    mails = mail_worker.wait_for_mails(2)

    decision = body(mails[1])
    assert mails[1]["To"] == "clinician@example.org"
    assert "lyft till verksamhetsområdet" in decision  # the recipient's language
    assert "Värt att prova i hela verksamhetsområdet." in decision
    mail_worker.wait_until_idle()
    assert not Notification.objects.filter(
        recipient=immediate_clinician, emailed_at__isnull=True
    ).exists()
    # The chair (the actor) was told nothing; the group's chair (daily) waits for the digest.
    assert {m["To"] for m in mail_worker.mails()} == {"clinician@example.org"}


def test_a_notice_made_while_the_worker_is_down_is_sent_when_it_is_back(
    org, mail_worker, immediate_clinician
):
    mail_worker.stop()
    mail_worker.use_here()  # the broker is up; only the worker is away

    idea = _log(org, "Made while no worker ran")
    time.sleep(1)
    assert mail_worker.mails() == []
    assert Notification.objects.filter(recipient=immediate_clinician, emailed_at=None).exists()

    mail_worker.start(purge=False)  # finds the queue as it was left
    mail_worker.use_here()
    (sent,) = mail_worker.wait_for_mails(1)
    assert f"{SITE}/initiatives/{idea.pk}/" in body(sent)


def test_a_notice_whose_message_was_lost_is_sent_by_the_sweep(
    org, mail_worker, immediate_clinician
):
    """The broker lost the message (restarted empty, or it was down at the commit): the
    beat's sweep, run here through the worker, sends what waited."""
    mail_worker.release_here()  # publish into nowhere: the message is lost
    idea = _log(org, "Its message was lost")
    mail_worker.use_here()
    time.sleep(1)
    assert mail_worker.mails() == []

    Notification.objects.filter(initiative=idea).update(
        created_at=timezone.now() - timedelta(minutes=3)
    )
    notifications_send_immediate_task.delay()
    (sent,) = mail_worker.wait_for_mails(1)
    assert sent["To"] == "clinician@example.org"
    notifications_send_immediate_task.delay()  # again: nothing more
    mail_worker.wait_until_idle()
    assert len(mail_worker.mails()) == 1
