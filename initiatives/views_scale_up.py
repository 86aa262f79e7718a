"""Pages of scale-up: the board's plan, a department's spread, a unit's adoption (HTMX), the
adoptions panel of the initiative's page (``templatetags/scale_up.py``) and the board's
spread overview. Thin: rules decide, services write, a refusal is shown with its message
and the status the API would give (never a 500).
"""

from __future__ import annotations

from django.contrib import messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import Http404, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils import timezone
from django.utils.translation import gettext as _
from django.views.decorators.http import require_GET, require_http_methods

from . import workflow
from .effects import effect_evaluation
from .enums import AdoptionState, State
from .forms import add_service_error
from .forms_scale_up import AdoptionForm, DepartmentSpreadForm, ScaleUpPlanForm
from .models import Adoption, Initiative, ScaleUpPlan
from .rules import (
    adoption_units_for,
    can_plan_scale_up,
    can_start_department_spread,
    can_update_adoption,
    can_view_spread,
    visible_initiatives,
)
from .scale_up import adoption_update, department_spread_start, scale_up_plan_create
from .selectors_scale_up import (
    initiative_adoptions,
    is_overdue,
    progress_of,
    spread_overview,
    visible_adoptions,
)

_STATUS_BY_CODE = {"not_permitted": 403, "not_found": 404, "stale": 409, "conflict": 409}


def refusal_status(error: ValidationError) -> int:
    if hasattr(error, "error_dict"):
        codes = {e.code for errors in error.error_dict.values() for e in errors}
    else:
        codes = {e.code for e in error.error_list}
    for code in ("not_permitted", "not_found", "stale", "conflict"):
        if code in codes:
            return _STATUS_BY_CODE[code]
    return 400


def _initiative(request, pk: int) -> Initiative:
    try:
        return visible_initiatives(request.user).select_related("forum").get(pk=pk)
    except Initiative.DoesNotExist as exc:
        raise Http404(_("No such initiative.")) from exc


def _panel_url(initiative: Initiative) -> str:
    return reverse("initiatives:initiative", args=[initiative.pk]) + "#panel-adoptions"


def _done(request, url: str) -> HttpResponse:
    """After a write: HTMX follows the redirect as a full page load, a form posts and gets."""
    if request.htmx:
        response = HttpResponse(status=204)
        response["HX-Redirect"] = url
        return response
    return redirect(url)


def _meeting_initial(request) -> dict:
    meeting = request.GET.get("meeting", "")
    return {"meeting": meeting} if meeting.isdigit() else {}


# -- the adoptions panel -------------------------------------------------------------------------


def adoption_rows(request, initiative: Initiative, adoptions: list[Adoption]) -> list[dict]:
    """Each unit's adoption, with the form to update it where the person may."""
    units = adoption_units_for(request.user, initiative)
    today = timezone.localdate()
    return [
        {
            "adoption": adoption,
            "overdue": is_overdue(adoption, today),
            "form": AdoptionForm(adoption=adoption)
            if units is None or adoption.unit_id in units
            else None,
        }
        for adoption in adoptions
    ]


def panel_context(request, initiative: Initiative) -> dict:
    """What the adoptions panel shows (the inclusion tag and the HTMX answers use it)."""
    adoptions = initiative_adoptions(initiative)
    plan = ScaleUpPlan.objects.filter(initiative_id=initiative.pk).first()
    user = request.user
    data: dict = {
        "initiative": initiative,
        "plan": plan,
        "rows": adoption_rows(request, initiative, adoptions),
        "progress": progress_of(adoptions),
        "can_plan": can_plan_scale_up(user, initiative),
        "can_spread": can_start_department_spread(user, initiative),
    }
    if data["can_plan"]:
        data["plan_form"] = ScaleUpPlanForm(
            initiative=initiative, initial=_meeting_initial(request)
        )
    if data["can_spread"]:
        data["spread_form"] = DepartmentSpreadForm(
            initiative=initiative, initial=_meeting_initial(request)
        )
    if initiative.state == State.SCALING_UP:
        data["blocked"] = workflow.blocked_by(workflow.BY_NAME["complete_spread"], initiative)
    if any(a.state == AdoptionState.ADOPTED for a in adoptions):
        data["effects"] = effect_evaluation(initiative, adoptions=adoptions)
    data["shown"] = bool(adoptions or plan or data["can_plan"] or data["can_spread"])
    return data


# -- the board's plan and a department's spread ---------------------------------------------------


def _already(request, initiative: Initiative, message: str) -> HttpResponse:
    """A repeated submit after the step was taken: say so, go back to the page."""
    messages.info(request, message)
    return _done(request, _panel_url(initiative))


@require_http_methods(["GET", "POST"])
def scale_up_plan_new(request, pk: int):
    initiative = _initiative(request, pk)
    if not can_plan_scale_up(request.user, initiative):
        if ScaleUpPlan.objects.filter(initiative_id=initiative.pk).exists():
            return _already(request, initiative, _("This initiative already has its plan."))
        raise PermissionDenied(
            _("Only the board's chair or secretary makes the scale-up plan, once approved.")
        )
    form = ScaleUpPlanForm(
        request.POST if request.method == "POST" else None,
        initiative=initiative,
        initial=_meeting_initial(request),
    )
    status = 200
    if form.is_bound:
        if form.is_valid():
            data = form.cleaned_data
            try:
                scale_up_plan_create(
                    user=request.user,
                    initiative=initiative,
                    scope=data["scope"],
                    deadline=data["deadline"],
                    units=data["units"],
                    comment=data["comment"],
                    meeting=data["meeting"],
                    version=data["version"],
                )
            except ValidationError as error:
                add_service_error(form, error)
                status = refusal_status(error)
            else:
                messages.success(request, _("The scale-up plan is made: scaling up has started."))
                return _done(request, _panel_url(initiative))
        else:
            status = 400
    template = (
        "initiatives/scale_up/_plan_form.html" if request.htmx else "initiatives/scale_up/plan.html"
    )
    return render(request, template, {"initiative": initiative, "form": form}, status=status)


@require_http_methods(["GET", "POST"])
def department_spread_new(request, pk: int):
    initiative = _initiative(request, pk)
    if not can_start_department_spread(request.user, initiative):
        if initiative.state == State.SPREAD_IN_DEPARTMENT:
            return _already(request, initiative, _("It is already spreading in the department."))
        raise PermissionDenied(
            _("Only the department group's chair or secretary spreads it, once prioritised.")
        )
    form = DepartmentSpreadForm(
        request.POST if request.method == "POST" else None,
        initiative=initiative,
        initial=_meeting_initial(request),
    )
    status = 200
    if form.is_bound:
        if form.is_valid():
            data = form.cleaned_data
            try:
                department_spread_start(
                    user=request.user,
                    initiative=initiative,
                    units=data["units"],
                    comment=data["comment"],
                    due_date=data["due_date"],
                    meeting=data["meeting"],
                    version=data["version"],
                )
            except ValidationError as error:
                add_service_error(form, error)
                status = refusal_status(error)
            else:
                messages.success(request, _("It is spreading in the department."))
                return _done(request, _panel_url(initiative))
        else:
            status = 400
    template = (
        "initiatives/scale_up/_spread_form.html"
        if request.htmx
        else "initiatives/scale_up/spread.html"
    )
    return render(request, template, {"initiative": initiative, "form": form}, status=status)


# -- one unit's adoption --------------------------------------------------------------------------


@require_http_methods(["GET", "POST"])
def adoption_edit(request, pk: int):
    """A unit's adoption: its form (GET), and saving it (POST). HTMX gets the adoption's row
    (and the panel's progress, out of band); a plain form post goes back to the page."""
    adoption = get_object_or_404(
        visible_adoptions(request.user).select_related("initiative__forum"), pk=pk
    )
    initiative = adoption.initiative
    if not can_update_adoption(request.user, adoption):
        raise PermissionDenied(
            _("You may not update the adoption of %(unit)s.") % {"unit": adoption.unit}
        )
    status = 200
    form = AdoptionForm(request.POST or None, adoption=adoption)
    if request.method == "POST":
        if form.is_valid():
            data = form.cleaned_data
            try:
                adoption_update(
                    user=request.user,
                    adoption=adoption,
                    state=data["state"],
                    adaptation=data["adaptation"],
                    adopted_on=data["adopted_on"],
                    version=data["version"],
                )
            except ValidationError as error:
                add_service_error(form, error)
                status = refusal_status(error)
            else:
                if not request.htmx:
                    messages.success(request, _("Saved."))
                    return redirect(_panel_url(initiative))
                form = AdoptionForm(adoption=adoption)
        else:
            status = 400
    context = {
        "initiative": initiative,
        "row": {"adoption": adoption, "overdue": is_overdue(adoption), "form": form},
        "open": status != 200,
    }
    if request.htmx:
        context["progress"] = progress_of(initiative_adoptions(initiative))
        context["oob"] = request.method == "POST"
        return render(request, "initiatives/scale_up/_adoption.html", context, status=status)
    return render(request, "initiatives/scale_up/adoption.html", context, status=status)


# -- the board's overview ---------------------------------------------------------------------------


@require_GET
def spread(request):
    """Initiatives being spread: progress per department, adoptions whose due date passed."""
    if not can_view_spread(request.user):
        raise PermissionDenied(_("The spread overview is for the division board."))
    sections = spread_overview(request.user)
    context = {
        "sections": [(State(state).label, rows) for state, rows in sections.items()],
        "today": timezone.localdate(),
    }
    return render(request, "initiatives/scale_up/overview.html", context)
