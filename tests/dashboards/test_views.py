"""Who may open which dashboard page, fragment and export, and how the pages answer bad input.

Aggregates are open to all staff (DESIGN.md §2): every logged-in, active person sees every
dashboard; nobody else sees any. Unknown codes and inactive units are 404, a POST is 405, and
a hand-edited filter gets a message on the page, never a 500.
"""

from __future__ import annotations

import re

import pytest
from django.contrib.auth import get_user_model
from django.urls import reverse

from tests.factories import AffiliationFactory, UserFactory

pytestmark = pytest.mark.django_db

HTMX = {"HX-Request": "true", "HX-Target": "dashboard-body"}


def _pages(o) -> dict[str, tuple[str, dict[str, str]]]:
    """Every dashboard URL: name → (path, extra headers)."""
    a1, dept, div = o.a1.code, o.dept_a.code, o.division.code
    return {
        "chooser": (reverse("home") + "?choose=1", {}),
        "unit": (reverse("dashboards:unit", args=[a1]), {}),
        "unit, table view": (reverse("dashboards:unit", args=[a1]) + "?view=table", {}),
        "unit, by quarter": (reverse("dashboards:unit", args=[a1]) + "?grain=quarter", {}),
        "unit, compared": (reverse("dashboards:unit", args=[a1]) + "?compare=department", {}),
        "unit, fragment": (reverse("dashboards:unit", args=[a1]) + "?grain=month", HTMX),
        "unit table, fragment": (
            reverse("dashboards:unit-table", args=[a1, "care-plan"]) + "?grain=quarter",
            {"HX-Request": "true"},
        ),
        "unit table, fragment of a mean": (
            reverse("dashboards:unit-table", args=[a1, "honos-total"]),
            {"HX-Request": "true"},
        ),
        "unit CSV": (reverse("dashboards:unit-csv", args=[a1, "care-plan"]), {}),
        "department": (reverse("dashboards:department", args=[dept]), {}),
        "department, sorted": (
            reverse("dashboards:department", args=[dept]) + "?sort=care-plan&dir=desc",
            {},
        ),
        "department, fragment": (reverse("dashboards:department", args=[dept]), HTMX),
        "department CSV": (reverse("dashboards:department-csv", args=[dept]), {}),
        "division": (reverse("dashboards:division", args=[div]), {}),
        "division, units": (reverse("dashboards:division", args=[div]) + "?rows=units", {}),
        "division, fragment": (reverse("dashboards:division", args=[div]), HTMX),
        "division CSV": (reverse("dashboards:division-csv", args=[div]), {}),
        "division CSV, units": (
            reverse("dashboards:division-csv", args=[div]) + "?rows=units",
            {},
        ),
        "funnel, department": (
            reverse("dashboards:funnel", args=["department", dept, "care-plan"]),
            {},
        ),
        "funnel, department fragment": (
            reverse("dashboards:funnel", args=["department", dept, "care-plan"]),
            {"HX-Request": "true"},
        ),
        "funnel, division": (
            reverse("dashboards:funnel", args=["division", div, "care-plan"])
            + "?period=2024-06-01",
            {},
        ),
        "measure": (reverse("dashboards:measure", args=["care-plan"]), {}),
        "measure, local": (reverse("dashboards:measure", args=["local-walks"]), {}),
    }


def _names() -> list[str]:
    """The page names, for parametrize (before any database exists)."""

    class Stub:
        class _C:
            code = "x"

        a1 = dept_a = division = _C()

    return list(_pages(Stub()))


PAGE_NAMES = _names()


def _get(client, o, name):
    path, headers = _pages(o)[name]
    return path, client.get(path, headers=headers)


# --- anonymous and inactive ---------------------------------------------------------------


@pytest.mark.parametrize("name", PAGE_NAMES)
def test_anonymous_is_sent_to_the_log_in_page(client, dash, name):
    path, headers = _pages(dash)[name]

    response = client.get(path, headers=headers)

    if "HX-Request" in headers:
        # HTMX is told to load the log-in page as a whole page; the fragment gets nothing.
        assert response.status_code == 200
        assert response.content == b""
        assert response["HX-Redirect"].startswith(reverse("login"))
    else:
        assert response.status_code == 302
        assert response.url.startswith(reverse("login") + "?next=")
        assert b"care" not in response.content


def test_anonymous_home_is_sent_to_the_log_in_page(client, dash):
    response = client.get(reverse("home"))

    assert response.status_code == 302
    assert response.url == f"{reverse('login')}?next=/"


@pytest.mark.parametrize("name", ["unit", "unit CSV", "department", "funnel, department"])
def test_an_inactive_person_is_refused(client, dash, name):
    person = dash.people["clinician"]
    client.force_login(person)
    get_user_model().objects.filter(pk=person.pk).update(is_active=False)

    _path, response = _get(client, dash, name)

    assert response.status_code == 302
    assert response.url.startswith(reverse("login"))
    assert b"Share with a care plan" not in response.content


# --- every logged-in person sees every page -------------------------------------------------


@pytest.mark.parametrize("name", PAGE_NAMES)
def test_a_clinician_sees_every_page_fragment_and_export(client, dash, name):
    client.force_login(dash.people["clinician"])

    path, response = _get(client, dash, name)

    assert response.status_code == 200, path
    content = response.content.decode("utf-8-sig")
    if "CSV" in name:
        assert response["Content-Type"].startswith("text/csv")
        assert response["Content-Disposition"].startswith("attachment; filename=")
        assert response.content.startswith(b"\xef\xbb\xbf")
    else:
        assert response["Content-Type"].startswith("text/html")
    if "fragment" in name:
        # A fragment is not a whole page.
        assert "<html" not in content and "<body" not in content
    elif "CSV" not in name:
        assert "<html" in content
    if name.startswith(("unit", "department", "division", "funnel")) and "CSV" not in name:
        assert "Share with a care plan" in content or "HoNOS total" in content


@pytest.mark.parametrize("username", ["board", "outsider", "support", "admin", "dept_chair"])
def test_every_staff_member_sees_the_dashboards_of_any_unit(client, dash, username):
    client.force_login(dash.people[username])

    for unit in (dash.a1, dash.b1):
        response = client.get(reverse("dashboards:unit", args=[unit.code]))
        assert response.status_code == 200
        assert unit.name in response.content.decode()


def test_the_fragment_is_the_body_of_the_page(client, dash):
    """The HTMX answer is exactly what the page swaps in: its #dashboard-body."""
    client.force_login(dash.people["clinician"])
    url = reverse("dashboards:unit", args=[dash.a1.code])

    page = client.get(url).content.decode()
    fragment = client.get(url, headers=HTMX).content.decode()

    assert fragment.lstrip().startswith('<div id="dashboard-body"')
    assert 'id="dashboard-body"' in page and "<form" in page
    assert 'class="filters' not in fragment and "<html" not in fragment
    for anchor in ("m-care-plan", "m-honos-total"):
        assert f'id="{anchor}"' in fragment and f'id="{anchor}"' in page


# --- 404 and 405 ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "args"),
    [
        ("dashboards:unit", ["NOPE-01"]),
        ("dashboards:unit-table", ["NOPE-01", "care-plan"]),
        ("dashboards:unit-table", ["AFF-01", "nope"]),
        ("dashboards:unit-csv", ["NOPE-01", "care-plan"]),
        ("dashboards:unit-csv", ["AFF-01", "nope"]),
        ("dashboards:department", ["nope"]),
        ("dashboards:department-csv", ["nope"]),
        ("dashboards:division", ["nope"]),
        ("dashboards:division-csv", ["nope"]),
        ("dashboards:funnel", ["department", "nope", "care-plan"]),
        ("dashboards:funnel", ["division", "nope", "care-plan"]),
        ("dashboards:funnel", ["department", "aff", "nope"]),
        ("dashboards:funnel", ["unit", "AFF-01", "care-plan"]),
        # A mean has no funnel plot.
        ("dashboards:funnel", ["department", "aff", "honos-total"]),
        ("dashboards:measure", ["nope"]),
    ],
)
def test_unknown_codes_are_404(client, dash, name, args):
    client.force_login(dash.people["clinician"])

    assert client.get(reverse(name, args=args)).status_code == 404


def test_a_unit_csv_of_a_measure_without_data_there_is_404(client, dash):
    client.force_login(dash.people["clinician"])

    # Daily walks is a1's own measure; nothing was imported for it.
    response = client.get(reverse("dashboards:unit-csv", args=[dash.a1.code, "local-walks"]))

    assert response.status_code == 404


@pytest.mark.parametrize(
    ("name", "args"),
    [
        ("dashboards:unit", ["AFF-02"]),
        ("dashboards:unit-table", ["AFF-02", "care-plan"]),
        ("dashboards:unit-csv", ["AFF-02", "care-plan"]),
    ],
)
def test_an_inactive_unit_is_404(client, dash, name, args):
    dash.a2.active = False
    dash.a2.save()
    client.force_login(dash.people["clinician"])

    assert client.get(reverse(name, args=args)).status_code == 404


def test_an_inactive_unit_is_left_out_of_its_department_and_division(client, dash):
    dash.a2.active = False
    dash.a2.save()
    client.force_login(dash.people["clinician"])

    pages = [
        reverse("dashboards:department", args=[dash.dept_a.code]),
        reverse("dashboards:division", args=[dash.division.code]) + "?rows=units",
        reverse("dashboards:measure", args=["care-plan"]),
        reverse("dashboards:funnel", args=["department", dash.dept_a.code, "care-plan"])
        + "?period=2024-05-01",
    ]
    for url in pages:
        response = client.get(url)
        assert response.status_code == 200, url
        assert dash.a2.name not in response.content.decode(), url
        assert dash.a1.name in response.content.decode(), url


def test_an_inactive_measure_shows_no_figures(client, dash):
    measure = dash.measures["careplan"]
    measure.active = False
    measure.save()
    client.force_login(dash.people["clinician"])

    page = client.get(reverse("dashboards:measure", args=["care-plan"]))
    assert page.status_code == 200
    assert "no longer in use" in page.content.decode()
    assert b"spec-overview" not in page.content
    for name, args in [
        ("dashboards:unit-csv", [dash.a1.code, "care-plan"]),
        ("dashboards:funnel", ["department", dash.dept_a.code, "care-plan"]),
    ]:
        assert client.get(reverse(name, args=args)).status_code == 404
    unit = client.get(reverse("dashboards:unit", args=[dash.a1.code])).content.decode()
    assert 'id="m-care-plan"' not in unit


def test_the_measure_page_shows_an_edit_to_its_definition_or_contact_at_once(client, dash):
    """The page (figures and definition) is cached per version: an edit must still show on
    the next request, as must a new name of its contact person."""
    measure = dash.measures["careplan"]
    measure.owner = dash.people["support"]
    measure.save()
    client.force_login(dash.people["clinician"])
    url = reverse("dashboards:measure", args=["care-plan"])
    first = client.get(url).content.decode()
    main = first[first.index("<main>") :]
    again = client.get(url).content.decode()  # from the cache
    assert again[again.index("<main>") :] == main

    measure.description = "Share of patients with a care plan within 24 hours."
    measure.save()
    second = client.get(url).content.decode()
    assert "within 24 hours" in second
    assert "Changes to the definition" in second and second.count("<li>") > first.count("<li>")

    get_user_model().objects.filter(pk=measure.owner_id).update(first_name="Ebba", last_name="Ek")
    assert "Ebba Ek" in client.get(url).content.decode()


@pytest.mark.parametrize("name", [n for n in PAGE_NAMES if n != "chooser"])
def test_post_is_405(client, dash, name):
    client.force_login(dash.people["clinician"])
    path, _headers = _pages(dash)[name]

    response = client.post(path)

    assert response.status_code == 405
    assert "GET" in response["Allow"]


def test_post_home_is_405(client, dash):
    client.force_login(dash.people["clinician"])

    assert client.post(reverse("home")).status_code == 405


# --- bad filter input -----------------------------------------------------------------------


def _errors(content: str) -> list[str]:
    return [
        re.sub(r"<[^>]+>", "", m).strip()
        for m in re.findall(r'class="error"[^>]*>(.*?)</(?:span|p)>', content, re.S)
    ]


_DATES = [
    ("?start=notadate", "Enter a valid date"),
    ("?end=2024-13-45", "Enter a valid date"),
    ("?start=2025-01-01&end=2024-01-01", "The end of the range lies before its start"),
]
_CHOICES = [("?grain=year", "Select a valid choice")]
#: Only the unit dashboard has the comparison and the view.
_UNIT_CHOICES = [
    ("?compare=everything", "Select a valid choice"),
    ("?view=pdf", "Select a valid choice"),
]


@pytest.mark.parametrize(
    ("page", "query", "message"),
    [
        *[
            (page, q, m)
            for page in ("unit", "department", "division", "measure")
            for q, m in (*_DATES, *_CHOICES)
        ],
        *[("unit", q, m) for q, m in _UNIT_CHOICES],
    ],
)
def test_bad_filter_input_gets_a_message_not_an_error(client, dash, page, query, message):
    client.force_login(dash.people["clinician"])
    base = {
        "unit": reverse("dashboards:unit", args=[dash.a1.code]),
        "department": reverse("dashboards:department", args=[dash.dept_a.code]),
        "division": reverse("dashboards:division", args=[dash.division.code]),
        "measure": reverse("dashboards:measure", args=["care-plan"]),
    }[page]

    response = client.get(base + query)

    assert response.status_code == 200
    errors = _errors(response.content.decode())
    assert any(message in e for e in errors), errors
    # The page still shows its figures, with the default in place of the bad choice.
    assert "Share with a care plan" in response.content.decode()


@pytest.mark.parametrize(
    "query", ["?grain=year", "?start=notadate", "?start=2025-01-01&end=2024-01-01"]
)
@pytest.mark.parametrize("name", ["unit table", "unit CSV", "department CSV", "funnel"])
def test_bad_filter_input_never_breaks_fragments_or_exports(client, dash, name, query):
    client.force_login(dash.people["clinician"])
    url = {
        "unit table": lambda: reverse("dashboards:unit-table", args=[dash.a1.code, "care-plan"]),
        "unit CSV": lambda: reverse("dashboards:unit-csv", args=[dash.a1.code, "care-plan"]),
        "department CSV": lambda: reverse("dashboards:department-csv", args=[dash.dept_a.code]),
        "funnel": lambda: reverse(
            "dashboards:funnel", args=["department", dash.dept_a.code, "care-plan"]
        ),
    }[name]()

    response = client.get(url + query + "&period=notadate", headers={"HX-Request": "true"})

    assert response.status_code == 200
    assert "Share with a care plan" in response.content.decode("utf-8-sig") or (
        "CSV" in name and b"March 2025" in response.content
    )


def test_the_table_link_without_javascript_opens_the_table_view(client, dash):
    client.force_login(dash.people["clinician"])
    url = reverse("dashboards:unit-table", args=[dash.a1.code, "care-plan"])

    response = client.get(url + "?grain=quarter")

    assert response.status_code == 302
    page = reverse("dashboards:unit", args=[dash.a1.code])
    assert response.url == f"{page}?grain=quarter&view=table#m-care-plan"
    content = client.get(response.url).content.decode()
    assert "Share with a care plan: the chart" in content and '<table class="numbers">' in content
    assert "Q1 2025" in content


def test_the_range_filters_the_table(client, dash):
    client.force_login(dash.people["clinician"])
    url = reverse("dashboards:unit-table", args=[dash.a1.code, "care-plan"])

    response = client.get(url + "?start=2024-07-01&end=2024-09-30", headers={"HX-Request": "true"})

    content = response.content.decode()
    assert [m for m in ("July 2024", "August 2024", "September 2024") if m in content] == [
        "July 2024",
        "August 2024",
        "September 2024",
    ]
    assert "June 2024" not in content and "October 2024" not in content


def test_an_end_before_the_start_is_ignored_with_the_message(client, dash):
    """The range falls back to all periods (not an empty chart) and says why."""
    client.force_login(dash.people["clinician"])
    url = reverse("dashboards:unit", args=[dash.a1.code])

    response = client.get(url + "?view=table&start=2025-01-01&end=2024-01-01")

    content = response.content.decode()
    assert "The end of the range lies before its start" in content
    assert "July 2023" in content and "February 2025" in content


# --- where / sends a person ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("username", "where"),
    [
        ("clinician", ("dashboards:unit", "AFF-01")),
        ("chair", ("dashboards:unit", "AFF-01")),
        ("dept_chair", ("dashboards:department", "aff")),
        ("board", ("dashboards:division", "psy")),
    ],
)
def test_home_sends_a_person_to_their_level(client, org, username, where):
    client.force_login(org.people[username])

    response = client.get(reverse("home"))

    assert response.status_code == 302
    assert response.url == reverse(where[0], args=[where[1]])
    assert client.get(response.url).status_code == 200


@pytest.mark.parametrize("username", ["outsider", "support", "admin"])
def test_home_shows_the_chooser_to_a_person_without_a_unit(client, org, username):
    client.force_login(org.people[username])

    response = client.get(reverse("home"))

    assert response.status_code == 200
    content = response.content.decode()
    assert "You are not affiliated to any unit." in content
    for unit in (org.a1, org.a2, org.b1):
        assert reverse("dashboards:unit", args=[unit.code]) in content


def test_home_shows_the_chooser_to_a_person_with_several_units(client, org):
    person = UserFactory(username="twounits")
    AffiliationFactory(user=person, unit=org.a1)
    AffiliationFactory(user=person, unit=org.b1)
    client.force_login(person)

    response = client.get(reverse("home"))

    assert response.status_code == 200
    mine = response.content.decode().split("The division", 1)[0]
    assert org.a1.name in mine and org.b1.name in mine and org.a2.name not in mine


def test_an_inactive_unit_does_not_count_for_the_landing(client, org):
    person = UserFactory(username="moved")
    AffiliationFactory(user=person, unit=org.a1)
    AffiliationFactory(user=person, unit=org.a2)
    org.a2.active = False
    org.a2.save()
    client.force_login(person)

    response = client.get(reverse("home"))

    assert response.status_code == 302
    assert response.url == reverse("dashboards:unit", args=[org.a1.code])


def test_the_chooser_is_there_for_everyone_who_asks(client, org):
    client.force_login(org.people["clinician"])

    response = client.get(reverse("home") + "?choose=1")

    assert response.status_code == 200
    assert org.a1.name in response.content.decode()
    assert reverse("dashboards:division", args=[org.division.code]) in response.content.decode()
