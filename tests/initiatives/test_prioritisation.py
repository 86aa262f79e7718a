"""Prioritisation through the services and selectors: criteria, scores, the ranking, ties,
impact/effort and the dialogue between a department's group and the division board.

Department A's group (``dept``) has four members: ``dept_chair`` and ``dept_chair_on_board``
(chairs), ``dept_secretary``, ``dept_member``. The board has four: ``board_chair``,
``board_secretary``, ``board``, ``dept_chair_on_board``.
"""

from __future__ import annotations

from decimal import Decimal
from fractions import Fraction

import pytest
from django.core.exceptions import ValidationError
from django.db import connection
from django.test.utils import CaptureQueriesContext

from initiatives.enums import State
from initiatives.models import Criterion, Initiative, Score
from initiatives.prioritisation import (
    DEFAULT_CRITERIA,
    criteria_ensure_defaults,
    criterion_create,
    criterion_deactivate,
    criterion_move,
    criterion_reactivate,
    criterion_update,
    dialogue,
    impact_effort,
    initiative_aggregate,
    ranking,
    score_set,
)
from initiatives.rules import can_score, scorable_initiatives
from initiatives.services import initiative_transition
from tests.factories import MembershipFactory, UserFactory

from .conftest import log
from .helpers import codes_of

DEPT_MEMBERS = ("dept_chair", "dept_chair_on_board", "dept_secretary", "dept_member")
BOARD_MEMBERS = ("board_chair", "board_secretary", "board", "dept_chair_on_board")


def criteria(forum) -> dict[str, Criterion]:
    return {c.name.lower(): c for c in criteria_ensure_defaults(forum)}


def give(wf, person, initiative, forum, **values) -> dict[int, int]:
    """``person`` scores ``initiative`` in ``forum``: criterion name (lower case) → value."""
    by_name = criteria(forum)
    return score_set(
        user=wf.people[person],
        initiative=initiative,
        scores={by_name[name].pk: value for name, value in values.items()},
    )


def all_fives(**overrides):
    values = {"impact": 5, "evidence": 5, "effort": 1, "reach": 5, "alignment": 5}
    values.update(overrides)
    return values


def step(wf, initiative, *names, **kw):
    for name in names:
        initiative_transition(
            initiative=initiative, user=wf.people["admin"], transition=name, comment="On.", **kw
        )
    return initiative


def refusal(call) -> ValidationError:
    with pytest.raises(ValidationError) as error:
        call()
    return error.value


# --- Criteria ----------------------------------------------------------------------------------


def test_a_forum_starts_with_the_five_stated_criteria_effort_against(wf):
    made = criteria_ensure_defaults(wf.forums["dept"])
    assert [c.name for c in made] == [str(name) for name, _d, _h in DEFAULT_CRITERIA]
    assert [c.name for c in made] == ["Impact", "Evidence", "Effort", "Reach", "Alignment"]
    assert {c.name: c.higher_is_better for c in made}["Effort"] is False
    assert sum(c.higher_is_better for c in made) == 4
    assert {c.weight for c in made} == {Decimal(1)}
    assert [c.position for c in made] == [0, 1, 2, 3, 4]
    # Twice: still five (and a forum with its own criteria keeps them).
    criteria_ensure_defaults(wf.forums["dept"])
    assert Criterion.objects.filter(forum=wf.forums["dept"]).count() == 5


def test_a_forum_that_has_criteria_keeps_its_own(wf):
    forum = wf.forums["board"]
    criterion_create(user=wf.people["board_chair"], forum=forum, name="Cost")
    names = [c.name for c in criteria_ensure_defaults(forum)]
    assert names == ["Impact", "Evidence", "Effort", "Reach", "Alignment", "Cost"]
    impact = Criterion.objects.get(forum=forum, name="Impact")
    criterion_update(user=wf.people["board_chair"], criterion=impact, name="Benefit")
    assert "Impact" not in [c.name for c in criteria_ensure_defaults(forum)]


def test_unit_forums_and_the_support_unit_do_not_prioritise(wf):
    for key in ("unit", "support"):
        assert codes_of(refusal(lambda k=key: criteria_ensure_defaults(wf.forums[k]))) == {
            "not_prioritising"
        }
        assert not scorable_initiatives(wf.forums[key]).exists()


def test_only_the_chair_configures_criteria(wf):
    forum = wf.forums["dept"]
    for person in ("dept_member", "dept_secretary", "board_chair", "other_dept_chair", "clinician"):
        error = refusal(
            lambda p=person: criterion_create(user=wf.people[p], forum=forum, name="Cost")
        )
        assert codes_of(error) == {"not_permitted"}, person
    impact = criteria(forum)["impact"]
    assert codes_of(
        refusal(lambda: criterion_update(user=wf.people["dept_member"], criterion=impact, weight=3))
    ) == {"not_permitted"}
    assert codes_of(
        refusal(lambda: criterion_deactivate(user=wf.people["dept_member"], criterion=impact))
    ) == {"not_permitted"}
    impact.refresh_from_db()
    assert impact.weight == 1 and impact.active
    # Both chairs of the group may, and an admin.
    criterion_create(user=wf.people["dept_chair_on_board"], forum=forum, name="Cost")
    criterion_create(user=wf.people["admin"], forum=forum, name="Safety")


def test_criterion_names_are_unique_whatever_the_case_and_weights_not_negative(wf):
    chair, forum = wf.people["dept_chair"], wf.forums["dept"]
    error = refusal(lambda: criterion_create(user=chair, forum=forum, name="  impact "))
    assert codes_of(error) == {"conflict"} and "name" in error.error_dict
    assert codes_of(refusal(lambda: criterion_create(user=chair, forum=forum, name=" "))) == {
        "name_required"
    }
    for weight in (-1, "-0.5", "x", "1.234", 1000):
        error = refusal(
            lambda w=weight: criterion_create(user=chair, forum=forum, name="C", weight=w)
        )
        assert codes_of(error) == {"bad_weight"}, weight
        assert "weight" in error.error_dict
    reach = criteria(forum)["reach"]
    error = refusal(lambda: criterion_update(user=chair, criterion=reach, name="Evidence"))
    assert codes_of(error) == {"conflict"} and "already has a criterion" in error.messages[0]
    # Renaming to itself in another case is fine; a comma decimal is read.
    criterion_update(user=chair, criterion=reach, name="REACH", weight="1,5")
    reach.refresh_from_db()
    assert (reach.name, reach.weight) == ("REACH", Decimal("1.50"))
    assert Criterion.objects.filter(forum=forum).count() == 5


def test_the_last_active_criterion_stays_on_and_some_weight_remains(wf):
    chair, forum = wf.people["dept_chair"], wf.forums["dept"]
    by_name = criteria(forum)
    for name in ("impact", "evidence", "effort", "reach"):
        criterion_deactivate(user=chair, criterion=by_name[name])
    error = refusal(lambda: criterion_deactivate(user=chair, criterion=by_name["alignment"]))
    assert codes_of(error) == {"conflict"} and "the last one that is on" in error.messages[0]
    error = refusal(lambda: criterion_update(user=chair, criterion=by_name["alignment"], weight=0))
    assert codes_of(error) == {"conflict"} and "weigh more than 0" in error.messages[0]
    assert Criterion.objects.filter(forum=forum, active=True).count() == 1
    criterion_reactivate(user=chair, criterion=by_name["impact"])
    assert Criterion.objects.filter(forum=forum, active=True).count() == 2


def test_criteria_move_up_and_down_and_stay_at_the_ends(wf):
    chair, forum = wf.people["dept_chair"], wf.forums["dept"]
    by_name = criteria(forum)
    criterion_move(user=chair, criterion=by_name["reach"], up=True)
    criterion_move(user=chair, criterion=by_name["impact"], up=True)  # already first
    criterion_move(user=chair, criterion=by_name["impact"], up=False)
    criterion_move(user=chair, criterion=by_name["alignment"], up=False)  # already last
    assert [c.name for c in criteria_ensure_defaults(forum)] == [
        "Evidence",
        "Impact",
        "Reach",
        "Effort",
        "Alignment",
    ]


# --- Scores ------------------------------------------------------------------------------------


def test_members_score_what_their_forum_prioritises(wf):
    idea = log(wf, "dept")
    for person in DEPT_MEMBERS:
        assert can_score(wf.people[person], idea, wf.forums["dept"]), person
        give(wf, person, idea, wf.forums["dept"], impact=4)
    assert Score.objects.filter(initiative=idea).count() == 4


def test_non_members_and_other_forums_are_refused(wf):
    idea = log(wf, "dept")
    for person in ("other_dept_chair", "clinician", "chair", "board", "outsider", "admin"):
        error = refusal(lambda p=person: give(wf, p, idea, wf.forums["dept"], impact=4))
        assert codes_of(error) == {"not_permitted"}, person
    # The board has never had it: its members may not score it with the board's criteria.
    error = refusal(lambda: give(wf, "board_chair", idea, wf.forums["board"], impact=4))
    assert codes_of(error) == {"conflict"} and "does not score this initiative" in str(error)
    # Department B's group has not had it either.
    error = refusal(lambda: give(wf, "other_dept_chair", idea, wf.forums["dept_b"], impact=4))
    assert codes_of(error) == {"conflict"}
    # A unit forum's idea not yet escalated is not the group's business.
    local = log(wf, "unit")
    error = refusal(lambda: give(wf, "dept_member", local, wf.forums["dept"], impact=4))
    assert codes_of(error) == {"conflict"}
    assert not Score.objects.exists()


def test_a_forum_keeps_scoring_what_it_sent_on_but_not_what_is_decided(wf):
    idea = step(wf, log(wf, "unit"), "escalate")
    assert idea.state == State.ESCALATED_TO_DEPARTMENT
    give(wf, "dept_member", idea, wf.forums["dept"], impact=3)
    step(wf, idea, "prioritise", "refer_to_board")
    assert idea.forum == wf.forums["board"]
    # Both forums score it now.
    give(wf, "dept_member", idea, wf.forums["dept"], impact=4)
    give(wf, "board", idea, wf.forums["board"], impact=2)
    assert set(scorable_initiatives(wf.forums["dept"])) == {idea}
    assert set(scorable_initiatives(wf.forums["board"])) == {idea}
    step(wf, idea, "reject")
    error = refusal(lambda: give(wf, "board", idea, wf.forums["board"], impact=5))
    assert codes_of(error) == {"conflict"}
    assert not scorable_initiatives(wf.forums["board"]).exists()
    # Its aggregate is still shown (unranked) on its page.
    _board, row = initiative_aggregate(idea, wf.forums["board"])
    assert row.mean == 2 and row.rank is None


@pytest.mark.parametrize("bad", [0, 6, "x", "", -1, 2.5, True, "3.0", 6.0])
def test_a_value_outside_1_to_5_is_refused_with_the_criterion_named(wf, bad):
    idea = log(wf, "dept")
    by_name = criteria(wf.forums["dept"])
    scores = {by_name["impact"].pk: 4, by_name["effort"].pk: bad}
    if bad == "":
        # Empty means "not scored": nothing to refuse.
        assert score_set(user=wf.people["dept_member"], initiative=idea, scores=scores) == {
            by_name["impact"].pk: 4
        }
        return
    error = refusal(
        lambda: score_set(user=wf.people["dept_member"], initiative=idea, scores=scores)
    )
    assert set(error.error_dict) == {f"criterion_{by_name['effort'].pk}"}
    assert codes_of(error) == {"bad_value"}
    assert "Effort" in error.messages[0] and "1" in error.messages[0] and "5" in error.messages[0]
    # Nothing written, not even the good value.
    assert not Score.objects.exists()


def test_unknown_criteria_and_two_forums_at_once_are_refused(wf):
    idea = step(wf, log(wf, "unit"), "escalate", "prioritise", "refer_to_board")
    dept, board = criteria(wf.forums["dept"]), criteria(wf.forums["board"])
    member = wf.people["dept_chair_on_board"]
    error = refusal(
        lambda: score_set(
            user=member, initiative=idea, scores={dept["impact"].pk: 3, board["impact"].pk: 3}
        )
    )
    assert codes_of(error) == {"mixed_forums"}
    error = refusal(lambda: score_set(user=member, initiative=idea, scores={999999: 3}))
    assert codes_of(error) == {"not_found"}
    error = refusal(lambda: score_set(user=member, initiative=idea, scores={"abc": 3}))
    assert codes_of(error) == {"not_found"}
    error = refusal(lambda: score_set(user=member, initiative=idea, scores={2**40: 3}))
    assert codes_of(error) == {"not_found"}
    error = refusal(
        lambda: score_set(
            user=member, initiative=idea, scores={dept["impact"].pk: 3}, forum=wf.forums["board"]
        )
    )
    assert codes_of(error) == {"not_found"}
    assert codes_of(refusal(lambda: score_set(user=member, initiative=idea, scores={}))) == {
        "no_scores"
    }
    assert not Score.objects.exists()


def test_double_submit_leaves_one_score_row_per_criterion_and_none_takes_back(wf):
    idea = log(wf, "dept")
    by_name = criteria(wf.forums["dept"])
    scores = {c.pk: 3 for c in by_name.values()}
    for _ in range(3):
        score_set(user=wf.people["dept_member"], initiative=idea, scores=scores)
    assert Score.objects.count() == 5
    saved = score_set(
        user=wf.people["dept_member"],
        initiative=idea,
        scores={by_name["impact"].pk: "5", by_name["reach"].pk: None},
    )
    assert Score.objects.count() == 4
    assert saved[by_name["impact"].pk] == 5 and by_name["reach"].pk not in saved
    assert Score.objects.get(criterion=by_name["impact"]).value == 5


def test_a_switched_off_criterion_takes_no_new_scores(wf):
    idea = log(wf, "dept")
    by_name = criteria(wf.forums["dept"])
    criterion_deactivate(user=wf.people["dept_chair"], criterion=by_name["reach"])
    error = refusal(lambda: give(wf, "dept_member", idea, wf.forums["dept"], reach=3))
    assert codes_of(error) == {"conflict"}
    assert "Reach" in error.messages[0]


# --- The ranking -------------------------------------------------------------------------------


def test_weighted_mean_with_effort_inverted(wf):
    forum = wf.forums["dept"]
    idea = log(wf, "dept")
    chair = wf.people["dept_chair"]
    by_name = criteria(forum)
    criterion_update(user=chair, criterion=by_name["impact"], weight=2)
    # impact 5 (w 2), effort 4 (w 1, counted 6 − 4 = 2), evidence 3 (w 1); reach, alignment
    # not scored: (2·5 + 2 + 3) / 4 = 15/4.
    give(wf, "dept_member", idea, forum, impact=5, effort=4, evidence=3)
    row = ranking(forum).get(idea.pk)
    assert row.member_scores[wf.people["dept_member"].pk] == Fraction(15, 4)
    assert row.mean == row.median == Fraction(15, 4)
    assert row.scorers == 1 and row.rank == 1
    # Raw means per criterion (not inverted), for the impact/effort view.
    assert row.criterion_means[by_name["effort"].pk] == 4


def test_median_of_an_even_number_of_members(wf):
    forum = wf.forums["dept"]
    idea = log(wf, "dept")
    for person, value in zip(DEPT_MEMBERS, (1, 2, 4, 5), strict=True):
        give(wf, person, idea, forum, impact=value)
    row = ranking(forum).get(idea.pk)
    assert row.scorers == 4
    assert row.mean == 3
    assert row.median == 3  # (2 + 4) / 2
    give(wf, "dept_member", idea, forum, impact=4)  # 1, 2, 4, 4
    row = ranking(forum).get(idea.pk)
    assert row.median == 3 and row.mean == Fraction(11, 4)
    give(wf, "dept_chair", idea, forum, impact=4)  # 2, 4, 4, 4 by member order
    row = ranking(forum).get(idea.pk)
    assert row.median == 4 and row.mean == Fraction(7, 2)


def test_the_readers_own_score_and_nobody_elses(wf):
    forum = wf.forums["dept"]
    idea = log(wf, "dept")
    give(wf, "dept_member", idea, forum, impact=5)
    give(wf, "dept_chair", idea, forum, impact=1)
    assert ranking(forum, user=wf.people["dept_member"]).get(idea.pk).mine == 5
    assert ranking(forum, user=wf.people["dept_secretary"]).get(idea.pk).mine is None


def test_ties_are_broken_by_median_then_scorers_then_the_earlier_logged(wf):
    forum = wf.forums["dept"]
    a, b, c, d, e = (log(wf, "dept", title=t) for t in "ABCDE")
    # A and B: mean 3; A's median 3 (2, 3, 4), B's 4 (1, 4, 4) → B first.
    for person, value in zip(DEPT_MEMBERS, (2, 3, 4), strict=False):
        give(wf, person, a, forum, impact=value)
    for person, value in zip(DEPT_MEMBERS, (1, 4, 4), strict=False):
        give(wf, person, b, forum, impact=value)
    # C and D: mean 2, median 2; C by two members, D by one → C first.
    give(wf, "dept_chair", c, forum, impact=2)
    give(wf, "dept_member", c, forum, impact=2)
    give(wf, "dept_chair", d, forum, impact=2)
    # E: mean 2, median 2, one member, logged after D → after D.
    give(wf, "dept_member", e, forum, impact=2)
    unscored = log(wf, "dept", title="F")
    rows = ranking(forum).rows
    assert [r.title for r in rows] == ["B", "A", "C", "D", "E", "F"]
    assert [r.rank for r in rows] == [1, 2, 3, 4, 5, None]
    by = {r.title: r for r in rows}
    assert by["A"].mean == by["B"].mean == 3
    assert by["B"].tied and by["A"].tied
    assert by["B"].tie_break == by["A"].tie_break == "median"
    assert by["D"].tie_break == "scorers" and by["C"].tie_break == "scorers"
    assert by["E"].tie_break == "logged"
    assert by["E"].tie_label == "ordered by the earlier logged"
    assert not by["F"].tied and by["F"].mean is None
    assert unscored.pk == by["F"].pk


def test_a_switched_off_criterion_leaves_the_aggregate(wf):
    forum = wf.forums["dept"]
    a, b = log(wf, "dept", title="A"), log(wf, "dept", title="B")
    give(wf, "dept_member", a, forum, impact=5, reach=1)  # 3
    give(wf, "dept_member", b, forum, impact=3, reach=4)  # 3.5
    assert [r.title for r in ranking(forum).rows] == ["B", "A"]
    reach = criteria(forum)["reach"]
    criterion_deactivate(user=wf.people["dept_chair"], criterion=reach)
    board = ranking(forum)
    assert [r.title for r in board.rows] == ["A", "B"]
    assert board.get(a.pk).mean == 5 and reach.pk not in board.get(a.pk).criterion_means
    # The scores are kept, and count again when it is switched back on.
    assert Score.objects.filter(criterion=reach).count() == 2
    criterion_reactivate(user=wf.people["dept_chair"], criterion=reach)
    assert [r.title for r in ranking(forum).rows] == ["B", "A"]


def test_weights_change_the_ranking(wf):
    forum = wf.forums["dept"]
    a, b = log(wf, "dept", title="A"), log(wf, "dept", title="B")
    give(wf, "dept_member", a, forum, impact=5, evidence=1)
    give(wf, "dept_member", b, forum, impact=2, evidence=5)
    assert [r.title for r in ranking(forum).rows] == ["B", "A"]  # 3.5 against 3
    criterion_update(user=wf.people["dept_chair"], criterion=criteria(forum)["impact"], weight=3)
    board = ranking(forum)
    assert [r.title for r in board.rows] == ["A", "B"]  # (15 + 1) / 4 = 4 against 11/4
    assert board.get(a.pk).mean == 4
    # A member whose criteria all weigh 0 has no score.
    criterion_update(user=wf.people["dept_chair"], criterion=criteria(forum)["impact"], weight=0)
    give(wf, "dept_chair", a, forum, impact=5)
    assert ranking(forum).get(a.pk).scorers == 1


def test_the_ranking_takes_the_same_queries_for_one_initiative_or_many(wf):
    forum = wf.forums["dept"]
    criteria_ensure_defaults(forum)
    first = log(wf, "dept")
    give(wf, "dept_member", first, forum, **all_fives())

    def count() -> int:
        with CaptureQueriesContext(connection) as queries:
            board = ranking(forum, user=wf.people["dept_member"])
            impact_effort(forum, board=board)
        return len(queries)

    few = count()
    extra = [UserFactory(username=f"extra{i}") for i in range(4)]
    for user in extra:
        MembershipFactory(forum=forum, user=user)
    for i in range(6):
        idea = log(wf, "dept", title=f"More {i}")
        for person in DEPT_MEMBERS:
            give(wf, person, idea, forum, **all_fives(impact=1 + i % 5))
        for user in extra:
            score_set(
                user=user,
                initiative=idea,
                scores={c.pk: 3 for c in criteria(forum).values()},
            )
    assert len(ranking(forum).ranked) == 7
    assert count() == few <= 2


def test_impact_effort_uses_the_first_benefit_and_first_cost_criteria(wf):
    forum = wf.forums["dept"]
    a, b = log(wf, "dept", title="A"), log(wf, "dept", title="B")
    give(wf, "dept_member", a, forum, impact=5, effort=2)
    give(wf, "dept_chair", a, forum, impact=4, effort=1)
    give(wf, "dept_member", b, forum, reach=3)  # no impact or effort
    view = impact_effort(forum)
    assert view.impact.name == "Impact" and view.effort.name == "Effort"
    assert [(row.title, y, x) for row, y, x in view.points] == [
        ("A", Fraction(9, 2), Fraction(3, 2))
    ]
    assert [row.title for row in view.missing] == ["B"]
    reach = criteria(forum)["reach"]
    other = impact_effort(forum, impact=reach)
    assert other.impact == reach and [row.title for row, _y, _x in other.points] == []


# --- The dialogue ------------------------------------------------------------------------------


def test_dialogue_shows_shared_initiatives_and_where_they_disagree(wf):
    dept, board = wf.forums["dept"], wf.forums["board"]
    # Three ideas of department A referred to the board; one the group keeps; one only the
    # board has (an external innovation logged there).
    shared = [
        step(wf, log(wf, "unit", title=f"Shared {i}"), "escalate", "prioritise", "refer_to_board")
        for i in range(3)
    ]
    kept = log(wf, "dept", title="Kept")
    board_only = log(wf, "board", title="Board only")
    # The group: Shared 0 > Shared 1 > Shared 2; the board: Shared 2 > Shared 1 > Shared 0.
    for idea, group_value, board_value in zip(shared, (5, 4, 3), (3, 3.5, 4), strict=True):
        give(wf, "dept_member", idea, dept, impact=group_value)
        if board_value == 3.5:
            give(wf, "board", idea, board, impact=3)
            give(wf, "board_chair", idea, board, impact=4)
        else:
            give(wf, "board", idea, board, impact=board_value)
    give(wf, "dept_member", kept, dept, impact=1)
    give(wf, "board", board_only, board, impact=5)

    talk = dialogue(dept, board)
    assert [r.title for r in talk.group.ranked] == ["Shared 0", "Shared 1", "Shared 2", "Kept"]
    assert [r.title for r in talk.board.ranked] == [
        "Board only",
        "Shared 2",
        "Shared 1",
        "Shared 0",
    ]
    assert {s.title for s in talk.shared} == {"Shared 0", "Shared 1", "Shared 2"}
    by = {s.title: s for s in talk.shared}
    # Places among the shared ones: 1/3, 2/2, 3/1.
    assert (by["Shared 0"].department_place, by["Shared 0"].board_place) == (1, 3)
    assert by["Shared 1"].place_gap == 0
    assert by["Shared 0"].reasons == ["places", "points"]  # 2 places, 5 − 3 = 2 points
    assert by["Shared 2"].reasons == ["places", "points"]  # 3 against 4: 1 point is enough
    assert by["Shared 2"].mean_gap == 1
    assert not by["Shared 1"].disagrees  # same place, 4 against 3.5
    assert {s.title for s in talk.disagreements} == {"Shared 0", "Shared 2"}
    assert isinstance(talk.shared_pks, frozenset) and kept.pk not in talk.shared_pks
    assert Initiative.objects.count() == 5


def test_dialogue_counts_a_large_mean_gap_even_in_the_same_place(wf):
    dept, board = wf.forums["dept"], wf.forums["board"]
    idea = step(wf, log(wf, "unit"), "escalate", "prioritise", "refer_to_board")
    give(wf, "dept_member", idea, dept, impact=5)
    give(wf, "board", idea, board, impact=2)
    other = step(wf, log(wf, "unit", title="Other"), "escalate", "prioritise", "refer_to_board")
    unscored_by_board = other
    give(wf, "dept_member", unscored_by_board, dept, impact=4)
    talk = dialogue(dept, board)
    by = {s.title: s for s in talk.shared}
    assert by[idea.title].reasons == ["points"]
    # Scored by one side only: shared, but no places and no disagreement.
    assert by["Other"].department_place is None and not by["Other"].disagrees
