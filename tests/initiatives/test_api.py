"""The initiatives API: the same rules as the pages, the table's steps, refusals as 4xx."""

from __future__ import annotations

from collections import deque

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from rest_framework.test import APIClient

from initiatives import workflow
from initiatives.enums import InitiativeKind, OriginKind, State
from initiatives.models import Activity, Initiative, PDSACycle
from initiatives.services import initiative_transition
from initiatives.workflow import Move
from tests.factories import MeasureFactory

from .conftest import PERSONAS, log

pytestmark = pytest.mark.django_db


def api(wf, person) -> APIClient:
    client = APIClient()
    if person != "anonymous":
        client.force_authenticate(wf.people[person])
    return client


def steps_url(initiative) -> str:
    return f"/api/initiatives/{initiative.pk}/transitions/"


NEW = {
    "title": "Walks after lunch",
    "kind": InitiativeKind.IDEA,
    "origin_kind": OriginKind.UNIT,
    "origin_unit": "AFF-01",
    "measures": ["local-walks", "honos-total"],
    "effort": "small",
}


# -- reading -----------------------------------------------------------------------------------


@pytest.mark.parametrize("person", ["clinician", "outsider", "board", "admin"])
def test_every_member_of_staff_reads_initiatives(wf, person):
    idea = log(wf, "unit", measures=[wf.measures["honos"]])
    client = api(wf, person)
    listed = client.get("/api/initiatives/")
    assert listed.status_code == 200 and listed.data["count"] == 1
    one = client.get(f"/api/initiatives/{idea.pk}/")
    assert one.status_code == 200
    assert one.data["state"] == State.LOGGED and one.data["forum"]["id"] == idea.forum_id
    assert one.data["measures"] == ["honos-total"] and one.data["version"] == 0
    history = client.get(f"/api/initiatives/{idea.pk}/activities/")
    assert [a["transition"] for a in history.data] == [workflow.LOG_NAME]


def test_anonymous_and_unknown(wf):
    idea = log(wf, "unit")
    anonymous = api(wf, "anonymous")
    for url in (
        "/api/initiatives/",
        f"/api/initiatives/{idea.pk}/",
        steps_url(idea),
        "/api/pdsa-cycles/",
        "/api/workflow/",
    ):
        assert anonymous.get(url).status_code in (401, 403), url
    assert anonymous.post(steps_url(idea), {"to_state": "local_testing"}).status_code in (401, 403)
    client = api(wf, "chair")
    assert client.get(f"/api/initiatives/{idea.pk + 99}/").status_code == 404
    assert client.post(f"/api/initiatives/{idea.pk + 99}/transitions/", {}).status_code == 404


def test_an_inactive_account_sees_nothing(wf):
    idea = log(wf, "unit")
    chair = wf.people["chair"]
    chair.is_active = False
    chair.save()
    client = api(wf, "chair")
    assert client.get(f"/api/initiatives/{idea.pk}/").status_code in (401, 403, 404)


def test_the_list_filters_as_the_page_does(wf):
    walks = log(wf, "unit", title="Walks after lunch")
    guideline = log(wf, "dept", title="Sleep guideline")
    initiative_transition(initiative=walks, user=wf.people["chair"], transition="start_testing")
    client = api(wf, "chair")

    def ids(**query):
        response = client.get("/api/initiatives/", query)
        assert response.status_code == 200, response.data
        return [row["id"] for row in response.data["results"]]

    assert set(ids()) == {walks.pk, guideline.pk}
    assert ids(state="local_testing") == [walks.pk]
    assert ids(forum=wf.forums["dept"].pk) == [guideline.pk]
    assert ids(kind="innovation") == [guideline.pk]
    assert ids(origin="unit") == [walks.pk]
    assert ids(q="sleep") == [guideline.pk]
    assert ids(mine="true") == [walks.pk]
    assert ids(sort="title") == [guideline.pk, walks.pk]
    assert ids(sort="-title") == [walks.pk, guideline.pk]
    assert client.get("/api/initiatives/", {"state": "flying"}).status_code == 400
    assert client.get("/api/initiatives/", {"sort": "password"}).status_code == 400


def _queries(fetch) -> int:
    fetch()
    with CaptureQueriesContext(connection) as captured:
        response = fetch()
    assert response.status_code == 200
    return len(captured)


def test_list_queries_do_not_grow(wf):
    client = api(wf, "clinician")
    log(wf, "unit", measures=[wf.measures["honos"]])
    one = _queries(lambda: client.get("/api/initiatives/"))
    for i in range(6):
        log(wf, "unit" if i % 2 else "dept", title=f"Idea {i}", measures=[wf.measures["honos"]])
    assert _queries(lambda: client.get("/api/initiatives/")) == one


# -- logging and editing -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("person", "members_may_log", "status"),
    [
        ("chair", False, 201),
        ("clinician", False, 403),
        ("clinician", True, 201),
        ("other_unit_chair", False, 403),
        ("other_unit_chair", True, 403),
        ("outsider", False, 403),
        ("anonymous", False, 403),
    ],
)
def test_who_may_log_through_the_api(wf, person, members_may_log, status):
    forum = wf.forums["unit"]
    forum.members_may_log = members_may_log
    forum.save()
    response = api(wf, person).post("/api/initiatives/", {**NEW, "forum": forum.pk}, format="json")
    if person == "anonymous":
        assert response.status_code in (401, 403)
        return
    assert response.status_code == status, response.data
    if status == 201:
        created = Initiative.objects.get()
        assert response.data["id"] == created.pk and response.data["state"] == State.LOGGED
        assert sorted(response.data["measures"]) == ["honos-total", "local-walks"]
        assert created.activities.count() == 1
    else:
        assert response.data["code"] == "not_permitted"
        assert not Initiative.objects.exists()


def test_logging_refusals_name_their_field(wf):
    client = api(wf, "chair")
    external = {**NEW, "forum": wf.forums["unit"].pk, "origin_kind": "literature"}
    external.pop("origin_unit")
    response = client.post("/api/initiatives/", external, format="json")
    assert response.status_code == 400
    assert response.data["code"] == "reference_required"
    assert "origin_reference" in response.data["errors"]
    other = MeasureFactory(code="b-only", scope="unit", unit=wf.b1)
    wrong = client.post(
        "/api/initiatives/",
        {**NEW, "forum": wf.forums["unit"].pk, "measures": ["b-only"]},
        format="json",
    )
    assert wrong.status_code == 400 and "measures" in wrong.data["errors"], other
    assert client.post("/api/initiatives/", {"title": "x"}, format="json").status_code == 400
    assert not Initiative.objects.exists()


def test_editing_through_the_api(wf):
    idea = log(wf, "unit", title="Old")
    url = f"/api/initiatives/{idea.pk}/"
    assert api(wf, "clinician").patch(url, {"title": "New"}, format="json").status_code == 403
    chair = api(wf, "chair")
    response = chair.patch(url, {"title": "New", "measures": ["care-plan"]}, format="json")
    assert response.status_code == 200
    assert response.data["title"] == "New" and response.data["measures"] == ["care-plan"]
    assert response.data["version"] == 0
    initiative_transition(initiative=idea, user=wf.people["chair"], transition="start_testing")
    stale = chair.patch(url, {"title": "Newer", "version": 0}, format="json")
    assert stale.status_code == 409 and stale.data["code"] == "stale"
    assert chair.put(url, {"title": "x"}, format="json").status_code == 405
    assert chair.delete(url).status_code == 405
    idea.refresh_from_db()
    assert idea.title == "New"


# -- transitions ---------------------------------------------------------------------------------


def _every_place(wf) -> list[Initiative]:
    """An initiative at every (state, forum) the table can reach from the three entries,
    each reached by the admin along the shortest path (a breadth-first walk of the table)."""
    found: dict[tuple[str, int], list[tuple[str, str]]] = {}
    queue = deque()
    for entry in ("unit", "dept", "board"):
        idea = log(wf, entry)
        queue.append((entry, []))
        found[(idea.state, idea.forum_id)] = (entry, [])
        idea.delete()
    places = []
    while queue:
        entry, path = queue.popleft()
        idea = log(wf, entry, title=f"{entry} via {len(path)} steps")
        for name, dest in path:
            step = workflow.BY_NAME[name]
            initiative_transition(
                initiative=idea,
                user=wf.people["admin"],
                transition=name,
                via=step.via,
                comment="As decided.",
                target_forum=wf.forums[dest] if step.move == Move.UNIT_FORUM else None,
            )
        places.append(idea)
        for step in workflow.transitions_from(idea.state, idea.forum.kind):
            dest = "unit_a2" if step.move == Move.UNIT_FORUM else ""
            trial = Initiative.objects.select_related("forum").get(pk=idea.pk)
            from django.db import transaction

            try:
                with transaction.atomic():
                    initiative_transition(
                        initiative=trial,
                        user=wf.people["admin"],
                        transition=step.name,
                        via=step.via,
                        comment="As decided.",
                        target_forum=wf.forums[dest] if dest else None,
                    )
                    key = (trial.state, trial.forum_id)
                    raise _Undo
            except _Undo:
                pass
            except Exception:  # noqa: S112 - a step the table has but cannot go (no forum)
                continue
            if key not in found and len(path) < 8:
                found[key] = (entry, [*path, (step.name, dest)])
                queue.append((entry, [*path, (step.name, dest)]))
    return places


class _Undo(Exception):
    pass


def test_the_apis_steps_are_the_tables_for_every_state_and_person(wf):
    places = _every_place(wf)
    assert {p.state for p in places} >= {
        State.LOGGED,
        State.LOCAL_TESTING,
        State.ESCALATED_TO_DEPARTMENT,
        State.PRIORITISED,
        State.REFERRED_TO_BOARD,
        State.VOTING,
    }
    clients = {person: api(wf, person) for person in PERSONAS}
    checked = 0
    for initiative in places:
        initiative = Initiative.objects.select_related("forum").get(pk=initiative.pk)
        for person, client in clients.items():
            response = client.get(steps_url(initiative))
            assert response.status_code == 200
            expected = workflow.transitions_for(wf.people[person], initiative)
            assert [s["name"] for s in response.data] == [t.name for t in expected], (
                person,
                initiative.state,
            )
            assert [s["to_state"] for s in response.data] == [t.target for t in expected]
            assert [s["needs_comment"] for s in response.data] == [
                t.needs_comment for t in expected
            ]
            assert [s["via"] for s in response.data] == [t.via for t in expected]
            checked += 1
    assert checked == len(places) * len(PERSONAS)


def test_a_step_through_the_api_and_the_same_one_again(wf):
    idea = log(wf, "unit")
    client = api(wf, "chair")
    first = client.post(steps_url(idea), {"to_state": "local_testing", "version": 0}, format="json")
    assert first.status_code == 201
    assert (first.data["from_state"], first.data["to_state"]) == ("logged", "local_testing")
    assert first.data["actor"] == "chair"
    again = client.post(steps_url(idea), {"to_state": "local_testing", "version": 0}, format="json")
    assert again.status_code == 409 and again.data["code"] == "stale"
    # Without a version the table answers: no step from local testing to local testing.
    no_version = client.post(steps_url(idea), {"to_state": "local_testing"}, format="json")
    assert no_version.status_code == 400 and no_version.data["code"] == "no_such_step"
    assert Activity.objects.filter(initiative=idea).count() == 2


@pytest.mark.parametrize(
    ("person", "body", "status", "code"),
    [
        ("clinician", {"to_state": "local_testing"}, 403, "not_permitted"),
        ("other_unit_chair", {"to_state": "local_testing"}, 403, "not_permitted"),
        ("outsider", {"to_state": "local_testing"}, 403, "not_permitted"),
        ("chair", {"to_state": "voting"}, 400, "no_such_step"),
        ("chair", {"to_state": "escalated_to_department"}, 400, "comment_required"),
        ("chair", {"to_state": "flying"}, 400, None),
        ("chair", {}, 400, None),
        ("dept_chair", {"to_state": "local_testing"}, 403, "not_permitted"),
    ],
)
def test_refused_steps(wf, person, body, status, code):
    idea = log(wf, "unit")
    response = api(wf, person).post(steps_url(idea), body, format="json")
    assert response.status_code == status, response.data
    if code:
        assert response.data["code"] == code
    assert Activity.objects.filter(initiative=idea).count() == 1


def test_a_step_only_its_service_takes_is_refused_as_a_plain_call(wf):
    board_idea = log(wf, "board")
    via_steps = [t for t in workflow.transitions_for(wf.people["board_chair"], board_idea) if t.via]
    assert via_steps
    response = api(wf, "board_chair").post(
        steps_url(board_idea),
        {"to_state": via_steps[0].target, "comment": "Vote"},
        format="json",
    )
    assert response.status_code == 400 and response.data["code"] == "needs_form"


def test_handing_down_through_the_api_names_the_forum(wf):
    external = log(wf, "dept")
    client = api(wf, "dept_chair")
    offered = {s["name"]: s for s in client.get(steps_url(external)).data}
    hand_down = offered["hand_down"]
    assert hand_down["needs_target_forum"] is True
    assert {f["id"] for f in hand_down["target_forums"]} == {
        wf.forums["unit"].pk,
        wf.forums["unit_a2"].pk,
    }
    missing = client.post(
        steps_url(external), {"to_state": "local_testing", "comment": "Try"}, format="json"
    )
    assert missing.status_code == 400 and missing.data["code"] == "target_forum_required"
    done = client.post(
        steps_url(external),
        {"to_state": "local_testing", "comment": "Try", "target_forum": wf.forums["unit"].pk},
        format="json",
    )
    assert done.status_code == 201 and done.data["to_forum"] == wf.forums["unit"].pk


def test_wrong_methods_on_transitions(wf):
    idea = log(wf, "unit")
    client = api(wf, "chair")
    assert client.put(steps_url(idea), {}, format="json").status_code == 405
    assert client.delete(steps_url(idea)).status_code == 405
    assert client.post(f"/api/initiatives/{idea.pk}/activities/", {}).status_code == 405
    assert client.post("/api/workflow/", {}).status_code == 405


# -- PDSA cycles and the table -------------------------------------------------------------------


def test_pdsa_cycles_through_the_api(wf):
    idea = log(wf, "unit")
    other = log(wf, "dept")
    body = {
        "initiative": idea.pk,
        "unit": "AFF-01",
        "measure": "local-walks",
        "plan": "Walk after lunch",
        "start_date": "2025-03-03",
    }
    assert api(wf, "outsider").post("/api/pdsa-cycles/", body, format="json").status_code == 403
    assert (
        api(wf, "clinician")
        .post("/api/pdsa-cycles/", {**body, "unit": "AFF-02"}, format="json")
        .status_code
        == 403
    )
    created = api(wf, "clinician").post("/api/pdsa-cycles/", body, format="json")
    assert created.status_code == 201, created.data
    assert created.data["unit"] == "AFF-01" and created.data["created_by"] == "clinician"
    backwards = api(wf, "clinician").post(
        "/api/pdsa-cycles/", {**body, "end_date": "2025-01-01"}, format="json"
    )
    assert backwards.status_code == 400 and "end_date" in backwards.data["errors"]
    # Department A's secretary runs cycles in a2 too (a1's own measure is not a2's).
    elsewhere = {**body, "initiative": other.pk, "unit": "AFF-02"}
    secretary = api(wf, "dept_secretary")
    assert secretary.post("/api/pdsa-cycles/", elsewhere, format="json").status_code == 400
    elsewhere["measure"] = "honos-total"
    assert secretary.post("/api/pdsa-cycles/", elsewhere, format="json").status_code == 201
    assert PDSACycle.objects.count() == 2
    reader = api(wf, "board")
    assert reader.get("/api/pdsa-cycles/").data["count"] == 2
    by_unit = reader.get("/api/pdsa-cycles/", {"unit": "AFF-02"}).data["results"]
    assert [c["initiative"] for c in by_unit] == [other.pk]
    by_initiative = reader.get("/api/pdsa-cycles/", {"initiative": idea.pk}).data["results"]
    assert [c["unit"] for c in by_initiative] == ["AFF-01"]
    assert reader.get("/api/pdsa-cycles/", {"initiative": "x"}).status_code == 400


def test_the_workflow_endpoint_is_the_table(wf):
    response = api(wf, "clinician").get("/api/workflow/")
    assert response.status_code == 200
    assert [dict(row) for row in response.data] == workflow.describe()


def test_the_schema_has_the_paths_and_their_error_answers(wf):
    client = api(wf, "clinician")
    schema = client.get("/api/schema/", {"format": "json"}).json()
    paths = schema["paths"]
    for path in (
        "/api/initiatives/",
        "/api/initiatives/{id}/",
        "/api/initiatives/{id}/transitions/",
        "/api/initiatives/{id}/activities/",
        "/api/pdsa-cycles/",
        "/api/pdsa-cycles/{id}/",
        "/api/workflow/",
    ):
        assert path in paths, path
    post = paths["/api/initiatives/{id}/transitions/"]["post"]
    assert {"201", "400", "403", "404", "409"} <= set(post["responses"])
    assert "get" in paths["/api/initiatives/{id}/transitions/"]
    assert {"201", "400", "403"} <= set(paths["/api/initiatives/"]["post"]["responses"])
    assert "409" in paths["/api/initiatives/{id}/"]["patch"]["responses"]
    assert "put" not in paths["/api/initiatives/{id}/"]


def test_references_to_nothing_are_404_and_malformed_filters_400(wf):
    """What schemathesis holds the API to: a well-formed request naming something that does
    not exist is a 404; a filter outside its schema (a negative id, a boolean "null") 400."""
    client = api(wf, "chair")
    body = {**NEW, "forum": wf.forums["unit"].pk}
    assert (
        client.post("/api/initiatives/", {**body, "forum": 99999}, format="json").status_code == 404
    )
    assert (
        client.post("/api/initiatives/", {**body, "origin_unit": "NOPE"}, format="json").status_code
        == 404
    )
    assert (
        client.post("/api/initiatives/", {**body, "measures": ["nope"]}, format="json").status_code
        == 404
    )
    cycle = {"initiative": 99999, "unit": "AFF-01", "plan": "x", "start_date": "2025-01-01"}
    assert client.post("/api/pdsa-cycles/", cycle, format="json").status_code == 404
    assert client.get("/api/initiatives/12345678901234567890/").status_code == 404
    for query in ({"forum": -1}, {"forum": 2**40}, {"mine": "null"}, {"department": "x"}):
        assert client.get("/api/initiatives/", query).status_code == 400, query
    assert client.get("/api/initiatives/", {"forum": 99999}).data["count"] == 0
    assert not Initiative.objects.exists()


@pytest.mark.parametrize("name", ["sort", "state", "kind", "origin", "forum", "department", "mine"])
def test_an_empty_filter_is_refused(wf, name):
    assert api(wf, "chair").get("/api/initiatives/", {name: ""}).status_code == 400
    assert api(wf, "chair").get("/api/initiatives/", {"q": ""}).status_code == 200
