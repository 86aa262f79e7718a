"""Notifications: in-app notices about the workflow, and their e-mail (at once or a digest).

**Created with the event.** Each ``notify_*`` service writes its ``Notification`` rows in the
transaction of the event it reports (the step's, the round's, the request's): both are
committed or neither is, so a process that dies loses no notice. A notice stores a message
id and its parameters (:data:`MESSAGES`), never a rendered sentence: it is rendered in the
reader's language when shown (:func:`notification_text`), and for e-mail in the recipient's
(``NotificationPreference.language``, remembered from the language they read the site in;
the site's default until then).

**E-mail.** Who gets what is the member's choice per forum (``Membership.email_frequency``:
daily digest, every notice, or none); notices about a forum one does not sit on (a decision
on an initiative one logged, the answer to one's support request) follow the person's
``NotificationPreference.email_frequency``. Only notices not yet read (in the app) and not yet
e-mailed, of the last :data:`EMAIL_MAX_AGE`, are e-mailed: the e-mail is for what one has
not seen.

- *Immediate*: after the event commits, a task gets the new notices' ids
  (:func:`notifications_send_immediate`). If the broker was away, or the worker lost the
  message, the beat's sweep (the same service without ids) sends what waited longer than
  :data:`IMMEDIATE_SWEEP_AFTER`: nothing waits silently.
- *Digest*: beat runs :func:`notifications_send_digests` every hour; from
  ``LHS_DIGEST_HOUR`` (local time) each person gets one e-mail per forum per calendar day
  with everything pending for that forum. The rule "at most one" is ``EmailDigest``'s unique
  constraint on (person, forum, day).

**Sending once.** Each e-mail is sent inside a transaction that first marks its notices
``emailed_at`` by a conditional ``UPDATE … WHERE emailed_at IS NULL`` (and, for a digest,
inserts the day's ``EmailDigest`` row), then sends, then commits. A second worker or a retried
task blocks on those rows until the first commits and then finds nothing left to send: never
twice. If the send fails (SMTP), the transaction rolls back and the task retries with backoff.
If a worker is killed after the mail server accepted the message but before the commit, the
marks roll back and the notices are sent again by the next run: at most one duplicate, never
a loss (marking first and sending after the commit would turn that duplicate into a loss).
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Iterable
from datetime import timedelta
from smtplib import SMTPException

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.core.mail import EmailMessage
from django.db import IntegrityError, transaction
from django.db.models import Case, IntegerField, QuerySet, Value, When
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils import formats, timezone, translation
from django.utils.dateparse import parse_datetime
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy, ngettext

from forums.enums import EmailFrequency
from forums.models import Forum, Membership

from . import workflow
from .enums import NotificationKind, RoundStatus, State, SupportKind
from .models import (
    Activity,
    EmailDigest,
    Initiative,
    Notification,
    NotificationPreference,
    SupportRequest,
    Vote,
    VotingRound,
)

logger = logging.getLogger(__name__)

#: Pending notices older than this are no longer e-mailed (they stay in the app).
EMAIL_MAX_AGE = timedelta(days=7)
#: An immediate notice not e-mailed this long after it was made had its task lost: the sweep
#: sends it (a task still queued behind others finds it sent, and sends nothing).
IMMEDIATE_SWEEP_AFTER = timedelta(minutes=2)
#: The longest comment copied into a notice.
MAX_COMMENT = 500

#: The sentences, by message id. ``%(…)s`` names the notice's parameters (names of things as
#: they were; choice values such as ``step`` and ``kind`` are translated when shown).
MESSAGES = {
    "logged": gettext_lazy("%(actor)s logged “%(title)s” in %(forum)s."),
    "arrived": gettext_lazy("“%(title)s” came to %(forum)s from %(from_forum)s: %(step)s."),
    "decision": gettext_lazy("Decision on “%(title)s” in %(forum)s: %(step)s."),
    "vote_opened": gettext_lazy("A vote on scaling up “%(title)s” is open until %(deadline)s."),
    "vote_closing": gettext_lazy(
        "The vote on “%(title)s” closes at %(deadline)s and you have not voted yet."
    ),
    "support_requested": gettext_lazy(
        "%(actor)s asks the support unit for help with %(kind)s on “%(title)s”."
    ),
    "support_answered": gettext_lazy(
        "%(actor)s answered your request for help with %(kind)s on “%(title)s”."
    ),
}


# --- reading ---------------------------------------------------------------------------------


def visible_notifications(user) -> QuerySet[Notification]:
    """One's own notices: anyone else's is a 404."""
    if not getattr(user, "is_authenticated", False):
        return Notification.objects.none()
    return Notification.objects.filter(recipient_id=user.pk)


def notifications_for_page(user) -> QuerySet[Notification]:
    """One's notices, unread first, newest first within each (the list needs no join)."""
    return visible_notifications(user).order_by(
        Case(
            When(read_at__isnull=True, then=Value(0)), default=Value(1), output_field=IntegerField()
        ),
        "-created_at",
        "-pk",
    )


def unread_count(user) -> int:
    return visible_notifications(user).filter(read_at__isnull=True).count()


def _name(user) -> str:
    if user is None:
        return str(_("the system"))
    return user.get_full_name() or user.get_username()


def _values(params: dict) -> dict[str, str]:
    """The parameters as the active language shows them."""
    values = {key: str(value) for key, value in params.items() if key != "msg"}
    step = workflow.BY_NAME.get(params.get("step", ""))
    if step is not None:
        values["step"] = str(step.label).lower()
    if params.get("kind") in SupportKind.values:
        values["kind"] = str(SupportKind(params["kind"]).label).lower()
    if params.get("state") in State.values:
        values["state"] = str(State(params["state"]).label).lower()
    deadline = parse_datetime(params.get("deadline") or "")
    if deadline is not None:
        values["deadline"] = formats.date_format(
            timezone.localtime(deadline), "SHORT_DATETIME_FORMAT"
        )
    if values.get("actor") == "":
        values["actor"] = str(_("the system"))
    return values


class _Missing(dict):
    def __missing__(self, key: str) -> str:
        return "…"


def notification_text(notification: Notification) -> str:
    """The notice's sentence in the active language (a message id we no longer know falls
    back to the kind's label)."""
    message = MESSAGES.get(notification.params.get("msg", ""))
    if message is None:
        return str(NotificationKind(notification.kind).label)
    return str(message) % _Missing(_values(notification.params))


def notification_comment(notification: Notification) -> str:
    """What the decider wrote, as they wrote it (not translated)."""
    return notification.params.get("comment", "")


# --- creating ------------------------------------------------------------------------------


def _frequencies(user_ids: Iterable[int], forum_id: int | None) -> dict[int, str]:
    """How each person wants e-mail about ``forum_id``'s business (two queries at most)."""
    user_ids = set(user_ids)
    found: dict[int, str] = {}
    if forum_id is not None:
        found = dict(
            Membership.objects.filter(forum_id=forum_id, user_id__in=user_ids).values_list(
                "user_id", "email_frequency"
            )
        )
    others = user_ids - set(found)
    if others:
        chosen = dict(
            NotificationPreference.objects.filter(user_id__in=others).values_list(
                "user_id", "email_frequency"
            )
        )
        found.update({pk: chosen.get(pk, EmailFrequency.DAILY) for pk in others})
    return found


def _initiative_url(initiative: Initiative, anchor: str = "") -> str:
    url = reverse("initiatives:initiative", kwargs={"pk": initiative.pk})
    return f"{url}#{anchor}" if anchor else url


def _create(
    *,
    recipients: Iterable[int],
    actor_id: int | None,
    kind: str,
    msg: str,
    forum: Forum,
    initiative: Initiative,
    params: dict,
    url: str,
) -> list[Notification]:
    """Write one notice per recipient (never to the actor); after commit, e-mail those who
    want every notice as it happens."""
    wanted = set(recipients) - {actor_id}
    if not wanted:
        return []
    active = get_user_model().objects.filter(pk__in=wanted, is_active=True)
    ids = sorted(active.values_list("pk", flat=True))
    if not ids:
        return []
    now = timezone.now()
    params = {"msg": msg, **params}
    rows = Notification.objects.bulk_create(
        [
            Notification(
                recipient_id=pk,
                kind=kind,
                forum=forum,
                initiative=initiative,
                params=params,
                url=url,
                created_at=now,
            )
            for pk in ids
        ]
    )
    frequency = _frequencies(ids, forum.pk)
    immediate = [n.pk for n in rows if frequency.get(n.recipient_id) == EmailFrequency.IMMEDIATE]
    if immediate:
        transaction.on_commit(lambda: _enqueue_immediate(immediate))
    return rows


def _enqueue_immediate(ids: list[int]) -> None:
    """Hand the e-mails to a worker; with the broker away, the beat's sweep sends them."""
    from .tasks import notifications_send_immediate_task

    try:
        notifications_send_immediate_task.delay(ids)
    except Exception:
        logger.warning("Notices %s not queued for e-mail; the sweep sends them later", ids)


def _members(forum_id: int) -> list[int]:
    return list(
        Membership.objects.filter(forum_id=forum_id, user__is_active=True).values_list(
            "user_id", flat=True
        )
    )


def _activity_params(activity: Activity) -> dict:
    initiative = activity.initiative
    params = {
        "title": initiative.title,
        "forum": activity.to_forum.name,
        "step": activity.transition,
        "state": activity.to_state,
        "actor": _name(activity.actor) if activity.actor_id else "",
    }
    if activity.from_forum_id:
        params["from_forum"] = activity.from_forum.name
    if activity.comment:
        params["comment"] = activity.comment[:MAX_COMMENT]
    return params


def notify_initiative_arrived(activity: Activity) -> list[Notification]:
    """The members of the forum an initiative reached (logged there, or moved there by the
    step ``activity``), except the person who took the step."""
    params = _activity_params(activity)
    return _create(
        recipients=_members(activity.to_forum_id),
        actor_id=activity.actor_id,
        kind=NotificationKind.ARRIVED,
        msg="logged" if activity.transition == workflow.LOG_NAME else "arrived",
        forum=activity.to_forum,
        initiative=activity.initiative,
        params=params,
        url=_initiative_url(activity.initiative),
    )


def notify_decision(activity: Activity) -> list[Notification]:
    """A decision (a step that needs a comment): the person who logged the initiative and the
    members of the forum where it was decided (the one it left, or sits in), except the
    decider."""
    forum = activity.from_forum or activity.to_forum
    params = _activity_params(activity)
    params["forum"] = forum.name
    recipients = {*_members(forum.pk), activity.initiative.created_by_id}
    return _create(
        recipients=recipients,
        actor_id=activity.actor_id,
        kind=NotificationKind.DECISION,
        msg="decision",
        forum=forum,
        initiative=activity.initiative,
        params=params,
        url=_initiative_url(activity.initiative),
    )


def notify_activity(activity: Activity) -> list[Notification]:
    """What a step of the workflow tells whom: arrival where the forum changed (or the
    initiative was logged), a decision where the step records one. Call in its transaction."""
    rows: list[Notification] = []
    if activity.transition == workflow.LOG_NAME or activity.from_forum_id != activity.to_forum_id:
        rows += notify_initiative_arrived(activity)
    step = workflow.BY_NAME.get(activity.transition)
    if step is not None and step.needs_comment:
        rows += notify_decision(activity)
    return rows


def _not_voted(voting_round: VotingRound) -> list[int]:
    voted = Vote.objects.filter(round_id=voting_round.pk).values("voter_id")
    return list(
        Membership.objects.filter(forum_id=voting_round.forum_id, user__is_active=True)
        .exclude(user_id__in=voted)
        .values_list("user_id", flat=True)
    )


def _round_notice(voting_round: VotingRound, *, kind: str, actor_id: int | None):
    initiative = voting_round.initiative
    return _create(
        recipients=_not_voted(voting_round),
        actor_id=actor_id,
        kind=kind,
        msg=kind,
        forum=voting_round.forum,
        initiative=initiative,
        params={
            "title": initiative.title,
            "forum": voting_round.forum.name,
            "deadline": voting_round.deadline.isoformat(),
        },
        url=_initiative_url(initiative),
    )


def notify_vote_opened(voting_round: VotingRound) -> list[Notification]:
    """The board's members (who have not voted yet), except the chair who opened it."""
    return _round_notice(
        voting_round, kind=NotificationKind.VOTE_OPENED, actor_id=voting_round.opened_by_id
    )


def notify_vote_closing(voting_round: VotingRound) -> list[Notification]:
    """The board's members who have not voted yet: the round closes soon."""
    return _round_notice(voting_round, kind=NotificationKind.VOTE_CLOSING, actor_id=None)


def _support_params(request: SupportRequest, actor) -> dict:
    return {
        "title": request.initiative.title,
        "forum": request.support_forum.name,
        "kind": request.kind,
        "actor": _name(actor),
    }


def notify_support_requested(request: SupportRequest) -> list[Notification]:
    """The support unit's members, except the one who asked."""
    return _create(
        recipients=_members(request.support_forum_id),
        actor_id=request.requested_by_id,
        kind=NotificationKind.SUPPORT_REQUESTED,
        msg="support_requested",
        forum=request.support_forum,
        initiative=request.initiative,
        params=_support_params(request, request.requested_by),
        url=_initiative_url(request.initiative),
    )


def notify_support_answered(request: SupportRequest, *, user=None) -> list[Notification]:
    """The person who asked (unless they answered it themselves); ``user`` answered it
    (default: the one who took it)."""
    user = user if user is not None else request.taken_by
    params = _support_params(request, user)
    if request.answer:
        params["comment"] = request.answer[:MAX_COMMENT]
    return _create(
        recipients=[request.requested_by_id],
        actor_id=user.pk if user is not None else None,
        kind=NotificationKind.SUPPORT_ANSWERED,
        msg="support_answered",
        forum=request.support_forum,
        initiative=request.initiative,
        params=params,
        url=_initiative_url(request.initiative),
    )


# --- reading them --------------------------------------------------------------------------


def notification_mark_read(*, user, notification_id: int) -> Notification:
    """Mark one of one's own notices read (again: no change). Another's: ``not_found``."""
    mine = visible_notifications(user)
    now = timezone.now()
    mine.filter(pk=notification_id, read_at__isnull=True).update(read_at=now)
    notification = mine.filter(pk=notification_id).first()
    if notification is None:
        raise ValidationError(_("No such notification."), code="not_found")
    return notification


def notifications_mark_all_read(*, user) -> int:
    """Mark all of one's unread notices read; how many were unread."""
    return visible_notifications(user).filter(read_at__isnull=True).update(read_at=timezone.now())


def notification_preferences_update(
    *,
    user,
    frequencies: dict[int, str],
    language: str,
    email_frequency: str,
) -> NotificationPreference:
    """Save how often one wants e-mail per forum one sits on (membership id → frequency,
    only one's own memberships), for other forums, and in which language."""
    if language and language not in dict(settings.LANGUAGES):
        raise ValidationError({"language": ValidationError(_("Unknown language."), code="bad")})
    allowed = set(EmailFrequency.values)
    if email_frequency not in allowed or not set(frequencies.values()) <= allowed:
        raise ValidationError(_("Choose how often to get e-mail."), code="bad_frequency")
    with transaction.atomic():
        mine = Membership.objects.filter(user_id=user.pk)
        for frequency in allowed:
            ids = [pk for pk, chosen in frequencies.items() if chosen == frequency]
            if ids:
                mine.filter(pk__in=ids).update(email_frequency=frequency)
        preference, _created = NotificationPreference.objects.update_or_create(
            user_id=user.pk,
            defaults={"language": language, "email_frequency": email_frequency},
        )
    return preference


def notification_language_remember(*, user, language: str) -> None:
    """Remember the language one reads the site in for one's e-mails, if none is chosen yet
    (a write only the first time)."""
    if language not in dict(settings.LANGUAGES):
        return
    if not NotificationPreference.objects.filter(user_id=user.pk).exists():
        NotificationPreference.objects.get_or_create(
            user_id=user.pk, defaults={"language": language}
        )


# --- e-mail ----------------------------------------------------------------------------------


def _pending(now) -> QuerySet[Notification]:
    """Notices an e-mail may carry: not e-mailed, not read, recent, to a person with an
    address."""
    return Notification.objects.filter(
        emailed_at__isnull=True,
        read_at__isnull=True,
        created_at__gte=now - EMAIL_MAX_AGE,
        recipient__is_active=True,
    ).exclude(recipient__email="")


def _language(user) -> str:
    preference = NotificationPreference.objects.filter(user_id=user.pk).first()
    return (preference.language if preference else "") or settings.LANGUAGE_CODE


def _site(path: str) -> str:
    return f"{settings.LHS_SITE_URL.rstrip('/')}{path}"


def _email(notices: list[Notification], *, recipient, forum: Forum, digest: bool) -> EmailMessage:
    """The e-mail of ``notices`` (one, or a digest of a forum's), in the recipient's language."""
    with translation.override(_language(recipient)):
        items = [
            {
                "text": notification_text(n),
                "comment": notification_comment(n),
                "url": _site(n.url) if n.url else "",
                "at": formats.date_format(
                    timezone.localtime(n.created_at), "SHORT_DATETIME_FORMAT"
                ),
            }
            for n in notices
        ]
        if digest:
            subject = ngettext(
                "%(count)d new notice from %(forum)s",
                "%(count)d new notices from %(forum)s",
                len(items),
            ) % {"count": len(items), "forum": forum.name}
        else:
            kind = NotificationKind(notices[0].kind).label
            subject = f"{kind}: {notices[0].params.get('title', '')}"
        body = render_to_string(
            "initiatives/notifications/email.txt",
            {
                "items": items,
                "digest": digest,
                "forum": forum,
                "recipient": recipient,
                "name": _name(recipient),
                "settings_url": _site(reverse("initiatives:notification-settings")),
                "list_url": _site(reverse("initiatives:notifications")),
            },
        )
    return EmailMessage(
        subject=" ".join(subject.split())[:200],
        body=body,
        from_email=settings.DEFAULT_FROM_EMAIL,
        to=[recipient.email],
    )


def _send_one(notification_id: int, now) -> int:
    """E-mail one notice; 1 if this call sent it (see the module docs: never twice)."""
    with transaction.atomic():
        claimed = Notification.objects.filter(pk=notification_id, emailed_at__isnull=True).update(
            emailed_at=now
        )
        if not claimed:
            return 0
        notice = Notification.objects.select_related("recipient", "forum").get(pk=notification_id)
        _email([notice], recipient=notice.recipient, forum=notice.forum, digest=False).send()
    return 1


class EmailNotSent(Exception):
    """Some e-mails failed (the mail server); what did go out is marked. Retry the task."""


def notifications_send_immediate(*, ids: Iterable[int] | None = None, now=None) -> int:
    """E-mail the pending notices (``ids``, or without ids every immediate one that waited
    longer than :data:`IMMEDIATE_SWEEP_AFTER`) to those who want every notice as it happens.

    Safe to call twice and from two workers: a notice is e-mailed once. Returns how many were
    sent; raises :class:`EmailNotSent` after trying all of them if any failed.
    """
    now = now or timezone.now()
    pending = _pending(now)
    if ids is not None:
        pending = pending.filter(pk__in=list(ids))
    else:
        pending = pending.filter(created_at__lte=now - IMMEDIATE_SWEEP_AFTER)
    by_forum: dict[int | None, list[tuple[int, int]]] = defaultdict(list)
    for pk, recipient_id, forum_id in pending.order_by("pk").values_list(
        "pk", "recipient_id", "forum_id"
    )[:1000]:
        by_forum[forum_id].append((pk, recipient_id))
    sent, failed = 0, 0
    for forum_id, rows in by_forum.items():
        frequency = _frequencies({recipient for _pk, recipient in rows}, forum_id)
        for pk, recipient_id in rows:
            if frequency.get(recipient_id) != EmailFrequency.IMMEDIATE:
                continue
            try:
                sent += _send_one(pk, now)
            except (SMTPException, OSError):
                logger.warning("Notice %s not e-mailed; retried later", pk, exc_info=True)
                failed += 1
    if failed:
        raise EmailNotSent(f"{failed} notice(s) not e-mailed")
    return sent


def _send_digest(recipient_id: int, forum_id: int, *, day, now) -> int:
    """Send the day's digest of ``forum_id`` to one person; 1 if this call sent it."""
    with transaction.atomic():
        try:
            with transaction.atomic():
                digest = EmailDigest.objects.create(
                    recipient_id=recipient_id, forum_id=forum_id, day=day, sent_at=now
                )
        except IntegrityError:
            return 0  # today's went out already (or is going out from another worker)
        ids = list(
            _pending(now)
            .filter(recipient_id=recipient_id, forum_id=forum_id, created_at__lte=now)
            .values_list("pk", flat=True)
        )
        claimed = Notification.objects.filter(pk__in=ids, emailed_at__isnull=True).update(
            emailed_at=now
        )
        if not claimed:
            transaction.set_rollback(True)  # nothing to send: no digest today yet
            return 0
        notices = list(
            Notification.objects.filter(pk__in=ids, emailed_at=now)
            .select_related("recipient", "forum")
            .order_by("created_at", "pk")
        )
        EmailDigest.objects.filter(pk=digest.pk).update(notices=len(notices))
        first = notices[0]
        _email(notices, recipient=first.recipient, forum=first.forum, digest=True).send()
    return 1


def notifications_send_digests(*, now=None) -> int:
    """Send each person, per forum, the day's one digest of what is pending (from
    ``LHS_DIGEST_HOUR`` local time; beat calls it every hour). Returns how many were sent;
    raises :class:`EmailNotSent` after trying all if any failed (a retry sends only those)."""
    now = now or timezone.now()
    local = timezone.localtime(now)
    if local.hour < settings.LHS_DIGEST_HOUR:
        return 0
    day = local.date()
    pairs = set(
        _pending(now)
        .filter(created_at__lte=now, forum__isnull=False)
        .values_list("recipient_id", "forum_id")
        .distinct()
    )
    if not pairs:
        return 0
    done = set(
        EmailDigest.objects.filter(
            day=day, recipient_id__in={recipient for recipient, _forum in pairs}
        ).values_list("recipient_id", "forum_id")
    )
    by_forum: dict[int, set[int]] = defaultdict(set)
    for recipient_id, forum_id in pairs - done:
        by_forum[forum_id].add(recipient_id)
    sent, failed = 0, 0
    for forum_id, recipients in sorted(by_forum.items()):
        frequency = _frequencies(recipients, forum_id)
        for recipient_id in sorted(recipients):
            if frequency.get(recipient_id) != EmailFrequency.DAILY:
                continue
            try:
                sent += _send_digest(recipient_id, forum_id, day=day, now=now)
            except (SMTPException, OSError):
                logger.warning(
                    "Digest for %s of forum %s not sent; retried later",
                    recipient_id,
                    forum_id,
                    exc_info=True,
                )
                failed += 1
    if failed:
        raise EmailNotSent(f"{failed} digest(s) not sent")
    return sent


# --- reminders -------------------------------------------------------------------------------


def voting_rounds_remind(*, now=None) -> int:
    """Remind the members who have not voted, once per round, when its deadline is within
    ``LHS_VOTE_REMINDER_HOURS`` (a round shorter than twice that: at half its time, so the
    reminder does not follow the opening at once). Returns how many rounds were reminded."""
    now = now or timezone.now()
    window = timedelta(hours=settings.LHS_VOTE_REMINDER_HOURS)
    due = VotingRound.objects.filter(
        status=RoundStatus.OPEN,
        reminded_at__isnull=True,
        deadline__gt=now,
        deadline__lte=now + window,
    ).select_related("initiative", "forum")
    reminded = 0
    for voting_round in due.order_by("deadline", "pk"):
        if voting_round.deadline - now > (voting_round.deadline - voting_round.opened_at) / 2:
            continue
        with transaction.atomic():
            claimed = VotingRound.objects.filter(
                pk=voting_round.pk, status=RoundStatus.OPEN, reminded_at__isnull=True
            ).update(reminded_at=now)
            if claimed != 1:
                continue  # reminded (or closed) meanwhile
            notify_vote_closing(voting_round)
        reminded += 1
    return reminded
