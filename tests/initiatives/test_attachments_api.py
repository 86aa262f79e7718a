"""/api/attachments/: upload (multipart), list, details, download, delete; the page's rules."""

from __future__ import annotations

from urllib.parse import unquote

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from rest_framework.test import APIClient

from initiatives.models import Attachment
from units.enums import AuditAction
from units.models import AuditEvent

from .conftest import log
from .test_attachments import EXE, PDF, stored_files, zip_bomb
from .test_attachments_pages import attach

URL = "/api/attachments/"


def api(wf, person: str | None) -> APIClient:
    client = APIClient()
    if person:
        client.force_authenticate(wf.people[person])
    return client


def _upload(client, initiative, name="Årsrapport.pdf", data=PDF):
    upload = SimpleUploadedFile(name, data, content_type="application/pdf")
    return client.post(URL, {"initiative": initiative.pk, "file": upload}, format="multipart")


@pytest.mark.parametrize("person", ["chair", "clinician", "unit_secretary", "admin"])
def test_uploading(wf, settings, person):
    idea = log(wf, "unit")
    response = _upload(api(wf, person), idea)
    assert response.status_code == 201, response.json()
    body = response.json()
    assert body["original_name"] == "Årsrapport.pdf" and body["content_type"] == "application/pdf"
    assert body["size"] == len(PDF) and body["uploaded_by"] == person
    assert body["download"] == f"{URL}{body['id']}/download/"
    assert len(stored_files(settings)) == 1


@pytest.mark.parametrize("person", ["dept_chair", "support", "board", "outsider"])
def test_uploading_is_refused_to_others(wf, settings, person):
    response = _upload(api(wf, person), log(wf, "unit"))
    assert response.status_code == 403 and response.json()["code"] == "not_permitted"
    assert not Attachment.objects.exists() and stored_files(settings) == []


def test_uploading_anonymously(wf, settings):
    assert _upload(api(wf, None), log(wf, "unit")).status_code in (401, 403)
    assert stored_files(settings) == []


@pytest.mark.parametrize(
    "name, data, code",
    [("setup.pdf", EXE, "bad_type"), ("bomb.docx", zip_bomb(), "bad_type"), ("e.txt", b"", "")],
)
def test_refused_files(wf, settings, name, data, code):
    response = _upload(api(wf, "chair"), log(wf, "unit"), name, data)
    assert response.status_code == 400
    body = response.json()
    if code:
        assert body["code"] == code and f"“{name}”" in body["errors"]["file"][0]
    else:
        assert "file" in body  # an empty part is refused by the serializer already
    assert not Attachment.objects.exists() and stored_files(settings) == []


def test_uploading_the_same_file_twice_attaches_it_once(wf):
    idea = log(wf, "unit")
    client = api(wf, "chair")
    assert _upload(client, idea).status_code == 201
    again = _upload(client, idea)
    assert again.status_code == 409 and again.json()["code"] == "conflict"
    assert Attachment.objects.count() == 1


def test_uploading_without_a_file_or_to_nowhere(wf):
    client = api(wf, "chair")
    idea = log(wf, "unit")
    assert client.post(URL, {"initiative": idea.pk}, format="multipart").status_code == 400
    assert _upload(client, type(idea)(pk=999999)).status_code == 404
    assert client.post(URL, {"initiative": idea.pk}, format="json").status_code == 415


def test_listing_and_details(wf):
    idea, other = log(wf, "unit"), log(wf, "unit", title="Other")
    first = attach(wf, idea, "a.pdf")
    second = attach(wf, other, "b.txt", b"notes")
    client = api(wf, "board")
    assert [a["id"] for a in client.get(URL).json()["results"]] == [first.pk, second.pk]
    only = client.get(URL, {"initiative": other.pk}).json()["results"]
    assert [a["original_name"] for a in only] == ["b.txt"]
    assert client.get(URL, {"initiative": "x"}).status_code == 400
    detail = client.get(f"{URL}{first.pk}/").json()
    assert detail["sha256"] == first.sha256
    assert client.get(f"{URL}999999/").status_code == 404
    assert api(wf, None).get(URL).status_code in (401, 403)


def test_downloading(wf):
    attachment = attach(wf, log(wf, "unit"), "Årsrapport.pdf")
    response = api(wf, "outsider").get(f"{URL}{attachment.pk}/download/")
    assert response.status_code == 200
    assert b"".join(response.streaming_content) == PDF
    assert response["Content-Type"] == "application/pdf"
    assert response["X-Content-Type-Options"] == "nosniff"
    assert "sandbox" in response["Content-Security-Policy"]
    disposition = response["Content-Disposition"]
    assert disposition.startswith("attachment;")
    assert unquote(disposition.split("filename*=UTF-8''")[1]) == "Årsrapport.pdf"
    event = AuditEvent.objects.filter(action=AuditAction.DOWNLOAD).latest("pk")
    assert event.actor_id == wf.people["outsider"].pk and event.detail["via"] == "api"


def test_downloading_whatever_the_client_accepts(wf):
    attachment = attach(wf, log(wf, "unit"))
    response = api(wf, "chair").get(
        f"{URL}{attachment.pk}/download/", HTTP_ACCEPT="application/pdf"
    )
    assert response.status_code == 200 and response["Content-Type"] == "application/pdf"


def test_downloading_what_is_not_there(wf):
    attachment = attach(wf, log(wf, "unit"))
    client = api(wf, "chair")
    assert client.get(f"{URL}999999/download/").status_code == 404
    from pathlib import Path

    Path(attachment.file.path).unlink()
    assert client.get(f"{URL}{attachment.pk}/download/").status_code == 404
    assert api(wf, None).get(f"{URL}{attachment.pk}/download/").status_code in (401, 403)


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("person", ["clinician", "chair", "unit_secretary", "admin"])
def test_deleting(wf, settings, person):
    attachment = attach(wf, log(wf, "unit"), person="clinician")
    client = api(wf, person)
    assert client.delete(f"{URL}{attachment.pk}/").status_code == 204
    assert not Attachment.objects.exists() and stored_files(settings) == []
    assert client.delete(f"{URL}{attachment.pk}/").status_code == 404


@pytest.mark.parametrize("person", ["dept_chair", "board", "support", "outsider"])
def test_deleting_is_refused_to_others(wf, settings, person):
    attachment = attach(wf, log(wf, "unit"), person="clinician")
    response = api(wf, person).delete(f"{URL}{attachment.pk}/")
    assert response.status_code == 403 and response.json()["code"] == "not_permitted"
    assert Attachment.objects.count() == 1 and len(stored_files(settings)) == 1


def test_wrong_methods(wf):
    attachment = attach(wf, log(wf, "unit"))
    client = api(wf, "chair")
    assert client.put(f"{URL}{attachment.pk}/", {}, format="multipart").status_code == 405
    assert client.patch(f"{URL}{attachment.pk}/", {}, format="multipart").status_code == 405
    assert client.post(f"{URL}{attachment.pk}/download/").status_code == 405
    assert client.delete(f"{URL}{attachment.pk}/download/").status_code == 405


def test_the_schema_documents_the_upload_download_and_errors(wf):
    schema = api(wf, "clinician").get("/api/schema/", {"format": "json"}).json()
    upload = schema["paths"][URL]["post"]
    assert {"201", "400", "401", "403", "409"} <= set(upload["responses"])
    form = upload["requestBody"]["content"]["multipart/form-data"]["schema"]
    if "$ref" in form:
        form = schema["components"]["schemas"][form["$ref"].rsplit("/", 1)[-1]]
    assert form["properties"]["file"]["format"] == "binary"
    download = schema["paths"][f"{URL}{{id}}/download/"]["get"]["responses"]
    assert {"200", "401", "403", "404"} <= set(download)
    assert "application/pdf" in download["200"]["content"]
    assert "text/html" not in download["200"]["content"]
    assert {"204", "401", "403", "404"} <= set(
        schema["paths"][f"{URL}{{id}}/"]["delete"]["responses"]
    )
