"""The REST API: imports and the measure catalogue, with bearer tokens (measures/api.py)."""

from __future__ import annotations

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.utils import timezone
from rest_framework.test import APIClient

from measures.enums import ImportSource, ImportStatus
from measures.models import ImportBatch, Observation
from measures.services import import_batch_process
from units.models import ApiToken
from units.services import api_token_create, api_token_revoke

from .conftest import MANY_PROBLEMS_REPORT, as_upload

pytestmark = pytest.mark.django_db

IMPORTS = "/api/imports/"
MEASURES = "/api/measures/"


def post_file(client: APIClient, name: str, content: bytes | None = None):
    return client.post(IMPORTS, {"file": as_upload(name, content)}, format="multipart")


# --- authentication ---------------------------------------------------------------------------


@pytest.mark.parametrize("url", [IMPORTS, f"{IMPORTS}1/", MEASURES, f"{MEASURES}honos-total/"])
def test_anonymous_gets_401_with_the_bearer_challenge(org, url):
    response = APIClient().get(url)

    assert response.status_code == 401
    assert response["WWW-Authenticate"] == "Bearer"


def test_anonymous_cannot_upload(org):
    response = post_file(APIClient(), "patient_level.csv")

    assert response.status_code == 401
    assert ImportBatch.objects.count() == 0


def test_valid_token_authenticates(org, token_client):
    client = token_client("chair")

    response = client.get(IMPORTS)

    assert response.status_code == 200
    client.token.refresh_from_db()
    assert client.token.last_used_at is not None


def test_last_used_is_written_at_most_once_a_minute(org, token_client):
    client = token_client("chair")
    client.get(IMPORTS)
    client.token.refresh_from_db()
    first = client.token.last_used_at

    client.get(IMPORTS)
    client.token.refresh_from_db()
    assert client.token.last_used_at == first

    ApiToken.objects.filter(pk=client.token.pk).update(
        last_used_at=first - timezone.timedelta(minutes=2)
    )
    client.get(IMPORTS)
    client.token.refresh_from_db()
    assert client.token.last_used_at > first - timezone.timedelta(seconds=1)


@pytest.mark.parametrize(
    "header",
    [
        "Bearer lhs_unknown-token",
        "Bearer",
        "Bearer two parts",
        "bearer lhs_unknown-token",
    ],
)
def test_bad_tokens_get_401(org, header):
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=header)

    response = client.get(IMPORTS)

    assert response.status_code == 401
    assert response["WWW-Authenticate"] == "Bearer"


def test_revoked_token_gets_401(org, token_client):
    client = token_client("support")
    assert client.get(IMPORTS).status_code == 200

    api_token_revoke(token=client.token)

    response = client.get(IMPORTS)
    assert response.status_code == 401
    assert response.json() == {"detail": "Invalid or revoked token."}
    assert post_file(client, "patient_level.csv").status_code == 401
    assert ImportBatch.objects.count() == 0


def test_token_of_a_deactivated_user_gets_401(org, token_client):
    client = token_client("support")
    support = org.people["support"]
    support.is_active = False
    support.save()

    assert client.get(IMPORTS).status_code == 401


def test_another_scheme_is_not_authenticated(org, token_client):
    client = token_client("support")
    key_header = client._credentials["HTTP_AUTHORIZATION"]
    client.credentials(HTTP_AUTHORIZATION=key_header.replace("Bearer", "Token"))

    assert client.get(IMPORTS).status_code == 401


def test_a_token_is_not_a_password(org, token_client):
    """The raw key is not stored: the hash of a stored hash does not authenticate."""
    token, _key = api_token_create(user=org.people["support"], name="x")
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {token.key_hash}")

    assert client.get(IMPORTS).status_code == 401


def test_session_login_works_for_the_browser(client, org):
    client.force_login(org.people["clinician"])

    assert client.get(MEASURES).status_code == 200


def test_a_session_upload_needs_the_csrf_token(org):
    client = APIClient(enforce_csrf_checks=True)
    client.force_login(org.people["chair"])

    response = post_file(client, "patient_level.csv")

    assert response.status_code == 403
    assert "CSRF" in response.json()["detail"]
    assert ImportBatch.objects.count() == 0


def test_a_token_upload_needs_no_csrf_token(org):
    _token, key = api_token_create(user=org.people["chair"], name="x")
    client = APIClient(enforce_csrf_checks=True)
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {key}")

    assert post_file(client, "patient_level.csv").status_code == 201


# --- upload -------------------------------------------------------------------------------------


@pytest.mark.parametrize("username", ["clinician", "board", "outsider"])
def test_upload_without_upload_rights_is_403(org, token_client, username):
    response = post_file(token_client(username), "patient_level.csv")

    assert response.status_code == 403
    assert response.json() == {"detail": "You may not import data for any unit."}
    assert ImportBatch.objects.count() == 0


@pytest.mark.parametrize("username", ["chair", "dept_chair", "support", "admin"])
def test_upload_answers_201_with_the_batch(org, token_client, username):
    response = post_file(token_client(username), "patient_level.csv")

    assert response.status_code == 201
    body = response.json()
    batch = ImportBatch.objects.get()
    assert body["id"] == batch.pk
    assert body["status"] == "queued"
    assert body["source"] == "api"
    assert body["original_name"] == "patient_level.csv"
    assert body["uploaded_by"] == username
    assert (body["rows_total"], body["rows_new"], body["rows_existing"]) == (0, 0, 0)
    assert (body["error_count"], body["errors"]) == (0, [])
    assert body["progress"] == {
        "status": "queued",
        "rows_done": 0,
        "rows_estimated": 0,
        "percent": 0,
    }
    assert len(body["checksum"]) == 64
    assert batch.source == ImportSource.API


def test_upload_then_follow_the_batch_until_imported(org, token_client):
    client = token_client("chair")
    batch_id = post_file(client, "patient_level.csv").json()["id"]

    import_batch_process(batch_id=batch_id)
    response = client.get(f"{IMPORTS}{batch_id}/")

    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "succeeded"
    assert (body["rows_total"], body["rows_new"], body["rows_existing"]) == (9, 9, 0)
    assert body["message"] == "9 new rows imported; 0 were already present."
    assert body["progress"]["percent"] == 100
    assert body["finished_at"] is not None
    assert Observation.objects.count() == 9


def test_upload_is_imported_in_the_background(
    org, token_client, celery_eager, django_capture_on_commit_callbacks
):
    client = token_client("support")

    with django_capture_on_commit_callbacks(execute=True):
        response = post_file(client, "aggregated.csv")

    batch = ImportBatch.objects.get(pk=response.json()["id"])
    assert batch.status == ImportStatus.SUCCEEDED
    assert client.get(f"{IMPORTS}{batch.pk}/").json()["rows_new"] == 8


def test_rejected_upload_reports_every_problem(org, token_client):
    client = token_client("support")
    batch_id = post_file(client, "many_problems.csv").json()["id"]
    import_batch_process(batch_id=batch_id)

    body = client.get(f"{IMPORTS}{batch_id}/").json()

    assert body["status"] == "rejected"
    assert body["error_count"] == 8
    assert body["rows_new"] == 0
    assert body["errors"][0] == {
        "row": 3,
        "column": "measure_code",
        "value": "nope",
        "code": "unknown_measure",
        "message": "Unknown measure 'nope'.",
    }
    assert [(e["row"], e["column"]) for e in body["errors"]] == MANY_PROBLEMS_REPORT
    assert "nothing was imported" in body["message"]
    assert Observation.objects.count() == 0


def test_personnummer_is_refused_and_not_echoed(org, token_client):
    client = token_client("support")
    batch_id = post_file(client, "personnummer.csv").json()["id"]
    import_batch_process(batch_id=batch_id)

    response = client.get(f"{IMPORTS}{batch_id}/")

    body = response.json()
    assert body["status"] == "rejected"
    assert [(e["row"], e["column"]) for e in body["errors"]] == [(3, "subject_key")]
    assert "personal identity number" in body["errors"][0]["message"]
    assert b"19121212-1212" not in response.content
    assert b"1212121212" not in response.content
    assert Observation.objects.count() == 0


def test_a_chairs_token_is_scoped_to_the_chairs_units(org, token_client):
    client = token_client("chair")
    batch_id = post_file(client, "aggregated.csv").json()["id"]
    import_batch_process(batch_id=batch_id)

    body = client.get(f"{IMPORTS}{batch_id}/").json()

    assert body["status"] == "rejected"
    assert {e["value"] for e in body["errors"]} == {"AFF-02", "PSY-01"}
    assert all("You may not import data for unit" in e["message"] for e in body["errors"])
    assert Observation.objects.count() == 0


def test_upload_without_a_file_is_400(org, token_client):
    response = token_client("chair").post(IMPORTS, {}, format="multipart")

    assert response.status_code == 400
    assert "file" in response.json()
    assert ImportBatch.objects.count() == 0


def test_upload_of_an_empty_file_is_400(org, token_client):
    response = post_file(token_client("chair"), "empty.csv")

    assert response.status_code == 400
    assert "file" in response.json()
    assert ImportBatch.objects.count() == 0


def test_upload_of_a_too_large_file_is_400(org, token_client, settings):
    settings.LHS_IMPORT_MAX_BYTES = 50

    response = post_file(token_client("chair"), "patient_level.csv")

    assert response.status_code == 400
    assert "largest accepted" in response.json()["file"][0]
    assert ImportBatch.objects.count() == 0


def test_upload_as_json_is_415(org, token_client):
    response = token_client("chair").post(IMPORTS, {"file": "x"}, format="json")

    assert response.status_code == 415


def test_repeated_upload_adds_nothing(org, token_client):
    client = token_client("chair")
    first = post_file(client, "patient_level.csv").json()["id"]
    second = post_file(client, "patient_level.csv").json()["id"]
    import_batch_process(batch_id=first)
    import_batch_process(batch_id=second)

    body = client.get(f"{IMPORTS}{second}/").json()

    assert first != second
    assert body["status"] == "succeeded"
    assert (body["rows_new"], body["rows_existing"]) == (0, 9)
    assert body["duplicate_of"] == first
    assert Observation.objects.count() == 9


@pytest.mark.parametrize("method", ["put", "patch", "delete"])
def test_batches_cannot_be_changed_or_deleted(org, token_client, method):
    client = token_client("support")
    batch_id = post_file(client, "patient_level.csv").json()["id"]

    response = getattr(client, method)(f"{IMPORTS}{batch_id}/", {}, format="json")

    assert response.status_code == 405
    assert ImportBatch.objects.filter(pk=batch_id).exists()


# --- list and detail scoping --------------------------------------------------------------------


@pytest.fixture
def batches(org, token_client):
    """One batch by the unit chair, one by the department chair."""
    chair = post_file(token_client("chair"), "patient_level.csv").json()["id"]
    dept = post_file(token_client("dept_chair"), "latin1_aggregated.csv").json()["id"]
    return {"chair": chair, "dept_chair": dept}


@pytest.mark.parametrize(
    ("username", "visible"),
    [
        ("chair", ["chair"]),
        ("dept_chair", ["dept_chair"]),
        ("support", ["dept_chair", "chair"]),
        ("admin", ["dept_chair", "chair"]),
        ("clinician", []),
        ("board", []),
        ("outsider", []),
    ],
)
def test_list_shows_only_what_the_user_may_see(org, token_client, batches, username, visible):
    response = token_client(username).get(IMPORTS)

    assert response.status_code == 200
    body = response.json()
    assert body["count"] == len(visible)
    assert [b["id"] for b in body["results"]] == [batches[who] for who in visible]


@pytest.mark.parametrize(
    ("username", "status"),
    [
        ("chair", 200),
        ("support", 200),
        ("admin", 200),
        ("dept_chair", 404),
        ("clinician", 404),
        ("board", 404),
        ("outsider", 404),
    ],
)
def test_detail_of_someone_elses_batch_is_404(org, token_client, batches, username, status):
    response = token_client(username).get(f"{IMPORTS}{batches['chair']}/")

    assert response.status_code == status


# --- measures -----------------------------------------------------------------------------------


@pytest.mark.parametrize("username", ["clinician", "board", "outsider", "chair"])
def test_every_authenticated_user_reads_the_measures(org, token_client, username):
    response = token_client(username).get(MEASURES)

    assert response.status_code == 200
    body = response.json()
    assert [m["code"] for m in body["results"]] == [
        "care-plan",
        "coercion",
        "honos-total",
        "incidents",
        "local-walks",
    ]
    local = body["results"][-1]
    assert (local["scope"], local["unit"], local["department"]) == ("unit", "AFF-01", None)


def test_measure_detail_by_code(org, token_client):
    body = token_client("clinician").get(f"{MEASURES}coercion/").json()

    assert (body["kind"], body["rate_per"], body["frequency"]) == ("rate", 1000, "month")


@pytest.mark.parametrize("method", ["post", "put", "patch", "delete"])
def test_measures_are_read_only_in_the_api(org, token_client, method):
    client = token_client("admin")
    url = MEASURES if method == "post" else f"{MEASURES}honos-total/"

    response = getattr(client, method)(url, {"code": "x", "name": "y"}, format="json")

    assert response.status_code == 405
    org.measures["honos"].refresh_from_db()
    assert org.measures["honos"].name == "HoNOS total"


# --- schema and docs ----------------------------------------------------------------------------


@pytest.mark.parametrize("url", ["/api/schema/", "/api/docs/"])
def test_schema_and_docs_need_login(org, url):
    response = APIClient().get(url)

    # The docs page sends a person to the log-in page; the schema answers machines with 401.
    assert response.status_code == (302 if url == "/api/docs/" else 401)
    assert b"/api/imports/" not in response.content


def test_schema_for_a_logged_in_user(client, org):
    client.force_login(org.people["clinician"])

    response = client.get("/api/schema/", {"format": "json"})

    assert response.status_code == 200
    schema = response.json()
    assert "/api/imports/" in schema["paths"]
    assert "/api/imports/{id}/" in schema["paths"]
    assert schema["components"]["securitySchemes"]["bearerAuth"]["scheme"] == "bearer"
    upload = schema["paths"]["/api/imports/"]["post"]["requestBody"]["content"]
    assert "multipart/form-data" in upload


def test_schema_with_a_token(org, token_client):
    response = token_client("support").get("/api/schema/", {"format": "json"})

    assert response.status_code == 200


def test_docs_for_a_logged_in_user(client, org):
    client.force_login(org.people["clinician"])

    response = client.get("/api/docs/")

    assert response.status_code == 200
    assert b"swagger" in response.content.lower()


def test_api_docs_load_their_assets_from_our_own_static_files(client, org):
    client.force_login(org.people["clinician"])

    page = client.get("/api/docs/").content.decode()

    assert "/static/drf_spectacular_sidecar/swagger-ui-dist/swagger-ui-bundle.js" in page
    assert "cdn" not in page.lower() and "unpkg" not in page.lower()


def test_uploads_are_rate_limited_but_progress_polling_is_not(org, token_client, monkeypatch):
    from measures.throttling import ImportUploadThrottle

    monkeypatch.setattr(ImportUploadThrottle, "THROTTLE_RATES", {"imports": "2/hour"})
    client = token_client("chair")
    body = b"measure_code,unit_code,date,value\nhonos-total,AFF-01,2025-01-07,3\n"

    def upload(n):
        return client.post(
            "/api/imports/",
            {"file": SimpleUploadedFile(f"f{n}.csv", body)},
            format="multipart",
        )

    first, second, third = upload(1), upload(2), upload(3)

    assert [first.status_code, second.status_code, third.status_code] == [201, 201, 429]
    for _ in range(5):
        assert client.get(f"/api/imports/{first.json()['id']}/").status_code == 200
