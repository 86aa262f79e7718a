"""The forums, meetings and agenda-items API: the same rules and services as the pages."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone
from rest_framework.test import APIClient

from forums.models import Meeting
from forums.services import meeting_create
from initiatives import agenda
from initiatives.models import AgendaItem
from initiatives.services import initiative_transition

from .conftest import log

pytestmark = pytest.mark.django_db


def _api(wf, person=None) -> APIClient:
    api = APIClient()
    if person:
        api.force_authenticate(wf.people[person])
    return api


@pytest.fixture
def meeting(wf) -> Meeting:
    return meeting_create(
        user=wf.people["chair"],
        forum=wf.forums["unit"],
        starts_at=timezone.now() + timedelta(days=2),
        location="Room 4",
    )


def test_everyone_reads_the_forums_with_their_members(wf):
    log(wf, "unit")
    assert _api(wf).get("/api/forums/").status_code == 401
    listing = _api(wf, "outsider").get("/api/forums/")
    assert listing.status_code == 200
    rows = {row["name"]: row for row in listing.json()["results"]}
    unit = rows["Forum AFF-01"]
    assert unit["kind"] == "unit_forum" and unit["units"] == ["AFF-01"]
    assert unit["open_initiatives"] == 1 and unit["member_count"] == 3
    assert rows["Group A"]["department"] == "aff"
    detail = _api(wf, "outsider").get(f"/api/forums/{wf.forums['unit'].pk}/").json()
    roles = {m["username"]: m["role"] for m in detail["members"]}
    assert roles == {"chair": "chair", "clinician": "member", "unit_secretary": "secretary"}
    assert _api(wf, "outsider").post("/api/forums/", {}).status_code == 405


def test_meetings_are_listed_only_where_one_may_read_them(wf, meeting):
    other = meeting_create(
        user=wf.people["other_unit_chair"],
        forum=wf.forums["unit_a2"],
        starts_at=timezone.now() + timedelta(days=1),
    )

    def ids(person, **params):
        response = _api(wf, person).get("/api/meetings/", params)
        assert response.status_code == 200
        return {row["id"] for row in response.json()["results"]}

    assert ids("clinician") == {meeting.pk}
    assert ids("other_unit_chair") == {other.pk}
    assert ids("dept_chair") == {meeting.pk, other.pk}  # both units are in department A
    assert ids("board") == {meeting.pk, other.pk}
    assert ids("other_dept_chair") == set() and ids("outsider") == set()
    assert ids("board", forum=wf.forums["unit"].pk) == {meeting.pk}
    assert _api(wf, "board").get("/api/meetings/", {"forum": "x"}).status_code == 404
    assert _api(wf, "outsider").get(f"/api/meetings/{meeting.pk}/").status_code == 404
    assert _api(wf).get("/api/meetings/").status_code == 401
    body = _api(wf, "clinician").get(f"/api/meetings/{meeting.pk}/").json()
    assert body["location"] == "Room 4" and body["version"] == 0 and body["agenda"] == []


def test_chair_and_secretary_create_meetings(wf):
    when = (timezone.now() + timedelta(days=5)).isoformat()
    data = {
        "forum": wf.forums["unit"].pk,
        "starts_at": when,
        "location": "Room 9",
        "present": [wf.people["clinician"].pk],
    }
    for person in ("clinician", "dept_chair", "other_unit_chair", "outsider"):
        response = _api(wf, person).post("/api/meetings/", data, format="json")
        assert response.status_code == 403, person
        assert response.json()["code"] == "not_permitted"
    created = _api(wf, "unit_secretary").post("/api/meetings/", data, format="json")
    assert created.status_code == 201
    assert created.json()["present"] == [wf.people["clinician"].pk]
    again = _api(wf, "chair").post("/api/meetings/", data, format="json")
    assert again.status_code == 400 and again.json()["code"] == "duplicate"
    stranger = {**data, "starts_at": timezone.now().isoformat(), "present": [wf.people["board"].pk]}
    refused = _api(wf, "chair").post("/api/meetings/", stranger, format="json")
    assert refused.status_code == 400 and refused.json()["code"] == "not_a_member"
    unknown = {**data, "starts_at": timezone.now().isoformat(), "present": [2**31 - 1]}
    assert _api(wf, "chair").post("/api/meetings/", unknown, format="json").status_code == 400
    nowhere = {**data, "forum": 2**31 - 1}
    assert _api(wf, "chair").post("/api/meetings/", nowhere, format="json").status_code == 404
    form = _api(wf, "chair").post("/api/meetings/", data)  # multipart: JSON only
    assert form.status_code == 415
    assert Meeting.objects.count() == 1


def test_an_update_carries_the_version_it_read(wf, meeting):
    url = f"/api/meetings/{meeting.pk}/"
    chair = _api(wf, "chair")
    first = chair.patch(url, {"version": 0, "minutes": "Chair's"}, format="json")
    assert first.status_code == 200 and first.json()["version"] == 1
    second = _api(wf, "unit_secretary").patch(
        url, {"version": 0, "minutes": "Secretary's"}, format="json"
    )
    assert second.status_code == 409 and second.json()["code"] == "stale"
    assert Meeting.objects.get(pk=meeting.pk).minutes == "Chair's"
    assert chair.patch(url, {"minutes": "no version"}, format="json").status_code == 400
    assert (
        _api(wf, "clinician").patch(url, {"version": 1, "minutes": "x"}, format="json").status_code
        == 403
    )
    assert _api(wf, "other_unit_chair").patch(url, {"version": 1}, format="json").status_code == 404
    assert chair.put(url, {"version": 1}, format="json").status_code == 405
    present = chair.patch(
        url, {"version": 1, "present": [wf.people["clinician"].pk]}, format="json"
    )
    assert present.status_code == 200 and present.json()["present"] == [wf.people["clinician"].pk]


def test_a_meeting_with_decisions_is_not_deleted(wf, meeting):
    url = f"/api/meetings/{meeting.pk}/"
    initiative = log(wf, "unit")
    initiative_transition(
        initiative=initiative, user=wf.people["chair"], transition="start_testing", meeting=meeting
    )
    body = _api(wf, "clinician").get(url).json()
    assert [d["transition"] for d in body["decisions"]] == ["start_testing"]
    assert _api(wf, "clinician").delete(url).status_code == 403
    refused = _api(wf, "chair").delete(url)
    assert refused.status_code == 409 and refused.json()["code"] == "conflict"
    empty = meeting_create(
        user=wf.people["chair"], forum=wf.forums["unit"], starts_at=timezone.now()
    )
    assert _api(wf, "chair").delete(f"/api/meetings/{empty.pk}/").status_code == 204
    assert _api(wf, "chair").delete(f"/api/meetings/{empty.pk}/").status_code == 404


def test_proposals_are_read_and_added_once(wf, meeting):
    first = log(wf, "unit", title="First")
    url = f"/api/meetings/{meeting.pk}/proposals/"
    assert _api(wf, "clinician").get(url).json() == []  # a member: nothing to choose from
    proposals = _api(wf, "chair").get(url).json()
    assert [(p["key"], p["reason"], p["initiative"]) for p in proposals] == [
        (f"initiative:{first.pk}", agenda.ARRIVED, first.pk)
    ]
    assert _api(wf, "clinician").post(url, {}, format="json").status_code == 403
    added = _api(wf, "chair").post(url, {}, format="json")
    assert added.status_code == 201 and [i["initiative"] for i in added.json()] == [first.pk]
    assert _api(wf, "chair").post(url, {}, format="json").json() == []  # again: nothing more
    assert AgendaItem.objects.filter(meeting=meeting).count() == 1
    assert _api(wf, "outsider").get(url).status_code == 404


def test_agenda_items_are_added_moved_edited_and_removed(wf, meeting):
    chair = _api(wf, "chair")
    initiative = log(wf, "unit", title="Walks")
    ids = []
    for title in ("A", "B"):
        response = chair.post(
            "/api/agenda-items/", {"meeting": meeting.pk, "title": title}, format="json"
        )
        assert response.status_code == 201
        ids.append(response.json()["id"])
    linked = chair.post(
        "/api/agenda-items/", {"meeting": meeting.pk, "initiative": initiative.pk}, format="json"
    )
    assert linked.status_code == 201 and linked.json()["title"] == "Walks"
    duplicate = chair.post(
        "/api/agenda-items/", {"meeting": meeting.pk, "initiative": initiative.pk}, format="json"
    )
    assert duplicate.status_code == 400 and duplicate.json()["code"] == "duplicate"
    assert (
        _api(wf, "clinician")
        .post("/api/agenda-items/", {"meeting": meeting.pk, "title": "C"}, format="json")
        .status_code
        == 403
    )
    hidden = _api(wf, "outsider").post(
        "/api/agenda-items/", {"meeting": meeting.pk, "title": "C"}, format="json"
    )
    assert hidden.status_code == 404

    order = chair.post(
        f"/api/agenda-items/{linked.json()['id']}/move/", {"position": 1}, format="json"
    )
    assert [i["title"] for i in order.json()] == ["Walks", "A", "B"]
    assert [i["position"] for i in order.json()] == [1, 2, 3]
    assert chair.post(f"/api/agenda-items/{ids[0]}/move/", {}, format="json").status_code == 400

    item = chair.get(f"/api/agenda-items/{ids[0]}/").json()
    saved = chair.patch(
        f"/api/agenda-items/{ids[0]}/", {"notes": "Done.", "digest": item["digest"]}, format="json"
    )
    assert saved.status_code == 200 and saved.json()["notes"] == "Done."
    stale = chair.patch(
        f"/api/agenda-items/{ids[0]}/", {"notes": "Older", "digest": item["digest"]}, format="json"
    )
    assert stale.status_code == 409 and stale.json()["code"] == "stale"

    listed = _api(wf, "clinician").get("/api/agenda-items/", {"meeting": meeting.pk}).json()
    assert [i["title"] for i in listed["results"]] == ["Walks", "A", "B"]
    assert _api(wf, "outsider").get("/api/agenda-items/").json()["count"] == 0

    assert _api(wf, "clinician").delete(f"/api/agenda-items/{ids[1]}/").status_code == 403
    assert chair.delete(f"/api/agenda-items/{ids[1]}/").status_code == 204
    assert chair.delete(f"/api/agenda-items/{ids[1]}/").status_code == 404
    assert list(
        AgendaItem.objects.filter(meeting=meeting)
        .order_by("position")
        .values_list("position", flat=True)
    ) == [1, 2]


def test_the_schema_documents_forums_meetings_and_agenda_items(wf):
    schema = _api(wf, "clinician").get("/api/schema/", {"format": "json"}).json()
    paths = schema["paths"]
    assert {"200", "401", "404"} <= set(paths["/api/forums/{id}/"]["get"]["responses"])
    assert {"201", "400", "403", "409"} <= set(paths["/api/meetings/"]["post"]["responses"])
    patch = paths["/api/meetings/{id}/"]["patch"]
    assert "409" in patch["responses"]
    body = patch["requestBody"]["content"]["application/json"]["schema"]
    name = body["$ref"].rsplit("/", 1)[-1]
    assert "version" in schema["components"]["schemas"][name]["required"]
    assert "get" in paths["/api/meetings/{id}/proposals/"]
    assert "post" in paths["/api/meetings/{id}/proposals/"]
    assert "post" in paths["/api/agenda-items/{id}/move/"]
    assert "put" not in paths["/api/meetings/{id}/"]
