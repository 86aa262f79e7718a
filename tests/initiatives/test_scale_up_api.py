"""The scale-up API: plans through the service, adoptions (list, PATCH), effects (read)."""

from __future__ import annotations

from datetime import date

import pytest
from rest_framework.test import APIClient

from initiatives.enums import AdoptionState, State
from initiatives.models import Adoption, Initiative, ScaleUpPlan

from .scale_up_helpers import approved, in_a_month, plan
from .test_scale_up_effects import W, make_series, weeks


def _api(wf, person) -> APIClient:
    client = APIClient()
    client.default_format = "json"  # the endpoints take JSON only
    if person != "anonymous":
        client.force_authenticate(wf.people[person])
    return client


def _plan_body(wf, idea, **extra):
    body = {
        "initiative": idea.pk,
        "scope": "All wards.",
        "deadline": in_a_month().isoformat(),
        "units": ["AFF-01", "PSY-01"],
        "version": idea.version,
    }
    body.update(extra)
    return body


@pytest.mark.parametrize(
    ("person", "status"),
    [
        ("board_chair", 201),
        ("board_secretary", 201),
        ("board", 403),
        ("dept_chair", 403),
        ("outsider", 403),
        ("anonymous", 401),
    ],
)
def test_making_a_plan(wf, person, status):
    idea = approved(wf)
    response = _api(wf, person).post("/api/scale-up-plans/", _plan_body(wf, idea), format="json")
    assert response.status_code == status, response.content
    if status == 201:
        assert response.json()["scope"] == "All wards."
        assert sorted(a["unit"] for a in response.json()["adoptions"]) == ["AFF-01", "PSY-01"]
        assert Initiative.objects.get(pk=idea.pk).state == State.SCALING_UP
    else:
        assert not ScaleUpPlan.objects.exists()


def test_a_repeated_plan_is_refused_and_bad_fields_are_400(wf):
    idea = approved(wf)
    api = _api(wf, "board_chair")
    nowhere = api.post(
        "/api/scale-up-plans/", {**_plan_body(wf, idea), "initiative": 999999}, format="json"
    )
    assert nowhere.status_code == 404
    bad = api.post("/api/scale-up-plans/", _plan_body(wf, idea, units=[]), format="json")
    assert bad.status_code == 400 and bad.json()["code"] == "units_required"
    past = api.post(
        "/api/scale-up-plans/", _plan_body(wf, idea, deadline="2020-01-01"), format="json"
    )
    assert past.status_code == 400 and past.json()["errors"]["deadline"]
    assert api.post("/api/scale-up-plans/", _plan_body(wf, idea), format="json").status_code == 201
    again = api.post("/api/scale-up-plans/", _plan_body(wf, idea), format="json")
    assert again.status_code == 409  # the version read is old now
    assert ScaleUpPlan.objects.count() == 1
    unversioned = _plan_body(wf, idea)
    del unversioned["version"]
    assert api.post("/api/scale-up-plans/", unversioned, format="json").json()["code"] == (
        "not_from_state"
    )


def test_plans_are_read_by_everyone_logged_in(wf):
    idea = approved(wf)
    made = plan(wf, idea)
    response = _api(wf, "outsider").get(f"/api/scale-up-plans/{made.pk}/")
    assert response.status_code == 200 and len(response.json()["adoptions"]) == 3
    listed = _api(wf, "clinician").get(f"/api/scale-up-plans/?initiative={idea.pk}")
    assert [p["id"] for p in listed.json()["results"]] == [made.pk]
    assert _api(wf, "anonymous").get(f"/api/scale-up-plans/{made.pk}/").status_code == 401
    assert _api(wf, "outsider").get("/api/scale-up-plans/99999/").status_code == 404


def test_adoptions_list_filters(wf):
    first, second = approved(wf), approved(wf)
    plan(wf, first)
    plan(wf, second, units=[wf.a1])
    api = _api(wf, "clinician")
    assert api.get("/api/adoptions/").json()["count"] == 4
    by_initiative = api.get(f"/api/adoptions/?initiative={second.pk}").json()["results"]
    assert [(a["unit"], a["state"]) for a in by_initiative] == [("AFF-01", "planned")]
    assert api.get("/api/adoptions/?unit=psy-01").json()["count"] == 1
    assert api.get("/api/adoptions/?initiative=x").status_code == 400
    assert api.get("/api/scale-up-plans/?initiative=null").status_code == 400
    assert api.get("/api/scale-up-plans/?initiative=0").json()["count"] == 0
    assert api.get("/api/adoptions/?initiative=-7").json()["count"] == 0
    assert api.get(f"/api/scale-up-plans/?initiative={second.pk}").json()["count"] == 1
    assert api.get("/api/adoptions/?state=planned").json()["count"] == 4
    assert api.get("/api/adoptions/?state=adopted").json()["count"] == 0
    refused = api.get("/api/adoptions/?state=nirvana")
    assert refused.status_code == 400 and "state" in refused.json()
    assert _api(wf, "anonymous").get("/api/adoptions/").status_code == 401


@pytest.mark.parametrize(
    ("person", "status"),
    [("chair", 200), ("board_chair", 200), ("clinician", 403), ("other_unit_chair", 403)],
)
def test_patching_an_adoption(wf, person, status):
    idea = approved(wf)
    plan(wf, idea)
    adoption = Adoption.objects.get(initiative=idea, unit=wf.a1)
    response = _api(wf, person).patch(
        f"/api/adoptions/{adoption.pk}/", {"state": "started", "version": 0}, format="json"
    )
    assert response.status_code == status, response.content
    adoption.refresh_from_db()
    assert adoption.state == (AdoptionState.STARTED if status == 200 else AdoptionState.PLANNED)


def test_adoption_refusals_over_the_api(wf):
    idea = approved(wf)
    plan(wf, idea)
    adoption = Adoption.objects.get(initiative=idea, unit=wf.a1)
    api, url = _api(wf, "chair"), f"/api/adoptions/{adoption.pk}/"
    skipped = api.patch(url, {"state": "adopted", "adaptation": "x", "adopted_on": "2024-01-01"})
    assert skipped.status_code == 400 and skipped.json()["code"] == "bad_move"
    assert api.patch(url, {"state": "started", "version": 0}).status_code == 200
    how = api.patch(url, {"state": "adopted", "adopted_on": "2024-01-01", "version": 1})
    assert how.status_code == 400 and how.json()["code"] == "adaptation_required"
    done = api.patch(
        url, {"state": "adopted", "adaptation": "Ours.", "adopted_on": "2024-01-01", "version": 1}
    )
    assert done.status_code == 200 and done.json()["version"] == 2
    stale = api.patch(
        url, {"state": "adopted", "adaptation": "Again.", "adopted_on": "2024-01-01", "version": 1}
    )
    assert stale.status_code == 409 and stale.json()["code"] == "stale"
    assert api.put(url, {"state": "started"}).status_code == 405
    assert api.delete(url).status_code == 405
    assert api.post("/api/adoptions/", {}).status_code == 405
    assert api.patch(url, {"state": "started"}, format="multipart").status_code == 415


def test_the_effects_publish_only_shown_periods(wf):
    honos = wf.measures["honos"]
    idea = approved(wf, measures=[honos])
    plan(wf, idea)
    Adoption.objects.filter(initiative=idea, unit=wf.a1).update(
        state=AdoptionState.ADOPTED, adopted_on=date(2024, 3, 13), adaptation="Ours."
    )
    make_series(
        honos,
        wf.a1,
        [*weeks(W, 4), date(2024, 3, 11), *weeks(date(2024, 3, 18), 3)],
        [10, 12, 987.5, 14, 50, 8, 6, 7],
        suppressed={2},
    )
    response = _api(wf, "outsider").get(f"/api/effects/{idea.pk}/")
    assert response.status_code == 200
    (measure,) = response.json()["measures"]
    (row,) = measure["units"]
    assert (row["unit"], row["before"], row["after"], row["change"], row["verdict"]) == (
        "AFF-01",
        {"mean": 12.0, "periods": 3},
        {"mean": 7.0, "periods": 3},
        -5.0,
        "better",
    )
    assert measure["compared_with"] == "plan" and row["comparison"]["units"] == 0
    assert b"987" not in response.content
    assert _api(wf, "anonymous").get(f"/api/effects/{idea.pk}/").status_code == 401
    assert _api(wf, "outsider").get("/api/effects/99999/").status_code == 404
    assert _api(wf, "outsider").post(f"/api/effects/{idea.pk}/").status_code == 405


def test_the_schema_describes_the_endpoints(wf):
    response = _api(wf, "outsider").get("/api/schema/", HTTP_ACCEPT="application/json")
    assert response.status_code == 200
    paths = response.json()["paths"]
    assert "409" in paths["/api/adoptions/{id}/"]["patch"]["responses"]
    assert "403" in paths["/api/scale-up-plans/"]["post"]["responses"]
    assert "/api/effects/{id}/" in paths
