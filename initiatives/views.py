"""Pages of initiatives: the list, logging one, its page (timeline and steps), editing it,
the step forms, PDSA cycles and the workflow's help page. Thin: rules decide, services write.

Initiatives are fetched through ``rules.visible_initiatives``: what one may not see is a 404.
A step the service refuses is shown with its message and a 4xx (never a 500).
"""

from __future__ import annotations

from urllib.parse import urlencode

from django.contrib import messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.core.paginator import Paginator
from django.db import transaction
from django.http import Http404, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils.translation import gettext as _
from django.views.decorators.http import require_GET, require_http_methods

from forums.enums import ForumKind
from forums.models import Forum
from units.models import Division

from . import workflow
from .attachments import attachment_add
from .diagram import workflow_svg
from .enums import State
from .forms import (
    InitiativeEditForm,
    InitiativeFilterForm,
    InitiativeForm,
    PDSACycleForm,
    StepForm,
    add_service_error,
)
from .models import Initiative
from .rules import can_edit_initiative, loggable_forums, pdsa_units, visible_initiatives
from .selectors import (
    STALLED_AFTER_DAYS,
    initiative_for_page,
    initiative_search,
    initiative_timeline,
    pdsa_cycles_of,
    pipeline,
)
from .services import initiative_create, initiative_transition, initiative_update, pdsa_cycle_create

PAGE_SIZE = 25

_STATUS_BY_CODE = {"not_permitted": 403, "not_found": 404, "stale": 409, "conflict": 409}


def refusal_status(error: ValidationError) -> int:
    """The status of a page that shows a service's refusal (as the API answers it)."""
    if hasattr(error, "error_dict"):
        codes = {e.code for errors in error.error_dict.values() for e in errors}
    else:
        codes = {e.code for e in error.error_list}
    for code in ("not_permitted", "not_found", "stale", "conflict"):
        if code in codes:
            return _STATUS_BY_CODE[code]
    return 400


def _initiative_or_404(request, pk: int) -> Initiative:
    try:
        return initiative_for_page(visible_initiatives(request.user), pk)
    except Initiative.DoesNotExist as exc:
        raise Http404(_("No such initiative.")) from exc


def _done(request, url: str) -> HttpResponse:
    """After a write: HTMX follows the redirect as a full page load, a form posts and gets."""
    if request.htmx:
        response = HttpResponse(status=204)
        response["HX-Redirect"] = url
        return response
    return redirect(url)


# -- the list -----------------------------------------------------------------------------------


@require_GET
def initiative_list(request):
    form = InitiativeFilterForm(request.GET or None)
    initiatives = visible_initiatives(request.user)
    if form.is_bound and not form.is_valid():
        arguments = {}
        found = initiative_search(initiatives.none(), user=request.user)
    else:
        arguments = form.search_arguments() if form.is_bound else {}
        found = initiative_search(initiatives, user=request.user, **arguments)
    page = Paginator(found, PAGE_SIZE).get_page(request.GET.get("page"))
    keep = {k: v for k, v in request.GET.items() if k not in ("page", "sort") and v}
    ordering = arguments.get("ordering", "-updated")
    columns = []
    for key, label in (
        ("title", _("Title")),
        ("kind", _("Kind")),
        ("state", _("State")),
        ("forum", _("Where it sits")),
        ("updated", _("Last changed")),
    ):
        current = ordering.lstrip("-") == key
        descending = ordering.startswith("-")
        next_sort = f"-{key}" if current and not descending else key
        if key == "updated" and not current:
            next_sort = "-updated"
        columns.append(
            {
                "label": label,
                "url": "?" + urlencode({**keep, "sort": next_sort}),
                "sort": ("descending" if descending else "ascending") if current else "none",
            }
        )
    context = {
        "form": form,
        "page": page,
        "columns": columns,
        "page_query": urlencode({**keep, "sort": ordering}),
        "may_log": loggable_forums(request.user).exists(),
    }
    return render(request, "initiatives/list.html", context)


# -- logging --------------------------------------------------------------------------------------


@require_http_methods(["GET", "POST"])
def initiative_new(request, forum_pk: int | None = None):
    """The log form: for the forum in the path or ``?forum=``, else a chooser of the forums
    where the person may log."""
    forums = list(loggable_forums(request.user).select_related("department").order_by("name"))
    if forum_pk is None:
        chosen = request.GET.get("forum", "")
        if chosen.isdigit():
            forum_pk = int(chosen)
        elif len(forums) == 1:
            forum_pk = forums[0].pk
    forum = None
    if forum_pk is not None:
        forum = get_object_or_404(Forum, pk=forum_pk)
        if forum.pk not in {f.pk for f in forums}:
            raise PermissionDenied(
                _("You may not log initiatives in %(forum)s.") % {"forum": forum}
            )
    elif not forums:
        raise PermissionDenied(_("You may not log initiatives in any forum."))
    if forum is None:
        if request.method == "POST":
            raise PermissionDenied(_("Choose the forum to log it in."))
        return render(request, "initiatives/new.html", {"forums": forums, "forum": None})

    if request.method == "POST":
        form = InitiativeForm(request.POST, request.FILES, forum=forum)
    else:
        form = InitiativeForm(forum=forum)
    status = 200
    if form.is_bound:
        if form.is_valid():
            data = form.cleaned_data
            try:
                # The initiative and its first file together: a refused file logs nothing.
                with transaction.atomic():
                    initiative = initiative_create(
                        user=request.user,
                        forum=forum,
                        title=data["title"],
                        description=data["description"],
                        kind=data["kind"],
                        origin_kind=data["origin_kind"],
                        origin_unit=data["origin_unit"],
                        origin_reference=data["origin_reference"],
                        measures=data["measures"],
                        expected_benefit=data["expected_benefit"],
                        effort=data["effort"],
                    )
                    if data.get("file"):
                        attachment_add(
                            user=request.user, initiative=initiative, upload=data["file"]
                        )
            except ValidationError as error:
                add_service_error(form, error)
                status = refusal_status(error)
            else:
                messages.success(request, _("The initiative is logged."))
                return redirect("initiatives:initiative", pk=initiative.pk)
        else:
            status = 400
    context = {"forums": forums, "forum": forum, "form": form}
    return render(request, "initiatives/new.html", context, status=status)


# -- the initiative's page -------------------------------------------------------------------------


def _steps(request, initiative: Initiative) -> list[dict]:
    """The steps the person may take now, from the table: a plain form, or the slot of the
    service that takes it (``via``)."""
    meeting = request.GET.get("meeting", "")
    query = f"?{urlencode({'meeting': meeting})}" if meeting.isdigit() else ""
    return [
        {
            "step": step,
            "target_label": State(step.target).label,
            "url": reverse("initiatives:step", args=[initiative.pk, step.name]) + query,
            "meeting": meeting if meeting.isdigit() else "",
            "panel": VIA_PANELS.get(step.via, step.via),
            # What stops it now (the table's guards on the initiative's own data).
            "blocked": [r for r in (g.check(initiative) for g in step.guards) if r],
        }
        for step in workflow.transitions_for(request.user, initiative)
    ]


#: Which panel of the initiative's page holds the form of a step's service (``via``).
VIA_PANELS = {
    "voting": "voting",
    "scale_up": "adoptions",
    "adoptions": "adoptions",
    "scale_up_plan": "adoptions",
    "department_spread": "adoptions",
}


def _step_label(name: str) -> str:
    if name == workflow.LOG_NAME:
        return _("Logged")
    step = workflow.BY_NAME.get(name)
    return str(step.label) if step else name


@require_GET
def initiative_detail(request, pk: int):
    initiative = _initiative_or_404(request, pk)
    timeline = list(initiative_timeline(initiative).select_related("meeting"))
    for activity in timeline:
        activity.step_label = _step_label(activity.transition)
    context = {
        "initiative": initiative,
        "timeline": timeline,
        "steps": _steps(request, initiative),
        "can_edit": can_edit_initiative(request.user, initiative),
        "measures": list(initiative.measures.all()),
    }
    context.update(_pdsa_context(request, initiative))
    return render(request, "initiatives/detail.html", context)


@require_http_methods(["GET", "POST"])
def initiative_edit(request, pk: int):
    initiative = _initiative_or_404(request, pk)
    if not can_edit_initiative(request.user, initiative):
        raise PermissionDenied(_("You may not change this initiative."))
    form = InitiativeEditForm(
        request.POST if request.method == "POST" else None, initiative=initiative
    )
    status = 200
    if form.is_bound:
        if form.is_valid():
            data = form.cleaned_data
            try:
                initiative_update(
                    initiative=initiative,
                    user=request.user,
                    title=data["title"],
                    description=data["description"],
                    expected_benefit=data["expected_benefit"],
                    effort=data["effort"],
                    measures=data["measures"],
                    version=data["version"],
                )
            except ValidationError as error:
                add_service_error(form, error)
                status = refusal_status(error)
            else:
                messages.success(request, _("Saved."))
                return redirect("initiatives:initiative", pk=initiative.pk)
        else:
            status = 400
    return render(
        request, "initiatives/edit.html", {"initiative": initiative, "form": form}, status=status
    )


@require_http_methods(["GET", "POST"])
def initiative_step(request, pk: int, name: str):
    """The small form one step asks for (a fragment for HTMX, a page otherwise), and taking it.

    A step that is not in the table is a 404; one the person may not take now, or that only
    its own service takes (``via``), is answered with the reason and a 4xx.
    """
    initiative = _initiative_or_404(request, pk)
    step = workflow.BY_NAME.get(name)
    if step is None:
        raise Http404(_("No such step."))
    status = 200
    refusal = ""
    if request.method == "POST":
        form = StepForm(request.POST, step=step, initiative=initiative)
        if form.is_valid():
            data = form.cleaned_data
            try:
                initiative_transition(
                    initiative=initiative,
                    user=request.user,
                    transition=step.name,
                    comment=data["comment"],
                    target_forum=data.get("target_forum"),
                    meeting=data["meeting"],
                    version=data["version"],
                )
            except ValidationError as error:
                add_service_error(form, error)
                status = refusal_status(error)
            else:
                messages.success(
                    request,
                    _("“%(step)s”: it is now %(state)s.")
                    % {"step": step.label, "state": State(initiative.state).label},
                )
                return _done(request, reverse("initiatives:initiative", args=[initiative.pk]))
        else:
            status = 400
    else:
        meeting = request.GET.get("meeting", "")
        initial = {"meeting": meeting} if meeting.isdigit() else {}
        form = StepForm(step=step, initiative=initiative, initial=initial)
        if step.name not in {t.name for t in workflow.transitions_for(request.user, initiative)}:
            refusal = _("You cannot take the step “%(step)s” now.") % {"step": step.label}
            status = 403
        elif step.via:
            refusal = _("“%(step)s” is taken with its own form on the initiative's page.") % {
                "step": step.label
            }
            status = 400
    context = {
        "initiative": initiative,
        "step": step,
        "target_label": State(step.target).label,
        "form": form,
        "refusal": refusal,
    }
    template = "initiatives/_step_form.html" if request.htmx else "initiatives/step.html"
    return render(request, template, context, status=status)


# -- PDSA cycles ------------------------------------------------------------------------------------


def _pdsa_context(request, initiative: Initiative, form: PDSACycleForm | None = None) -> dict:
    cycles = list(pdsa_cycles_of(initiative))
    by_unit: dict[int, dict] = {}
    for cycle in cycles:
        by_unit.setdefault(cycle.unit_id, {"unit": cycle.unit, "cycles": []})["cycles"].append(
            cycle
        )
    may_add = initiative.state not in workflow.CLOSED and pdsa_units(request.user).exists()
    if form is None and may_add:
        form = PDSACycleForm(user=request.user)
    return {"pdsa_groups": list(by_unit.values()), "pdsa_form": form if may_add else None}


@require_http_methods(["GET", "POST"])
def pdsa_new(request, pk: int):
    """The PDSA form: GET re-draws it for the unit chosen (HTMX), POST records the cycle."""
    initiative = _initiative_or_404(request, pk)
    if initiative.state in workflow.CLOSED or not pdsa_units(request.user).exists():
        raise PermissionDenied(_("You may not record PDSA cycles on this initiative."))
    status = 200
    if request.method == "POST":
        form = PDSACycleForm(request.POST, user=request.user)
        if form.is_valid():
            data = form.cleaned_data
            try:
                pdsa_cycle_create(
                    user=request.user,
                    initiative=initiative,
                    unit=data["unit"],
                    measure=data["measure"],
                    plan=data["plan"],
                    do=data["do"],
                    study=data["study"],
                    act=data["act"],
                    start_date=data["start_date"],
                    end_date=data["end_date"],
                )
            except ValidationError as error:
                add_service_error(form, error)
                status = refusal_status(error)
            else:
                messages.success(request, _("The PDSA cycle is recorded."))
                url = reverse("initiatives:initiative", args=[initiative.pk]) + "#pdsa"
                return _done(request, url)
        else:
            status = 400
    else:
        form = PDSACycleForm(user=request.user, initial=request.GET.dict())
    context = {"initiative": initiative, "pdsa_form": form}
    template = "initiatives/_pdsa_form.html" if request.htmx else "initiatives/pdsa_new.html"
    return render(request, template, context, status=status)


# -- help --------------------------------------------------------------------------------------------


def _kind_label(kind: str) -> str:
    return str(ForumKind(kind).label)


@require_GET
def workflow_help(request):
    """The workflow drawn and tabulated from ``workflow.TRANSITIONS`` (nothing hand-written)."""
    rows = []
    for number, row in enumerate(workflow.describe(), start=1):
        step = workflow.BY_NAME[row["name"]]
        needs = []
        if row["needs_comment"]:
            needs.append(_("a comment (why)"))
        if step.move == workflow.Move.UNIT_FORUM:
            needs.append(_("the unit forum to send it to"))
        if row["via"]:
            needs.append(_("its own form (%(via)s)") % {"via": row["via"]})
        needs.extend(row.get("guards", []))
        rows.append(
            {
                "number": number,
                "name": row["name"],
                "label": row["label"],
                "sources": [State(s).label for s in row["sources"]],
                "target": State(row["target"]).label,
                "at": [_kind_label(k) for k in row["at"]],
                "move": workflow_move_label(step.move),
                "actors": row["actors"],
                "needs": needs,
            }
        )
    context = {
        "svg": workflow_svg(),
        "rows": rows,
        "entry": State(workflow.ENTRY_STATE).label,
        "log_at": [_kind_label(k) for k in sorted(workflow.LOG_AT)],
        "terminal": [State(s).label for s in State if s in workflow.TERMINAL],
    }
    return render(request, "initiatives/help_workflow.html", context)


def workflow_move_label(move: str) -> str:
    return {
        workflow.Move.STAY: _("stays in the forum"),
        workflow.Move.DEPARTMENT: _("to its department's coordinating group"),
        workflow.Move.BOARD: _("to the division board"),
        workflow.Move.UNIT_FORUM: _("to a unit forum the actor chooses"),
        workflow.Move.PREVIOUS: _("back to the forum that sent it"),
    }[move]


@require_GET
def division_pipeline(request, code: str):
    """The division's improvement pipeline (HTMX fragment on the division dashboard; a page of
    its own without JavaScript): initiatives per state, bottom-up and top-down, and stalls."""
    division = get_object_or_404(Division, code=code)
    rows = pipeline(division.pk)
    open_rows = [row for row in rows if not row.final]
    context = {
        "division": division,
        "rows": rows,
        "stalled_after": STALLED_AFTER_DAYS,
        "from_units": sum(row.from_units for row in rows),
        "from_outside": sum(row.from_outside for row in rows),
        "open_total": sum(row.total for row in open_rows),
        "stalled_total": sum(row.stalled for row in open_rows),
    }
    template = "initiatives/_pipeline.html" if request.htmx else "initiatives/pipeline.html"
    return render(request, template, context)
