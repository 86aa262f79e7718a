"""Reads for the forum and meeting pages (and their API): a fixed number of queries each,
however many members, initiatives, meetings or agenda items there are."""

from __future__ import annotations

from dataclasses import dataclass, field

from django.contrib.auth.models import AbstractBaseUser
from django.db.models import Count, Min, OuterRef, Prefetch, Q, QuerySet, Subquery
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from forums.enums import MembershipRole
from forums.models import Forum, Meeting, Membership
from forums.rules import forums_with_readable_meetings

from . import workflow
from .agenda import reason_label
from .models import Activity, AgendaItem, Initiative

#: Past meetings a forum page lists (the newest).
PAST_MEETINGS = 30
_ROLE_ORDER = {MembershipRole.CHAIR: 0, MembershipRole.SECRETARY: 1, MembershipRole.MEMBER: 2}


def forums_listed() -> QuerySet[Forum]:
    """Every forum (the division works openly), with what its row on the list shows."""
    now = timezone.now()
    open_states = [s for s in workflow.State if s not in workflow.TERMINAL]
    next_meeting = (
        Meeting.objects.filter(forum=OuterRef("pk"), starts_at__gte=now)
        .order_by()
        .values("forum")
        .annotate(first=Min("starts_at"))
        .values("first")
    )
    return (
        Forum.objects.select_related("division", "department")
        .annotate(
            member_count=Count("memberships", distinct=True),
            open_count=Count(
                "initiatives", filter=Q(initiatives__state__in=open_states), distinct=True
            ),
            next_meeting=Subquery(next_meeting),
        )
        .order_by("kind", "name", "pk")
    )


def forum_list(user: AbstractBaseUser) -> tuple[list[Forum], list[Forum]]:
    """(the forums ``user`` sits on, each with ``my_role``; every other forum). Two queries."""
    roles = dict(Membership.objects.filter(user=user).values_list("forum_id", "role"))
    mine, others = [], []
    for forum in forums_listed():
        forum.my_role = roles.get(forum.pk)
        forum.my_role_label = MembershipRole(forum.my_role).label if forum.my_role else ""
        (mine if forum.my_role else others).append(forum)
    return mine, others


@dataclass
class ForumPage:
    forum: Forum
    members: list[Membership]
    open_initiatives: list[Initiative]
    closed_initiatives: list[Initiative]
    upcoming: list[Meeting]
    past: list[Meeting]
    past_more: bool = False
    units: list = field(default_factory=list)


def forum_page(forum: Forum) -> ForumPage:
    """Members by role, the initiatives sitting in the forum (open, closed), its meetings."""
    members = sorted(
        Membership.objects.filter(forum=forum).select_related("user"),
        key=lambda m: (
            _ROLE_ORDER.get(m.role, 9),
            (m.user.get_full_name() or m.user.get_username()).casefold(),
        ),
    )
    initiatives = list(
        Initiative.objects.filter(forum=forum)
        .select_related("origin_unit")
        .order_by("-updated_at", "-pk")
    )
    now = timezone.now()
    meetings = Meeting.objects.filter(forum=forum).annotate(
        item_count=Count("agenda_items", distinct=True),
        decision_count=Count("decisions", distinct=True),
    )
    upcoming = list(meetings.filter(starts_at__gte=now).order_by("starts_at", "pk"))
    past = list(
        meetings.filter(starts_at__lt=now).order_by("-starts_at", "-pk")[: PAST_MEETINGS + 1]
    )
    return ForumPage(
        forum=forum,
        members=members,
        open_initiatives=[i for i in initiatives if i.state not in workflow.TERMINAL],
        closed_initiatives=[i for i in initiatives if i.state in workflow.TERMINAL],
        upcoming=upcoming,
        past=past[:PAST_MEETINGS],
        past_more=len(past) > PAST_MEETINGS,
        units=list(forum.units.order_by("code")),
    )


def visible_forums() -> QuerySet[Forum]:
    """Forums anyone on the staff may open (all)."""
    return Forum.objects.select_related("division", "department")


def visible_meetings(user: AbstractBaseUser) -> QuerySet[Meeting]:
    """Meetings ``user`` may open (``forums.rules.readable_meetings``), with their forum."""
    return Meeting.objects.filter(forum__in=forums_with_readable_meetings(user)).select_related(
        "forum", "forum__division", "forum__department", "created_by"
    )


def agenda_items(meeting: Meeting) -> list[AgendaItem]:
    """The agenda in order, each item with ``reason_text`` (why it was proposed)."""
    items = list(
        AgendaItem.objects.filter(meeting=meeting)
        .select_related("initiative", "measure")
        .order_by("position", "pk")
    )
    for item in items:
        item.reason_text = reason_label(item.reason)
    return items


def meeting_decisions(meeting: Meeting) -> list[Activity]:
    """The decisions taken in the meeting: the activities that name it, in order."""
    decisions = list(
        Activity.objects.filter(meeting=meeting)
        .select_related("initiative", "actor", "from_forum", "to_forum")
        .order_by("at", "pk")
    )
    for activity in decisions:
        activity.step_name = step_label(activity)
    return decisions


def meeting_members(meeting: Meeting) -> list[Membership]:
    """The forum's members (for the attendance checkboxes), chair first."""
    return sorted(
        Membership.objects.filter(forum_id=meeting.forum_id).select_related("user"),
        key=lambda m: (
            _ROLE_ORDER.get(m.role, 9),
            (m.user.get_full_name() or m.user.get_username()).casefold(),
        ),
    )


def meetings_for_api(user: AbstractBaseUser) -> QuerySet[Meeting]:
    """As :func:`visible_meetings`, with what the API answer nests (a few queries a page)."""
    return (
        visible_meetings(user)
        .prefetch_related(
            "present",
            Prefetch(
                "agenda_items",
                queryset=AgendaItem.objects.order_by("position", "pk"),
            ),
            Prefetch("decisions", queryset=Activity.objects.order_by("at", "pk")),
        )
        .order_by("-starts_at", "-pk")
    )


@dataclass
class MeetingRecord:
    """Everything a meeting's page, its printed document and its export show."""

    meeting: Meeting
    members: list[Membership]
    present: list  # users recorded as present, in the members' order
    absent: list[Membership]  # members not recorded as present
    items: list[AgendaItem]
    decisions: list[Activity]

    @property
    def present_ids(self) -> set[int]:
        return {u.pk for u in self.present}


def meeting_record(meeting: Meeting) -> MeetingRecord:
    """Four queries: members, who was present, agenda items, decisions."""
    members = meeting_members(meeting)
    recorded = {u.pk: u for u in meeting.present.all()}
    order = {m.user_id: i for i, m in enumerate(members)}
    present = sorted(
        recorded.values(),
        key=lambda u: (order.get(u.pk, len(order)), u.get_username()),
    )
    return MeetingRecord(
        meeting=meeting,
        members=members,
        present=present,
        absent=[m for m in members if m.user_id not in recorded],
        items=agenda_items(meeting),
        decisions=meeting_decisions(meeting),
    )


def step_label(activity: Activity) -> str:
    """The name of the step an activity records, in the reader's language."""
    if activity.transition == workflow.LOG_NAME:
        return str(_("Logged"))
    step = workflow.BY_NAME.get(activity.transition)
    return str(step.label) if step is not None else activity.transition
