"""/api/voting-rounds/: reading rounds, opening, closing early, casting and reading votes.

Each write for every kind of person, the wrong method, the same post twice; ballots secret
until the round closes."""

from __future__ import annotations

import pytest
from rest_framework.test import APIClient

from initiatives.enums import RoundStatus, State
from initiatives.models import Initiative, Vote, VotingRound
from initiatives.voting import vote_cast, voting_round_close

from .conftest import log
from .test_voting import opened, referred, soon

ROUNDS = "/api/voting-rounds/"


def api(wf, person: str | None) -> APIClient:
    client = APIClient()
    if person:
        client.force_authenticate(wf.people[person])
    return client


def _round_url(voting_round, tail: str = "") -> str:
    return f"{ROUNDS}{voting_round.pk}/{tail}"


# --- Reading ---------------------------------------------------------------------------------


def test_every_member_of_staff_reads_rounds_and_nobody_else(wf):
    voting_round = opened(wf)
    for person in ("clinician", "board", "dept_chair", "board_chair"):
        response = api(wf, person).get(ROUNDS)
        assert response.status_code == 200, person
        assert [r["id"] for r in response.json()["results"]] == [voting_round.pk]
    assert api(wf, None).get(ROUNDS).status_code in (401, 403)
    assert api(wf, None).get(_round_url(voting_round)).status_code in (401, 403)


def test_an_open_round_shows_who_has_voted_but_no_result(wf):
    voting_round = opened(wf)
    vote_cast(user=wf.people["board"], round=voting_round, choice="reject", comment="Secret")
    body = api(wf, "clinician").get(_round_url(voting_round)).json()
    assert body["status"] == "open" and body["voters"] == ["board"]
    assert body["votes_cast"] == 1 and body["eligible"] == 4 and body["quorum"] == 3
    assert {body[k] for k in ("approve_count", "reject_count", "outcome", "quorum_met")} == {None}
    assert "Secret" not in str(body)


def test_filters_and_a_bad_filter(wf):
    first = opened(wf, quorum=1)
    voting_round_close(round=first, user=wf.people["board_chair"])
    second = opened(wf, log(wf, "board"))
    client = api(wf, "board")
    assert [r["id"] for r in client.get(ROUNDS, {"status": "open"}).json()["results"]] == [
        second.pk
    ]
    closed = client.get(ROUNDS, {"status": "closed"}).json()["results"]
    assert [r["id"] for r in closed] == [first.pk] and closed[0]["outcome"] == "no_quorum"
    by_initiative = client.get(ROUNDS, {"initiative": first.initiative_id}).json()["results"]
    assert [r["id"] for r in by_initiative] == [first.pk]
    assert client.get(ROUNDS, {"status": "maybe"}).status_code == 400
    assert client.get(f"{ROUNDS}999999/").status_code == 404


# --- Opening ---------------------------------------------------------------------------------


def _open_body(initiative, **extra):
    return {"initiative": initiative.pk, "deadline": soon().isoformat(), "quorum": 2, **extra}


def test_the_chair_opens_a_round_and_the_same_post_again_opens_none(wf):
    idea = referred(wf)
    client = api(wf, "board_chair")
    response = client.post(ROUNDS, _open_body(idea, comment="Please read."), format="json")
    assert response.status_code == 201
    body = response.json()
    assert (body["status"], body["quorum"], body["initiative"]) == ("open", 2, idea.pk)
    again = client.post(ROUNDS, _open_body(idea), format="json")
    assert again.status_code == 400 and again.json()["code"] == "not_from_state"
    assert VotingRound.objects.count() == 1
    assert Initiative.objects.get(pk=idea.pk).state == State.VOTING


@pytest.mark.parametrize("person", ["board", "board_secretary", "dept_chair", "clinician"])
def test_others_may_not_open_a_round(wf, person):
    idea = referred(wf)
    response = api(wf, person).post(ROUNDS, _open_body(idea), format="json")
    assert response.status_code == 403 and response.json()["code"] == "not_permitted"
    assert not VotingRound.objects.exists()


def test_opening_anonymously_or_with_bad_numbers(wf):
    idea = referred(wf)
    assert api(wf, None).post(ROUNDS, _open_body(idea), format="json").status_code in (401, 403)
    chair = api(wf, "board_chair")
    response = chair.post(ROUNDS, _open_body(idea, quorum=9), format="json")
    assert response.status_code == 400 and response.json()["errors"]["quorum"]
    response = chair.post(ROUNDS, _open_body(idea, deadline="2020-01-01T00:00:00Z"), format="json")
    assert response.status_code == 400 and response.json()["code"] == "bad_deadline"
    assert chair.post(ROUNDS, {"quorum": 2}, format="json").status_code == 400
    assert not VotingRound.objects.exists()


def test_rounds_are_not_changed_or_deleted_by_hand(wf):
    voting_round = opened(wf)
    chair = api(wf, "board_chair")
    assert chair.put(_round_url(voting_round), {"status": "closed"}).status_code == 405
    assert chair.patch(_round_url(voting_round), {"status": "closed"}).status_code == 405
    assert chair.delete(_round_url(voting_round)).status_code == 405
    voting_round.refresh_from_db()
    assert voting_round.status == RoundStatus.OPEN


# --- Closing ---------------------------------------------------------------------------------


def test_the_chair_closes_early_and_again_is_a_409(wf):
    voting_round = opened(wf, quorum=1)
    vote_cast(user=wf.people["board"], round=voting_round, choice="approve")
    client = api(wf, "board_chair")
    response = client.post(_round_url(voting_round, "close/"), {"comment": "Done."}, format="json")
    assert response.status_code == 200
    body = response.json()
    assert (body["status"], body["outcome"], body["approve_count"], body["quorum_met"]) == (
        "closed",
        "approved",
        1,
        True,
    )
    assert body["closed_by"] == "board_chair" and body["decision"]
    again = client.post(_round_url(voting_round, "close/"), {}, format="json")
    assert again.status_code == 409 and again.json()["code"] == "conflict"


@pytest.mark.parametrize("person", ["board", "dept_chair", "clinician"])
def test_others_may_not_close(wf, person):
    voting_round = opened(wf)
    response = api(wf, person).post(_round_url(voting_round, "close/"), {}, format="json")
    assert response.status_code == 403
    voting_round.refresh_from_db()
    assert voting_round.status == RoundStatus.OPEN


def test_closing_wants_a_post_and_a_login(wf):
    voting_round = opened(wf)
    assert api(wf, "board_chair").get(_round_url(voting_round, "close/")).status_code == 405
    assert api(wf, None).post(_round_url(voting_round, "close/")).status_code in (401, 403)
    voting_round.refresh_from_db()
    assert voting_round.status == RoundStatus.OPEN


# --- Votes -----------------------------------------------------------------------------------


def test_a_member_casts_and_the_same_post_twice_leaves_one_vote(wf):
    voting_round = opened(wf)
    client = api(wf, "board")
    for _ in range(2):
        response = client.post(
            _round_url(voting_round, "votes/"),
            {"choice": "approve", "interest_declared": True},
            format="json",
        )
        assert response.status_code == 200
        assert response.json()["choice"] == "approve" and response.json()["voter"] == "board"
    changed = client.post(_round_url(voting_round, "votes/"), {"choice": "abstain"}, format="json")
    assert changed.json()["choice"] == "abstain"
    assert list(Vote.objects.values_list("choice", "interest_declared")) == [("abstain", False)]


@pytest.mark.parametrize("person", ["dept_chair", "clinician", "admin"])
def test_non_members_may_not_vote(wf, person):
    voting_round = opened(wf)
    response = api(wf, person).post(
        _round_url(voting_round, "votes/"), {"choice": "approve"}, format="json"
    )
    assert response.status_code == 403 and response.json()["code"] == "not_permitted"
    assert not Vote.objects.exists()


def test_votes_anonymously_badly_or_on_a_closed_round(wf):
    voting_round = opened(wf)
    url = _round_url(voting_round, "votes/")
    assert api(wf, None).post(url, {"choice": "approve"}, format="json").status_code in (401, 403)
    member = api(wf, "board")
    assert member.post(url, {"choice": "yes"}, format="json").status_code == 400
    assert member.put(url, {"choice": "approve"}, format="json").status_code == 405
    voting_round_close(round=voting_round, user=wf.people["board_chair"])
    response = member.post(url, {"choice": "approve"}, format="json")
    assert response.status_code == 409 and "closed" in response.json()["detail"]
    assert not Vote.objects.exists()


def test_only_ones_own_vote_is_read_until_the_round_closes(wf):
    voting_round = opened(wf, quorum=1)
    vote_cast(user=wf.people["board"], round=voting_round, choice="approve", comment="Mine")
    vote_cast(user=wf.people["board_secretary"], round=voting_round, choice="reject")
    url = _round_url(voting_round, "votes/")
    assert [v["voter"] for v in api(wf, "board").get(url).json()] == ["board"]
    assert api(wf, "clinician").get(url).json() == []
    voting_round_close(round=voting_round, user=wf.people["board_chair"])
    after = api(wf, "clinician").get(url).json()
    assert sorted((v["voter"], v["choice"]) for v in after) == [
        ("board", "approve"),
        ("board_secretary", "reject"),
    ]


def test_the_schema_documents_the_voting_endpoints(wf):
    schema = api(wf, "board").get("/api/schema/", {"format": "json"}).json()
    paths = schema["paths"]
    assert {"/api/voting-rounds/", "/api/voting-rounds/{id}/close/"} <= set(paths)
    votes = paths["/api/voting-rounds/{id}/votes/"]
    assert {"200", "400", "403", "404", "409"} <= set(votes["post"]["responses"])
    assert {"201", "400", "403", "409"} <= set(paths["/api/voting-rounds/"]["post"]["responses"])
