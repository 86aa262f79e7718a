"""The API's documentation page and its answers for unknown addresses."""

import pytest
from django.conf import settings
from django.shortcuts import resolve_url
from rest_framework.test import APIClient

pytestmark = pytest.mark.django_db


def test_anonymous_docs_go_to_the_log_in_page(client):
    response = client.get("/api/docs/")
    assert response.status_code == 302
    assert response["Location"] == f"{resolve_url(settings.LOGIN_URL)}?next=/api/docs/"


def test_anonymous_schema_stays_401_for_machines():
    assert APIClient().get("/api/schema/").status_code == 401


def test_logged_in_people_read_the_docs(client, org):
    client.force_login(org.people["clinician"])
    response = client.get("/api/docs/")
    assert response.status_code == 200
    assert b"swagger" in response.content.lower()


def test_unknown_api_address_answers_json_404(client, org):
    client.force_login(org.people["clinician"])
    response = client.get("/api/series/1.5/")
    assert response.status_code == 404
    assert response["Content-Type"] == "application/json"
    assert response.json() == {"detail": "Not found."}
    # Elsewhere the page, as before.
    assert client.get("/no-such-page/").status_code == 404
    assert "text/html" in client.get("/no-such-page/")["Content-Type"]


def test_schema_documents_the_error_answers_and_the_upload_as_a_file(org):
    api = APIClient()
    api.force_authenticate(org.people["clinician"])
    schema = api.get("/api/schema/", {"format": "json"}).json()
    upload = schema["paths"]["/api/imports/"]["post"]
    assert {"201", "400", "401", "403", "429", "503"} <= set(upload["responses"])
    body = upload["requestBody"]
    assert body["required"] is True
    form = body["content"]["multipart/form-data"]["schema"]
    if "$ref" in form:
        form = schema["components"]["schemas"][form["$ref"].rsplit("/", 1)[-1]]
    assert form["properties"]["file"]["format"] == "binary"
    for path in ("/api/series/{id}/", "/api/measures/{code}/", "/api/imports/{id}/"):
        assert {"200", "401", "404"} <= set(schema["paths"][path]["get"]["responses"])
    measure = schema["components"]["schemas"]["Measure"]["properties"]
    assert measure["department"].get("nullable") is True


@pytest.mark.parametrize("url", ["/api/measures/", "/api/series/", "/api/imports/"])
def test_a_blank_page_number_is_refused_like_any_other_non_number(org, url):
    api = APIClient()
    api.force_authenticate(org.people["support"])
    assert api.get(url, {"page": ""}).status_code == 404
    assert api.get(url, {"page": "x"}).status_code == 404
    assert api.get(url, {"page": "1"}).status_code == 200


def test_blank_and_nul_series_filters_filter_nothing_out(org):
    api = APIClient()
    api.force_authenticate(org.people["clinician"])
    everything = api.get("/api/series/").json()["count"]
    assert api.get("/api/series/", {"measure": "", "department": ""}).json()["count"] == everything
    # A NUL is no code: dropped (PostgreSQL would refuse it), not a 400 or a 500.
    response = api.get("/api/series/", {"unit": "\x00"})
    assert response.status_code == 200
