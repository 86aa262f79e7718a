"""The scale-up pages: the plan and spread forms, a unit's adoption (HTMX), the adoptions
panel of the initiative's page, the board's spread overview."""

from __future__ import annotations

from datetime import date, timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from initiatives.enums import AdoptionState, State
from initiatives.models import Adoption, Initiative, ScaleUpPlan

from .scale_up_helpers import approved, in_a_month, plan, prioritised, spread
from .test_scale_up_effects import W, make_series, weeks

HTMX = {"HTTP_HX_REQUEST": "true"}


def _client(client, wf, person):
    if person != "anonymous":
        client.force_login(wf.people[person])
    return client


def _plan_data(wf, initiative, **extra):
    data = {
        "scope": "All wards.",
        "deadline": in_a_month().isoformat(),
        "units": [wf.a1.pk, wf.b1.pk],
        "comment": "",
        "meeting": "",
        "version": initiative.version,
    }
    data.update(extra)
    return data


# --- The plan ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("person", "status"),
    [
        ("board_chair", 200),
        ("board_secretary", 200),
        ("admin", 200),
        ("board", 403),
        ("dept_chair", 403),
        ("chair", 403),
        ("outsider", 403),
        ("anonymous", 302),
    ],
)
def test_who_sees_the_plan_form(client, wf, person, status):
    idea = approved(wf)
    response = _client(client, wf, person).get(reverse("initiatives:scale_up_plan", args=[idea.pk]))
    assert response.status_code == status
    if status == 302:
        assert response["Location"].startswith(reverse("login"))
    if status == 200:
        body = response.content.decode()
        # The target units as checkboxes, grouped by department.
        assert body.count('type="checkbox" name="units"') == 3
        assert "<legend>Affektiva sjukdomar</legend>" in body and "<legend>Psykos</legend>" in body


@pytest.mark.parametrize("person", ["board", "dept_chair", "outsider"])
def test_a_plan_posted_by_someone_else_is_refused(client, wf, person):
    idea = approved(wf)
    response = _client(client, wf, person).post(
        reverse("initiatives:scale_up_plan", args=[idea.pk]), _plan_data(wf, idea)
    )
    assert response.status_code == 403
    assert not ScaleUpPlan.objects.exists()


def test_the_plan_is_made_once_a_second_post_changes_nothing(client, wf):
    idea = approved(wf)
    url = reverse("initiatives:scale_up_plan", args=[idea.pk])
    c = _client(client, wf, "board_chair")
    first = c.post(url, _plan_data(wf, idea))
    assert first.status_code == 302
    assert (
        first["Location"] == reverse("initiatives:initiative", args=[idea.pk]) + "#panel-adoptions"
    )
    assert Initiative.objects.get(pk=idea.pk).state == State.SCALING_UP
    again = c.post(url, _plan_data(wf, idea))
    assert again.status_code == 302
    assert [str(m) for m in again.wsgi_request._messages] == [
        "The scale-up plan is made: scaling up has started.",
        "This initiative already has its plan.",
    ]
    assert ScaleUpPlan.objects.count() == 1 and Adoption.objects.count() == 2


def test_a_plan_with_errors_keeps_what_was_typed(client, wf):
    idea = approved(wf)
    response = _client(client, wf, "board_chair").post(
        reverse("initiatives:scale_up_plan", args=[idea.pk]),
        _plan_data(wf, idea, units=[], scope="Wards of Psykos first."),
    )
    assert response.status_code == 400
    body = response.content.decode()
    assert "This field is required." in body and "Wards of Psykos first." in body
    assert Initiative.objects.get(pk=idea.pk).state == State.APPROVED_FOR_SCALE_UP


def test_a_plan_with_a_past_deadline_shows_the_services_message(client, wf):
    idea = approved(wf)
    response = _client(client, wf, "board_chair").post(
        reverse("initiatives:scale_up_plan", args=[idea.pk]),
        _plan_data(wf, idea, deadline="2020-01-01"),
        **HTMX,
    )
    assert response.status_code == 400
    assert "The date cannot be in the past." in response.content.decode()
    assert not ScaleUpPlan.objects.exists()


def test_a_plan_over_htmx_sends_the_page_to_the_initiative(client, wf):
    idea = approved(wf)
    response = _client(client, wf, "board_chair").post(
        reverse("initiatives:scale_up_plan", args=[idea.pk]), _plan_data(wf, idea), **HTMX
    )
    assert response.status_code == 204
    assert response["HX-Redirect"].endswith("#panel-adoptions")


def test_a_plan_read_before_someone_moved_it_is_stale(client, wf):
    idea = approved(wf)
    response = _client(client, wf, "board_chair").post(
        reverse("initiatives:scale_up_plan", args=[idea.pk]),
        _plan_data(wf, idea, version=idea.version - 1),
    )
    assert response.status_code == 409
    assert "Someone else moved this initiative" in response.content.decode()


@pytest.mark.parametrize("method", ["put", "delete", "patch"])
def test_wrong_methods(client, wf, method):
    idea = approved(wf)
    plan(wf, idea)
    adoption = Adoption.objects.filter(initiative=idea).first()
    c = _client(client, wf, "admin")
    for url in (
        reverse("initiatives:scale_up_plan", args=[idea.pk]),
        reverse("initiatives:department_spread", args=[idea.pk]),
        reverse("initiatives:adoption", args=[adoption.pk]),
        reverse("initiatives:spread"),
    ):
        assert getattr(c, method)(url).status_code == 405, url
    assert c.post(reverse("initiatives:spread")).status_code == 405


def test_no_such_initiative_is_a_404(client, wf):
    c = _client(client, wf, "board_chair")
    assert c.get(reverse("initiatives:scale_up_plan", args=[999999])).status_code == 404
    assert c.get(reverse("initiatives:adoption", args=[999999])).status_code == 404


# --- The department's spread ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("person", "status"),
    [("dept_chair", 302), ("dept_secretary", 302), ("other_dept_chair", 403), ("board", 403)],
)
def test_the_department_spread_form(client, wf, person, status):
    idea = prioritised(wf)
    c = _client(client, wf, person)
    url = reverse("initiatives:department_spread", args=[idea.pk])
    data = {"units": [wf.a1.pk, wf.a2.pk], "comment": "Both.", "version": idea.version}
    response = c.post(url, data)
    assert response.status_code == status
    assert Adoption.objects.filter(initiative=idea).count() == (2 if status == 302 else 0)
    if status == 302:
        # Offered: the department's own units only.
        idea2 = prioritised(wf)
        body = c.get(reverse("initiatives:department_spread", args=[idea2.pk])).content.decode()
        assert f'value="{wf.b1.pk}"' not in body and f'value="{wf.a2.pk}"' in body
        # A repeated post: told so, nothing more.
        assert c.post(url, data).status_code == 302
        assert Adoption.objects.filter(initiative=idea).count() == 2


def test_the_department_spread_needs_its_reason(client, wf):
    idea = prioritised(wf)
    response = _client(client, wf, "dept_chair").post(
        reverse("initiatives:department_spread", args=[idea.pk]),
        {"units": [wf.a1.pk], "comment": "", "version": idea.version},
    )
    assert response.status_code == 400
    assert Initiative.objects.get(pk=idea.pk).state == State.PRIORITISED


# --- A unit's adoption ----------------------------------------------------------------------


@pytest.fixture
def scaling(wf):
    idea = approved(wf, measures=[wf.measures["honos"]])
    plan(wf, idea)
    return idea


def _adoption(idea, unit):
    return Adoption.objects.get(initiative=idea, unit=unit)


@pytest.mark.parametrize(
    ("person", "status"),
    [
        ("chair", 200),
        ("unit_secretary", 200),
        ("board_chair", 200),
        ("clinician", 403),
        ("other_unit_chair", 403),
        ("board", 403),
        ("outsider", 403),
        ("anonymous", 302),
    ],
)
def test_who_updates_an_adoption_over_htmx(client, wf, scaling, person, status):
    adoption = _adoption(scaling, wf.a1)
    response = _client(client, wf, person).post(
        reverse("initiatives:adoption", args=[adoption.pk]),
        {"state": "started", "adaptation": "Mornings only.", "version": 0},
        **HTMX,
    )
    if person == "anonymous":  # HTMX is sent to the log-in page
        assert response["HX-Redirect"].startswith(reverse("login"))
    else:
        assert response.status_code == status
    stored = _adoption(scaling, wf.a1)
    if status == 200 and person != "anonymous":
        body = response.content.decode()
        assert f'id="adoption-{adoption.pk}"' in body and "Started" in body
        assert "Mornings only." in body
        assert 'hx-swap-oob="true"' in body  # the panel's progress, out of band
        assert (stored.state, stored.version) == (AdoptionState.STARTED, 1)
    else:
        assert (stored.state, stored.version) == (AdoptionState.PLANNED, 0)


def test_adopted_without_how_is_refused_next_to_the_field(client, wf, scaling):
    adoption = _adoption(scaling, wf.a1)
    c = _client(client, wf, "chair")
    url = reverse("initiatives:adoption", args=[adoption.pk])
    c.post(url, {"state": "started", "adaptation": "", "version": 0}, **HTMX)
    response = c.post(
        url,
        {
            "state": "adopted",
            "adaptation": " ",
            "adopted_on": date.today().isoformat(),
            "version": 1,
        },
        **HTMX,
    )
    assert response.status_code == 400
    body = response.content.decode()
    assert "Say how the unit adapted it to its own context." in body
    assert f"id_adoption{adoption.pk}_adaptation_error" in body
    future = (timezone.localdate() + timedelta(days=2)).isoformat()
    response = c.post(
        url, {"state": "adopted", "adaptation": "Ours.", "adopted_on": future, "version": 1}
    )
    assert response.status_code == 400
    assert "The adoption date cannot be in the future." in response.content.decode()
    assert _adoption(scaling, wf.a1).state == AdoptionState.STARTED


def test_a_stale_adoption_form_is_refused_and_a_repeat_changes_nothing(client, wf, scaling):
    adoption = _adoption(scaling, wf.a1)
    url = reverse("initiatives:adoption", args=[adoption.pk])
    c = _client(client, wf, "chair")
    first = c.post(url, {"state": "declined", "adaptation": "Not for us.", "version": 0})
    assert first.status_code == 302
    again = c.post(url, {"state": "declined", "adaptation": "Not for us.", "version": 0})
    assert again.status_code == 409
    assert "Someone else updated the adoption" in again.content.decode()
    assert _adoption(scaling, wf.a1).version == 1


def test_the_adoption_page_without_htmx(client, wf, scaling):
    adoption = _adoption(scaling, wf.a1)
    response = _client(client, wf, "chair").get(reverse("initiatives:adoption", args=[adoption.pk]))
    assert response.status_code == 200
    assert "<h1>Adoption of Avdelning 1 – Ångest</h1>" in response.content.decode()


# --- The panel on the initiative's page ----------------------------------------------------------


class _Page:
    def __init__(self, html: str):
        self.content = html.encode()


def _page(client, wf, person, idea):
    """The panel as the initiative's page includes it (with ``initiative``, ``user`` and
    ``request``), rendered alone so the other panels' state does not matter here."""
    from django.contrib.auth.models import AnonymousUser
    from django.template import engines
    from django.test import RequestFactory
    from django_htmx.middleware import HtmxDetails

    request = RequestFactory().get(reverse("initiatives:initiative", args=[idea.pk]))
    request.user = wf.people[person] if person != "anonymous" else AnonymousUser()
    request.htmx = HtmxDetails(request)
    template = engines["django"].from_string('{% include "initiatives/panels/adoptions.html" %}')
    initiative = Initiative.objects.select_related("forum").get(pk=idea.pk)
    return _Page(template.render({"initiative": initiative, "user": request.user}, request=request))


def test_the_panel_offers_the_plan_to_the_boards_deciders_only(client, wf):
    idea = approved(wf)
    assert 'id="scale-up-plan-form"' in _page(client, wf, "board_chair", idea).content.decode()
    client.logout()
    assert 'id="scale-up-plan-form"' not in _page(client, wf, "board", idea).content.decode()


def test_the_panel_shows_the_plan_adoptions_progress_and_why_it_is_not_complete(
    client, wf, scaling
):
    a1 = _adoption(scaling, wf.a1)
    Adoption.objects.filter(pk=a1.pk).update(
        state=AdoptionState.ADOPTED, adopted_on=date(2024, 3, 13), adaptation="Run by nurses."
    )
    body = _page(client, wf, "chair", scaling).content.decode()
    assert "Every ward of the division within a year." in body
    assert "1 of 3 units have adopted it" in body
    assert "How the unit adapted it:" in body and "Run by nurses." in body
    assert "2 units have not yet adopted or declined it." in body
    # The chair of a1's forum may update a1's and no other unit's adoption.
    assert body.count("Update the adoption of") == 1
    board = _page(client, wf, "board_chair", scaling).content.decode()
    assert board.count("Update the adoption of") == 3


def test_the_panels_effect_table_never_shows_a_suppressed_period(client, wf, scaling):
    honos = wf.measures["honos"]
    Adoption.objects.filter(initiative=scaling, unit=wf.a1).update(
        state=AdoptionState.ADOPTED, adopted_on=date(2024, 3, 13), adaptation="Ours."
    )
    make_series(
        honos,
        wf.a1,
        [*weeks(W, 4), date(2024, 3, 11), *weeks(date(2024, 3, 18), 3)],
        [10, 12, 987.5, 14, 50, 8, 6, 7],
        suppressed={2},
    )
    make_series(honos, wf.a2, [*weeks(W, 4), *weeks(date(2024, 3, 18), 3)], [20] * 4 + [19] * 3)
    body = _page(client, wf, "outsider", scaling).content.decode()
    assert "Effect on the linked measures" in body
    assert "<td>12.0 <span" in body and "(3 periods)" in body  # (10 + 12 + 14) / 3
    assert "<td>7.0 <span" in body
    assert "\u22125.0 better" in body and "\u22121.0" in body and "\u22124.0" in body
    table = body.split("Effect on the linked measures")[1].split("</table>")[0]
    assert "987" not in body and "(4 periods)" not in table  # neither its value nor its count


# --- The board's overview ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("person", "status"),
    [
        ("board", 200),
        ("board_chair", 200),
        ("dept_chair_on_board", 200),
        ("admin", 200),
        ("dept_chair", 403),
        ("chair", 403),
        ("outsider", 403),
        ("anonymous", 302),
    ],
)
def test_who_sees_the_spread_overview(client, wf, person, status):
    assert _client(client, wf, person).get(reverse("initiatives:spread")).status_code == status


def test_the_overview_shows_progress_per_department_and_what_is_past_due(client, wf):
    idea = approved(wf, title="Safe wards")
    plan(wf, idea)
    Adoption.objects.filter(initiative=idea, unit=wf.a1).update(
        state=AdoptionState.ADOPTED, adopted_on=date(2024, 3, 13), adaptation="Ours."
    )
    Adoption.objects.filter(initiative=idea, unit=wf.b1).update(due_date=date(2024, 1, 1))
    waiting = approved(wf, title="Calm room")
    dept = prioritised(wf, title="Phone triage")
    spread(wf, dept)
    body = _client(client, wf, "board").get(reverse("initiatives:spread")).content.decode()
    assert "Safe wards" in body and "1 of 3" in body
    assert "Affektiva sjukdomar: 1 of 2 (0 declined)" in body and "Psykos: 0 of 1" in body
    assert "Psykosavdelning: Planned, due 2024-01-01" in body
    assert "Calm room" in body and "no plan yet" in body and waiting.pk
    assert "Phone triage" in body


def test_the_overview_asks_the_same_number_of_queries_for_one_or_many(client, wf):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    c = _client(client, wf, "board")
    plan(wf, approved(wf))
    with CaptureQueriesContext(connection) as one:
        c.get(reverse("initiatives:spread"))
    for _ in range(3):
        plan(wf, approved(wf))
    with CaptureQueriesContext(connection) as many:
        c.get(reverse("initiatives:spread"))
    assert len(many) == len(one)
