"""Dashboard pages, fragments and exports. Thin: filters in, one panels/selectors call, render.

Log-in is required everywhere (``LoginRequiredMiddleware``); aggregates are open to all staff,
so every logged-in person may see every dashboard (DESIGN.md §2). Pages are gzipped: a unit's
forty chart specs are most of a megabyte as text (Django's GZipMiddleware pads the response
against BREACH, and the CSRF token in the page is masked per request). Suppressed figures never
reach a template: the panels read ``measures.series`` only. Objects come through the visible
querysets, so an inactive unit or an unknown code answers 404.
"""

from __future__ import annotations

from django.core.cache import cache
from django.http import Http404, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils import timezone
from django.utils.safestring import mark_safe
from django.utils.translation import get_language
from django.views.decorators.gzip import gzip_page
from django.views.decorators.http import require_safe

from measures.enums import SeriesLevel
from measures.models import Series
from measures.selectors import measure_catalogue, measure_history
from units.audit import audit_download
from units.selectors import organisation_tree, units_for_user

from . import exports
from .annotations import unit_annotations
from .forms import FilterForm
from .panels import (
    CACHE_SECONDS,
    body_key,
    department_matrix,
    division_matrix,
    funnel_measures,
    funnel_plot,
    measure_overview,
    unit_panels,
)
from .selectors import (
    department_nodes,
    division_nodes,
    grain_for,
    landing_for,
    measure_versions,
    measures_for_department,
    measures_for_division,
    measures_for_unit,
    organisation_version,
    series_set,
    series_versions,
    unit_nodes,
    visible_departments,
    visible_divisions,
    visible_units,
)

_LANDING = {
    SeriesLevel.UNIT: "dashboards:unit",
    SeriesLevel.DEPARTMENT: "dashboards:department",
    SeriesLevel.DIVISION: "dashboards:division",
}


def _filters(request):
    form = FilterForm(request.GET or None)
    if form.is_bound:
        form.is_valid()
    else:
        form.cleaned_data = {}
    return form, form.filters()


def _sort(request) -> tuple[str, bool]:
    return request.GET.get("sort", ""), request.GET.get("dir") == "desc"


@require_safe
def home(request):
    """``/``: straight to the person's own level; a chooser when there is no single one."""
    landing = landing_for(request.user)
    if landing.level and "choose" not in request.GET:
        return redirect(_LANDING[landing.level], code=landing.code)
    context = {
        "my_units": units_for_user(request.user).filter(active=True),
        "departments": organisation_tree(),
        "divisions": visible_divisions(),
    }
    return render(request, "dashboards/home.html", context)


@require_safe
@gzip_page
def unit_dashboard(request, code: str):
    unit = get_object_or_404(visible_units(), code=code)
    form, filters = _filters(request)
    tables = filters.view == "table"
    measures = measures_for_unit(unit)
    events = unit_annotations(unit.pk, measures)
    grain = filters.grain or None

    def build():
        panels = unit_panels(unit, filters, tables=tables, measures=measures, events=events)
        return {"unit": unit, "filters": filters, "panels": panels, "tables": tables}

    body = _cached_body(
        request,
        "dashboards/_unit_panels.html",
        ["unit", unit.pk, series_versions(measures, grain, unit_nodes(unit))],
        [measure_versions(measures), events],
        build,
    )
    if request.htmx and request.htmx.target == "dashboard-body":
        return HttpResponse(body)
    context = {"unit": unit, "form": form, "filters": filters, "body": body}
    return render(request, "dashboards/unit.html", context)


@require_safe
@gzip_page
def unit_panel_table(request, code: str, measure: str):
    """One chart's numbers as a table (HTMX fragment; the full page with ``view=table`` is the
    same without JavaScript)."""
    unit = get_object_or_404(visible_units(), code=code)
    if not request.htmx:
        # The "Table" link without JavaScript: the page's table view, at this measure (this
        # view's bare fragment would be a page without a head or a way back).
        if measure not in {m.code for m in measures_for_unit(unit)}:
            raise Http404
        params = request.GET.copy()
        params["view"] = "table"
        url = reverse("dashboards:unit", kwargs={"code": unit.code})
        return redirect(f"{url}?{params.urlencode()}#m-{measure}")
    _form, filters = _filters(request)
    panels = unit_panels(unit, filters, tables=True, only=measure)
    if not panels:
        raise Http404
    return render(request, "dashboards/_panel_table.html", {"panel": panels[0]})


@require_safe
@gzip_page
def department_dashboard(request, code: str):
    department = get_object_or_404(visible_departments(), code=code)
    form, filters = _filters(request)
    sort, descending = _sort(request)
    measures = measures_for_department(department)

    def build():
        matrix = department_matrix(department, filters, sort, descending)
        return {
            "department": department,
            "filters": filters,
            "matrix": matrix,
            "funnels": funnel_measures(matrix.measures),
            "funnel_level": "department",
            "funnel_code": department.code,
        }

    nodes = department_nodes(department)
    body = _cached_body(
        request,
        "dashboards/_department_body.html",
        ["department", department.pk, series_versions(measures, filters.grain or None, nodes)],
        [measure_versions(measures)],
        build,
    )
    if request.htmx and request.htmx.target == "dashboard-body":
        return HttpResponse(body)
    context = {"department": department, "form": form, "filters": filters, "body": body}
    return render(request, "dashboards/department.html", context)


@require_safe
@gzip_page
def division_dashboard(request, code: str):
    division = get_object_or_404(visible_divisions(), code=code)
    form, filters = _filters(request)
    sort, descending = _sort(request)
    by_unit = request.GET.get("rows") == "units"
    measures = measures_for_division()

    def build():
        matrix = division_matrix(division, filters, units=by_unit, sort=sort, descending=descending)
        return {
            "division": division,
            "filters": filters,
            "matrix": matrix,
            "by_unit": by_unit,
            "funnels": funnel_measures(matrix.measures),
            "funnel_level": "division",
            "funnel_code": division.code,
        }

    nodes = division_nodes(division, units=by_unit)
    body = _cached_body(
        request,
        "dashboards/_division_body.html",
        ["division", division.pk, series_versions(measures, filters.grain or None, nodes)],
        [measure_versions(measures)],
        build,
    )
    if request.htmx and request.htmx.target == "dashboard-body":
        return HttpResponse(body)
    context = {"division": division, "form": form, "filters": filters, "body": body}
    return render(request, "dashboards/division.html", context)


def _funnel_units(level: str, code: str):
    if level == "department":
        department = get_object_or_404(visible_departments(), code=code)
        return visible_units().filter(department=department)
    if level == "division":
        division = get_object_or_404(visible_divisions(), code=code)
        return visible_units().filter(department__division=division)
    raise Http404


@require_safe
@gzip_page
def funnel_fragment(request, level: str, code: str, measure: str):
    """One funnel plot (HTMX loads it when it scrolls into view; a plain link without JS)."""
    units = list(_funnel_units(level, code))
    found = get_object_or_404(measure_catalogue().filter(active=True), code=measure)
    if found not in funnel_measures([found]):
        raise Http404
    _form, filters = _filters(request)
    plot = funnel_plot(found, units, filters, None)
    context = {"plot": plot, "measure": found, "level": level, "code": code}
    template = "dashboards/_funnel.html" if request.htmx else "dashboards/funnel.html"
    return render(request, template, context)


@require_safe
@gzip_page
def measure_page(request, code: str):
    """One measure across the organisation: definition and handbook, every unit's latest
    figure and icons, the funnel plot, the division's chart."""
    measure = get_object_or_404(measure_catalogue(), code=code)
    form, filters = _filters(request)
    sort, descending = _sort(request)
    context = {
        "measure": measure,
        "history": measure_history(measure),
        "form": form,
        "filters": filters,
    }
    if measure.active:
        grain = grain_for(measure, filters.grain or None)
        versions = sorted(
            Series.objects.filter(measure=measure, grain=grain).values_list("pk", "computed_at")
        )
        context["body"] = _cached_body(
            request,
            "dashboards/_measure_body.html",
            ["measure", measure.pk, versions],
            [measure_versions([measure])],
            lambda: {
                "measure": measure,
                "filters": filters,
                **measure_overview(measure, filters, sort, descending),
            },
        )
    return render(request, "dashboards/measure.html", context)


def _cached_body(request, template: str, versions: list, extra: list, build) -> str:
    """A page's body rendered once per version of everything it shows.

    The key holds the series' ``computed_at``s, the measures' versions, the organisation's
    names, the query string, the language and the day (staleness is judged by the day), so a
    fresh import or an edited measure shows at once. The body holds nothing personal (no
    form, no CSRF token), so one rendering serves everyone. A warm page costs a few small
    queries and one cache read instead of hundreds of summaries and template tags.
    """
    key = body_key(
        versions,
        extra,
        organisation_version(),
        request.get_full_path(),
        get_language(),
        timezone.localdate(),
    )
    html = cache.get(key)
    if html is None:
        html = render_to_string(template, build(), request=request)
        cache.set(key, html, CACHE_SECONDS)
    return mark_safe(html)  # noqa: S308 - our own rendered template


def _csv_response(request, data: bytes, filename: str, target: str) -> HttpResponse:
    audit_download(request=request, target=target)
    response = HttpResponse(data, content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    response["X-Content-Type-Options"] = "nosniff"
    return response


@require_safe
def unit_series_csv(request, code: str, measure: str):
    unit = get_object_or_404(visible_units(), code=code)
    found = get_object_or_404(measure_catalogue().filter(active=True), code=measure)
    _form, filters = _filters(request)
    grain = grain_for(found, filters.grain or None)
    series = series_set([found], grain, unit_nodes(unit)).get(found, f"unit:{unit.pk}")
    if series is None:
        raise Http404
    data = exports.series_csv(found, series, grain, filters, language=get_language())
    return _csv_response(
        request,
        data,
        f"{unit.code}-{found.code}-{grain}.csv",
        f"series {found.code} {unit.code} {grain}",
    )


@require_safe
def department_matrix_csv(request, code: str):
    department = get_object_or_404(visible_departments(), code=code)
    _form, filters = _filters(request)
    sort, descending = _sort(request)
    matrix = department_matrix(department, filters, sort, descending)
    data = exports.matrix_csv(matrix, language=get_language())
    return _csv_response(
        request, data, f"{department.code}-matrix.csv", f"matrix {department.code}"
    )


@require_safe
def division_matrix_csv(request, code: str):
    division = get_object_or_404(visible_divisions(), code=code)
    _form, filters = _filters(request)
    sort, descending = _sort(request)
    matrix = division_matrix(
        division,
        filters,
        units=request.GET.get("rows") == "units",
        sort=sort,
        descending=descending,
    )
    data = exports.matrix_csv(matrix, language=get_language())
    return _csv_response(request, data, f"{division.code}-matrix.csv", f"matrix {division.code}")


def dashboard_url(level: str, code: str) -> str:
    return reverse(_LANDING[level], kwargs={"code": code})
