"""Prioritisation pages: a forum's ranked list and impact/effort view, its criteria (the
chair's), a member's scoring form (HTMX), and the department–board dialogue.

Thin: the rules decide (``rules.py``, section "Prioritisation"), the services write and the
selectors read (``prioritisation.py``). Only department groups and the division board have
these pages: another forum's is a 404. A refused write shows the service's message with the
status the API would give (never a 500).
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction

from django.contrib import messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import Http404
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils.http import url_has_allowed_host_and_scheme
from django.utils.translation import gettext as _
from django.views.decorators.http import require_http_methods, require_POST, require_safe

from forums.models import Forum
from units.models import Department

from .forms_prioritisation import CriterionForm, ScoreForm, add_service_error
from .models import Criterion, Initiative
from .prioritisation import (
    HIGHEST,
    LOWEST,
    ImpactEffort,
    criteria_ensure_defaults,
    criterion_create,
    criterion_deactivate,
    criterion_move,
    criterion_reactivate,
    criterion_update,
    dialogue,
    dialogue_forums,
    impact_effort,
    initiative_aggregate,
    my_scores,
    ranking,
    score_set,
)
from .rules import (
    PRIORITISING_FORUMS,
    can_score,
    can_score_in_forum,
    may_be_scored_in,
    visible_initiatives,
)

_STATUS_BY_CODE = {"not_permitted": 403, "not_found": 404, "stale": 409, "conflict": 409}


def _status(error: ValidationError) -> int:
    if hasattr(error, "error_dict"):
        codes = {e.code for errors in error.error_dict.values() for e in errors}
    else:
        codes = {e.code for e in error.error_list}
    return next((s for code, s in _STATUS_BY_CODE.items() if code in codes), 400)


def _message(error: ValidationError) -> str:
    return " ".join(str(m) for m in error.messages)


def _forum(pk: int) -> Forum:
    """A prioritising forum (every member of staff sees forums): else 404."""
    return get_object_or_404(
        Forum.objects.select_related("division", "department"),
        pk=pk,
        kind__in=PRIORITISING_FORUMS,
    )


def _check_view(request, forum: Forum) -> None:
    if not request.user.has_perm("initiatives.view_prioritisation", forum):
        raise PermissionDenied(_("You may not see this forum's prioritisation."))


# --------------------------------------------------------------------------------------------
# The index and a forum's ranked list
# --------------------------------------------------------------------------------------------


@require_safe
def index(request):
    """The forums that prioritise, and each department's dialogue with the board."""
    forums = list(
        Forum.objects.filter(kind__in=PRIORITISING_FORUMS)
        .select_related("department")
        .order_by("-kind", "name", "pk")
    )
    departments = sorted(
        {f.department for f in forums if f.department_id}, key=lambda d: (d.name, d.pk)
    )
    has_board = any(f.department_id is None for f in forums)
    return render(
        request,
        "initiatives/prioritisation/index.html",
        {"forums": forums, "departments": departments if has_board else []},
    )


#: The impact/effort chart's drawing area (SVG user units).
WIDTH, HEIGHT = 560, 400
LEFT, RIGHT, TOP, BOTTOM = 64, 24, 24, 56


@dataclass
class Point:
    cx: float
    cy: float
    label: str
    title: str


def _x(value: Fraction | float) -> float:
    return round(LEFT + (float(value) - LOWEST) / (HIGHEST - LOWEST) * (WIDTH - LEFT - RIGHT), 1)


def _y(value: Fraction | float) -> float:
    return round(
        HEIGHT - BOTTOM - (float(value) - LOWEST) / (HIGHEST - LOWEST) * (HEIGHT - TOP - BOTTOM), 1
    )


def scatter(view: ImpactEffort) -> dict:
    """What the template draws: axes, ticks, quadrant lines and one dot per place (the
    initiatives at one place share it, labelled with their ranks)."""
    at: dict[tuple[Fraction, Fraction], list] = {}
    for row, impact, effort in view.points:
        at.setdefault((effort, impact), []).append(row)
    points = []
    for (effort, impact), rows in at.items():
        points.append(
            Point(
                cx=_x(effort),
                cy=_y(impact),
                label=", ".join(str(r.rank) for r in rows),
                title="; ".join(
                    _(
                        "%(rank)s. %(title)s: %(impact)s %(impact_value).2f, %(effort)s %(effort_value).2f"
                    )
                    % {
                        "rank": r.rank,
                        "title": r.title,
                        "impact": view.impact.name,
                        "impact_value": float(impact),
                        "effort": view.effort.name,
                        "effort_value": float(effort),
                    }
                    for r in rows
                ),
            )
        )
    ticks = list(range(LOWEST, HIGHEST + 1))
    middle = (LOWEST + HIGHEST) / 2
    return {
        "width": WIDTH,
        "height": HEIGHT,
        "left": LEFT,
        "right": WIDTH - RIGHT,
        "top": TOP,
        "bottom": HEIGHT - BOTTOM,
        "x_ticks": [(t, _x(t)) for t in ticks],
        "y_ticks": [(t, _y(t)) for t in ticks],
        "x_middle": _x(middle),
        "y_middle": _y(middle),
        "x_label": ((LEFT + WIDTH - RIGHT) / 2, HEIGHT - 14),
        "y_label": (18, (TOP + HEIGHT - BOTTOM) / 2),
        "points": points,
    }


def _chosen(board, name: str, request) -> Criterion | None:
    value = request.GET.get(name, "")
    return next((c for c in board.active_criteria if str(c.pk) == value), None)


@require_safe
def forum_prioritisation(request, pk: int):
    forum = _forum(pk)
    _check_view(request, forum)
    board = ranking(forum, user=request.user)
    view = impact_effort(
        forum,
        impact=_chosen(board, "impact", request),
        effort=_chosen(board, "effort", request),
        board=board,
    )
    return render(
        request,
        "initiatives/prioritisation/forum.html",
        {
            "forum": forum,
            "board": board,
            "view": view,
            "chart": scatter(view) if view.points else None,
            # The predicate's own answer: an admin scores only where they sit.
            "can_score": can_score_in_forum(request.user, forum),
            "can_configure": request.user.has_perm("initiatives.configure_criteria", forum),
        },
    )


# --------------------------------------------------------------------------------------------
# Criteria (the chair's)
# --------------------------------------------------------------------------------------------


def _configurable(request, forum: Forum) -> None:
    if not request.user.has_perm("initiatives.configure_criteria", forum):
        raise PermissionDenied(_("Only the forum's chair sets its criteria."))


def _criteria_page(
    request,
    forum: Forum,
    *,
    bound: CriterionForm | None = None,
    bound_pk: int | None = None,
    add_form: CriterionForm | None = None,
    error: str = "",
    status: int = 200,
):
    criteria = criteria_ensure_defaults(forum)
    rows = [
        (c, bound if bound_pk == c.pk and bound is not None else CriterionForm.for_criterion(c))
        for c in criteria
    ]
    return render(
        request,
        "initiatives/prioritisation/criteria.html",
        {
            "forum": forum,
            "rows": rows,
            "add_form": add_form
            or CriterionForm(prefix="new", initial={"weight": "1", "higher_is_better": True}),
            "error": error,
        },
        status=status,
    )


@require_http_methods(["GET", "POST"])
def criteria(request, pk: int):
    """The forum's criteria with a form each; a POST adds one."""
    forum = _forum(pk)
    _configurable(request, forum)
    if request.method == "GET":
        return _criteria_page(request, forum)
    form = CriterionForm(request.POST, prefix="new")
    if form.is_valid():
        try:
            criterion = criterion_create(
                user=request.user,
                forum=forum,
                name=form.cleaned_data["name"],
                description=form.cleaned_data["description"],
                weight=form.cleaned_data["weight"],
                higher_is_better=form.cleaned_data["higher_is_better"],
            )
        except ValidationError as error:
            add_service_error(form, error)
            return _criteria_page(request, forum, add_form=form, status=_status(error))
        messages.success(request, _("“%(name)s” is added.") % {"name": criterion.name})
        return redirect("initiatives:criteria", pk=forum.pk)
    return _criteria_page(request, forum, add_form=form, status=400)


def _criterion(request, pk: int) -> Criterion:
    found = get_object_or_404(
        Criterion.objects.select_related("forum"), pk=pk, forum__kind__in=PRIORITISING_FORUMS
    )
    _configurable(request, found.forum)
    return found


@require_POST
def criterion_edit(request, pk: int):
    criterion = _criterion(request, pk)
    forum = criterion.forum
    form = CriterionForm.for_criterion(criterion, request.POST)
    if form.is_valid():
        try:
            criterion_update(
                user=request.user,
                criterion=criterion,
                name=form.cleaned_data["name"],
                description=form.cleaned_data["description"],
                weight=form.cleaned_data["weight"],
                higher_is_better=form.cleaned_data["higher_is_better"],
            )
        except ValidationError as error:
            add_service_error(form, error)
            return _criteria_page(
                request, forum, bound=form, bound_pk=criterion.pk, status=_status(error)
            )
        messages.success(request, _("“%(name)s” is saved.") % {"name": form.cleaned_data["name"]})
        return redirect("initiatives:criteria", pk=forum.pk)
    return _criteria_page(request, forum, bound=form, bound_pk=criterion.pk, status=400)


@require_POST
def criterion_active(request, pk: int):
    """``active=0`` switches the criterion off (its scores are kept), ``active=1`` on."""
    criterion = _criterion(request, pk)
    wanted = request.POST.get("active")
    if wanted not in ("0", "1"):
        return _criteria_page(
            request, criterion.forum, error=_("Say whether to switch it on or off."), status=400
        )
    service = criterion_reactivate if wanted == "1" else criterion_deactivate
    try:
        service(user=request.user, criterion=criterion)
    except ValidationError as error:
        return _criteria_page(
            request, criterion.forum, error=_message(error), status=_status(error)
        )
    if wanted == "1":
        messages.success(request, _("“%(name)s” is on again.") % {"name": criterion.name})
    else:
        messages.success(
            request,
            _("“%(name)s” is off: its scores are kept but leave the ranking.")
            % {"name": criterion.name},
        )
    return redirect("initiatives:criteria", pk=criterion.forum_id)


@require_POST
def criterion_order(request, pk: int):
    """``direction=up`` or ``down``: one place in the forum's order."""
    criterion = _criterion(request, pk)
    direction = request.POST.get("direction")
    if direction not in ("up", "down"):
        return _criteria_page(
            request, criterion.forum, error=_("Say which way to move it."), status=400
        )
    try:
        criterion_move(user=request.user, criterion=criterion, up=direction == "up")
    except ValidationError as error:
        return _criteria_page(
            request, criterion.forum, error=_message(error), status=_status(error)
        )
    return redirect("initiatives:criteria", pk=criterion.forum_id)


# --------------------------------------------------------------------------------------------
# Scoring
# --------------------------------------------------------------------------------------------


def score_block(
    user, initiative: Initiative, forum: Forum, *, form: ScoreForm | None = None, **extra
) -> dict:
    """What one forum's block of scores shows for one initiative: its aggregate (rank on the
    forum's list, mean, median, scorers, ties), the reader's own score and, for a member while
    the forum scores it, the form with their saved values."""
    board, row = initiative_aggregate(initiative, forum, user=user)
    scoring = can_score(user, initiative, forum)
    if form is None and scoring:
        form = ScoreForm(criteria=board.active_criteria, saved=my_scores(user, initiative, forum))
    return {
        "forum": forum,
        "initiative": initiative,
        "board": board,
        "row": row,
        "open": may_be_scored_in(initiative, forum),
        "can_score": scoring,
        "form": form if scoring else None,
        "action": reverse("initiatives:score", args=[forum.pk, initiative.pk]),
        **extra,
    }


def _next(request, forum: Forum) -> str:
    wanted = request.POST.get("next") or request.GET.get("next") or ""
    if wanted and url_has_allowed_host_and_scheme(
        wanted, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    ):
        return wanted
    return reverse("initiatives:prioritisation", args=[forum.pk])


@require_http_methods(["GET", "POST"])
def score(request, pk: int, initiative_pk: int):
    """A member's scores of one initiative in one forum: all the criteria at once.

    HTMX posts get the forum's block back (aggregate and form, with a "saved" note or the
    errors by their criteria); a plain form post goes back where it came from.
    """
    forum = _forum(pk)
    initiative = get_object_or_404(
        visible_initiatives(request.user).select_related("forum"), pk=initiative_pk
    )
    if not can_score(request.user, initiative, forum):
        if not can_score_in_forum(request.user, forum):
            raise PermissionDenied(_("Only the forum's members score initiatives there."))
        raise PermissionDenied(_("This forum does not score this initiative now."))
    next_url = _next(request, forum)
    form = None
    status = 200
    saved = False
    if request.method == "POST":
        board_criteria = [c for c in criteria_ensure_defaults(forum) if c.active]
        form = ScoreForm(
            request.POST,
            criteria=board_criteria,
            saved=my_scores(request.user, initiative, forum),
        )
        form.is_valid()
        try:
            score_set(user=request.user, initiative=initiative, scores=form.values(), forum=forum)
        except ValidationError as error:
            add_service_error(form, error)
            status = _status(error)
        else:
            saved = True
            if not request.htmx:
                messages.success(
                    request,
                    _("Your scores of “%(title)s” are saved.") % {"title": initiative.title},
                )
                return redirect(next_url)
            form = None  # show what is saved now
    # The heading level of the block where it stands (3 in the initiative page's panel).
    level = 3 if request.POST.get("level") == "3" or request.GET.get("level") == "3" else 2
    block = score_block(
        request.user, initiative, forum, form=form, saved=saved, next=next_url, level=level
    )
    template = "_forum_scores.html" if request.htmx else "score.html"
    return render(request, f"initiatives/prioritisation/{template}", {"sb": block}, status=status)


# --------------------------------------------------------------------------------------------
# The dialogue
# --------------------------------------------------------------------------------------------


@require_safe
def department_dialogue(request, code: str):
    department = get_object_or_404(Department.objects.select_related("division"), code=code)
    group, board = dialogue_forums(department)
    if group is None or board is None:
        raise Http404(_("This department has no coordinating group, or the division no board."))
    _check_view(request, group)
    _check_view(request, board)
    talk = dialogue(group, board, user=request.user)
    return render(
        request,
        "initiatives/prioritisation/dialogue.html",
        {"talk": talk, "department": department, "group": group, "board_forum": board},
    )
