"""Support requests: an initiative asks the division's support unit for help.

A request can be made at any stage of an initiative (data, IT or improvement-science help) by
anyone who sits in the forum the initiative sits in, or by the person who logged it, while
the initiative is not closed. It goes to the support unit of the initiative's division,
found here, and has a small lifecycle of its own::

    open ──take──▶ taken ──done (with an answer)──▶ done
      ▲              │
      └───release────┘

Support-unit members take requests; the one who took a request, or the support unit's chair,
answers or releases it. Each change is a conditional UPDATE on the state and version the
caller read, so of two support staff pressing "take" at once one wins and the other is told
who took it (code ``stale``). The request's own dates (requested, taken, done) are its
history: it writes no workflow activity (it moves the initiative nowhere).

Refusals are ``ValidationError`` with a code (``lhs.api`` maps them): ``not_permitted`` →
403, ``stale`` and ``conflict`` → 409, other codes → 400.
"""

from __future__ import annotations

from django.contrib.auth.models import AbstractBaseUser
from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import Case, F, IntegerField, QuerySet, Value, When
from django.utils import formats, timezone
from django.utils.translation import gettext as _

from forums.enums import ForumKind
from forums.models import Forum, Membership

from . import workflow
from .enums import SupportKind, SupportState
from .models import Initiative, SupportRequest
from .notifications import notify_support_answered, notify_support_requested
from .rules import answers_for, can_request_support, sits_in_support_unit_of, visible_initiatives

#: The longest description or answer accepted (a request is a message, not a report).
MAX_TEXT = 10_000

#: What the support queue page can show.
QUEUE_OPEN, QUEUE_MINE, QUEUE_TAKEN, QUEUE_DONE = "open", "mine", "taken", "done"
QUEUE_VIEWS = (QUEUE_OPEN, QUEUE_MINE, QUEUE_TAKEN, QUEUE_DONE)


def _refuse(message: str, code: str, field: str | None = None) -> ValidationError:
    error = ValidationError(message, code=code)
    return ValidationError({field: error}) if field else error


def _name(user) -> str:
    if user is None:
        return "—"
    return user.get_full_name() or user.get_username()


# --- reads ----------------------------------------------------------------------------------


def support_forum_for(initiative: Initiative) -> Forum | None:
    """The support unit of the initiative's division (the first, should there be several)."""
    return (
        Forum.objects.filter(kind=ForumKind.SUPPORT_UNIT, division_id=initiative.forum.division_id)
        .order_by("pk")
        .first()
    )


def _with_people(queryset: QuerySet[SupportRequest]) -> QuerySet[SupportRequest]:
    return queryset.select_related(
        "initiative", "initiative__forum", "support_forum", "requested_by", "taken_by"
    )


def visible_support_requests(user) -> QuerySet[SupportRequest]:
    """Requests on the initiatives ``user`` may see (the API's list)."""
    return _with_people(
        SupportRequest.objects.filter(initiative__in=visible_initiatives(user))
    ).order_by("-requested_at", "-pk")


def initiative_support_requests(initiative: Initiative) -> QuerySet[SupportRequest]:
    """An initiative's requests, the newest first (its panel)."""
    return _with_people(initiative.support_requests.all()).order_by("-requested_at", "-pk")


def support_queue(*, user: AbstractBaseUser, show: str = QUEUE_OPEN) -> QuerySet[SupportRequest]:
    """The requests of the support units ``user`` sits in (admins: of every support unit).

    ``show``: ``open`` (waiting to be taken, the oldest first), ``mine`` (taken by ``user``,
    the oldest first), ``taken`` (taken by anyone) or ``done`` (answered, the latest first).
    Any other value: every request, open first, then taken, then done, each oldest first.
    """
    if not (user.is_authenticated and user.is_active):
        return SupportRequest.objects.none()
    requests = SupportRequest.objects.all()
    if not workflow.is_admin(user):
        forums = Membership.objects.filter(user=user, forum__kind=ForumKind.SUPPORT_UNIT).values(
            "forum_id"
        )
        requests = requests.filter(support_forum_id__in=forums)
    requests = _with_people(requests)
    if show == QUEUE_OPEN:
        return requests.filter(state=SupportState.OPEN).order_by("requested_at", "pk")
    if show == QUEUE_MINE:
        return requests.filter(state=SupportState.TAKEN, taken_by=user).order_by("taken_at", "pk")
    if show == QUEUE_TAKEN:
        return requests.filter(state=SupportState.TAKEN).order_by("taken_at", "pk")
    if show == QUEUE_DONE:
        return requests.filter(state=SupportState.DONE).order_by("-done_at", "-pk")
    order = Case(
        When(state=SupportState.OPEN, then=Value(0)),
        When(state=SupportState.TAKEN, then=Value(1)),
        default=Value(2),
        output_field=IntegerField(),
    )
    return requests.order_by(order, "requested_at", "pk")


def support_queue_counts(*, user: AbstractBaseUser) -> dict[str, int]:
    """How many requests each view of the queue holds (its tabs)."""
    return {show: support_queue(user=user, show=show).count() for show in QUEUE_VIEWS}


# --- writes ---------------------------------------------------------------------------------


def _clean_text(text: str, *, field: str, missing: str, missing_code: str) -> str:
    text = (text or "").replace("\x00", "").strip()
    if not text:
        raise _refuse(missing, missing_code, field)
    if len(text) > MAX_TEXT:
        raise _refuse(
            _("At most %(max)s characters, please (this is %(count)s).")
            % {"max": MAX_TEXT, "count": len(text)},
            "too_long",
            field,
        )
    return text


@transaction.atomic
def support_request_create(
    *, user: AbstractBaseUser, initiative: Initiative, kind: str, description: str
) -> SupportRequest:
    """Ask the support unit of the initiative's division for help with ``kind``.

    A second identical request (same person, kind and text) while the first is still open or
    taken is refused with ``conflict``: a form sent twice makes one request.
    """
    if not can_request_support(user, initiative):
        if initiative.state in workflow.CLOSED:
            message = _("The initiative is closed: no more support requests on it.")
        else:
            message = _(
                "Only the members of %(forum)s and the person who logged the initiative may "
                "ask for support on it."
            ) % {"forum": initiative.forum}
        raise _refuse(message, "not_permitted")
    if kind not in SupportKind.values:
        raise _refuse(_("Choose what you need help with."), "bad_kind", "kind")
    description = _clean_text(
        description,
        field="description",
        missing=_("Say what you need help with."),
        missing_code="description_required",
    )
    forum = support_forum_for(initiative)
    if forum is None:
        raise _refuse(_("The division has no support unit to ask."), "no_support_unit")
    # One request at a time per initiative: a form sent twice waits here for the first.
    Initiative.objects.select_for_update().filter(pk=initiative.pk).first()
    pending = SupportRequest.objects.filter(
        initiative=initiative,
        requested_by=user,
        kind=kind,
        description=description,
        state__in=(SupportState.OPEN, SupportState.TAKEN),
    ).exists()
    if pending:
        raise _refuse(
            _("You have asked for exactly this already; that request is still open."),
            "conflict",
        )
    support_request = SupportRequest.objects.create(
        initiative=initiative,
        support_forum=forum,
        kind=kind,
        description=description,
        requested_by=user,
    )
    notify_support_requested(support_request)  # the support unit's members, in this transaction
    return support_request


def _stale(support_request: SupportRequest, user: AbstractBaseUser) -> ValidationError:
    """What someone who acted on an old copy is told: what happened to the request meanwhile."""
    now = (
        SupportRequest.objects.select_related("taken_by")
        .filter(pk=support_request.pk)
        .only("state", "taken_by", "taken_at", "done_at")
        .first()
    )
    if now is None:
        return _refuse(_("This support request no longer exists."), "not_found")
    if now.state == SupportState.TAKEN:
        if now.taken_by_id == user.pk:
            message = _("You took this request already.")
        else:
            message = _("%(name)s took this request at %(time)s.") % {
                "name": _name(now.taken_by),
                "time": formats.date_format(
                    timezone.localtime(now.taken_at), "SHORT_DATETIME_FORMAT"
                ),
            }
    elif now.state == SupportState.DONE:
        message = _("This request was answered at %(time)s.") % {
            "time": formats.date_format(timezone.localtime(now.done_at), "SHORT_DATETIME_FORMAT")
        }
    else:
        message = _("This request was given back to the queue meanwhile. Reload and try again.")
    return _refuse(message, "stale")


def _apply(support_request: SupportRequest, *, expect: str, user, **fields) -> None:
    """The conditional UPDATE: only from the state and version the caller read."""
    updated = SupportRequest.objects.filter(
        pk=support_request.pk, state=expect, version=support_request.version
    ).update(version=F("version") + 1, **fields)
    if updated != 1:
        raise _stale(support_request, user)
    for name, value in fields.items():
        setattr(support_request, name, value)
    support_request.version += 1


@transaction.atomic
def support_request_take(*, user: AbstractBaseUser, request: SupportRequest) -> SupportRequest:
    """A support-unit member takes an open request (open → taken). ``request`` is updated."""
    if not sits_in_support_unit_of(user, request):
        raise _refuse(
            _("Only the members of %(forum)s take its support requests.")
            % {"forum": request.support_forum},
            "not_permitted",
        )
    if request.state != SupportState.OPEN:
        raise _stale(request, user)
    _apply(
        request,
        expect=SupportState.OPEN,
        user=user,
        state=SupportState.TAKEN,
        taken_by=user,
        taken_at=timezone.now(),
    )
    return request


def _check_answerer(user, request: SupportRequest) -> None:
    if request.state != SupportState.TAKEN:
        if not sits_in_support_unit_of(user, request):
            raise _refuse(
                _("Only the members of %(forum)s answer its support requests.")
                % {"forum": request.support_forum},
                "not_permitted",
            )
        raise _stale(request, user)
    if not answers_for(user, request):
        raise _refuse(
            _("Only %(name)s, who took this request, or the chair of %(forum)s may do that.")
            % {"name": _name(request.taken_by), "forum": request.support_forum},
            "not_permitted",
        )


@transaction.atomic
def support_request_release(*, user: AbstractBaseUser, request: SupportRequest) -> SupportRequest:
    """Give a taken request back to the queue (taken → open): its taker or the unit's chair."""
    _check_answerer(user, request)
    _apply(
        request,
        expect=SupportState.TAKEN,
        user=user,
        state=SupportState.OPEN,
        taken_by=None,
        taken_at=None,
    )
    return request


@transaction.atomic
def support_request_done(
    *, user: AbstractBaseUser, request: SupportRequest, answer: str
) -> SupportRequest:
    """Answer a taken request and close it (taken → done): its taker or the unit's chair."""
    _check_answerer(user, request)
    answer = _clean_text(
        answer,
        field="answer",
        missing=_("Write the answer: what was done, or where to find it."),
        missing_code="answer_required",
    )
    _apply(
        request,
        expect=SupportState.TAKEN,
        user=user,
        state=SupportState.DONE,
        answer=answer,
        done_at=timezone.now(),
    )
    notify_support_answered(request, user=user)  # the one who asked, in this transaction
    return request
