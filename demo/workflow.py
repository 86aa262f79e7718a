"""The demo division's improvement work, read from ``demo/data/workflow.toml``.

Every initiative, step, PDSA cycle, meeting, score, vote, scale-up plan, adoption and support
request goes through the apps' services, as a person would make it, so the demo obeys the
same rules as real use (a story the workflow table does not allow fails the load). The
services stamp everything with the time it is made; afterwards each row is given the date
the story tells (weeks from the Monday of the data's last week), so the timelines, agendas
and the charts' PDSA annotations line up with the data's step changes.
"""

from __future__ import annotations

import tomllib
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from pathlib import Path
from typing import Any

from django.contrib.auth.models import AbstractUser
from django.utils import timezone

from forums.enums import ForumKind
from forums.models import Forum, Meeting
from initiatives.enums import AdoptionState
from initiatives.models import (
    Activity,
    Adoption,
    Initiative,
    Notification,
    PDSACycle,
    ScaleUpPlan,
    SupportRequest,
    Vote,
    VotingRound,
)
from initiatives.services import initiative_create, initiative_transition, pdsa_cycle_create
from measures.models import Measure
from units.models import Unit

DATA = Path(__file__).resolve().parent / "data" / "workflow.toml"
#: The keys of a score in workflow.toml, in the order of the stated criteria.
CRITERIA = ("impact", "evidence", "effort", "reach", "alignment")
#: Notices older than this are marked read and e-mailed: the demo's past is not news.
FRESH_NOTICES = timedelta(days=14)


@dataclass
class _Context:
    base: date  # the Monday of the data's last week
    users: dict[str, AbstractUser]
    forums: dict[str, Forum]
    units: dict[str, Unit]
    measures: dict[str, Measure]
    meetings: dict[str, Meeting] = field(default_factory=dict)

    def when(self, weeks: float, hour: int = 10) -> datetime:
        day = self.base + timedelta(days=round(weeks * 7))
        return timezone.make_aware(datetime.combine(day, time(hour)))

    def day(self, weeks: float) -> date:
        return self.base + timedelta(days=round(weeks * 7))

    def soon(self, days: float, hour: int = 13) -> datetime:
        day = timezone.localdate() + timedelta(days=days)
        return timezone.make_aware(datetime.combine(day, time(hour)))


def load_stories(path: Path = DATA) -> dict[str, Any]:
    with path.open("rb") as fh:
        return tomllib.load(fh)


def demo_workflow_load(
    *, end: date, users: dict[str, AbstractUser], log: Callable[[str], None] = lambda m: None
) -> dict[str, int]:
    """Build the stories of ``workflow.toml`` for the demo whose data ends on ``end``."""
    stories = load_stories()
    division_forums = Forum.objects.filter(division__code="psy").prefetch_related("units")
    forums: dict[str, Forum] = {}
    for forum in division_forums:
        if forum.kind == ForumKind.UNIT_FORUM:
            for unit in forum.units.all():
                forums[f"unit:{unit.code}"] = forum
        elif forum.kind == ForumKind.DEPARTMENT_GROUP:
            forums[f"group:{forum.department.code}"] = forum
        elif forum.kind == ForumKind.DIVISION_BOARD:
            forums["board"] = forum
        else:
            forums["support"] = forum
    ctx = _Context(
        base=end - timedelta(days=6),
        users=users,
        forums=forums,
        units={u.code: u for u in Unit.objects.filter(department__division__code="psy")},
        measures={m.code: m for m in Measure.objects.all()},
    )
    log(
        f"Creating {len(stories['meeting'])} meetings and {len(stories['initiative'])} initiatives…"
    )
    for spec in stories["meeting"]:
        _meeting(ctx, spec)
    for spec in stories["initiative"]:
        _initiative(ctx, spec)
    for spec in stories["meeting"]:
        if spec.get("propose_agenda"):
            _propose_agenda(ctx, ctx.meetings[spec["key"]])
    _age_notices()
    return {
        "initiatives": len(stories["initiative"]),
        "meetings": len(stories["meeting"]),
    }


# --- meetings -------------------------------------------------------------------------------


def _meeting(ctx: _Context, spec: dict[str, Any]) -> None:
    from forums.services import meeting_create

    forum = ctx.forums[spec["forum"]]
    starts = ctx.soon(spec["in_days"]) if "in_days" in spec else ctx.when(spec["at"], hour=13)
    meeting = meeting_create(
        user=ctx.users[spec["by"]],
        forum=forum,
        starts_at=starts,
        location=spec.get("location", ""),
        minutes=spec.get("minutes", ""),
        present=[ctx.users[name] for name in spec.get("present", [])],
    )
    Meeting.objects.filter(pk=meeting.pk).update(created_at=min(starts, timezone.now()))
    ctx.meetings[spec["key"]] = meeting


def _propose_agenda(ctx: _Context, meeting: Meeting) -> None:
    from initiatives.agenda import agenda_proposals_add

    agenda_proposals_add(user=meeting.created_by, meeting=meeting)


# --- initiatives ----------------------------------------------------------------------------


def _initiative(ctx: _Context, spec: dict[str, Any]) -> None:
    logged_at = ctx.when(spec["at"])
    initiative = initiative_create(
        user=ctx.users[spec["by"]],
        forum=ctx.forums[spec["forum"]],
        title=spec["title"],
        kind=spec["kind"],
        origin_kind=spec["origin"],
        origin_unit=ctx.units[spec["origin_unit"]] if "origin_unit" in spec else None,
        origin_reference=spec.get("reference", ""),
        description=spec.get("description", ""),
        measures=[ctx.measures[code] for code in spec.get("measures", [])],
        expected_benefit=spec.get("expected_benefit", ""),
        effort=spec.get("effort", ""),
    )
    _date_last_activity(initiative, logged_at)
    Initiative.objects.filter(pk=initiative.pk).update(created_at=logged_at)
    # Everything that happens to it, in the order the story tells.
    events: list[tuple[datetime, int, str, dict[str, Any]]] = []
    for order, step in enumerate(spec.get("steps", [])):
        events.append((ctx.when(step["at"]), order, "step", step))
    for order, cycle in enumerate(spec.get("pdsa", [])):
        events.append((ctx.when(cycle["start"], hour=9), 100 + order, "pdsa", cycle))
    for order, request in enumerate(spec.get("support", [])):
        events.append((ctx.when(request["at"], hour=11), 200 + order, "support", request))
    for order, adoption in enumerate(spec.get("adoptions", [])):
        events.append((ctx.when(adoption["at"], hour=15), 300 + order, "adoption", adoption))
    handlers = {
        "step": _step,
        "pdsa": _pdsa,
        "support": _support,
        "adoption": _adoption,
    }
    # A forum scores an initiative while it sits there: each score is given as soon as the
    # initiative is in the score's forum (in the order the story lists them).
    pending = list(spec.get("scores", []))

    def score_here(at: datetime) -> None:
        for score in [s for s in pending if ctx.forums[s["forum"]].pk == initiative.forum_id]:
            _score(ctx, initiative, score, at + timedelta(days=1))
            pending.remove(score)

    score_here(logged_at)
    for at, _order, kind, item in sorted(events, key=lambda e: (e[0], e[1])):
        initiative.refresh_from_db()
        handlers[kind](ctx, initiative, item, at)
        initiative.refresh_from_db()
        score_here(at)
    if pending:
        raise ValueError(f"{spec['title']}: never in the forum of the scores {pending}")
    last = initiative.activities.order_by("-at").values_list("at", flat=True).first()
    Initiative.objects.filter(pk=initiative.pk).update(updated_at=last or logged_at)


def _date_last_activity(initiative: Initiative, at: datetime) -> None:
    activity = initiative.activities.order_by("-pk").first()
    Activity.objects.filter(pk=activity.pk).update(at=at)
    Notification.objects.filter(initiative=initiative, created_at__gte=at).update(created_at=at)


def _step(ctx: _Context, initiative: Initiative, step: dict[str, Any], at: datetime) -> None:
    name = step["do"]
    meeting = ctx.meetings.get(step.get("meeting", ""))
    user = ctx.users[step["by"]]
    comment = step.get("comment", "")
    if name == "open_vote":
        _vote(ctx, initiative, step, at, meeting)
        return
    if name == "start_scale_up":
        _scale_up(ctx, initiative, step, at, meeting)
        return
    if name == "spread_in_department":
        from initiatives.scale_up import department_spread_start

        department_spread_start(
            user=user,
            initiative=initiative,
            units=[ctx.units[code] for code in step["units"]],
            comment=comment,
            meeting=meeting,
        )
        _date_last_activity(initiative, at)
        return
    target = ctx.forums[step["to"]] if "to" in step else None
    initiative_transition(
        initiative=initiative,
        user=user,
        transition=name,
        comment=comment,
        target_forum=target,
        meeting=meeting,
    )
    _date_last_activity(initiative, at)


def _vote(
    ctx: _Context,
    initiative: Initiative,
    step: dict[str, Any],
    at: datetime,
    meeting: Meeting | None,
) -> None:
    from initiatives.voting import vote_cast, voting_round_close, voting_round_open

    still_open = "deadline_in_days" in step
    deadline = ctx.soon(step["deadline_in_days"]) if still_open else ctx.when(step["deadline"])
    round_ = voting_round_open(
        user=ctx.users[step["by"]],
        initiative=initiative,
        # The services refuse a deadline in the past: the round is held now and dated after.
        deadline=max(deadline, timezone.now() + timedelta(days=1)),
        quorum=step["quorum"],
        comment=step.get("comment", ""),
        meeting=meeting,
    )
    _date_last_activity(initiative, at)
    VotingRound.objects.filter(pk=round_.pk).update(opened_at=at)
    span = (deadline - at) / (len(step["votes"]) + 1)
    for index, ballot in enumerate(step["votes"]):
        round_.refresh_from_db()
        if round_.status != "open":
            break
        vote = vote_cast(
            user=ctx.users[ballot["by"]],
            round=round_,
            choice=ballot["choice"],
            comment=ballot.get("comment", ""),
            interest_declared=ballot.get("interest", False),
        )
        cast = at + span * (index + 1)
        Vote.objects.filter(pk=vote.pk).update(cast_at=cast, updated_at=cast)
    round_.refresh_from_db()
    if still_open:
        VotingRound.objects.filter(pk=round_.pk).update(deadline=deadline)
        return
    if round_.status == "open":
        # Its deadline has passed in the story: the round closes as the beat would close it.
        VotingRound.objects.filter(pk=round_.pk).update(deadline=deadline)
        round_.refresh_from_db()
        voting_round_close(round=round_, user=None)
        round_.refresh_from_db()
    VotingRound.objects.filter(pk=round_.pk).update(deadline=deadline, closed_at=deadline)
    if round_.decision_id:
        Activity.objects.filter(pk=round_.decision_id).update(at=deadline)
        Notification.objects.filter(initiative=initiative, created_at__gte=deadline).update(
            created_at=deadline
        )


def _scale_up(
    ctx: _Context,
    initiative: Initiative,
    step: dict[str, Any],
    at: datetime,
    meeting: Meeting | None,
) -> None:
    from initiatives.scale_up import scale_up_plan_create

    deadline = ctx.day(step["deadline"])
    plan = scale_up_plan_create(
        user=ctx.users[step["by"]],
        initiative=initiative,
        scope=step["scope"],
        deadline=max(deadline, timezone.localdate() + timedelta(days=1)),
        units=[ctx.units[code] for code in step["units"]],
        comment=step.get("comment", ""),
        meeting=meeting,
    )
    _date_last_activity(initiative, at)
    ScaleUpPlan.objects.filter(pk=plan.pk).update(deadline=deadline, created_at=at, updated_at=at)
    Adoption.objects.filter(initiative=initiative).update(due_date=deadline, updated_at=at)


def _adoption(ctx: _Context, initiative: Initiative, spec: dict[str, Any], at: datetime) -> None:
    from initiatives.scale_up import adoption_update

    adoption = Adoption.objects.get(initiative=initiative, unit=ctx.units[spec["unit"]])
    user = ctx.users[spec["by"]]
    path = {
        AdoptionState.STARTED: [AdoptionState.STARTED],
        AdoptionState.ADOPTED: [AdoptionState.STARTED, AdoptionState.ADOPTED],
        AdoptionState.DECLINED: [AdoptionState.DECLINED],
    }[spec["state"]]
    for state in path:
        adoption.refresh_from_db()
        adoption_update(
            user=user,
            adoption=adoption,
            state=state,
            adaptation=spec.get("adaptation", "") if state != AdoptionState.STARTED else "",
            adopted_on=at.date() if state == AdoptionState.ADOPTED else None,
        )
    Adoption.objects.filter(pk=adoption.pk).update(updated_at=at)


def _pdsa(ctx: _Context, initiative: Initiative, spec: dict[str, Any], at: datetime) -> None:
    cycle = pdsa_cycle_create(
        user=ctx.users[spec["by"]],
        initiative=initiative,
        unit=ctx.units[spec["unit"]],
        measure=ctx.measures[spec["measure"]] if "measure" in spec else None,
        plan=spec["plan"],
        do=spec.get("do", ""),
        study=spec.get("study", ""),
        act=spec.get("act", ""),
        start_date=ctx.day(spec["start"]),
        end_date=ctx.day(spec["end"]) if "end" in spec else None,
    )
    PDSACycle.objects.filter(pk=cycle.pk).update(created_at=at)


def _support(ctx: _Context, initiative: Initiative, spec: dict[str, Any], at: datetime) -> None:
    from initiatives.support import (
        support_request_create,
        support_request_done,
        support_request_take,
    )

    request = support_request_create(
        user=ctx.users[spec["by"]],
        initiative=initiative,
        kind=spec["kind"],
        description=spec["description"],
    )
    SupportRequest.objects.filter(pk=request.pk).update(requested_at=at)
    if "taken_by" in spec:
        request.refresh_from_db()
        support_request_take(user=ctx.users[spec["taken_by"]], request=request)
        SupportRequest.objects.filter(pk=request.pk).update(taken_at=at + timedelta(hours=3))
    if "answer" in spec:
        request.refresh_from_db()
        support_request_done(
            user=ctx.users[spec["taken_by"]], request=request, answer=spec["answer"]
        )
        SupportRequest.objects.filter(pk=request.pk).update(done_at=ctx.when(spec["done_at"], 14))


def _score(ctx: _Context, initiative: Initiative, spec: dict[str, Any], at: datetime) -> None:
    from initiatives.models import Score
    from initiatives.prioritisation import criteria_ensure_defaults, score_set

    forum = ctx.forums[spec["forum"]]
    # The stated criteria in their order (their names are in the language of the day).
    criteria = criteria_ensure_defaults(forum)
    values = {
        criterion.pk: spec[key]
        for criterion, key in zip(criteria, CRITERIA, strict=True)
        if key in spec
    }
    user = ctx.users[spec["by"]]
    score_set(user=user, initiative=initiative, scores=values)
    Score.objects.filter(initiative=initiative, member=user, criterion__forum=forum).update(
        updated_at=min(at, timezone.now())
    )


def _age_notices() -> None:
    """Past notices read and e-mailed; the last fortnight's left for people to find."""
    old = timezone.now() - FRESH_NOTICES
    Notification.objects.filter(created_at__lt=old).update(
        read_at=timezone.now(), emailed_at=timezone.now()
    )
