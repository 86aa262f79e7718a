"""/api/criteria/, /api/scores/, /api/rankings/: the pages' rules, through the same services."""

from __future__ import annotations

from rest_framework.test import APIClient

from initiatives.models import Criterion, Score
from initiatives.prioritisation import criteria_ensure_defaults, score_set

from .conftest import log


def api(wf, person: str | None) -> APIClient:
    client = APIClient()
    if person:
        client.force_authenticate(wf.people[person])
    return client


def ids(forum) -> dict[str, int]:
    return {c.name.lower(): c.pk for c in criteria_ensure_defaults(forum)}


# --- Criteria ----------------------------------------------------------------------------------


def test_criteria_are_read_by_staff_and_start_with_the_stated_five(wf):
    forum = wf.forums["dept"]
    response = api(wf, "clinician").get(f"/api/criteria/?forum={forum.pk}")
    assert response.status_code == 200
    rows = response.json()["results"]
    assert [r["name"] for r in rows] == ["Impact", "Evidence", "Effort", "Reach", "Alignment"]
    assert [r["higher_is_better"] for r in rows] == [True, True, False, True, True]
    one = api(wf, "clinician").get(f"/api/criteria/{rows[0]['id']}/")
    assert one.status_code == 200 and one.json()["weight"] == "1.00"
    assert api(wf, None).get("/api/criteria/").status_code in (401, 403)
    unit = api(wf, "clinician").get(f"/api/criteria/?forum={wf.forums['unit'].pk}")
    assert unit.status_code == 200 and unit.json()["results"] == []
    assert api(wf, "clinician").get("/api/criteria/?forum=x").status_code == 400
    assert api(wf, "clinician").get("/api/criteria/999999/").status_code == 404


def test_only_the_chair_writes_criteria(wf):
    forum = wf.forums["dept"]
    body = {"forum": forum.pk, "name": "Safety", "weight": "2"}
    for person in ("dept_member", "other_dept_chair", "clinician"):
        assert api(wf, person).post("/api/criteria/", body, format="json").status_code == 403
    made = api(wf, "dept_chair").post("/api/criteria/", body, format="json")
    assert made.status_code == 201 and made.json()["position"] == 5
    again = api(wf, "dept_chair").post("/api/criteria/", body | {"name": "safety"}, format="json")
    assert again.status_code == 409 and again.json()["code"] == "conflict"
    assert "already has a criterion called “Safety”" in again.json()["detail"]
    assert Criterion.objects.filter(forum=forum, name__iexact="safety").count() == 1
    negative = api(wf, "dept_chair").post(
        "/api/criteria/", body | {"name": "Cost", "weight": "-1"}, format="json"
    )
    assert negative.status_code == 400
    unit = api(wf, "chair").post(
        "/api/criteria/", body | {"forum": wf.forums["unit"].pk}, format="json"
    )
    assert unit.status_code == 404  # not a forum that prioritises
    pk = made.json()["id"]
    assert (
        api(wf, "dept_member").patch(f"/api/criteria/{pk}/", {"weight": "3"}, format="json")
    ).status_code == 403
    changed = api(wf, "dept_chair").patch(
        f"/api/criteria/{pk}/", {"weight": "3", "active": False}, format="json"
    )
    assert changed.status_code == 200
    assert changed.json()["weight"] == "3.00" and changed.json()["active"] is False
    assert api(wf, "dept_chair").delete(f"/api/criteria/{pk}/").status_code == 405


# --- Scores ------------------------------------------------------------------------------------


def test_a_member_sets_scores_twice_and_keeps_one_row_each(wf):
    forum = wf.forums["dept"]
    idea = log(wf, "dept")
    c = ids(forum)
    body = {
        "initiative": idea.pk,
        "forum": forum.pk,
        "scores": {str(c["impact"]): 4, str(c["effort"]): 2},
    }
    for _ in range(2):
        response = api(wf, "dept_member").post("/api/scores/", body, format="json")
        assert response.status_code == 200
    data = response.json()
    assert data["forum"] == forum.pk
    assert sorted(s["value"] for s in data["scores"]) == [2, 4]
    assert Score.objects.filter(initiative=idea).count() == 2
    # null takes one back.
    back = api(wf, "dept_member").post(
        "/api/scores/",
        {"initiative": idea.pk, "forum": forum.pk, "scores": {str(c["effort"]): None}},
        format="json",
    )
    assert back.status_code == 200 and len(back.json()["scores"]) == 1


def test_wrong_values_are_refused_naming_the_criterion(wf):
    forum = wf.forums["dept"]
    idea = log(wf, "dept")
    c = ids(forum)
    for bad in (0, 6, "x"):
        response = api(wf, "dept_member").post(
            "/api/scores/",
            {
                "initiative": idea.pk,
                "forum": forum.pk,
                "scores": {str(c["impact"]): 3, str(c["reach"]): bad},
            },
            format="json",
        )
        assert response.status_code == 400, bad
        assert response.json()["code"] == "bad_value"
        assert response.json()["errors"] == {
            f"criterion_{c['reach']}": ["Reach: give a whole number from 1 to 5."]
        }
    assert not Score.objects.exists()


def test_scoring_is_for_the_forums_members_only(wf):
    forum = wf.forums["dept"]
    idea = log(wf, "dept")
    c = ids(forum)
    body = {"initiative": idea.pk, "forum": forum.pk, "scores": {str(c["impact"]): 4}}
    for person in ("other_dept_chair", "clinician", "board", "admin"):
        response = api(wf, person).post("/api/scores/", body, format="json")
        assert response.status_code == 403, person
    assert api(wf, None).post("/api/scores/", body, format="json").status_code in (401, 403)
    missing = api(wf, "dept_member").post(
        "/api/scores/", body | {"initiative": 999999}, format="json"
    )
    assert missing.status_code == 404
    # A criterion of another forum than the one named: no such criterion there.
    board = ids(wf.forums["board"])
    other = api(wf, "dept_member").post(
        "/api/scores/", body | {"scores": {str(board["impact"]): 4}}, format="json"
    )
    assert other.status_code == 404
    elsewhere = api(wf, "board").post(
        "/api/scores/",
        {
            "initiative": idea.pk,
            "forum": wf.forums["board"].pk,
            "scores": {str(board["impact"]): 4},
        },
        format="json",
    )
    assert elsewhere.status_code == 409 and elsewhere.json()["code"] == "conflict"
    assert not Score.objects.exists()


def test_one_reads_changes_and_removes_only_ones_own_scores(wf):
    forum = wf.forums["dept"]
    idea = log(wf, "dept")
    c = ids(forum)
    score_set(user=wf.people["dept_member"], initiative=idea, scores={c["impact"]: 4})
    score_set(user=wf.people["dept_chair"], initiative=idea, scores={c["impact"]: 2})
    mine = api(wf, "dept_member").get(f"/api/scores/?initiative={idea.pk}&forum={forum.pk}")
    assert mine.status_code == 200
    assert [s["value"] for s in mine.json()["results"]] == [4]
    theirs = Score.objects.get(member=wf.people["dept_chair"])
    assert api(wf, "dept_member").get(f"/api/scores/{theirs.pk}/").status_code == 404
    assert (
        api(wf, "dept_member").put(f"/api/scores/{theirs.pk}/", {"value": 5}, format="json")
    ).status_code == 404
    own = Score.objects.get(member=wf.people["dept_member"])
    changed = api(wf, "dept_member").put(f"/api/scores/{own.pk}/", {"value": 5}, format="json")
    assert changed.status_code == 200 and changed.json()["value"] == 5
    assert (
        api(wf, "dept_member").patch(f"/api/scores/{own.pk}/", {"value": 7}, format="json")
    ).status_code == 400
    assert api(wf, "dept_member").delete(f"/api/scores/{own.pk}/").status_code == 204
    assert api(wf, "dept_member").delete(f"/api/scores/{own.pk}/").status_code == 404
    assert Score.objects.filter(initiative=idea).count() == 1


# --- Rankings ----------------------------------------------------------------------------------


def test_rankings_give_the_aggregate_but_no_one_elses_scores(wf):
    forum = wf.forums["dept"]
    a = log(wf, "dept", title="A")
    log(wf, "dept", title="B")
    c = ids(forum)
    score_set(user=wf.people["dept_member"], initiative=a, scores={c["impact"]: 5, c["effort"]: 1})
    score_set(user=wf.people["dept_chair"], initiative=a, scores={c["impact"]: 3})
    listed = api(wf, "clinician").get("/api/rankings/")
    assert listed.status_code == 200
    assert {f["id"] for f in listed.json()} == {
        wf.forums[k].pk for k in ("dept", "dept_b", "board")
    }
    response = api(wf, "dept_member").get(f"/api/rankings/{forum.pk}/")
    assert response.status_code == 200
    data = response.json()
    assert "median" in data["tie_rule"]
    first, second = data["rows"]
    assert (first["title"], first["rank"], first["scorers"]) == ("A", 1, 2)
    assert first["mean"] == 4.0 and first["median"] == 4.0 and first["my_score"] == 5.0
    assert first["criterion_means"][str(c["effort"])] == 1.0
    assert (second["title"], second["rank"], second["mean"]) == ("B", None, None)
    assert "member_scores" not in first
    assert (
        api(wf, "clinician").get(f"/api/rankings/{forum.pk}/").json()["rows"][0]["my_score"] is None
    )
    assert api(wf, "clinician").get(f"/api/rankings/{wf.forums['unit'].pk}/").status_code == 404
    assert api(wf, None).get(f"/api/rankings/{forum.pk}/").status_code in (401, 403)
    assert api(wf, "dept_chair").post("/api/rankings/", {}).status_code == 405


def test_the_schema_documents_the_endpoints_and_their_errors(wf):
    schema = api(wf, "clinician").get("/api/schema/?format=json").json()
    paths = schema["paths"]
    for path in ("/api/criteria/", "/api/scores/", "/api/rankings/{id}/", "/api/scores/{id}/"):
        assert path in paths, path
    assert {"400", "403", "409"} <= set(paths["/api/scores/"]["post"]["responses"])
    assert {"401", "404"} <= set(paths["/api/rankings/{id}/"]["get"]["responses"])
    assert {"400", "403"} <= set(paths["/api/criteria/"]["post"]["responses"])
