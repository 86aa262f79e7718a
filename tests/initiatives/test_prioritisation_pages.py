"""The prioritisation pages: a forum's ranked list, its criteria, scoring (plain and HTMX), the
initiative page's panel and the dialogue — who may, wrong methods, repeated posts.

Matrix: ``dept_member`` and ``dept_chair`` sit in department A's group (member, chair);
``other_dept_chair`` chairs department B's (another forum); ``clinician`` sits in a unit forum
only; anonymous is sent to log in.
"""

from __future__ import annotations

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from initiatives.models import Criterion, Score
from initiatives.prioritisation import criteria_ensure_defaults, score_set
from initiatives.services import initiative_transition

from .conftest import log

READERS = ("dept_member", "dept_chair", "other_dept_chair", "clinician")


def client_for(wf, person: str | None) -> Client:
    client = Client()
    if person:
        client.force_login(wf.people[person])
    return client


def htmx(wf, person) -> Client:
    client = client_for(wf, person)
    client.defaults["HTTP_HX_REQUEST"] = "true"
    return client


def referred(wf, title="Shared"):
    idea = log(wf, "unit", title=title)
    for name in ("escalate", "prioritise", "refer_to_board"):
        initiative_transition(
            initiative=idea, user=wf.people["admin"], transition=name, comment="On."
        )
    return idea


def by_name(forum) -> dict[str, Criterion]:
    return {c.name.lower(): c for c in criteria_ensure_defaults(forum)}


def assert_login_redirect(response):
    assert response.status_code == 302 and "/accounts/login/" in response["Location"]


# --- A forum's ranked list ---------------------------------------------------------------------


def test_the_ranked_list_is_open_to_staff_and_shows_the_aggregate(wf):
    forum = wf.forums["dept"]
    a, b = log(wf, "dept", title="Alpha"), log(wf, "dept", title="Beta")
    c = by_name(forum)
    for person in ("dept_member", "dept_chair"):
        score_set(user=wf.people[person], initiative=a, scores={c["impact"].pk: 4})
        score_set(user=wf.people[person], initiative=b, scores={c["impact"].pk: 4})
    url = reverse("initiatives:prioritisation", args=[forum.pk])
    for person in READERS:
        response = client_for(wf, person).get(url)
        assert response.status_code == 200, person
        body = response.content.decode()
        assert body.index("Alpha") < body.index("Beta")  # tied: the earlier logged first
        assert "Tied on score, ordered by the earlier logged." in body
        assert "4.00" in body
        assert ("Change my scores" in body) == (person in ("dept_member", "dept_chair")), person
        assert ("Set the criteria" in body) == (person == "dept_chair"), person
    assert_login_redirect(client_for(wf, None).get(url))
    assert client_for(wf, "dept_member").post(url).status_code == 405
    # A unit forum does not prioritise: no such page.
    unit = reverse("initiatives:prioritisation", args=[wf.forums["unit"].pk])
    assert client_for(wf, "chair").get(unit).status_code == 404


def test_the_ranked_list_draws_impact_against_effort_with_a_table(wf):
    forum = wf.forums["dept"]
    idea = log(wf, "dept", title="Alpha")
    c = by_name(forum)
    score_set(
        user=wf.people["dept_member"],
        initiative=idea,
        scores={c["impact"].pk: 5, c["effort"].pk: 2},
    )
    body = (
        client_for(wf, "clinician")
        .get(reverse("initiatives:prioritisation", args=[forum.pk]))
        .content.decode()
    )
    assert '<svg class="impact-effort-chart"' in body and 'role="img"' in body
    assert "Mean Impact against mean Effort" in body
    assert "<circle" in body and "<title>1. Alpha: Impact 5.00, Effort 2.00</title>" in body
    assert '<table class="table impact-effort-table">' in body
    # The reader picks other axes.
    body = (
        client_for(wf, "clinician")
        .get(
            reverse("initiatives:prioritisation", args=[forum.pk]),
            {"impact": c["reach"].pk, "effort": c["effort"].pk},
        )
        .content.decode()
    )
    assert "No initiative has been scored on both Reach and Effort yet." in body


def test_the_ranked_list_takes_the_same_queries_for_few_or_many(wf):
    forum = wf.forums["dept"]
    c = by_name(forum)
    client = client_for(wf, "dept_member")
    url = reverse("initiatives:prioritisation", args=[forum.pk])

    def count() -> int:
        with CaptureQueriesContext(connection) as queries:
            assert client.get(url).status_code == 200
        return len(queries)

    idea = log(wf, "dept")
    score_set(user=wf.people["dept_member"], initiative=idea, scores={c["impact"].pk: 3})
    client.get(url)  # sessions and the like settle
    few = count()
    for i in range(8):
        more = log(wf, "dept", title=f"More {i}")
        for person in ("dept_member", "dept_chair", "dept_secretary"):
            score_set(
                user=wf.people[person],
                initiative=more,
                scores={x.pk: 1 + i % 5 for x in c.values()},
            )
    assert count() == few


# --- Criteria ---------------------------------------------------------------------------------


def test_only_the_chair_opens_the_criteria_page(wf):
    url = reverse("initiatives:criteria", args=[wf.forums["dept"].pk])
    assert client_for(wf, "dept_chair").get(url).status_code == 200
    assert client_for(wf, "admin").get(url).status_code == 200
    for person in ("dept_member", "dept_secretary", "other_dept_chair", "clinician"):
        assert client_for(wf, person).get(url).status_code == 403, person
        assert client_for(wf, person).post(url, {"new-name": "Cost"}).status_code == 403
    assert_login_redirect(client_for(wf, None).get(url))
    assert client_for(wf, "dept_chair").put(url).status_code == 405
    assert not Criterion.objects.filter(name="Cost").exists()


def test_the_chair_adds_a_criterion_once(wf):
    forum = wf.forums["dept"]
    url = reverse("initiatives:criteria", args=[forum.pk])
    client = client_for(wf, "dept_chair")
    data = {"new-name": "Safety", "new-weight": "2", "new-higher_is_better": "on"}
    response = client.post(url, data)
    assert response.status_code == 302
    made = Criterion.objects.get(forum=forum, name="Safety")
    assert made.weight == 2 and made.higher_is_better and made.position == 5
    again = client.post(url, data)
    assert again.status_code == 409
    body = again.content.decode()
    assert "already has a criterion called “Safety”" in body
    assert 'value="Safety"' in body  # what was typed is kept
    assert Criterion.objects.filter(forum=forum, name__iexact="safety").count() == 1


def test_a_wrong_weight_is_shown_by_its_field_with_what_was_typed(wf):
    forum = wf.forums["dept"]
    impact = by_name(forum)["impact"]
    url = reverse("initiatives:criterion-edit", args=[impact.pk])
    prefix = f"c{impact.pk}"
    response = client_for(wf, "dept_chair").post(
        url, {f"{prefix}-name": "Impact", f"{prefix}-weight": "-3"}
    )
    assert response.status_code == 400
    body = response.content.decode()
    assert "A weight may not be negative." in body and 'value="-3"' in body
    impact.refresh_from_db()
    assert impact.weight == 1
    # Right: saved (twice, the same).
    for _ in range(2):
        response = client_for(wf, "dept_chair").post(
            url, {f"{prefix}-name": "Benefit", f"{prefix}-weight": "2.5"}
        )
        assert response.status_code == 302
    impact.refresh_from_db()
    assert (impact.name, str(impact.weight)) == ("Benefit", "2.50")
    assert impact.higher_is_better is False  # the box was not ticked
    assert client_for(wf, "dept_member").post(url, {f"{prefix}-name": "X"}).status_code == 403
    assert client_for(wf, "dept_chair").get(url).status_code == 405


def test_switching_off_and_moving_criteria(wf):
    forum = wf.forums["dept"]
    c = by_name(forum)
    chair = client_for(wf, "dept_chair")
    off = reverse("initiatives:criterion-active", args=[c["reach"].pk])
    assert chair.post(off, {"active": "0"}).status_code == 302
    assert chair.post(off, {"active": "0"}).status_code == 302  # again: still off
    assert not Criterion.objects.get(pk=c["reach"].pk).active
    assert chair.post(off, {"active": "maybe"}).status_code == 400
    assert client_for(wf, "dept_member").post(off, {"active": "1"}).status_code == 403
    assert chair.post(off, {"active": "1"}).status_code == 302
    assert Criterion.objects.get(pk=c["reach"].pk).active
    for name in ("impact", "evidence", "effort", "reach"):
        chair.post(reverse("initiatives:criterion-active", args=[c[name].pk]), {"active": "0"})
    last = chair.post(
        reverse("initiatives:criterion-active", args=[c["alignment"].pk]), {"active": "0"}
    )
    assert last.status_code == 409 and "the last one that is on" in last.content.decode()
    move = reverse("initiatives:criterion-move", args=[c["alignment"].pk])
    assert chair.post(move, {"direction": "up"}).status_code == 302
    assert [x.name for x in criteria_ensure_defaults(forum)][3:] == ["Alignment", "Reach"]
    assert chair.post(move, {"direction": "sideways"}).status_code == 400
    assert chair.get(move).status_code == 405
    assert client_for(wf, "other_dept_chair").post(move, {"direction": "up"}).status_code == 403


# --- Scoring -----------------------------------------------------------------------------------


def test_who_may_open_the_scoring_form(wf):
    forum = wf.forums["dept"]
    idea = log(wf, "dept")
    url = reverse("initiatives:score", args=[forum.pk, idea.pk])
    for person in ("dept_member", "dept_chair"):
        response = client_for(wf, person).get(url)
        assert response.status_code == 200, person
        assert 'name="criterion_' in response.content.decode()
    for person in ("other_dept_chair", "clinician", "board", "admin"):
        assert client_for(wf, person).get(url).status_code == 403, person
    assert_login_redirect(client_for(wf, None).get(url))
    assert client_for(wf, "dept_member").put(url).status_code == 405
    # The board has never had it: no scoring it there, even for its members.
    board_url = reverse("initiatives:score", args=[wf.forums["board"].pk, idea.pk])
    response = client_for(wf, "board").get(board_url)
    assert response.status_code == 403


def test_a_member_scores_all_criteria_at_once_and_a_repeat_changes_nothing(wf):
    forum = wf.forums["dept"]
    idea = log(wf, "dept")
    c = by_name(forum)
    url = reverse("initiatives:score", args=[forum.pk, idea.pk])
    data = {f"criterion_{x.pk}": "4" for x in c.values()} | {f"criterion_{c['reach'].pk}": ""}
    client = client_for(wf, "dept_member")
    for _ in range(2):
        response = client.post(url, data)
        assert response.status_code == 302
        assert response["Location"] == reverse("initiatives:prioritisation", args=[forum.pk])
    assert Score.objects.filter(initiative=idea).count() == 4
    # The form shows the saved values.
    body = client.get(url).content.decode()
    assert (
        f'name="criterion_{c["impact"].pk}" value="4" id="id_criterion_{c["impact"].pk}_4" checked'
        in body
    )
    # Back to where it came from, if that is on this site.
    here = reverse("initiatives:initiative", args=[idea.pk])
    assert client.post(url, data | {"next": here})["Location"] == here
    away = client.post(url, data | {"next": "https://evil.example/"})
    assert away["Location"] == reverse("initiatives:prioritisation", args=[forum.pk])


def test_htmx_scoring_swaps_the_block_with_errors_by_their_criterion(wf):
    forum = wf.forums["dept"]
    idea = log(wf, "dept")
    c = by_name(forum)
    url = reverse("initiatives:score", args=[forum.pk, idea.pk])
    client = htmx(wf, "dept_member")
    bad = client.post(url, {f"criterion_{c['impact'].pk}": "5", f"criterion_{c['effort'].pk}": "9"})
    assert bad.status_code == 400
    body = bad.content.decode()
    assert body.lstrip().startswith('<div class="score-block"')
    assert "Effort: give a whole number from 1 to 5." in body
    assert f'value="5" id="id_criterion_{c["impact"].pk}_5" checked' in body  # kept
    assert not Score.objects.exists()
    good = client.post(url, {f"criterion_{c['impact'].pk}": "5", "level": "3"})
    assert good.status_code == 200
    body = good.content.decode()
    assert "Your scores are saved." in body and "<h3>" in body
    assert "5.00" in body  # the aggregate, recomputed
    assert Score.objects.get().value == 5
    other = htmx(wf, "other_dept_chair").post(url, {f"criterion_{c['impact'].pk}": "1"})
    assert other.status_code == 403
    assert Score.objects.get().value == 5


def test_the_initiative_page_shows_the_panel_and_the_form_to_members(wf):
    idea = referred(wf)
    dept, board = by_name(wf.forums["dept"]), by_name(wf.forums["board"])
    score_set(user=wf.people["dept_member"], initiative=idea, scores={dept["impact"].pk: 4})
    score_set(user=wf.people["board"], initiative=idea, scores={board["impact"].pk: 2})
    url = reverse("initiatives:initiative", args=[idea.pk])
    dept_form = reverse("initiatives:score", args=[wf.forums["dept"].pk, idea.pk])
    board_form = reverse("initiatives:score", args=[wf.forums["board"].pk, idea.pk])
    member = client_for(wf, "dept_member").get(url).content.decode()
    assert 'id="scores-heading"' in member
    assert f'action="{dept_form}"' in member and f'action="{board_form}"' not in member
    assert "4.00" in member and "2.00" in member
    both = client_for(wf, "dept_chair_on_board").get(url).content.decode()
    assert f'action="{dept_form}"' in both and f'action="{board_form}"' in both
    clinician = client_for(wf, "clinician").get(url).content.decode()
    assert "4.00" in clinician and 'class="score-form"' not in clinician


def test_an_initiative_no_forum_has_had_says_so(wf):
    idea = log(wf, "unit")
    body = client_for(wf, "chair").get(reverse("initiatives:initiative", args=[idea.pk]))
    assert "No department group or board has had it yet" in body.content.decode()


# --- Dialogue and the index --------------------------------------------------------------------


def test_the_dialogue_page_lists_both_sides_and_their_disagreements(wf):
    shared = [referred(wf, title=f"Shared {i}") for i in range(3)]
    kept = log(wf, "dept", title="Only the group")
    dept, board = by_name(wf.forums["dept"]), by_name(wf.forums["board"])
    for idea, mine, theirs in zip(shared, (5, 4, 3), (1, 4, 5), strict=True):
        score_set(user=wf.people["dept_member"], initiative=idea, scores={dept["impact"].pk: mine})
        score_set(user=wf.people["board"], initiative=idea, scores={board["impact"].pk: theirs})
    score_set(user=wf.people["dept_member"], initiative=kept, scores={dept["impact"].pk: 2})
    url = reverse("initiatives:dialogue", args=[wf.dept_a.code])
    for person in ("clinician", "dept_member", "board"):
        response = client_for(wf, person).get(url)
        assert response.status_code == 200, person
    body = response.content.decode()
    where = body[body.index("Where they disagree") : body.index("Shared initiatives")]
    assert "Shared 0" in where and "Shared 2" in where and "Shared 1" not in where
    assert "2 places apart" in where and "the means differ by 4.00" in where
    assert body.count('class="shared"') + body.count('class="shared disagreed"') == 6
    assert "Only the group" in body
    assert_login_redirect(client_for(wf, None).get(url))
    assert client_for(wf, "board").post(url).status_code == 405
    missing = reverse("initiatives:dialogue", args=["no-such-department"])
    assert client_for(wf, "board").get(missing).status_code == 404


def test_the_index_lists_the_forums_and_the_dialogues(wf):
    response = client_for(wf, "clinician").get(reverse("initiatives:prioritisation-index"))
    assert response.status_code == 200
    body = response.content.decode()
    assert reverse("initiatives:prioritisation", args=[wf.forums["dept"].pk]) in body
    assert reverse("initiatives:prioritisation", args=[wf.forums["board"].pk]) in body
    assert reverse("initiatives:prioritisation", args=[wf.forums["unit"].pk]) not in body
    assert reverse("initiatives:dialogue", args=[wf.dept_a.code]) in body


@pytest.mark.parametrize("person", ["dept_chair", "clinician"])
def test_the_forum_page_links_to_its_prioritisation(wf, person):
    forum = wf.forums["dept"]
    body = client_for(wf, person).get(reverse("initiatives:forum", args=[forum.pk]))
    assert reverse("initiatives:prioritisation", args=[forum.pk]) in body.content.decode()
    unit = client_for(wf, "admin").get(reverse("initiatives:forum", args=[wf.forums["unit"].pk]))
    assert "/prioritisation/" not in unit.content.decode()
