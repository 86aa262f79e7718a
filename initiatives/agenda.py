"""A forum meeting's agenda: what is proposed for it, and the chair's edits of it.

:func:`agenda_propose` reads what waits for the forum (DESIGN.md §4: "initiatives due, and
measures that signalled special cause since the last meeting"); it lives here, not in
``forums``, because it reads initiatives and measures, which ``forums`` must not import.

- an open voting round of the forum that closes within :data:`HORIZON` of the meeting;
- adoptions due within :data:`HORIZON` (planned or started, with a due date) in the units
  the forum serves, or of initiatives that sit in it;
- initiatives that arrived in the forum since its previous meeting (logged there, or sent
  to it by another forum);
- initiatives that sit in the forum in a state from which the workflow table gives its chair
  or secretary a step (they wait for its decision);
- measures whose precomputed series, at the forum's own nodes (a unit forum: its units; a
  department group: the department and its units; the division board: the division and its
  departments), marked a period with special cause (improvement, concern, or special cause
  where the direction is neither) that was not over at the previous meeting. Read from
  ``measures.series.public_columns`` (a suppressed period is never flagged): raw observations
  are never aggregated here.

One proposal per initiative (the most pressing reason) and one per measure; whatever is on
the agenda already is not proposed again, so "add the proposed items" is idempotent.

The services below are the only writes of agenda items. Each takes the meeting's row lock
first (a no-op UPDATE, which serialises writers on PostgreSQL and SQLite alike) and leaves the
positions dense (1, 2, …): two people reordering at once never produce two items in one
place, and an item added twice at once is added once.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta

from django.contrib.auth.models import AbstractBaseUser
from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import F, Q
from django.utils import timezone
from django.utils.formats import date_format
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from forums.enums import ForumKind
from forums.models import Forum, Meeting
from forums.rules import can_record_meeting
from measures.enums import Frequency, SeriesLevel
from measures.models import Measure, Series
from measures.series import node_code, public_columns
from measures.spc import PointClass
from units.models import Unit

from . import workflow
from .enums import AdoptionState, RoundStatus, State
from .models import Activity, Adoption, AgendaItem, Initiative, VotingRound

#: How far past the meeting a deadline or a due date may lie and still be proposed.
HORIZON = timedelta(days=14)
#: For a forum's first meeting: how far back "since the last meeting" reaches.
FIRST_LOOKBACK = timedelta(days=28)

ROUND_CLOSING = "round_closing"
ADOPTION_DUE = "adoption_due"
ARRIVED = "arrived"
WAITING = "waiting"
MEASURE_SIGNAL = "measure_signal"

#: Why an item was proposed, most pressing first (an initiative is proposed for the first
#: reason that applies).
REASONS = {
    ROUND_CLOSING: gettext_lazy("Vote closing"),
    ADOPTION_DUE: gettext_lazy("Adoptions due"),
    ARRIVED: gettext_lazy("New to the forum"),
    WAITING: gettext_lazy("Waits for a decision"),
    MEASURE_SIGNAL: gettext_lazy("Special cause in a measure"),
}
_PRIORITY = {code: i for i, code in enumerate(REASONS)}

#: Point classes that mark special cause.
SPECIAL = frozenset({PointClass.IMPROVEMENT, PointClass.CONCERN, PointClass.NEITHER})
_CLASS_LABELS = {
    PointClass.IMPROVEMENT: gettext_lazy("improvement"),
    PointClass.CONCERN: gettext_lazy("concern"),
    PointClass.NEITHER: gettext_lazy("special cause"),
}
_TITLE_MAX = AgendaItem._meta.get_field("title").max_length


def reason_label(code: str) -> str:
    """The reader's words for a reason code ('' for an item added by hand)."""
    label = REASONS.get(code)
    return str(label) if label is not None else ""


def _stamp(when: date | datetime) -> float:
    """A sortable number for a date or a moment (proposals of one reason sort by it)."""
    if not isinstance(when, datetime):
        when = datetime(when.year, when.month, when.day, tzinfo=timezone.get_current_timezone())
    return when.timestamp()


def _refuse(message: str, code: str, field: str | None = None) -> ValidationError:
    error = ValidationError(message, code=code)
    return ValidationError({field: error}) if field else error


# --------------------------------------------------------------------------------------------
# What is proposed
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Proposal:
    """One item proposed for a meeting's agenda (not yet on it)."""

    key: str  # "initiative:<id>" or "measure:<id>": one item per initiative or measure
    reason: str
    title: str  # what the item is called once added
    detail: str  # why, in a sentence, for the chair choosing what to add
    initiative: Initiative | None = None
    measure: Measure | None = None
    sort: tuple = ()

    @property
    def reason_label(self) -> str:
        return reason_label(self.reason)


def item_key(initiative_id: int | None, measure_id: int | None) -> str | None:
    if initiative_id:
        return f"initiative:{initiative_id}"
    if measure_id:
        return f"measure:{measure_id}"
    return None


def waiting_states(forum_kind: str) -> frozenset[str]:
    """States from which the table gives the chair or secretary of the forum an initiative
    sits in (``Relation.CURRENT``) a step, while it sits in this kind of forum."""
    states: set[str] = set()
    for step in workflow.TRANSITIONS:
        if forum_kind not in step.at:
            continue
        if any(
            actor.relation == workflow.Relation.CURRENT and actor.roles & workflow.DECIDERS
            for actor in step.actors
        ):
            states |= step.sources
    return frozenset(states)


def previous_meeting(meeting: Meeting) -> Meeting | None:
    """The forum's meeting before this one (by start, then id)."""
    return (
        Meeting.objects.filter(forum_id=meeting.forum_id)
        .filter(
            Q(starts_at__lt=meeting.starts_at) | Q(starts_at=meeting.starts_at, pk__lt=meeting.pk)
        )
        .order_by("-starts_at", "-pk")
        .first()
    )


def _since(meeting: Meeting, previous: Meeting | None) -> datetime:
    return previous.starts_at if previous is not None else meeting.starts_at - FIRST_LOOKBACK


def _served_units(forum: Forum):
    """The units whose adoptions the forum follows: a unit forum's own, a department group's
    department's (a subquery)."""
    if forum.kind == ForumKind.UNIT_FORUM:
        return Unit.objects.filter(forums=forum).values("pk")
    if forum.kind == ForumKind.DEPARTMENT_GROUP and forum.department_id:
        return Unit.objects.filter(department_id=forum.department_id).values("pk")
    return Unit.objects.none().values("pk")


def _signal_nodes(forum: Forum) -> Q | None:
    """The org nodes whose series the forum watches."""
    if forum.kind == ForumKind.UNIT_FORUM:
        return Q(level=SeriesLevel.UNIT, unit__forums=forum)
    if forum.kind == ForumKind.DEPARTMENT_GROUP and forum.department_id:
        return Q(level=SeriesLevel.DEPARTMENT, department_id=forum.department_id) | Q(
            level=SeriesLevel.UNIT, unit__department_id=forum.department_id, unit__active=True
        )
    if forum.kind == ForumKind.DIVISION_BOARD:
        return Q(level=SeriesLevel.DIVISION, division_id=forum.division_id) | Q(
            level=SeriesLevel.DEPARTMENT, department__division_id=forum.division_id
        )
    return None


def period_end(start: date, grain: str) -> date:
    """The first day after the period that begins on ``start``."""
    if grain == Frequency.WEEK:
        return start + timedelta(days=7)
    months = 3 if grain == Frequency.QUARTER else 1
    month = start.month - 1 + months
    return date(start.year + month // 12, month % 12 + 1, 1)


def _grain_length(grain: str) -> timedelta:
    return {Frequency.WEEK: timedelta(days=7), Frequency.QUARTER: timedelta(days=92)}.get(
        grain, timedelta(days=31)
    )


def _node_label(series: Series) -> str:
    if series.level == SeriesLevel.UNIT:
        return node_code(series)
    node = series.department or series.division
    return node.name if node is not None else node_code(series)


def _signals(forum: Forum, since: datetime) -> list[Proposal]:
    """One proposal per measure with a special-cause period not over at ``since``."""
    nodes = _signal_nodes(forum)
    if nodes is None:
        return []
    since_day = timezone.localtime(since).date()
    # A series last computed before ``since`` held the same periods at the last meeting.
    found = (
        Series.objects.filter(nodes)
        .filter(grain=F("measure__frequency"), measure__active=True, computed_at__gte=since)
        .select_related("measure", "unit", "department", "division")
        .order_by("measure__name", "measure_id", "level", "node_key")
    )
    flagged: dict[int, tuple[Measure, list[str]]] = {}
    for series in found:
        columns = public_columns(series, period_from=since_day - _grain_length(series.grain))
        marks = []
        for period, cls in zip(columns["period"], columns["point_class"], strict=True):
            if cls in SPECIAL and period_end(date.fromisoformat(period), series.grain) > since_day:
                marks.append(str(_CLASS_LABELS[PointClass(cls)]))
        if marks:
            # The latest mark names the direction it went (a period's class, not a count).
            entry = flagged.setdefault(series.measure_id, (series.measure, []))
            entry[1].append(f"{_node_label(series)} ({marks[-1]})")
    out = []
    for measure, where in flagged.values():
        detail = _("Special cause since the last meeting: %(where)s") % {"where": ", ".join(where)}
        out.append(
            Proposal(
                key=item_key(None, measure.pk),
                reason=MEASURE_SIGNAL,
                title=f"{measure.name} — {detail}"[:_TITLE_MAX],
                detail=detail,
                measure=measure,
                sort=(_PRIORITY[MEASURE_SIGNAL], measure.name.casefold(), measure.pk),
            )
        )
    return out


def agenda_propose(meeting: Meeting, *, on_agenda: Iterable[str] | None = None) -> list[Proposal]:
    """What waits for the meeting's forum and is not on the agenda yet, most pressing first.

    ``on_agenda``: the keys of the items already on it, where the caller has read them (the
    meeting page); otherwise they are read here. A constant number of queries (about seven),
    however many initiatives, rounds, adoptions or series there are.
    """
    forum = meeting.forum
    previous = previous_meeting(meeting)
    since = _since(meeting, previous)
    horizon = meeting.starts_at + HORIZON
    if on_agenda is None:
        on_agenda = {
            item_key(i, m)
            for i, m in AgendaItem.objects.filter(meeting=meeting).values_list(
                "initiative_id", "measure_id"
            )
        }
    taken = set(on_agenda)
    by_initiative: dict[int, Proposal] = {}

    def offer(initiative: Initiative, reason: str, detail: str, when) -> None:
        key = item_key(initiative.pk, None)
        if key in taken:
            return
        proposal = Proposal(
            key=key,
            reason=reason,
            title=initiative.title[:_TITLE_MAX],
            detail=detail,
            initiative=initiative,
            sort=(_PRIORITY[reason], _stamp(when), initiative.pk),
        )
        current = by_initiative.get(initiative.pk)
        if current is None or proposal.sort < current.sort:
            by_initiative[initiative.pk] = proposal

    rounds = (
        VotingRound.objects.filter(forum=forum, status=RoundStatus.OPEN, deadline__lte=horizon)
        .select_related("initiative")
        .order_by("deadline", "pk")
    )
    for voting in rounds:
        offer(
            voting.initiative,
            ROUND_CLOSING,
            _("The vote closes %(when)s.")
            % {"when": date_format(timezone.localtime(voting.deadline), "DATETIME_FORMAT")},
            voting.deadline,
        )

    due: dict[int, list[Adoption]] = {}
    adoptions = (
        Adoption.objects.filter(
            state__in=[AdoptionState.PLANNED, AdoptionState.STARTED],
            due_date__isnull=False,
            due_date__lte=timezone.localtime(horizon).date(),
        )
        .filter(Q(unit__in=_served_units(forum)) | Q(initiative__forum=forum))
        .select_related("initiative", "unit")
        .order_by("due_date", "unit__code", "pk")
    )
    for adoption in adoptions:
        due.setdefault(adoption.initiative_id, []).append(adoption)
    for found in due.values():
        units = ", ".join(
            _("%(unit)s by %(date)s")
            % {"unit": a.unit.code, "date": date_format(a.due_date, "SHORT_DATE_FORMAT")}
            for a in found
        )
        offer(
            found[0].initiative,
            ADOPTION_DUE,
            _("Adoption due: %(units)s.") % {"units": units},
            found[0].due_date,
        )

    waiting = waiting_states(forum.kind)
    arrivals = (
        Activity.objects.filter(
            to_forum=forum,
            at__gt=since,
            initiative__forum=forum,
            initiative__state__in=waiting,
        )
        .filter(Q(from_forum__isnull=True) | ~Q(from_forum=F("to_forum")))
        .select_related("initiative", "from_forum")
        .order_by("at", "pk")
    )
    for activity in arrivals:
        when = date_format(timezone.localtime(activity.at), "SHORT_DATE_FORMAT")
        if activity.from_forum is None:
            detail = _("Logged here on %(date)s.") % {"date": when}
        else:
            detail = _("Sent by %(forum)s on %(date)s.") % {
                "forum": activity.from_forum,
                "date": when,
            }
        offer(activity.initiative, ARRIVED, detail, activity.at)

    sitting = Initiative.objects.filter(forum=forum, state__in=waiting).order_by("updated_at", "pk")
    for initiative in sitting:
        offer(
            initiative,
            WAITING,
            _("“%(state)s” here.") % {"state": State(initiative.state).label},
            initiative.updated_at,
        )

    proposals = list(by_initiative.values())
    proposals.sort(key=lambda p: p.sort)
    proposals += [p for p in _signals(forum, since) if p.key not in taken]
    return proposals


# --------------------------------------------------------------------------------------------
# Writes
# --------------------------------------------------------------------------------------------


def item_digest(item: AgendaItem) -> str:
    """A fingerprint of what an item says, which an edit form carries: a save over text that
    changed meanwhile is refused (``stale``) instead of overwriting it."""
    raw = f"{item.title}\x00{item.notes}".encode()
    return hashlib.blake2b(raw, digest_size=8).hexdigest()


def _check(user: AbstractBaseUser, meeting: Meeting) -> None:
    if not can_record_meeting(user, meeting):
        raise _refuse(
            _("Only the chair or the secretary of %(forum)s keeps its agenda.")
            % {"forum": meeting.forum},
            "not_permitted",
        )


def _lock(meeting_id: int) -> None:
    """Take the meeting's row lock for the rest of the transaction (a no-op UPDATE: a row
    lock on PostgreSQL, the write lock on SQLite)."""
    if not Meeting.objects.filter(pk=meeting_id).update(version=F("version")):
        raise _refuse(_("The meeting has been removed."), "not_found")


def _items(meeting_id: int) -> list[AgendaItem]:
    return list(AgendaItem.objects.filter(meeting_id=meeting_id).order_by("position", "pk"))


def _renumber(items: Sequence[AgendaItem]) -> None:
    """Positions 1…n in the given order, writing only those that change."""
    changed = []
    for position, item in enumerate(items, start=1):
        if item.position != position:
            item.position = position
            changed.append(item)
    if changed:
        AgendaItem.objects.bulk_update(changed, ["position"])


def _fresh(item: AgendaItem) -> AgendaItem:
    found = AgendaItem.objects.filter(pk=item.pk).first()
    if found is None:
        raise _refuse(_("That agenda item has been removed."), "not_found")
    return found


def _clean_title(title: str, *, fallback: str = "") -> str:
    title = (title or "").strip() or fallback.strip()
    if not title:
        raise _refuse(_("Give the item a title."), "title_required", "title")
    if len(title) > _TITLE_MAX:
        raise _refuse(
            _("A title has at most %(limit)s characters.") % {"limit": _TITLE_MAX},
            "title_too_long",
            "title",
        )
    return title


@transaction.atomic
def agenda_item_add(
    *,
    user: AbstractBaseUser,
    meeting: Meeting,
    title: str = "",
    initiative: Initiative | None = None,
    measure: Measure | None = None,
    notes: str = "",
    reason: str = "",
) -> AgendaItem:
    """Add an item at the end of the agenda (the chair or the secretary).

    An initiative or a measure is on an agenda at most once (``duplicate``).
    """
    _check(user, meeting)
    fallback = initiative.title if initiative is not None else (measure.name if measure else "")
    title = _clean_title(title, fallback=fallback[:_TITLE_MAX])
    if reason and reason not in REASONS:
        raise _refuse(_("Unknown reason."), "bad_reason", "reason")
    _lock(meeting.pk)
    items = _items(meeting.pk)
    key = item_key(initiative.pk if initiative else None, measure.pk if measure else None)
    if key and key in {item_key(i.initiative_id, i.measure_id) for i in items}:
        raise _refuse(
            _("%(what)s is on the agenda already.") % {"what": initiative or measure},
            "duplicate",
        )
    _renumber(items)
    return AgendaItem.objects.create(
        meeting=meeting,
        position=len(items) + 1,
        title=title,
        reason=reason,
        initiative=initiative,
        measure=measure,
        notes=(notes or "").strip(),
    )


@transaction.atomic
def agenda_proposals_add(
    *, user: AbstractBaseUser, meeting: Meeting, keys: Iterable[str] | None = None
) -> list[AgendaItem]:
    """Add the proposed items (all of them, or those whose key is in ``keys``) at the end,
    in the proposals' order. Idempotent: what is on the agenda already is not added again,
    also when two people press "add" at once (the proposals are read under the lock)."""
    _check(user, meeting)
    _lock(meeting.pk)
    items = _items(meeting.pk)
    present = {item_key(i.initiative_id, i.measure_id) for i in items} - {None}
    wanted = set(keys) if keys is not None else None
    proposals = [
        p for p in agenda_propose(meeting, on_agenda=present) if wanted is None or p.key in wanted
    ]
    _renumber(items)
    added = [
        AgendaItem(
            meeting=meeting,
            position=len(items) + i,
            title=p.title,
            reason=p.reason,
            initiative=p.initiative,
            measure=p.measure,
        )
        for i, p in enumerate(proposals, start=1)
    ]
    return AgendaItem.objects.bulk_create(added) if added else []


@transaction.atomic
def agenda_item_update(
    *,
    user: AbstractBaseUser,
    item: AgendaItem,
    title: str | None = None,
    notes: str | None = None,
    digest: str | None = None,
) -> AgendaItem:
    """Change an item's title or notes. With ``digest`` (:func:`item_digest` of the text the
    editor started from) a save over text someone else changed meanwhile is refused."""
    _check(user, item.meeting)
    _lock(item.meeting_id)
    fresh = _fresh(item)
    if digest is not None and digest != item_digest(fresh):
        raise _refuse(
            _(
                "Someone else changed this item meanwhile. Your text was not saved: reload "
                "to see theirs."
            ),
            "stale",
        )
    if title is not None:
        fresh.title = _clean_title(title)
    if notes is not None:
        fresh.notes = notes.strip()
    fresh.save(update_fields=["title", "notes"])
    item.title, item.notes, item.position = fresh.title, fresh.notes, fresh.position
    return item


@transaction.atomic
def agenda_item_move(
    *,
    user: AbstractBaseUser,
    item: AgendaItem,
    position: int | None = None,
    direction: str | None = None,
) -> AgendaItem:
    """Move an item to ``position`` (1 is first; beyond the end is the end) or one place
    ``direction`` "up" / "down". Read and written under the meeting's lock, so two reorders
    at once both apply, one after the other, and no two items share a place."""
    _check(user, item.meeting)
    _lock(item.meeting_id)
    items = _items(item.meeting_id)
    index = next((i for i, other in enumerate(items) if other.pk == item.pk), None)
    if index is None:
        raise _refuse(_("That agenda item has been removed."), "not_found")
    if direction is not None:
        if direction not in ("up", "down"):
            raise _refuse(_("Move an item up or down."), "bad_direction", "direction")
        target = index - 1 if direction == "up" else index + 1
    elif position is not None:
        target = int(position) - 1
    else:
        raise _refuse(_("Say where the item goes."), "position_required", "position")
    target = max(0, min(len(items) - 1, target))
    moving = items.pop(index)
    items.insert(target, moving)
    _renumber(items)
    item.position = moving.position
    return item


@transaction.atomic
def agenda_item_delete(*, user: AbstractBaseUser, item: AgendaItem) -> None:
    """Take an item off the agenda; the ones after it move up."""
    _check(user, item.meeting)
    _lock(item.meeting_id)
    AgendaItem.objects.filter(pk=item.pk).delete()
    _renumber(_items(item.meeting_id))
