"""The voting pages: the board's open rounds, a round's page and ballot, opening, closing,
and the panel on the initiative's page. Each write for every kind of person, the wrong
method, and the same post twice."""

from __future__ import annotations

import html
import re

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from initiatives.enums import RoundStatus, State
from initiatives.models import Initiative, Vote, VotingRound
from initiatives.voting import vote_cast, voting_round_close

from .conftest import log
from .test_voting import opened, referred, soon

PEOPLE = ("board_chair", "board", "dept_chair", "clinician")
HTMX = {"HTTP_HX_REQUEST": "true"}


def client_for(wf, person: str | None) -> Client:
    client = Client()
    if person:
        client.force_login(wf.people[person])
    return client


def _login_redirect(response) -> bool:
    return response.status_code == 302 and "/accounts/login/" in response["Location"]


# --- The board's list ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("person", "status"),
    [("board_chair", 200), ("board", 200), ("dept_chair", 403), ("clinician", 403)],
)
def test_the_board_page_lists_open_rounds_for_board_members(wf, person, status):
    voting_round = opened(wf)
    closed = opened(wf, log(wf, "board", title="Closed one"), quorum=1)
    voting_round_close(round=closed, user=wf.people["board_chair"])
    response = client_for(wf, person).get(reverse("initiatives:voting-board"))
    assert response.status_code == status
    page = response.content.decode()
    if status == 200:
        assert voting_round.initiative.title in page
        assert reverse("initiatives:voting-round", args=[voting_round.pk]) in page
        assert "Closed one" not in page
    else:
        assert "members of a division board" in page


def test_the_board_page_wants_a_login_and_a_get(wf):
    url = reverse("initiatives:voting-board")
    assert _login_redirect(client_for(wf, None).get(url))
    assert client_for(wf, "board").post(url).status_code == 405


def test_the_board_page_shows_whether_i_have_voted(wf):
    mine, other = opened(wf), opened(wf, log(wf, "board", title="Second"))
    vote_cast(user=wf.people["board"], round=mine, choice="approve")
    page = client_for(wf, "board").get(reverse("initiatives:voting-board")).content.decode()
    assert page.index(mine.initiative.title) < page.index("Second")  # deadlines equal: by pk
    row_mine = page[page.index(mine.initiative.title) : page.index("Second")]
    assert "cast" in row_mine and "not yet" in page[page.index("Second") :]
    assert other.pk


def test_the_board_page_asks_the_same_queries_for_one_round_and_many(wf):
    client = client_for(wf, "board")
    opened(wf)
    with CaptureQueriesContext(connection) as one:
        assert client.get(reverse("initiatives:voting-board")).status_code == 200
    for i in range(3):
        voting_round = opened(wf, log(wf, "board", title=f"More {i}"))
        vote_cast(user=wf.people["board"], round=voting_round, choice="reject")
    with CaptureQueriesContext(connection) as many:
        assert client.get(reverse("initiatives:voting-board")).status_code == 200
    assert len(many) == len(one)


# --- A round's page --------------------------------------------------------------------------


def test_while_open_the_page_shows_who_has_voted_not_how(wf):
    voting_round = opened(wf)
    vote_cast(
        user=wf.people["board_secretary"],
        round=voting_round,
        choice="reject",
        comment="A reason of my own",
    )
    url = reverse("initiatives:voting-round", args=[voting_round.pk])
    for person in PEOPLE:
        page = client_for(wf, person).get(url).content.decode()
        assert "board_secretary" in page, person
        assert "A reason of my own" not in page, person
        assert 'class="table ballots"' not in page, person
    assert _login_redirect(client_for(wf, None).get(url))


def test_after_closing_the_page_shows_the_result_and_every_ballot(wf):
    voting_round = opened(wf, quorum=2)
    vote_cast(user=wf.people["board"], round=voting_round, choice="approve")
    vote_cast(
        user=wf.people["dept_chair_on_board"],
        round=voting_round,
        choice="approve",
        comment="Works for us",
    )
    vote_cast(user=wf.people["board_secretary"], round=voting_round, choice="reject")
    voting_round_close(round=voting_round, user=wf.people["board_chair"])
    page = (
        client_for(wf, "clinician")
        .get(reverse("initiatives:voting-round", args=[voting_round.pk]))
        .content.decode()
    )
    assert "<td>2</td><td>1</td><td>0</td>" in page
    assert "Approved" in page and "Works for us" in page
    assert "from its department" in page  # dept_chair_on_board's vote
    initiative_url = reverse("initiatives:initiative", args=[voting_round.initiative_id])
    assert f"{initiative_url}#timeline-heading" in page
    assert "Cast my vote" not in page and "Close the vote" not in page


def test_a_round_one_may_not_see_is_a_404(wf):
    url = reverse("initiatives:voting-round", args=[987654])
    assert client_for(wf, "board").get(url).status_code == 404


# --- Casting ---------------------------------------------------------------------------------


def _vote_url(voting_round) -> str:
    return reverse("initiatives:voting-vote", args=[voting_round.pk])


@pytest.mark.parametrize(("person", "ok"), [("board_chair", True), ("board", True)])
def test_members_vote_from_the_page(wf, person, ok):
    voting_round = opened(wf)
    response = client_for(wf, person).post(
        _vote_url(voting_round), {"choice": "approve", "comment": "Yes."}
    )
    assert response.status_code == 302
    assert response["Location"] == reverse("initiatives:voting-round", args=[voting_round.pk])
    vote = Vote.objects.get()
    assert (vote.voter, vote.choice, vote.comment) == (wf.people[person], "approve", "Yes.")


@pytest.mark.parametrize("person", ["dept_chair", "clinician", "admin"])
def test_others_are_refused_with_the_services_message(wf, person):
    voting_round = opened(wf)
    for headers in ({}, HTMX):
        response = client_for(wf, person).post(
            _vote_url(voting_round), {"choice": "approve"}, **headers
        )
        assert response.status_code == 403
        assert "Only members of the board vote" in response.content.decode()
    assert not Vote.objects.exists()


def test_anonymous_posts_go_to_the_login_and_leave_nothing(wf):
    voting_round = opened(wf)
    assert _login_redirect(client_for(wf, None).post(_vote_url(voting_round), {"choice": "reject"}))
    assert not Vote.objects.exists()


def test_the_ballot_wants_a_post(wf):
    voting_round = opened(wf)
    assert client_for(wf, "board").get(_vote_url(voting_round)).status_code == 405


def test_the_htmx_ballot_answers_the_fragment_and_a_double_click_leaves_one_vote(wf):
    voting_round = opened(wf)
    client = client_for(wf, "board")
    for _ in range(2):
        response = client.post(
            _vote_url(voting_round), {"choice": "abstain", "interest_declared": "on"}, **HTMX
        )
        assert response.status_code == 200
        page = response.content.decode()
        assert f'id="round-{voting_round.pk}"' in page and "<html" not in page
        assert "You voted <strong>Abstain</strong>" in page
    vote = Vote.objects.get()
    assert vote.choice == "abstain" and vote.interest_declared


def test_changing_a_vote_from_the_page(wf):
    voting_round = opened(wf)
    client = client_for(wf, "board")
    client.post(_vote_url(voting_round), {"choice": "approve"})
    page = client.get(reverse("initiatives:voting-round", args=[voting_round.pk])).content
    assert b"Change my vote" in page
    assert re.search(rb'<input[^>]*value="approve"[^>]*checked', page)
    assert not re.search(rb'<input[^>]*value="reject"[^>]*checked', page)
    client.post(_vote_url(voting_round), {"choice": "reject"})
    assert list(Vote.objects.values_list("choice", flat=True)) == ["reject"]


def test_a_ballot_without_a_choice_keeps_what_was_typed(wf):
    voting_round = opened(wf)
    response = client_for(wf, "board").post(
        _vote_url(voting_round), {"comment": "Typed but no choice"}, **HTMX
    )
    assert response.status_code == 400
    page = response.content.decode()
    assert "Typed but no choice" in page and "errorlist" in page
    assert not Vote.objects.exists()


def test_a_vote_on_a_closed_round_is_a_409_with_the_message(wf):
    voting_round = opened(wf)
    voting_round_close(round=voting_round, user=wf.people["board_chair"])
    response = client_for(wf, "board").post(_vote_url(voting_round), {"choice": "approve"})
    assert response.status_code == 409
    assert "The vote has closed" in response.content.decode()
    assert not Vote.objects.exists()


def test_the_last_vote_closes_the_round_and_refreshes_the_page(wf):
    voting_round = opened(wf, quorum=4)
    for person in ("board_chair", "board_secretary", "dept_chair_on_board"):
        vote_cast(user=wf.people[person], round=voting_round, choice="approve")
    response = client_for(wf, "board").post(_vote_url(voting_round), {"choice": "approve"}, **HTMX)
    assert response.status_code == 200 and response["HX-Refresh"] == "true"
    assert "Result" in response.content.decode()
    voting_round.refresh_from_db()
    assert voting_round.status == RoundStatus.CLOSED


# --- Opening ---------------------------------------------------------------------------------


def _open_url(initiative) -> str:
    return reverse("initiatives:voting-open", args=[initiative.pk])


def _open_data(**extra):
    return {
        "deadline": soon().strftime("%Y-%m-%dT%H:%M"),
        "quorum": "3",
        "comment": "Read the plan.",
        **extra,
    }


def test_the_chair_opens_a_round_and_a_second_post_opens_none(wf):
    idea = referred(wf)
    client = client_for(wf, "board_chair")
    form = client.get(_open_url(idea))
    assert form.status_code == 200 and b'name="deadline"' in form.content
    response = client.post(_open_url(idea), _open_data())
    voting_round = VotingRound.objects.get()
    assert response.status_code == 302
    assert response["Location"] == reverse("initiatives:voting-round", args=[voting_round.pk])
    assert (voting_round.quorum, voting_round.initiative.state) == (3, State.VOTING)
    again = client.post(_open_url(idea), _open_data())
    assert again.status_code == 400
    assert "only on an initiative referred to the board" in again.content.decode()
    assert VotingRound.objects.count() == 1


@pytest.mark.parametrize("person", ["board", "dept_chair", "clinician"])
def test_others_may_not_open_a_round(wf, person):
    idea = referred(wf)
    client = client_for(wf, person)
    assert client.get(_open_url(idea)).status_code == 403
    response = client.post(_open_url(idea), _open_data())
    assert response.status_code == 403
    assert "Only the board's chair opens a vote" in html.unescape(response.content.decode())
    assert not VotingRound.objects.exists()
    assert Initiative.objects.get(pk=idea.pk).state == State.REFERRED_TO_BOARD


def test_opening_wants_a_login_and_get_or_post(wf):
    idea = referred(wf)
    assert _login_redirect(client_for(wf, None).post(_open_url(idea), _open_data()))
    assert client_for(wf, "board_chair").put(_open_url(idea)).status_code == 405
    assert not VotingRound.objects.exists()


def test_a_bad_quorum_is_shown_by_its_field_and_the_form_keeps_the_rest(wf):
    idea = referred(wf)
    response = client_for(wf, "board_chair").post(_open_url(idea), _open_data(quorum="9"))
    assert response.status_code == 400
    page = response.content.decode()
    assert "id_quorum_error" in page and "Read the plan." in page
    assert not VotingRound.objects.exists()


def test_a_deadline_in_the_past_is_refused_by_the_service(wf):
    idea = referred(wf)
    response = client_for(wf, "board_chair").post(
        _open_url(idea), _open_data(deadline="2020-01-01T10:00")
    )
    assert response.status_code == 400
    assert "The deadline must lie in the future." in response.content.decode()


# --- Closing ---------------------------------------------------------------------------------


def _close_url(voting_round) -> str:
    return reverse("initiatives:voting-close", args=[voting_round.pk])


def test_the_chair_closes_early_and_again_is_a_409(wf):
    voting_round = opened(wf, quorum=1)
    vote_cast(user=wf.people["board"], round=voting_round, choice="approve")
    client = client_for(wf, "board_chair")
    response = client.post(_close_url(voting_round), {"comment": "Clear enough."})
    assert response.status_code == 302
    voting_round.refresh_from_db()
    assert voting_round.status == RoundStatus.CLOSED
    assert voting_round.decision.comment.endswith("Clear enough.")
    again = client.post(_close_url(voting_round), {})
    assert again.status_code == 409 and "closed already" in again.content.decode()
    assert VotingRound.objects.get().decision_id == voting_round.decision_id


@pytest.mark.parametrize("person", ["board", "dept_chair", "clinician"])
def test_others_may_not_close(wf, person):
    voting_round = opened(wf)
    response = client_for(wf, person).post(_close_url(voting_round), {})
    assert response.status_code == 403
    assert "Only the board's chair closes" in html.unescape(response.content.decode())
    voting_round.refresh_from_db()
    assert voting_round.status == RoundStatus.OPEN


def test_closing_wants_a_login_and_a_post(wf):
    voting_round = opened(wf)
    assert _login_redirect(client_for(wf, None).post(_close_url(voting_round), {}))
    assert client_for(wf, "board_chair").get(_close_url(voting_round)).status_code == 405
    voting_round.refresh_from_db()
    assert voting_round.status == RoundStatus.OPEN


def test_only_the_chair_sees_the_close_button(wf):
    voting_round = opened(wf)
    url = reverse("initiatives:voting-round", args=[voting_round.pk])
    assert b"Close the vote" in client_for(wf, "board_chair").get(url).content
    for person in ("board", "clinician"):
        assert b"Close the vote" not in client_for(wf, person).get(url).content


# --- The panel on the initiative's page ------------------------------------------------------


def _initiative_page(wf, person, initiative) -> str:
    response = client_for(wf, person).get(reverse("initiatives:initiative", args=[initiative.pk]))
    assert response.status_code == 200
    return response.content.decode()


def test_the_panel_offers_the_chair_the_open_form_and_nobody_else(wf):
    idea = referred(wf)
    assert _open_url(idea) in _initiative_page(wf, "board_chair", idea)
    for person in ("board", "clinician"):
        assert _open_url(idea) not in _initiative_page(wf, person, idea)


def test_the_panel_holds_the_ballot_for_members_and_the_result_after(wf):
    voting_round = opened(wf, quorum=1)
    idea = voting_round.initiative
    assert _vote_url(voting_round) in _initiative_page(wf, "board", idea)
    assert _vote_url(voting_round) not in _initiative_page(wf, "clinician", idea)
    assert "Vote in progress" in _initiative_page(wf, "clinician", idea)
    vote_cast(user=wf.people["board"], round=voting_round, choice="reject")
    voting_round_close(round=voting_round, user=wf.people["board_chair"])
    page = _initiative_page(wf, "clinician", idea)
    assert "Vote closed" in page and "Rejected" in page


def test_the_panel_is_empty_where_no_vote_is_held(wf):
    idea = log(wf, "unit")
    assert "Board vote on scale-up" not in _initiative_page(wf, "chair", idea)


def test_board_members_find_the_open_votes_in_the_navigation(wf):
    url = reverse("initiatives:voting-board")
    assert (
        f'href="{url}"'
        in client_for(wf, "board").get(reverse("initiatives:initiative-list")).content.decode()
    )
    assert (
        f'href="{url}"'
        not in client_for(wf, "clinician")
        .get(reverse("initiatives:initiative-list"))
        .content.decode()
    )


def test_after_the_deadline_the_page_says_the_round_is_closing_and_offers_no_ballot(wf):
    voting_round = opened(wf)
    VotingRound.objects.filter(pk=voting_round.pk).update(deadline=soon(-1))
    page = client_for(wf, "board").get(reverse("initiatives:voting-round", args=[voting_round.pk]))
    assert b"The deadline has passed" in page.content
    assert _vote_url(voting_round).encode() not in page.content
