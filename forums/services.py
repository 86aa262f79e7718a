"""Writes for forum meetings: planning one, recording it (place, time, who was there,
minutes), removing one that decided nothing.

Every refusal is a ``ValidationError`` with a message for the user and a code the API maps to
its status (``lhs/api.py``): ``not_permitted`` → 403, ``stale`` and ``conflict`` → 409,
``not_found`` → 404, every other code → 400.

The agenda is ``initiatives.agenda`` (its items name initiatives and measures, which this app
must not import); the decisions are initiatives' activities that name the meeting.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from django.contrib.auth.models import AbstractBaseUser
from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import F
from django.utils import timezone
from django.utils.translation import gettext as _

from .models import Forum, Meeting, Membership
from .rules import can_plan_meeting, can_record_meeting


def _refuse(message: str, code: str, field: str | None = None) -> ValidationError:
    """A refusal with its code kept (a dict given to ValidationError drops ``code=``)."""
    error = ValidationError(message, code=code)
    return ValidationError({field: error}) if field else error


def _clean_starts_at(starts_at: datetime | None) -> datetime:
    if starts_at is None:
        raise _refuse(_("Say when the meeting starts."), "starts_at_required", "starts_at")
    if timezone.is_naive(starts_at):
        starts_at = timezone.make_aware(starts_at)
    if not 1900 <= starts_at.year <= 2999:
        raise _refuse(_("That is not a date a forum meets."), "bad_starts_at", "starts_at")
    return starts_at


def _clean_location(location: str) -> str:
    location = (location or "").strip()
    limit = Meeting._meta.get_field("location").max_length
    if len(location) > limit:
        raise _refuse(
            _("A place has at most %(limit)s characters.") % {"limit": limit},
            "location_too_long",
            "location",
        )
    return location


def _present_ids(forum: Forum, present: Iterable, *, already: set[int] = frozenset()) -> set[int]:
    """The ids of ``present`` (users or ids), each a member of ``forum``.

    Those ``already`` recorded as present stay allowed: a member who has left the forum since
    was still there at the meeting.
    """
    ids = {getattr(person, "pk", person) for person in present}
    try:
        ids = {int(pk) for pk in ids}
    except (TypeError, ValueError) as exc:
        raise _refuse(_("Choose the members who were there."), "bad_present", "present") from exc
    members = set(
        Membership.objects.filter(forum=forum, user_id__in=ids).values_list("user_id", flat=True)
    )
    strangers = ids - members - set(already)
    if strangers:
        raise _refuse(
            _("Only members of %(forum)s can be recorded as present.") % {"forum": forum},
            "not_a_member",
            "present",
        )
    return ids


@transaction.atomic
def meeting_create(
    *,
    user: AbstractBaseUser,
    forum: Forum,
    starts_at: datetime | None,
    location: str = "",
    present: Iterable = (),
    minutes: str = "",
) -> Meeting:
    """Plan a meeting of ``forum`` (its chair or secretary, or an admin)."""
    if not can_plan_meeting(user, forum):
        raise _refuse(
            _("Only the chair or the secretary of %(forum)s plans its meetings.")
            % {"forum": forum},
            "not_permitted",
        )
    starts_at = _clean_starts_at(starts_at)
    # A form sent twice (a double click, a reload) plans one meeting, not two.
    if Meeting.objects.filter(forum=forum, starts_at=starts_at).exists():
        raise _refuse(
            _("%(forum)s already has a meeting at that time.") % {"forum": forum},
            "duplicate",
            "starts_at",
        )
    meeting = Meeting(
        forum=forum,
        starts_at=starts_at,
        location=_clean_location(location),
        minutes=(minutes or "").strip(),
        created_by=user,
    )
    ids = _present_ids(forum, present)
    meeting.save()
    if ids:
        meeting.present.set(ids)
    return meeting


def meeting_update(
    *,
    user: AbstractBaseUser,
    meeting: Meeting,
    version: int,
    starts_at: datetime | None = None,
    location: str | None = None,
    present: Iterable | None = None,
    minutes: str | None = None,
) -> Meeting:
    """Record the meeting: time, place, who was there, minutes (``None`` leaves one as it is).

    ``version`` is the one the caller read. The save is a conditional UPDATE on it, so of two
    secretaries saving at once exactly one succeeds and the other is told the meeting changed
    meanwhile (``stale``) instead of overwriting what the first wrote. ``meeting`` is updated
    in place.
    """
    if not can_record_meeting(user, meeting):
        raise _refuse(
            _("Only the chair or the secretary of %(forum)s records its meetings.")
            % {"forum": meeting.forum},
            "not_permitted",
        )
    changes: dict[str, object] = {}
    if starts_at is not None:
        changes["starts_at"] = _clean_starts_at(starts_at)
        clash = Meeting.objects.filter(forum_id=meeting.forum_id, starts_at=changes["starts_at"])
        if clash.exclude(pk=meeting.pk).exists():
            raise _refuse(
                _("%(forum)s already has a meeting at that time.") % {"forum": meeting.forum},
                "duplicate",
                "starts_at",
            )
    if location is not None:
        changes["location"] = _clean_location(location)
    if minutes is not None:
        changes["minutes"] = minutes.strip()
    with transaction.atomic():
        ids = None
        if present is not None:
            already = set(meeting.present.values_list("pk", flat=True))
            ids = _present_ids(meeting.forum, present, already=already)
        now = timezone.now()
        saved = Meeting.objects.filter(pk=meeting.pk, version=version).update(
            **changes, version=F("version") + 1, updated_at=now
        )
        if saved != 1:
            if not Meeting.objects.filter(pk=meeting.pk).exists():
                raise _refuse(_("The meeting has been removed."), "not_found")
            raise _refuse(
                _(
                    "Someone else saved this meeting meanwhile. Your changes were not saved: "
                    "reload the page to see theirs, then make yours again."
                ),
                "stale",
            )
        if ids is not None:
            meeting.present.set(ids)
    for name, value in changes.items():
        setattr(meeting, name, value)
    meeting.version = version + 1
    meeting.updated_at = now
    return meeting


def meeting_delete(*, user: AbstractBaseUser, meeting: Meeting) -> None:
    """Remove a meeting planned by mistake: only while no decision names it (its agenda goes
    with it)."""
    if not can_record_meeting(user, meeting):
        raise _refuse(
            _("Only the chair or the secretary of %(forum)s removes its meetings.")
            % {"forum": meeting.forum},
            "not_permitted",
        )
    with transaction.atomic():
        # The row lock keeps a decision from being linked while we look (PostgreSQL).
        locked = Meeting.objects.select_for_update().filter(pk=meeting.pk).first()
        if locked is None:
            raise _refuse(_("The meeting has been removed."), "not_found")
        if locked.decisions.exists():
            raise _refuse(
                _("Decisions were taken in this meeting: it stays on record."), "conflict"
            )
        locked.delete()
