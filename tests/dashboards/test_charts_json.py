"""A unit's chart specs as one versioned JSON resource (``/units/<code>/charts.json?…&v=…``;
issue 8 "Speed").

The unit's page links its specs with the version of everything they show; the browser keeps
them (``private, immutable``), so the URL must change whenever a spec would: a new import, an
edited measure, a new improvement event. An old version is never answered with its old specs:
it gets the current ones with ``no-store`` (a redirect could loop between an old and a new
process during a deployment). Log-in and visibility as for the page.
"""

from __future__ import annotations

import gzip
import html
import json
import re
from datetime import date
from urllib.parse import parse_qs, urlsplit

import pytest
from django.urls import reverse

from initiatives.enums import InitiativeKind, OriginKind
from initiatives.models import Initiative, PDSACycle
from measures.aggregation import series_recompute
from tests.aggregation.conftest import Rows

pytestmark = pytest.mark.django_db


def _page(client, unit, query: str = "") -> str:
    response = client.get(reverse("dashboards:unit", args=[unit.code]) + query)
    assert response.status_code == 200
    return response.content.decode()


def _charts_url(content: str) -> str:
    [url] = re.findall(r'data-charts="([^"]+)"', content)
    return html.unescape(url)


def _specs(client, url: str) -> dict:
    response = client.get(url)
    assert response.status_code == 200, (url, response.status_code)
    return json.loads(response.content)


def _version(url: str) -> str:
    return parse_qs(urlsplit(url).query)["v"][0]


def test_the_page_links_specs_for_every_chart_it_has(client, dash):
    client.force_login(dash.people["clinician"])
    content = _page(client, dash.a1)
    url = _charts_url(content)

    specs = _specs(client, url)

    plots = re.findall(r'class="plot" data-spec="([^"]+)"', content)
    assert sorted(plots) == sorted(specs) == ["spec-m-care-plan", "spec-m-honos-total"]
    assert all(spec["data"] and spec["layout"] for spec in specs.values())
    # The page itself carries no spec: it stays small.
    assert '<script type="application/json"' not in content
    assert url.startswith(reverse("dashboards:unit-charts", args=[dash.a1.code]) + "?v=")


def test_gzipped_when_accepted_plain_otherwise_and_kept_by_the_browser(client, dash):
    client.force_login(dash.people["clinician"])
    url = _charts_url(_page(client, dash.a1))

    zipped = client.get(url, headers={"Accept-Encoding": "gzip, deflate, br"})
    plain = client.get(url, headers={"Accept-Encoding": "identity"})

    assert zipped["Content-Encoding"] == "gzip"
    assert not plain.has_header("Content-Encoding")
    assert gzip.decompress(zipped.content) == plain.content
    assert len(zipped.content) < len(plain.content)
    for response in (zipped, plain):
        assert response["Content-Type"] == "application/json"
        assert "Accept-Encoding" in response["Vary"]
        control = response["Cache-Control"]
        assert "private" in control and "immutable" in control and "no-store" not in control
        assert int(re.search(r"max-age=(\d+)", control).group(1)) >= 3600
        assert response["X-Content-Type-Options"] == "nosniff"


def test_the_filters_go_into_the_url_and_shape_the_specs(client, dash):
    client.force_login(dash.people["clinician"])
    content = _page(client, dash.a1, "?grain=quarter&compare=department&view=charts")
    url = _charts_url(content)

    query = parse_qs(urlsplit(url).query)
    assert query["grain"] == ["quarter"] and query["compare"] == ["department"]
    assert "view" not in query
    spec = _specs(client, url)["spec-m-care-plan"]
    assert all(len(x) == 10 for t in spec["data"] for x in t["x"][:1])  # ISO dates
    assert any(t["name"] == "Department" for t in spec["data"])
    plain = _specs(client, _charts_url(_page(client, dash.a1)))["spec-m-care-plan"]
    assert not any(t["name"] == "Department" for t in plain["data"])
    assert len(spec["data"][0]["x"]) < len(plain["data"][0]["x"])


def test_the_table_view_links_no_specs_and_the_charts_say_what_to_do_without_js(client, dash):
    client.force_login(dash.people["clinician"])

    tables = _page(client, dash.a1, "?view=table")
    charts = _page(client, dash.a1)

    assert "data-charts" not in tables and "<noscript>" not in tables
    assert 'class="plot"' not in tables and 'table class="numbers"' in tables
    noscript = charts.split("<noscript>", 1)[1].split("</noscript>", 1)[0]
    assert "view=table" in noscript


def test_an_old_version_is_answered_with_the_current_specs_not_to_be_kept(client, dash):
    """After an import the page links a new version; the old URL (which a browser may have
    kept) answers the current specs with ``no-store``, never the old ones."""
    client.force_login(dash.people["clinician"])
    careplan = dash.measures["careplan"]
    old = _charts_url(_page(client, dash.a1))
    before = _specs(client, old)["spec-m-care-plan"]
    assert "2025-04-01" not in before["data"][0]["x"]

    Rows(dash.people["support"]).aggregate(careplan, dash.a1, date(2025, 4, 1), 380, 400).save()
    series_recompute(measure_ids=[careplan.pk])

    new = _charts_url(_page(client, dash.a1))
    assert _version(new) != _version(old)
    for url, kept in ((old, False), (new, True)):
        response = client.get(url)
        assert response.status_code == 200
        assert ("immutable" in response["Cache-Control"]) is kept, url
        if not kept:
            assert response["Cache-Control"] == "private, no-store"
        spec = json.loads(response.content)["spec-m-care-plan"]
        assert spec["data"][0]["x"][-1] == "2025-04-01" and spec["data"][0]["y"][-1] == 95.0


@pytest.mark.parametrize(
    "query", ["", "?v=", "?v=0123456789abcdef0123", "?grain=month", "?v={v}&grain=week"]
)
def test_a_missing_made_up_or_altered_version_is_not_kept(client, dash, query):
    client.force_login(dash.people["clinician"])
    current = _charts_url(_page(client, dash.a1, "?grain=month" if "grain" in query else ""))
    expected = _specs(client, current)
    base = reverse("dashboards:unit-charts", args=[dash.a1.code])

    response = client.get(base + query.format(v=_version(current)))

    assert response.status_code == 200
    assert response["Cache-Control"] == "private, no-store"
    if "week" not in query:
        assert json.loads(response.content) == expected


def test_an_edited_measure_and_a_new_pdsa_cycle_change_the_version(client, dash):
    client.force_login(dash.people["clinician"])
    careplan = dash.measures["careplan"]
    first = _charts_url(_page(client, dash.a1))

    careplan.target = 75
    careplan.save()
    second = _charts_url(_page(client, dash.a1))
    assert _version(second) != _version(first)
    names = [t["name"] for t in _specs(client, second)["spec-m-care-plan"]["data"]]
    assert "Target: 75.0 %" in names

    idea = Initiative.objects.create(
        title="Morning huddle",
        kind=InitiativeKind.IDEA,
        origin_kind=OriginKind.UNIT,
        origin_unit=dash.a1,
        forum=dash.forums["unit"],
        created_by=dash.people["chair"],
    )
    PDSACycle.objects.create(
        initiative=idea,
        unit=dash.a1,
        measure=careplan,
        plan="Plan",
        start_date=date(2024, 9, 1),
        created_by=dash.people["chair"],
    )
    third = _charts_url(_page(client, dash.a1))
    assert _version(third) != _version(second)
    layout = _specs(client, third)["spec-m-care-plan"]["layout"]
    assert "Morning huddle" in json.dumps(layout, ensure_ascii=False)
    # The other unit's charts are not touched by a1's cycle.
    assert client.get(_charts_url(_page(client, dash.b1))).status_code == 200


def test_anonymous_is_sent_to_the_log_in_page(client, dash):
    client.force_login(dash.people["clinician"])
    url = _charts_url(_page(client, dash.a1))
    client.logout()

    response = client.get(url)

    assert response.status_code == 302
    assert response.url.startswith(reverse("login") + "?next=")
    assert b"spec-m" not in response.content


def test_an_inactive_person_is_refused(client, dash):
    from django.contrib.auth import get_user_model

    person = dash.people["clinician"]
    client.force_login(person)
    url = _charts_url(_page(client, dash.a1))
    get_user_model().objects.filter(pk=person.pk).update(is_active=False)

    response = client.get(url)

    assert response.status_code == 302
    assert response.url.startswith(reverse("login"))


@pytest.mark.parametrize("username", ["outsider", "board", "support"])
def test_every_staff_member_may_fetch_them_as_they_see_the_page(client, dash, username):
    client.force_login(dash.people[username])

    assert _specs(client, _charts_url(_page(client, dash.b1)))


def test_an_unknown_or_inactive_unit_is_404(client, dash):
    client.force_login(dash.people["clinician"])
    url = _charts_url(_page(client, dash.a2))
    dash.a2.active = False
    dash.a2.save()

    assert client.get(url).status_code == 404
    assert client.get(reverse("dashboards:unit-charts", args=["NOPE-01"])).status_code == 404
    assert (
        client.get(reverse("dashboards:unit-charts", args=["NOPE-01"]) + "?v=1").status_code == 404
    )


def test_post_is_405(client, dash):
    client.force_login(dash.people["clinician"])
    url = _charts_url(_page(client, dash.a1))

    assert client.post(url).status_code == 405
    assert client.head(url).status_code == 200
