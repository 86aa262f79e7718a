"""Notifications through the real services: who is told what, in which language, and e-mail.

People and forums are the ``wf`` fixture's (``conftest.SEATS``): the unit forum of a1 has
``chair``, ``clinician`` and ``unit_secretary``; department A's group ``dept_chair``,
``dept_secretary``, ``dept_member`` and ``dept_chair_on_board``; the board ``board_chair``,
``board_secretary``, ``board`` and ``dept_chair_on_board``; the support unit ``support``.
"""

from __future__ import annotations

from datetime import timedelta
from smtplib import SMTPServerDisconnected

import pytest
from django.conf import settings as django_settings
from django.core import mail
from django.core.exceptions import ValidationError
from django.core.mail.backends.locmem import EmailBackend as LocmemBackend
from django.db import transaction
from django.urls import reverse
from django.utils import timezone, translation

from forums.enums import EmailFrequency, MembershipRole
from forums.models import Membership
from initiatives import tasks
from initiatives.enums import NotificationKind, SupportKind, VoteChoice
from initiatives.models import EmailDigest, Notification, NotificationPreference, VotingRound
from initiatives.notifications import (
    EmailNotSent,
    notification_text,
    notifications_send_digests,
    notifications_send_immediate,
    voting_rounds_remind,
)
from initiatives.services import initiative_transition
from initiatives.support import support_request_create, support_request_done, support_request_take
from initiatives.voting import vote_cast, voting_round_open
from tests.factories import UserFactory

from .conftest import log

UNIT_OTHERS = {"clinician", "unit_secretary"}
DEPT = {"dept_chair", "dept_secretary", "dept_member", "dept_chair_on_board"}
BOARD = {"board_chair", "board_secretary", "board", "dept_chair_on_board"}


@pytest.fixture(autouse=True)
def _digest_any_hour(settings):
    settings.LHS_DIGEST_HOUR = 0  # the digest hour is tested on its own


def names(wf, notices) -> set[str]:
    by_pk = {user.pk: name for name, user in wf.people.items()}
    return {by_pk[n.recipient_id] for n in notices}


def notices(kind=None, **filters):
    rows = Notification.objects.filter(**filters)
    return list(rows.filter(kind=kind) if kind else rows)


def step(wf, initiative, name, person="admin", **kw):
    kw.setdefault("comment", "As decided in the meeting.")
    return initiative_transition(
        initiative=initiative, user=wf.people[person], transition=name, **kw
    )


def frequency(wf, person, forum, value):
    Membership.objects.filter(user=wf.people[person], forum=wf.forums[forum]).update(
        email_frequency=value
    )


# --- who is told what ------------------------------------------------------------------------


def test_logging_tells_the_forums_members_but_not_the_one_who_logged_it(wf):
    idea = log(wf, "unit", title="Walks after lunch")

    arrived = notices(NotificationKind.ARRIVED)
    assert names(wf, arrived) == UNIT_OTHERS
    assert {(n.forum_id, n.initiative_id) for n in arrived} == {(wf.forums["unit"].pk, idea.pk)}
    assert {n.url for n in arrived} == {reverse("initiatives:initiative", args=[idea.pk])}
    assert {n.read_at for n in arrived} == {None} and {n.emailed_at for n in arrived} == {None}
    # A message id and its parameters, not a sentence.
    assert (
        arrived[0].params["msg"] == "logged" and arrived[0].params["title"] == "Walks after lunch"
    )
    assert Notification.objects.count() == 2


def test_an_escalation_is_an_arrival_above_and_a_decision_below(wf):
    idea = log(wf, "unit")
    Notification.objects.all().delete()

    step(wf, idea, "escalate", person="chair", comment="Worth trying department-wide.")

    arrived = notices(NotificationKind.ARRIVED)
    assert names(wf, arrived) == DEPT
    assert {n.forum_id for n in arrived} == {wf.forums["dept"].pk}
    decided = notices(NotificationKind.DECISION)
    # The creator (the chair) took the step: told nothing.
    assert names(wf, decided) == UNIT_OTHERS
    assert {n.forum_id for n in decided} == {wf.forums["unit"].pk}
    with translation.override("en"):
        text = notification_text(decided[0])
    assert "escalate to the department" in text and "Forum AFF-01" in text
    assert decided[0].params["comment"] == "Worth trying department-wide."


def test_a_decision_elsewhere_tells_the_creator_who_does_not_sit_there(wf):
    idea = log(wf, "unit")
    step(wf, idea, "escalate", person="chair")
    Notification.objects.all().delete()

    step(wf, idea, "reject", person="dept_chair", comment="Not now.")

    decided = notices(NotificationKind.DECISION)
    assert names(wf, decided) == {"chair"} | DEPT - {"dept_chair"}
    assert {n.forum_id for n in decided} == {wf.forums["dept"].pk}
    assert notices(NotificationKind.ARRIVED) == []


def test_a_step_that_neither_moves_nor_decides_tells_no_one(wf):
    idea = log(wf, "unit")
    Notification.objects.all().delete()
    step(wf, idea, "start_testing", person="chair", comment="")
    assert Notification.objects.count() == 0


def test_a_refused_step_leaves_no_notice(wf):
    idea = log(wf, "unit")
    Notification.objects.all().delete()
    with pytest.raises(ValidationError):
        step(wf, idea, "escalate", person="clinician")
    assert Notification.objects.count() == 0


def test_the_notices_are_written_in_the_events_transaction(wf):
    """Rolled back with the step: a notice never tells of what did not happen."""
    idea = log(wf, "unit")
    Notification.objects.all().delete()
    with pytest.raises(RuntimeError), transaction.atomic():
        step(wf, idea, "escalate", person="chair")
        assert Notification.objects.count() == len(DEPT) + len(UNIT_OTHERS)
        raise RuntimeError("the request failed after the step")
    assert Notification.objects.count() == 0


def test_an_inactive_member_is_not_told(wf):
    wf.people["clinician"].is_active = False
    wf.people["clinician"].save()
    log(wf, "unit")
    assert names(wf, notices()) == {"unit_secretary"}


def _referred(wf):
    idea = log(wf, "unit")
    for name in ("escalate", "prioritise", "refer_to_board"):
        step(wf, idea, name)
    return idea


def _open(wf, idea, hours=48):
    return voting_round_open(
        user=wf.people["board_chair"],
        initiative=idea,
        deadline=timezone.now() + timedelta(hours=hours),
        quorum=2,
    )


def test_referring_to_the_board_tells_the_board_and_opening_a_vote_tells_the_voters(wf):
    idea = _referred(wf)
    assert names(wf, notices(NotificationKind.ARRIVED, forum=wf.forums["board"])) == BOARD

    voting_round = _open(wf, idea)

    opened = notices(NotificationKind.VOTE_OPENED)
    assert names(wf, opened) == BOARD - {"board_chair"}
    assert {n.forum_id for n in opened} == {voting_round.forum_id}
    with translation.override("en"):
        assert "A vote on scaling up “Idea at unit” is open until" in notification_text(opened[0])


def test_the_reminder_goes_once_to_those_who_have_not_voted(wf):
    voting_round = _open(wf, _referred(wf), hours=48)
    vote_cast(user=wf.people["board"], round=voting_round, choice=VoteChoice.APPROVE)
    now = timezone.now()

    assert voting_rounds_remind(now=now) == 0  # two days left: not yet
    later = voting_round.deadline - timedelta(hours=23)
    assert voting_rounds_remind(now=later) == 1
    assert voting_rounds_remind(now=later) == 0
    assert voting_rounds_remind(now=later + timedelta(hours=1)) == 0

    closing = notices(NotificationKind.VOTE_CLOSING)
    assert names(wf, closing) == BOARD - {"board"}
    voting_round.refresh_from_db()
    assert voting_round.reminded_at == later


def test_a_short_round_is_reminded_at_half_time_not_as_it_opens(wf):
    voting_round = _open(wf, _referred(wf), hours=4)
    assert voting_rounds_remind(now=voting_round.opened_at + timedelta(minutes=5)) == 0
    assert voting_rounds_remind(now=voting_round.opened_at + timedelta(hours=2, minutes=1)) == 1


def test_a_closed_round_is_not_reminded(wf):
    voting_round = _open(wf, _referred(wf), hours=4)
    VotingRound.objects.filter(pk=voting_round.pk).update(status="closed", closed_at=timezone.now())
    assert voting_rounds_remind(now=voting_round.deadline - timedelta(minutes=30)) == 0


def test_the_remind_task_calls_the_service(wf):
    voting_round = _open(wf, _referred(wf), hours=4)
    VotingRound.objects.filter(pk=voting_round.pk).update(
        opened_at=timezone.now() - timedelta(hours=6)
    )
    assert tasks.voting_rounds_remind_task.apply().get() == 1
    assert tasks.voting_rounds_remind_task.apply().get() == 0


@pytest.fixture
def sup(wf):
    wf.people["support_chair"] = UserFactory(username="support_chair", first_name="Siv")
    Membership.objects.create(
        forum=wf.forums["support"], user=wf.people["support_chair"], role=MembershipRole.CHAIR
    )
    return wf


def test_a_support_request_tells_the_support_unit_and_its_answer_the_one_who_asked(sup):
    idea = log(sup, "unit")
    Notification.objects.all().delete()
    request = support_request_create(
        user=sup.people["clinician"], initiative=idea, kind=SupportKind.DATA, description="Help"
    )
    asked = notices(NotificationKind.SUPPORT_REQUESTED)
    assert names(sup, asked) == {"support", "support_chair"}
    assert {n.forum_id for n in asked} == {sup.forums["support"].pk}

    support_request_take(user=sup.people["support"], request=request)
    assert Notification.objects.count() == 2  # taking it tells no one
    support_request_done(user=sup.people["support"], request=request, answer="See the wiki.")

    answered = notices(NotificationKind.SUPPORT_ANSWERED)
    assert names(sup, answered) == {"clinician"}
    with translation.override("en"):
        text = notification_text(answered[0])
    assert "answered your request for help with data" in text
    assert answered[0].params["comment"] == "See the wiki."


# --- the reader's language -------------------------------------------------------------------


def test_a_notice_is_shown_in_the_readers_language(wf):
    idea = log(wf, "unit")
    step(wf, idea, "escalate", person="chair")
    (notice,) = notices(NotificationKind.DECISION, recipient=wf.people["clinician"])
    with translation.override("sv"):
        swedish = notification_text(notice)
    with translation.override("en"):
        english = notification_text(notice)
    assert "lyft till verksamhetsområdet" in swedish
    assert "escalate to the department" in english
    assert "Lyft" not in english and "escalate" not in swedish


def _emailed_immediately(wf, django_capture_on_commit_callbacks, settings, call):
    with django_capture_on_commit_callbacks(execute=True):
        result = call()
    return result


def test_an_email_is_written_in_the_recipients_language(
    wf, settings, django_capture_on_commit_callbacks, celery_eager
):
    frequency(wf, "clinician", "unit", EmailFrequency.IMMEDIATE)
    frequency(wf, "unit_secretary", "unit", EmailFrequency.IMMEDIATE)
    NotificationPreference.objects.create(user=wf.people["clinician"], language="sv")
    NotificationPreference.objects.create(user=wf.people["unit_secretary"], language="en")
    idea = log(wf, "unit", title="Promenader")
    mail.outbox.clear()

    with translation.override("en"):  # the actor reads English
        _emailed_immediately(
            wf, django_capture_on_commit_callbacks, settings, lambda: step(wf, idea, "escalate")
        )

    by_to = {m.to[0]: m for m in mail.outbox}
    swedish, english = by_to["clinician@example.org"], by_to["unit_secretary@example.org"]
    with translation.override("sv"):
        decision_sv = str(NotificationKind.DECISION.label)
    assert swedish.subject == f"{decision_sv}: Promenader"
    assert "lyft till verksamhetsområdet" in swedish.body
    assert english.subject == "A decision was made: Promenader"
    assert "escalate to the department" in english.body
    url = f"{django_settings.LHS_SITE_URL.rstrip('/')}/initiatives/{idea.pk}/"
    assert url in swedish.body and url in english.body


# --- e-mail: immediate, daily, never ----------------------------------------------------------


def test_an_immediate_member_gets_one_email_per_notice_after_commit(
    wf, settings, django_capture_on_commit_callbacks, celery_eager
):
    frequency(wf, "clinician", "unit", EmailFrequency.IMMEDIATE)
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        idea = log(wf, "unit")
    assert mail.outbox == []  # nothing before the commit
    for callback in callbacks:
        callback()
    assert [m.to for m in mail.outbox] == [["clinician@example.org"]]
    with django_capture_on_commit_callbacks(execute=True):
        step(wf, idea, "start_testing", person="chair", comment="")
        step(wf, idea, "adopt_locally", person="chair", comment="It works.")
    assert [m.to for m in mail.outbox] == [["clinician@example.org"]] * 2

    emailed = Notification.objects.filter(recipient=wf.people["clinician"])
    assert emailed.count() == 2 and not emailed.filter(emailed_at__isnull=True).exists()
    # The secretary (daily) waits for the digest.
    assert not Notification.objects.filter(
        recipient=wf.people["unit_secretary"], emailed_at__isnull=False
    ).exists()
    # Sending again (a retried task) sends nothing.
    assert notifications_send_immediate(ids=emailed.values_list("pk", flat=True)) == 0
    assert len(mail.outbox) == 2


def test_two_notices_in_a_forum_on_one_day_make_one_digest_and_the_next_day_another(wf):
    idea = log(wf, "unit")  # the unit forum's members: one notice each
    step(wf, idea, "start_testing", person="chair", comment="")
    step(wf, idea, "adopt_locally", person="chair", comment="It works.")  # a second
    now = timezone.now()

    assert notifications_send_digests(now=now) == 2  # clinician and secretary, one each
    clinician = [m for m in mail.outbox if m.to == ["clinician@example.org"]]
    assert len(clinician) == 1
    assert clinician[0].subject == "2 new notices from Forum AFF-01"
    assert "logged “Idea at unit” in Forum AFF-01" in clinician[0].body
    assert "Decision on “Idea at unit” in Forum AFF-01: adopt locally." in clinician[0].body
    assert EmailDigest.objects.get(recipient=wf.people["clinician"]).notices == 2

    # Later the same day: the unit's new notice waits for tomorrow; the department's members
    # had no digest today yet, so theirs go out.
    step(wf, idea, "escalate", person="chair", comment="Upwards.")
    assert notifications_send_digests(now=timezone.now()) == len(DEPT)
    clinician = [m for m in mail.outbox if m.to == ["clinician@example.org"]]
    assert len(clinician) == 1
    assert notifications_send_digests(now=timezone.now()) == 0

    tomorrow = timezone.now() + timedelta(days=1)
    assert notifications_send_digests(now=tomorrow) == 2  # clinician and secretary
    clinician = [m for m in mail.outbox if m.to == ["clinician@example.org"]]
    assert len(clinician) == 2
    assert clinician[1].subject == "1 new notice from Forum AFF-01"
    assert "escalate to the department" in clinician[1].body
    assert "logged" not in clinician[1].body  # e-mailed yesterday
    assert not Notification.objects.filter(emailed_at__isnull=True).exists()
    assert notifications_send_digests(now=tomorrow + timedelta(hours=1)) == 0


def test_each_forum_has_a_digest_of_its_own(wf):
    idea = log(wf, "unit")
    step(wf, idea, "escalate", person="chair")
    Membership.objects.create(forum=wf.forums["dept"], user=wf.people["clinician"])
    step(wf, idea, "prioritise", person="dept_chair", comment="")
    step(wf, idea, "reject", person="dept_chair", comment="Not now.")
    notifications_send_digests(now=timezone.now())
    subjects = sorted(m.subject for m in mail.outbox if m.to == ["clinician@example.org"])
    assert subjects == ["1 new notice from Group A", "2 new notices from Forum AFF-01"]


def test_opting_in_gives_one_email_each_and_never_gives_none(wf):
    frequency(wf, "clinician", "unit", EmailFrequency.IMMEDIATE)
    frequency(wf, "unit_secretary", "unit", EmailFrequency.NEVER)
    idea = log(wf, "unit")
    step(wf, idea, "start_testing", person="chair", comment="")
    step(wf, idea, "adopt_locally", person="chair", comment="It works.")
    ids = Notification.objects.values_list("pk", flat=True)

    assert notifications_send_immediate(ids=ids) == 2
    assert notifications_send_digests(now=timezone.now()) == 0

    assert [m.to for m in mail.outbox] == [["clinician@example.org"]] * 2
    assert (
        Notification.objects.filter(
            recipient=wf.people["unit_secretary"], emailed_at__isnull=True
        ).count()
        == 2
    )


def test_notices_from_a_forum_one_does_not_sit_on_follow_ones_own_preference(wf):
    idea = log(wf, "unit")
    step(wf, idea, "escalate", person="chair")
    NotificationPreference.objects.create(
        user=wf.people["chair"], email_frequency=EmailFrequency.IMMEDIATE
    )
    Notification.objects.all().delete()
    step(wf, idea, "reject", person="dept_chair", comment="Not now.")
    ids = Notification.objects.values_list("pk", flat=True)
    assert notifications_send_immediate(ids=ids) == 1  # the chair, the creator
    assert [m.to for m in mail.outbox] == [["chair@example.org"]]


def test_read_notices_and_people_without_an_address_get_no_email(wf):
    wf.people["unit_secretary"].email = ""
    wf.people["unit_secretary"].save()
    log(wf, "unit")
    Notification.objects.filter(recipient=wf.people["clinician"]).update(read_at=timezone.now())
    assert notifications_send_digests(now=timezone.now()) == 0
    assert mail.outbox == []


def test_no_digest_before_the_digest_hour(wf, settings):
    log(wf, "unit")
    settings.LHS_DIGEST_HOUR = 7
    local = timezone.localtime()
    six = local.replace(hour=6, minute=30)
    seven = local.replace(hour=7, minute=5)
    if six < local:  # the notices exist: look at a day from now
        six, seven = six + timedelta(days=1), seven + timedelta(days=1)
    assert notifications_send_digests(now=six) == 0
    assert notifications_send_digests(now=seven) == 2


def test_a_digest_already_claimed_today_is_not_sent_again(wf):
    """What a second worker finds: today's row is there, so it sends nothing."""
    log(wf, "unit")
    EmailDigest.objects.create(
        recipient=wf.people["clinician"], forum=wf.forums["unit"], day=timezone.localdate()
    )
    assert notifications_send_digests(now=timezone.now()) == 1  # the secretary's only
    assert [m.to for m in mail.outbox] == [["unit_secretary@example.org"]]


class _FailingBackend(LocmemBackend):
    def send_messages(self, messages):
        raise SMTPServerDisconnected("the mail server went away")


class _AcceptedThenLostBackend(LocmemBackend):
    """The server accepts the message, then the connection drops before we hear so."""

    failures = 1

    def send_messages(self, messages):
        sent = super().send_messages(messages)
        if type(self).failures:
            type(self).failures -= 1
            raise SMTPServerDisconnected("lost before the reply")
        return sent


def test_a_mail_server_failure_marks_nothing_and_the_retry_sends(wf, settings):
    log(wf, "unit")
    settings.EMAIL_BACKEND = f"{__name__}._FailingBackend"
    with pytest.raises(EmailNotSent):
        notifications_send_digests(now=timezone.now())
    assert not Notification.objects.filter(emailed_at__isnull=False).exists()
    assert not EmailDigest.objects.exists()

    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    assert notifications_send_digests(now=timezone.now()) == 2
    assert len(mail.outbox) == 2


def test_a_send_lost_before_the_mark_is_sent_again_once_never_lost(wf, settings):
    """A worker killed after the server accepted the mail but before its commit: the notices
    are sent again by the next run (one duplicate), never dropped."""
    frequency(wf, "clinician", "unit", EmailFrequency.IMMEDIATE)
    frequency(wf, "unit_secretary", "unit", EmailFrequency.NEVER)
    log(wf, "unit")
    ids = list(Notification.objects.values_list("pk", flat=True))
    _AcceptedThenLostBackend.failures = 1
    settings.EMAIL_BACKEND = f"{__name__}._AcceptedThenLostBackend"

    with pytest.raises(EmailNotSent):
        notifications_send_immediate(ids=ids)
    assert Notification.objects.filter(emailed_at__isnull=False).count() == 0
    assert notifications_send_immediate(ids=ids) == 1
    assert notifications_send_immediate(ids=ids) == 0
    assert [m.to for m in mail.outbox] == [["clinician@example.org"]] * 2


def test_the_sweep_sends_an_immediate_notice_whose_task_was_lost(wf):
    frequency(wf, "clinician", "unit", EmailFrequency.IMMEDIATE)
    log(wf, "unit")  # on_commit never ran: as if the broker had been away
    now = timezone.now()
    assert notifications_send_immediate(now=now) == 0  # just made: its task may yet come
    assert notifications_send_immediate(now=now + timedelta(minutes=3)) == 1
    assert notifications_send_immediate(now=now + timedelta(minutes=8)) == 0
    assert [m.to for m in mail.outbox] == [["clinician@example.org"]]


def test_an_enqueue_that_fails_loses_nothing(wf, settings, django_capture_on_commit_callbacks):
    """The broker is down at the commit: the step stands and the sweep sends the e-mail."""
    frequency(wf, "clinician", "unit", EmailFrequency.IMMEDIATE)
    settings.CELERY_TASK_ALWAYS_EAGER = False

    def refuse(*args, **kwargs):
        raise ConnectionError("broker down")

    original = tasks.notifications_send_immediate_task.delay
    tasks.notifications_send_immediate_task.delay = refuse
    try:
        with django_capture_on_commit_callbacks(execute=True):
            idea = log(wf, "unit")
    finally:
        tasks.notifications_send_immediate_task.delay = original
    assert idea.pk and mail.outbox == []
    assert notifications_send_immediate(now=timezone.now() + timedelta(minutes=3)) == 1


def test_old_pending_notices_are_no_longer_emailed(wf):
    log(wf, "unit")
    assert notifications_send_digests(now=timezone.now() + timedelta(days=8)) == 0


# --- the tasks ----------------------------------------------------------------------------------


def test_the_email_tasks_are_late_acknowledged_and_retried_on_mail_errors():
    for task in (tasks.notifications_send_immediate_task, tasks.notifications_send_digests_task):
        assert task.acks_late and task.reject_on_worker_lost
        assert EmailNotSent in task.autoretry_for and task.retry_backoff
    assert tasks.voting_rounds_remind_task.acks_late


def test_the_beat_schedule_names_the_tasks():
    from lhs.celery import app

    schedule = django_settings.CELERY_BEAT_SCHEDULE
    names_ = {entry["task"] for entry in schedule.values()}
    for name in (
        "initiatives.tasks.notifications_send_digests_task",
        "initiatives.tasks.notifications_send_immediate_task",
        "initiatives.tasks.voting_rounds_remind_task",
    ):
        assert name in names_ and name in app.tasks


def test_the_digest_task_sends_the_days_digests(wf):
    log(wf, "unit")
    assert tasks.notifications_send_digests_task.apply().get() == 2
    assert tasks.notifications_send_digests_task.apply().get() == 0
