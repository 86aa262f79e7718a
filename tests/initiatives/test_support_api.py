"""/api/support-requests/: the pages' rules, their refusals as statuses, the schema."""

from __future__ import annotations

import pytest
from rest_framework.test import APIClient

from forums.enums import MembershipRole
from forums.models import Membership
from initiatives.enums import SupportKind
from initiatives.models import SupportRequest
from initiatives.support import support_request_create, support_request_take
from tests.factories import UserFactory

from .conftest import log

URL = "/api/support-requests/"


@pytest.fixture
def sup(wf):
    for name, role in (
        ("support2", MembershipRole.MEMBER),
        ("support_chair", MembershipRole.CHAIR),
    ):
        wf.people[name] = UserFactory(username=name, first_name=name.title(), last_name="Staff")
        Membership.objects.create(forum=wf.forums["support"], user=wf.people[name], role=role)
    return wf


def api(wf, person: str | None) -> APIClient:
    client = APIClient()
    if person:
        client.force_authenticate(wf.people[person])
    return client


def ask(wf, initiative, person="chair", text="Help with the extract."):
    return support_request_create(
        user=wf.people[person], initiative=initiative, kind=SupportKind.DATA, description=text
    )


def _post(client, target, **extra):
    body = {"initiative": target.pk, "kind": "improvement_science", "description": "PDSA?"}
    return client.post(URL, {**body, **extra}, format="json")


# --- asking ---------------------------------------------------------------------------------


@pytest.mark.parametrize("person", ["chair", "clinician", "unit_secretary", "admin"])
def test_asking(sup, person):
    idea = log(sup, "unit")
    response = _post(api(sup, person), idea)
    assert response.status_code == 201, response.json()
    body = response.json()
    assert body["state"] == "open" and body["version"] == 0 and body["taken_by"] is None
    assert body["requested_by"] == person and body["support_forum"] == sup.forums["support"].pk
    assert SupportRequest.objects.get().initiative == idea


@pytest.mark.parametrize("person", ["dept_chair", "support", "board", "outsider"])
def test_asking_is_refused_to_others(sup, person):
    response = _post(api(sup, person), log(sup, "unit"))
    assert response.status_code == 403
    assert response.json()["code"] == "not_permitted"
    assert not SupportRequest.objects.exists()


def test_asking_on_an_initiative_that_does_not_exist(sup):
    response = api(sup, "chair").post(
        URL, {"initiative": 999999, "kind": "data", "description": "x"}, format="json"
    )
    assert response.status_code == 404


def test_asking_anonymously(sup):
    assert _post(api(sup, None), log(sup, "unit")).status_code in (401, 403)
    assert not SupportRequest.objects.exists()


def test_asking_twice_makes_one_request(sup):
    idea = log(sup, "unit")
    client = api(sup, "chair")
    assert _post(client, idea).status_code == 201
    second = _post(client, idea)
    assert second.status_code == 409 and second.json()["code"] == "conflict"
    assert SupportRequest.objects.count() == 1


@pytest.mark.parametrize(
    "extra, field",
    [
        ({"kind": "coffee"}, "kind"),
        ({"description": ""}, "description"),
        ({"description": "   "}, "description"),
        ({"initiative": "x"}, "initiative"),
        ({"initiative": 0}, "initiative"),
    ],
)
def test_what_a_request_must_say(sup, extra, field):
    response = _post(api(sup, "chair"), log(sup, "unit"), **extra)
    assert response.status_code == 400
    assert field in response.json().get("errors", response.json())
    assert not SupportRequest.objects.exists()


# --- reading --------------------------------------------------------------------------------


def test_the_list_and_its_filters(sup):
    idea, other = log(sup, "unit"), log(sup, "unit", title="Other")
    first = ask(sup, idea, text="one")
    second = ask(sup, other, text="two")
    support_request_take(user=sup.people["support"], request=second)
    everyone = api(sup, "outsider").get(URL).json()
    assert [r["id"] for r in everyone["results"]] == [second.pk, first.pk]  # newest first
    by_initiative = api(sup, "board").get(URL, {"initiative": idea.pk}).json()["results"]
    assert [r["id"] for r in by_initiative] == [first.pk]
    taken = api(sup, "board").get(URL, {"state": "taken"}).json()["results"]
    assert [(r["id"], r["taken_by"]) for r in taken] == [(second.pk, "support")]
    mine = api(sup, "support").get(URL, {"queue": "mine"}).json()["results"]
    assert [r["id"] for r in mine] == [second.pk]
    # A queue is the support unit's: empty for anyone else.
    assert api(sup, "chair").get(URL, {"queue": "open"}).json()["results"] == []
    for bad in ({"state": "lost"}, {"queue": "everything"}, {"initiative": "x"}):
        assert api(sup, "support").get(URL, bad).status_code == 400, bad
    assert api(sup, "support").get(f"{URL}{first.pk}/").json()["description"] == "one"
    assert api(sup, "support").get(f"{URL}999999/").status_code == 404


def test_reading_anonymously(sup):
    ask(sup, log(sup, "unit"))
    assert api(sup, None).get(URL).status_code in (401, 403)


def test_the_list_reads_in_a_fixed_number_of_queries(sup, django_assert_max_num_queries):
    idea = log(sup, "unit")
    ask(sup, idea, text="first")
    client = api(sup, "board")
    with django_assert_max_num_queries(20) as one:
        client.get(URL)
    for i in range(10):
        ask(sup, idea, text=f"more {i}")
    with django_assert_max_num_queries(len(one.captured_queries)):
        assert len(client.get(URL).json()["results"]) == 11


# --- take, release, done --------------------------------------------------------------------


def _act(client, request, what, **body):
    return client.post(f"{URL}{request.pk}/{what}/", body, format="json")


def test_the_lifecycle_through_the_api(sup):
    request = ask(sup, log(sup, "unit"))
    staff = api(sup, "support")
    taken = _act(staff, request, "take", version=0)
    assert taken.status_code == 200 and taken.json()["state"] == "taken"
    assert taken.json()["version"] == 1 and taken.json()["taken_by"] == "support"
    released = _act(staff, request, "release", version=1)
    assert released.json()["state"] == "open" and released.json()["taken_by"] is None
    assert _act(staff, request, "take").status_code == 200  # no version: the current one
    no_answer = _act(staff, request, "done", version=3)
    assert no_answer.status_code == 400 and "answer" in no_answer.json()
    blank = _act(staff, request, "done", version=3, answer="  ")
    assert blank.status_code == 400 and "answer" in blank.json()
    done = _act(staff, request, "done", version=3, answer="See the handbook, page 4.")
    assert done.status_code == 200
    assert done.json()["state"] == "done" and done.json()["answer"] == "See the handbook, page 4."


def test_the_second_taker_is_told_who_took_it(sup):
    request = ask(sup, log(sup, "unit"))
    assert _act(api(sup, "support2"), request, "take", version=0).status_code == 200
    late = _act(api(sup, "support"), request, "take", version=0)
    assert late.status_code == 409 and late.json()["code"] == "stale"
    assert "Support2 Staff took this request" in late.json()["detail"]
    again = _act(api(sup, "support2"), request, "take", version=0)
    assert again.status_code == 409 and "You took this request already" in again.json()["detail"]
    request.refresh_from_db()
    assert (request.taken_by, request.version) == (sup.people["support2"], 1)


def test_an_old_version_is_refused(sup):
    request = ask(sup, log(sup, "unit"))
    staff = api(sup, "support")
    _act(staff, request, "take")
    _act(staff, request, "release")
    assert _act(staff, request, "take", version=0).status_code == 409
    assert _act(staff, request, "take", version=2).status_code == 200


@pytest.mark.parametrize("person", ["chair", "clinician", "dept_chair", "board", "outsider"])
def test_taking_is_refused_to_others(sup, person):
    request = ask(sup, log(sup, "unit"))
    response = _act(api(sup, person), request, "take", version=0)
    assert response.status_code == 403 and response.json()["code"] == "not_permitted"
    request.refresh_from_db()
    assert request.state == "open"


@pytest.mark.parametrize("person", ["support2", "chair", "outsider"])
def test_answering_and_releasing_are_refused_to_others(sup, person):
    request = ask(sup, log(sup, "unit"))
    support_request_take(user=sup.people["support"], request=request)
    client = api(sup, person)
    assert _act(client, request, "done", answer="Mine.").status_code == 403
    assert _act(client, request, "release").status_code == 403
    request.refresh_from_db()
    assert request.state == "taken"


def test_wrong_methods(sup):
    request = ask(sup, log(sup, "unit"))
    client = api(sup, "support")
    for what in ("take", "release", "done"):
        assert client.get(f"{URL}{request.pk}/{what}/").status_code == 405, what
    assert client.put(f"{URL}{request.pk}/", {}, format="json").status_code == 405
    assert client.patch(f"{URL}{request.pk}/", {}, format="json").status_code == 405
    assert client.delete(f"{URL}{request.pk}/").status_code == 405
    assert SupportRequest.objects.filter(pk=request.pk, state="open").exists()


def test_the_schema_documents_the_endpoints_and_their_errors(sup):
    schema = api(sup, "clinician").get("/api/schema/", {"format": "json"}).json()
    create = schema["paths"][URL]["post"]
    assert {"201", "400", "401", "403", "409"} <= set(create["responses"])
    for what in ("take", "release", "done"):
        operation = schema["paths"][f"{URL}{{id}}/{what}/"]["post"]
        assert {"200", "400", "401", "403", "404", "409"} <= set(operation["responses"]), what
    listing = schema["paths"][URL]["get"]
    assert {p["name"] for p in listing["parameters"]} >= {"initiative", "state", "queue"}
