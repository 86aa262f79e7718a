"""The read-only series API: filters, suppression, permissions, query count, schema."""

from datetime import date, timedelta

import pytest
from rest_framework.test import APIClient

from measures.aggregation import series_recompute
from units.services import api_token_create

from .conftest import series_of

pytestmark = pytest.mark.django_db

MONDAY = date(2024, 1, 1)
URL = "/api/series/"


@pytest.fixture
def data(org, rows):
    honos, careplan = org.measures["honos"], org.measures["careplan"]
    batch = rows()
    for week in range(16):
        day = MONDAY + timedelta(weeks=week)
        batch.value(honos, org.a1, day, 10 + week % 3, times=6)
        batch.value(honos, org.a2, day, 20, times=8)
        batch.value(honos, org.b1, day, 30, times=10)
        batch.value(careplan, org.b1, day, week % 2, times=6)
    # One small week in a1 (3 ratings of 47): suppressed, and a2 with it (complementary).
    batch.value(honos, org.a1, MONDAY + timedelta(weeks=16), 47, times=3)
    batch.value(honos, org.a2, MONDAY + timedelta(weeks=16), 21, times=8)
    batch.value(honos, org.b1, MONDAY + timedelta(weeks=16), 30, times=10)
    batch.save()
    series_recompute()
    return org


def _client(user=None) -> APIClient:
    client = APIClient()
    if user is not None:
        client.force_authenticate(user)
    return client


@pytest.mark.parametrize("person", ["clinician", "board", "outsider", "admin"])
def test_every_logged_in_user_reads_series(data, person):
    response = _client(data.people[person]).get(URL)
    assert response.status_code == 200
    assert response.json()["count"] > 0


def test_anonymous_is_refused(data):
    assert _client().get(URL).status_code in (401, 403)
    assert _client().get(
        f"{URL}{series_of(data.measures['honos'], 'unit', data.a1, 'week').pk}/"
    ).status_code in (401, 403)


def test_bearer_token_reads_series(data):
    _token, key = api_token_create(user=data.people["chair"], name="dashboard")
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {key}")
    assert client.get(URL, {"measure": "honos-total"}).status_code == 200


def test_read_only(data):
    client = _client(data.people["admin"])
    assert client.post(URL, {}, format="json").status_code == 405
    pk = series_of(data.measures["honos"], "unit", data.a1, "week").pk
    assert client.delete(f"{URL}{pk}/").status_code == 405
    assert client.patch(f"{URL}{pk}/", {}, format="json").status_code == 405


def test_filters_by_measure_node_grain_and_period(data):
    client = _client(data.people["clinician"])
    body = client.get(URL, {"measure": "honos-total", "unit": "AFF-01", "grain": "week"}).json()
    assert body["count"] == 1
    series = body["results"][0]
    assert (series["measure"], series["level"], series["node"], series["grain"]) == (
        "honos-total",
        "unit",
        "AFF-01",
        "week",
    )
    # The suppressed week's 3 ratings count nowhere (3 = a total less the shown n), nor does
    # 1 April's week, suppressed with it (April less its shown weeks would give 3 away).
    assert series["chart"] == "xmr" and series["observation_count"] == 15 * 6
    assert len(series["points"]) == 17
    body = client.get(
        URL,
        {
            "measure": "honos-total",
            "department": "aff",
            "grain": "week",
            "from": "2024-02-05",
            "to": "2024-02-26",
        },
    ).json()
    assert body["count"] == 1
    assert [p["period_start"] for p in body["results"][0]["points"]] == [
        "2024-02-05",
        "2024-02-12",
        "2024-02-19",
        "2024-02-26",
    ]
    assert client.get(URL, {"division": "psy", "grain": "month"}).json()["count"] == 2
    assert client.get(URL, {"level": "department"}).json()["count"] == 2 * 3 + 2
    assert (
        client.get(URL, {"measure": "care-plan,honos-total", "unit": "PSY-01"}).json()["count"] == 5
    )
    assert client.get(URL, {"grain": "fortnight"}).status_code == 400
    assert client.get(URL, {"from": "yesterday"}).status_code == 400


def test_suppressed_figures_never_leave_the_server(data):
    client = _client(data.people["admin"])
    body = client.get(URL, {"measure": "honos-total", "grain": "week", "level": "unit"}).json()
    by_node = {s["node"]: s["points"] for s in body["results"]}
    small = by_node["AFF-01"][-1]
    assert small == {"period_start": "2024-04-22", "suppressed": True}
    assert by_node["AFF-02"][-1] == {"period_start": "2024-04-22", "suppressed": True}
    assert by_node["PSY-01"][-1]["suppressed"] is False
    assert by_node["PSY-01"][-1]["value"] == 30
    # Nor anywhere else in the response: 47 was the suppressed week's score.
    # (Every number in the series, not the text: a timestamp may hold "47" by chance.)
    response = client.get(URL, {"measure": "honos-total", "unit": "AFF-01", "grain": "week"})
    numbers = [
        value
        for point in response.json()["results"][0]["points"]
        for value in point.values()
        if isinstance(value, int | float) and not isinstance(value, bool)
    ]
    assert 47 not in numbers and 47.0 not in numbers
    # Its detail view drops it the same way.
    pk = series_of(data.measures["honos"], "unit", data.a1, "week").pk
    assert client.get(f"{URL}{pk}/").json()["points"][-1] == small


def test_query_count_does_not_grow_with_the_number_of_series(data, django_assert_max_num_queries):
    client = _client(data.people["clinician"])
    with django_assert_max_num_queries(2):  # the page and the count
        few = client.get(URL, {"measure": "care-plan", "unit": "PSY-01", "grain": "month"})
    assert few.json()["count"] == 1
    with django_assert_max_num_queries(2):
        many = client.get(URL)
    assert many.json()["count"] > 20


def test_series_are_documented_in_the_schema(data):
    response = _client(data.people["clinician"]).get("/api/schema/", {"format": "json"})
    schema = response.json()
    operation = schema["paths"]["/api/series/"]["get"]
    names = {p["name"] for p in operation["parameters"]}
    assert {"measure", "unit", "department", "division", "grain", "from", "to"} <= names
    point = schema["components"]["schemas"]["SeriesPoint"]["properties"]
    assert {"suppressed", "value", "upper", "lower", "signals"} <= set(point)


def test_the_admin_shows_only_published_totals_of_a_series(data, client):
    """The raw count includes the suppressed week's rows: the admin must not show it either."""
    series = series_of(data.measures["honos"], "unit", data.a1, "week")
    published = _client(data.people["admin"]).get(f"{URL}{series.pk}/").json()
    assert series.observation_count != published["observation_count"]
    client.force_login(data.people["admin"])

    listing = client.get("/admin/measures/series/", {"q": "honos-total"}).content.decode()
    row = listing.split(f'value="{series.pk}"')[1].split("</tr>")[0]
    detail = client.get(f"/admin/measures/series/{series.pk}/change/").content.decode()

    for page in (row, detail):
        assert f">{published['observation_count']}<" in page
        assert f">{series.observation_count}<" not in page
