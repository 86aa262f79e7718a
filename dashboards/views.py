"""Dashboard pages, fragments and exports. Thin: filters in, one panels/selectors call, render.

Log-in is required everywhere (``LoginRequiredMiddleware``); aggregates are open to all staff,
so every logged-in person may see every dashboard (DESIGN.md §2). Suppressed figures never
reach a template: the panels read ``measures.series`` only. Objects come through the visible
querysets, so an inactive unit or an unknown code answers 404.

Speed (issue 8): a page's whole content (crumbs, heading, filters, body) is rendered once per
version of what it shows (``selectors.*_version``: a few small queries per request, never a
stamp kept aside) and cached; only the base layout (navigation, session, CSRF) is rendered per
request, and the small page gzipped (``gzip_page`` pads against BREACH; the CSRF token is
masked per request). A unit's forty chart specs, most of a megabyte as text, are not in the
page: ``dashboards.js`` fetches them from ``charts.json`` at the page's version, stored
gzipped and kept by the browser (the URL names the version), so a repeat visit fetches none.
"""

from __future__ import annotations

import gzip
import re
from urllib.parse import urlencode

from django.conf import settings
from django.core.cache import cache
from django.http import Http404, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils import timezone
from django.utils.cache import patch_vary_headers
from django.utils.safestring import mark_safe
from django.utils.translation import get_language
from django.views.decorators.gzip import gzip_page
from django.views.decorators.http import require_safe

from measures.enums import SeriesLevel
from measures.selectors import measure_catalogue, measure_history
from units.audit import audit_download
from units.selectors import organisation_tree, units_for_user

from . import exports
from .annotations import unit_annotations
from .forms import FilterForm
from .panels import (
    CACHE_SECONDS,
    Filters,
    body_key,
    department_matrix,
    division_matrix,
    funnel_measures,
    funnel_plot,
    measure_overview,
    unit_panels,
)
from .selectors import (
    department_version,
    digest,
    division_version,
    grain_for,
    landing_for,
    measure_version,
    measures_for_unit,
    series_set,
    unit_nodes,
    unit_version,
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
    version = unit_version(unit, filters.grain or None)
    charts_url = _charts_url(unit, filters, version)

    def build():
        measures = measures_for_unit(unit)
        events = unit_annotations(unit.pk, measures)
        tables = filters.view == "table"
        panels = unit_panels(unit, filters, tables=tables, measures=measures, events=events)
        if not tables:
            _store_charts(_charts_key(unit, filters, version), panels)
        return {
            "unit": unit,
            "filters": filters,
            "panels": panels,
            "tables": tables,
            "charts_url": charts_url,
        }

    page = _cached_page(
        request,
        "dashboards/_unit_content.html",
        "dashboards/_unit_panels.html",
        version,
        {"unit": unit, "form": form, "filters": filters},
        build,
    )
    return _respond(request, page, "dashboards/unit.html", {"unit": unit})


def _charts_url(unit, filters: Filters, version: str) -> str:
    """The unit's chart specs at this version: the filters that shape them and ``v``."""
    params = {
        "grain": filters.grain,
        "start": filters.start.isoformat() if filters.start else "",
        "end": filters.end.isoformat() if filters.end else "",
        "compare": filters.compare,
    }
    query = urlencode({k: v for k, v in params.items() if v} | {"v": version})
    return f"{reverse('dashboards:unit-charts', kwargs={'code': unit.code})}?{query}"


def _charts_key(unit, filters: Filters, version: str) -> str:
    return body_key("charts", unit.pk, version, filters.key())


def _charts_json(panels) -> bytes:
    """``{"spec-m-<code>": spec, …}`` from the panels' cached spec texts (already JSON)."""
    items = [f'"spec-{p.anchor}":{p.spec}' for p in panels if p.spec]
    return ("{" + ",".join(items) + "}").encode()


def _store_charts(key: str, panels) -> bytes:
    # Gzipped once here, not per request: the specs hold no secret and nothing the request
    # sent (BREACH needs both), so one compressed copy serves everyone.
    data = gzip.compress(_charts_json(panels), compresslevel=6, mtime=0)
    cache.set(key, data, CACHE_SECONDS)
    return data


#: How long a browser keeps a unit's chart specs: a working day (a session's longest life).
#: The URL names the version, so what is kept is never out of date.
CHARTS_MAX_AGE = settings.SESSION_COOKIE_AGE
_ACCEPTS_GZIP = re.compile(r"\bgzip\b")


@require_safe
def unit_charts(request, code: str):
    """The chart specs of a unit's page as one JSON object, fetched by ``dashboards.js``.

    The page links them with its version (``v``): at the current version (and the URL the
    page links) they are kept by the browser (``immutable``: the URL changes with them). An
    old, missing or made-up ``v`` is answered with the current specs and ``no-store``: never
    stale, never kept under a name that is not theirs (and no redirect to loop between old
    and new processes during a deployment). Served gzipped where the browser accepts it (as
    stored), plain otherwise."""
    unit = get_object_or_404(visible_units(), code=code)
    _form, filters = _filters(request)
    version = unit_version(unit, filters.grain or None)
    key = _charts_key(unit, filters, version)
    data = cache.get(key)
    if data is None:
        measures = measures_for_unit(unit)
        events = unit_annotations(unit.pk, measures)
        data = _store_charts(key, unit_panels(unit, filters, measures=measures, events=events))
    if _ACCEPTS_GZIP.search(request.headers.get("Accept-Encoding", "")):
        response = HttpResponse(data, content_type="application/json")
        response["Content-Encoding"] = "gzip"
    else:
        response = HttpResponse(gzip.decompress(data), content_type="application/json")
    patch_vary_headers(response, ["Accept-Encoding"])
    current = request.get_full_path() == _charts_url(unit, filters, version)
    response["Cache-Control"] = (
        f"private, max-age={CHARTS_MAX_AGE}, immutable" if current else "private, no-store"
    )
    response["X-Content-Type-Options"] = "nosniff"
    return response


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

    page = _cached_page(
        request,
        "dashboards/_department_content.html",
        "dashboards/_department_body.html",
        department_version(department, filters.grain or None),
        {"department": department, "form": form, "filters": filters},
        build,
    )
    return _respond(request, page, "dashboards/department.html", {"department": department})


@require_safe
@gzip_page
def division_dashboard(request, code: str):
    division = get_object_or_404(visible_divisions(), code=code)
    form, filters = _filters(request)
    sort, descending = _sort(request)
    by_unit = request.GET.get("rows") == "units"

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

    page = _cached_page(
        request,
        "dashboards/_division_content.html",
        "dashboards/_division_body.html",
        division_version(division, filters.grain or None, units=by_unit),
        {"division": division, "form": form, "filters": filters},
        build,
    )
    return _respond(request, page, "dashboards/division.html", {"division": division})


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
    grain = grain_for(measure, filters.grain or None)
    # The definition is cached with the figures: a saved measure has a new ``updated_at`` and a
    # new history record; its contact person's name is the one thing shown from elsewhere.
    owner = measure.owner.get_full_name() or measure.owner.get_username() if measure.owner else ""
    version = digest(measure_version(measure, grain), owner)

    def build():
        if not measure.active:
            return {}
        return {
            "measure": measure,
            "filters": filters,
            **measure_overview(measure, filters, sort, descending),
        }

    page = _cached_page(
        request,
        "dashboards/_measure_content.html",
        "dashboards/_measure_body.html",
        version,
        # Called by the template only when the page is rendered (not on a cached request).
        {
            "measure": measure,
            "form": form,
            "filters": filters,
            "history": lambda: measure_history(measure),
        },
        build,
    )
    return _respond(request, page, "dashboards/measure.html", {"measure": measure})


def _key(version: str, request) -> str:
    """A page's cache key: the version of what it shows, the query string and the day
    (staleness is judged by the day)."""
    return body_key(version, request.get_full_path(), get_language(), timezone.localdate())


#: Where the body goes in a page's rendered content (split off to cache the two apart).
_BODY = "\x00dashboard-body\x00"


def _cached_page(request, content: str, body: str, version: str, context: dict, build):
    """A dashboard's whole content (crumbs, heading, filters, body) rendered once per version,
    as (before, body, after): the fragment HTMX asks for is the body alone.

    ``version`` (``selectors.*_version``) holds the series' ``computed_at``s, the measures'
    versions, the organisation's names and the language, so a fresh import or an edited
    measure shows at once. Everything in it is the same for everyone (the form shows the query
    string, no CSRF token: it is a GET form); only the base layout around it (navigation,
    session, CSRF) is rendered per request. A warm page costs a few small queries and one
    cache read instead of hundreds of summaries and template tags.
    """
    key = _key(version, request)
    page = cache.get(key)
    if page is None:
        html = render_to_string(body, build(), request=request)
        outer = render_to_string(content, {**context, "body": _BODY}, request=request)
        before, after = outer.split(_BODY)
        page = (before, html, after)
        cache.set(key, page, CACHE_SECONDS)
    return page


def _respond(request, page, template: str, context: dict) -> HttpResponse:
    before, body, after = page
    if request.htmx and request.htmx.target == "dashboard-body":
        return HttpResponse(body)
    content = mark_safe(before + body + after)  # noqa: S308 - our own rendered templates
    return render(request, template, {**context, "content": content})


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
