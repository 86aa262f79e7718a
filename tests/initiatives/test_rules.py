"""Permissions through django-rules: what views, the API and templates will ask."""

from __future__ import annotations

import rules
from django.contrib.auth.models import AnonymousUser
from django.template import Context, Template

from initiatives import rules as initiative_rules
from initiatives import workflow
from initiatives.services import initiative_transition
from units.services import user_deactivate

from .conftest import log


def test_who_may_move_a_freshly_logged_idea(wf):
    idea = log(wf, "unit")
    may = {
        name for name, user in wf.people.items() if user.has_perm("initiatives.transition", idea)
    }
    # The unit forum's deciders, the department's chair (who may call it up), the admin.
    assert may == {"chair", "unit_secretary", "dept_chair", "dept_chair_on_board", "admin"}
    assert not AnonymousUser().has_perm("initiatives.transition", idea)


def test_the_steps_offered_are_the_tables(wf):
    idea = log(wf, "unit")
    names = lambda person: [t.name for t in workflow.transitions_for(wf.people[person], idea)]  # noqa: E731
    assert names("chair") == ["start_testing", "escalate", "reject", "withdraw"]
    assert names("dept_chair") == ["escalate"]
    assert names("clinician") == []
    assert names("admin") == ["start_testing", "escalate", "reject", "withdraw"]


def test_one_query_tells_a_persons_steps(wf, django_assert_num_queries):
    idea = log(wf, "unit")
    idea = type(idea).objects.select_related("forum").get(pk=idea.pk)
    with django_assert_num_queries(1):
        workflow.transitions_for(wf.people["dept_chair_on_board"], idea)


def test_nothing_to_take_on_a_closed_initiative_but_the_superuser_shortcut(wf):
    idea = log(wf, "unit")
    initiative_transition(
        initiative=idea, user=wf.people["chair"], transition="reject", comment="No."
    )
    assert not wf.people["chair"].has_perm("initiatives.transition", idea)
    # Django says yes to an active superuser before asking any backend; the predicate does not.
    assert wf.people["admin"].has_perm("initiatives.transition", idea)
    assert not rules.has_perm("initiatives.transition", wf.people["admin"], idea)


def test_who_may_log_where(wf):
    def may(person, forum):
        return rules.has_perm("initiatives.log_initiative", wf.people[person], wf.forums[forum])

    assert may("chair", "unit") and may("unit_secretary", "unit")
    assert not may("clinician", "unit")  # members: with a forum setting, later
    assert not may("chair", "unit_a2") and not may("chair", "dept")
    assert may("dept_chair", "dept") and may("board_secretary", "board")
    assert not may("board", "board")
    assert may("admin", "dept") and not may("admin", "support")  # no initiatives there
    assert wf.people["chair"].has_perm("initiatives.log_initiative", wf.forums["unit"])


def test_a_deactivated_chair_may_do_nothing(wf):
    idea = log(wf, "unit")
    chair = wf.people["chair"]
    user_deactivate(user=chair)
    assert not chair.has_perm("initiatives.transition", idea)
    assert not chair.has_perm("initiatives.log_initiative", wf.forums["unit"])
    assert not chair.has_perm("initiatives.view_initiative", idea)
    assert workflow.transitions_for(chair, idea) == []


def test_predicates(wf):
    idea = log(wf, "unit")
    people = wf.people
    assert initiative_rules.is_chair_of_current_forum(people["chair"], idea)
    assert not initiative_rules.is_chair_of_current_forum(people["unit_secretary"], idea)
    assert initiative_rules.records_decisions_in_current_forum(people["unit_secretary"], idea)
    assert not initiative_rules.records_decisions_in_current_forum(people["clinician"], idea)
    assert initiative_rules.is_board_member(people["board"])
    assert initiative_rules.is_board_member(people["dept_chair_on_board"])
    assert not initiative_rules.is_board_member(people["dept_chair"])
    assert initiative_rules.is_initiative_creator(people["chair"], idea)
    assert not initiative_rules.is_initiative_creator(people["unit_secretary"], idea)
    assert initiative_rules.can_take(people["dept_chair"], idea, "escalate")
    assert not initiative_rules.can_take(people["dept_chair"], idea, "start_testing")


def test_who_may_record_pdsa_cycles(wf):
    idea = log(wf, "unit")
    units = lambda person: set(initiative_rules.pdsa_units(wf.people[person]))  # noqa: E731
    assert units("clinician") == {wf.a1}  # a member of a1's forum
    assert units("dept_secretary") == {wf.a1, wf.a2}  # department A's deciders
    assert units("dept_member") == set() and units("board") == set()
    assert units("outsider") == set()
    assert wf.people["clinician"].has_perm("initiatives.add_pdsacycle", idea)
    assert not wf.people["outsider"].has_perm("initiatives.add_pdsacycle", idea)
    assert initiative_rules.can_run_pdsa_in(wf.people["clinician"], idea, wf.a1)
    assert not initiative_rules.can_run_pdsa_in(wf.people["clinician"], idea, wf.a2)


def test_templates_ask_the_same_rules(wf):
    idea = log(wf, "unit")
    template = Template(
        "{% load rules %}{% has_perm 'initiatives.transition' user idea as can %}"
        "{% if can %}yes{% else %}no{% endif %}"
    )
    for person, expected in [("chair", "yes"), ("clinician", "no"), ("outsider", "no")]:
        assert template.render(Context({"user": wf.people[person], "idea": idea})) == expected
