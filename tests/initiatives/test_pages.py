"""The initiative pages: list, log form, the initiative's page, its steps, editing, PDSA.

Permission matrices (the right seat yes; other seat, other forum, anonymous no), wrong
methods, repeated POSTs, refusals shown with their message and a 4xx, forms that keep what
was typed, and query counts that do not grow with the rows.
"""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from forums.models import Meeting
from initiatives import workflow
from initiatives.enums import InitiativeKind, OriginKind, State
from initiatives.models import Activity, Initiative, PDSACycle
from initiatives.services import initiative_transition, pdsa_cycle_create
from tests.factories import MeasureFactory

from .conftest import log

pytestmark = pytest.mark.django_db


def _client(client, wf, person):
    if person != "anonymous":
        client.force_login(wf.people[person])
    return client


def _new_url(wf, key="unit"):
    return reverse("initiatives:forum-initiative-new", args=[wf.forums[key].pk])


def _step_url(initiative, name):
    return reverse("initiatives:step", args=[initiative.pk, name])


def _page(initiative):
    return reverse("initiatives:initiative", args=[initiative.pk])


LOG_FORM = {
    "title": "Walks after lunch",
    "description": "Staff walk with patients.",
    "kind": InitiativeKind.IDEA,
    "origin_kind": OriginKind.UNIT,
    "origin_reference": "",
    "expected_benefit": "Fewer incidents",
    "effort": "small",
}


# -- logging ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("person", "members_may_log", "allowed"),
    [
        ("chair", False, True),
        ("unit_secretary", False, True),
        ("admin", False, True),
        ("clinician", False, False),  # a member: only where the forum allows it
        ("clinician", True, True),
        ("other_unit_chair", False, False),  # chairs another unit's forum
        ("other_unit_chair", True, False),  # a setting for members, not for outsiders
        ("dept_chair", False, False),
        ("outsider", True, False),
    ],
)
def test_who_may_log_in_a_unit_forum(client, wf, person, members_may_log, allowed):
    forum = wf.forums["unit"]
    forum.members_may_log = members_may_log
    forum.save()
    c = _client(client, wf, person)
    assert c.get(_new_url(wf)).status_code == (200 if allowed else 403)
    response = c.post(_new_url(wf), {**LOG_FORM, "origin_unit": wf.a1.pk})
    if allowed:
        initiative = Initiative.objects.get(title="Walks after lunch")
        assert response.status_code == 302 and response["Location"] == _page(initiative)
        assert initiative.forum == forum and initiative.created_by == wf.people[person]
    else:
        assert response.status_code == 403
        assert not Initiative.objects.exists()


def test_anonymous_is_sent_to_log_in(client, wf):
    idea = log(wf, "unit")
    for url in (
        reverse("initiatives:initiative-list"),
        _page(idea),
        _new_url(wf),
        reverse("initiatives:help-workflow"),
        _step_url(idea, "start_testing"),
    ):
        response = client.get(url)
        assert response.status_code == 302 and "/accounts/login/" in response["Location"], url
    assert client.post(_step_url(idea, "start_testing"), {"version": 0}).status_code == 302
    assert Activity.objects.filter(initiative=idea).count() == 1


def test_the_log_form_keeps_what_was_typed_and_says_what_is_wrong(client, wf):
    c = _client(client, wf, "chair")
    typed = {
        **LOG_FORM,
        "title": "Safewards at our unit",
        "origin_kind": OriginKind.LITERATURE,
        "origin_reference": "",
    }
    response = c.post(_new_url(wf), typed)
    assert response.status_code == 400
    html = response.content.decode()
    form = response.context["form"]
    # The service's refusal sits next to the field it names.
    assert "origin_reference" in form.errors
    assert 'id="id_origin_reference_error"' in html
    assert 'value="Safewards at our unit"' in html
    assert "Staff walk with patients." in html
    assert not Initiative.objects.exists()

    missing_title = c.post(_new_url(wf), {**LOG_FORM, "title": ""})
    assert missing_title.status_code == 400
    assert "title" in missing_title.context["form"].errors


def test_the_log_form_offers_the_forums_units_and_measures_only(client, wf):
    other_units_measure = MeasureFactory(code="a2-local", scope="unit", unit=wf.a2)
    dept_b_measure = MeasureFactory(code="b-dept", scope="department", department=wf.dept_b)
    c = _client(client, wf, "chair")
    form = c.get(_new_url(wf)).context["form"]
    assert list(form.fields["origin_unit"].queryset) == [wf.a1]
    offered = set(form.fields["measures"].queryset)
    assert wf.measures["local"] in offered and wf.measures["honos"] in offered
    assert other_units_measure not in offered and dept_b_measure not in offered
    # Chosen anyway: refused next to the field, nothing logged.
    response = c.post(
        _new_url(wf), {**LOG_FORM, "origin_unit": wf.a2.pk, "measures": [other_units_measure.pk]}
    )
    assert response.status_code == 400
    assert {"origin_unit", "measures"} <= set(response.context["form"].errors)
    assert not Initiative.objects.exists()


def test_the_chooser_lists_the_forums_one_may_log_in(client, wf):
    c = _client(client, wf, "dept_chair_on_board")  # chairs group A, a member of the board
    response = c.get(reverse("initiatives:initiative-new"))
    assert response.status_code == 200
    assert [f.pk for f in response.context["forums"]] == [wf.forums["dept"].pk]
    # One forum: the form for it straight away; ?forum= names it.
    assert response.context["forum"] == wf.forums["dept"]
    wf.forums["board"].members_may_log = True
    wf.forums["board"].save()
    response = c.get(reverse("initiatives:initiative-new"))
    assert response.context["forum"] is None
    assert {f.pk for f in response.context["forums"]} == {
        wf.forums["dept"].pk,
        wf.forums["board"].pk,
    }
    chosen = c.get(reverse("initiatives:initiative-new") + f"?forum={wf.forums['board'].pk}")
    assert chosen.context["forum"] == wf.forums["board"]
    assert c.get(reverse("initiatives:initiative-new") + "?forum=99999").status_code == 404
    outsider = _client(client, wf, "outsider")
    assert outsider.get(reverse("initiatives:initiative-new")).status_code == 403


def test_a_repeated_log_post_from_a_stale_page_is_a_new_initiative_only_if_sent_again(client, wf):
    # Logging has no version to go stale: the redirect after POST keeps a reload from
    # sending it twice.
    c = _client(client, wf, "chair")
    response = c.post(_new_url(wf), {**LOG_FORM, "origin_unit": wf.a1.pk}, follow=True)
    assert response.redirect_chain[-1][1] == 302
    assert response.request["REQUEST_METHOD"] == "GET"
    assert Initiative.objects.count() == 1


def test_wrong_methods(client, wf):
    idea = log(wf, "unit")
    c = _client(client, wf, "chair")
    assert c.post(reverse("initiatives:initiative-list")).status_code == 405
    assert c.post(_page(idea)).status_code == 405
    assert c.put(_step_url(idea, "start_testing")).status_code == 405
    assert c.delete(_new_url(wf)).status_code == 405
    assert c.post(reverse("initiatives:help-workflow")).status_code == 405


# -- the list ----------------------------------------------------------------------------------


def test_every_member_of_staff_sees_the_list_with_state_and_forum(client, wf):
    idea = log(wf, "unit", title="Walks")
    external = log(wf, "dept", title="Guideline X")
    for person in ("clinician", "outsider", "board", "admin"):
        response = _client(client, wf, person).get(reverse("initiatives:initiative-list"))
        assert response.status_code == 200
        html = response.content.decode()
        assert _page(idea) in html and _page(external) in html
        assert "Forum AFF-01" in html and "Group A" in html
        assert str(State.LOGGED.label) in html


def test_the_list_filters(client, wf):
    walks = log(wf, "unit", title="Walks after lunch", description="outdoors")
    guideline = log(wf, "dept", title="National guideline on sleep")
    initiative_transition(initiative=walks, user=wf.people["chair"], transition="start_testing")
    c = _client(client, wf, "chair")
    url = reverse("initiatives:initiative-list")

    def shown(query):
        response = c.get(url, query)
        assert response.status_code == 200
        return {i.pk for i in response.context["page"]}

    assert shown({}) == {walks.pk, guideline.pk}
    assert shown({"state": State.LOCAL_TESTING}) == {walks.pk}
    assert shown({"forum": wf.forums["dept"].pk}) == {guideline.pk}
    assert shown({"kind": InitiativeKind.INNOVATION}) == {guideline.pk}
    assert shown({"origin": OriginKind.UNIT}) == {walks.pk}
    assert shown({"department": wf.dept_a.pk}) == {walks.pk, guideline.pk}
    assert shown({"department": wf.dept_b.pk}) == set()
    assert shown({"q": "outdoors"}) == {walks.pk}
    assert shown({"q": "sleep guideline"}) == {guideline.pk}
    assert shown({"mine": "on"}) == {walks.pk}  # logged by the chair, in the chair's forum
    # Sorted by title both ways.
    assert [i.pk for i in c.get(url, {"sort": "title"}).context["page"]] == [
        guideline.pk,
        walks.pk,
    ]
    assert [i.pk for i in c.get(url, {"sort": "-title"}).context["page"]] == [
        walks.pk,
        guideline.pk,
    ]
    # A filter that is not valid says so and lists nothing (never a 500).
    bad = c.get(url, {"state": "nonsense", "forum": "x"})
    assert bad.status_code == 200 and bad.context["form"].errors
    assert list(bad.context["page"]) == []


def test_the_list_is_paginated(client, wf):
    for i in range(30):
        log(wf, "unit", title=f"Idea {i:02d}")
    c = _client(client, wf, "clinician")
    first = c.get(reverse("initiatives:initiative-list"), {"sort": "title"})
    assert len(first.context["page"]) == 25 and first.context["page"].has_next()
    second = c.get(reverse("initiatives:initiative-list"), {"sort": "title", "page": 2})
    assert [i.title for i in second.context["page"]] == [f"Idea {i:02d}" for i in range(25, 30)]
    assert "sort=title" in first.content.decode().split('rel="next"')[0].rsplit("href", 1)[1]


def _queries(fetch) -> int:
    fetch()
    with CaptureQueriesContext(connection) as captured:
        response = fetch()
    assert response.status_code == 200
    return len(captured)


def test_the_lists_queries_do_not_grow_with_its_rows(client, wf):
    c = _client(client, wf, "chair")
    fetch = lambda: c.get(reverse("initiatives:initiative-list"))  # noqa: E731
    log(wf, "unit", measures=[wf.measures["honos"]])
    one = _queries(fetch)
    for i in range(6):
        log(wf, "unit" if i % 2 else "dept", title=f"Idea {i}", measures=[wf.measures["honos"]])
    assert _queries(fetch) == one


# -- the initiative's page ---------------------------------------------------------------------


def _meeting(wf, key="unit"):
    return Meeting.objects.create(
        forum=wf.forums[key],
        starts_at=timezone.now() - timedelta(days=1),
        created_by=wf.people["chair"],
    )


def test_the_page_shows_everything_and_the_timeline(client, wf):
    idea = log(
        wf,
        "unit",
        title="Walks after lunch",
        description="Staff walk with patients.",
        measures=[wf.measures["local"], wf.measures["honos"]],
        expected_benefit="Fewer incidents",
        effort="small",
    )
    meeting = _meeting(wf)
    initiative_transition(
        initiative=idea,
        user=wf.people["chair"],
        transition="escalate",
        comment="The department should see this.",
        meeting=meeting,
    )
    response = _client(client, wf, "clinician").get(_page(idea))
    assert response.status_code == 200
    html = response.content.decode()
    for text in (
        "Walks after lunch",
        "Staff walk with patients.",
        "Fewer incidents",
        str(State.ESCALATED_TO_DEPARTMENT.label),
        "Group A",  # where it sits now
        "The department should see this.",
        "Forum AFF-01 → Group A",
        reverse("dashboards:measure", args=["local-walks"]),
        reverse("dashboards:measure", args=["honos-total"]),
        reverse("initiatives:meeting", args=[meeting.pk]),
    ):
        assert text in html, text
    timeline = response.context["timeline"]
    assert [a.transition for a in timeline] == [workflow.LOG_NAME, "escalate"]
    assert timeline[1].actor == wf.people["chair"]


def test_the_buttons_are_the_tables(client, wf):
    idea = log(wf, "unit")
    for person in ("chair", "dept_chair", "clinician", "outsider", "admin"):
        response = _client(client, wf, person).get(_page(idea))
        offered = [item["step"].name for item in response.context["steps"]]
        assert offered == [t.name for t in workflow.transitions_for(wf.people[person], idea)]
        html = response.content.decode()
        for name in offered:
            assert f'data-step="{name}"' in html
        client.logout()


def test_a_step_that_goes_through_its_own_service_is_not_a_plain_button(client, wf):
    board_idea = log(wf, "board")
    response = _client(client, wf, "board_chair").get(_page(board_idea))
    via = [item for item in response.context["steps"] if item["step"].via]
    assert via, "the board's chair may open a vote on a logged board initiative"
    html = response.content.decode()
    for item in via:
        assert f'data-step="{item["step"].name}"' not in html
        assert f'href="#panel-{item["panel"]}"' in html
    # Asked for anyway: the reason, and a 4xx.
    name = via[0]["step"].name
    assert client.get(_step_url(board_idea, name)).status_code == 400
    refused = client.post(_step_url(board_idea, name), {"version": 0, "comment": "Go"})
    assert refused.status_code == 400
    assert "needs its own form" in refused.content.decode()
    assert Activity.objects.filter(initiative=board_idea).count() == 1


def test_unknown_and_invisible_things_are_404(client, wf):
    idea = log(wf, "unit")
    c = _client(client, wf, "chair")
    assert c.get(reverse("initiatives:initiative", args=[idea.pk + 100])).status_code == 404
    assert c.get(_step_url(idea, "fly_to_the_moon")).status_code == 404
    assert c.get(reverse("initiatives:initiative-edit", args=[idea.pk + 100])).status_code == 404
    # A deactivated member of staff sees nothing (the selector answers for them, too).
    from initiatives.rules import visible_initiatives

    chair = wf.people["chair"]
    chair.is_active = False
    assert not visible_initiatives(chair).exists()


def test_the_page_queries_do_not_grow_with_history_measures_and_cycles(client, wf):
    c = _client(client, wf, "chair")

    def build(n):
        idea = log(wf, "unit", title=f"Idea {n}", measures=[wf.measures["local"]])
        return idea

    small = build(1)
    large = build(2)
    extra = [MeasureFactory(code=f"m-{i}") for i in range(4)]
    large.measures.add(*extra)
    for i in range(4):
        pdsa_cycle_create(
            user=wf.people["clinician"],
            initiative=large,
            unit=wf.a1,
            plan=f"Cycle {i}",
            start_date=timezone.localdate() - timedelta(days=10 - i),
            measure=extra[i],
        )
    initiative_transition(initiative=large, user=wf.people["chair"], transition="start_testing")
    meeting = _meeting(wf)
    initiative_transition(
        initiative=large,
        user=wf.people["chair"],
        transition="escalate",
        comment="Up",
        meeting=meeting,
    )
    pdsa_cycle_create(
        user=wf.people["clinician"],
        initiative=small,
        unit=wf.a1,
        plan="One",
        start_date=timezone.localdate(),
    )
    meeting_small = _meeting(wf)
    initiative_transition(
        initiative=small,
        user=wf.people["chair"],
        transition="escalate",
        comment="Up",
        meeting=meeting_small,
    )
    one = _queries(lambda: c.get(_page(small)))
    many = _queries(lambda: c.get(_page(large)))
    assert many == one


# -- steps -------------------------------------------------------------------------------------


def test_a_step_moves_once_however_often_it_is_sent(client, wf):
    idea = log(wf, "unit")
    c = _client(client, wf, "chair")
    form = c.get(_step_url(idea, "start_testing"))
    assert form.status_code == 200
    assert form.context["form"]["version"].value() == 0
    first = c.post(_step_url(idea, "start_testing"), {"version": 0})
    assert first.status_code == 302 and first["Location"] == _page(idea)
    again = c.post(_step_url(idea, "start_testing"), {"version": 0})
    assert again.status_code == 409
    assert "Someone else moved this initiative meanwhile" in again.content.decode()
    idea.refresh_from_db()
    assert idea.state == State.LOCAL_TESTING and idea.version == 1
    assert Activity.objects.filter(initiative=idea).count() == 2


def test_htmx_gets_the_form_and_a_redirect_or_the_refusal_in_place(client, wf):
    idea = log(wf, "unit")
    c = _client(client, wf, "chair")
    fragment = c.get(_step_url(idea, "escalate"), headers={"HX-Request": "true"})
    html = fragment.content.decode()
    assert fragment.status_code == 200 and "<html" not in html and "data-swap-errors" in html
    refused = c.post(_step_url(idea, "escalate"), {"version": 0}, headers={"HX-Request": "true"})
    assert refused.status_code == 400
    assert "This field is required." in refused.content.decode()  # next to the comment
    assert 'id="id_comment_error"' in refused.content.decode()
    done = c.post(
        _step_url(idea, "escalate"),
        {"version": 0, "comment": "For the department"},
        headers={"HX-Request": "true"},
    )
    assert done.status_code == 204 and done["HX-Redirect"] == _page(idea)
    idea.refresh_from_db()
    assert idea.forum == wf.forums["dept"]


@pytest.mark.parametrize(
    ("person", "status"),
    [("chair", 302), ("unit_secretary", 302), ("clinician", 403), ("other_unit_chair", 403)],
)
def test_who_may_take_a_step_on_the_page(client, wf, person, status):
    idea = log(wf, "unit")
    c = _client(client, wf, person)
    response = c.post(_step_url(idea, "start_testing"), {"version": 0})
    assert response.status_code == status
    moved = Activity.objects.filter(initiative=idea, transition="start_testing").exists()
    assert moved == (status == 302)
    if status == 403:
        assert "is for:" in response.content.decode()  # the service's own message
        assert c.get(_step_url(idea, "start_testing")).status_code == 403


def test_a_step_from_the_wrong_state_says_so(client, wf):
    idea = log(wf, "unit")
    c = _client(client, wf, "chair")
    response = c.post(_step_url(idea, "adopt_locally"), {"version": 0, "comment": "Works"})
    assert response.status_code == 400
    assert "is not possible from" in response.content.decode()


def test_handing_down_asks_for_the_unit_forum_and_the_meeting_is_preselected(client, wf):
    external = log(wf, "dept")
    meeting = _meeting(wf, "dept")
    c = _client(client, wf, "dept_chair")
    response = c.get(_step_url(external, "hand_down") + f"?meeting={meeting.pk}")
    form = response.context["form"]
    assert set(form.fields["target_forum"].queryset) == {
        wf.forums["unit"],
        wf.forums["unit_a2"],
    }
    assert str(form["meeting"].value()) == str(meeting.pk)
    assert f'<option value="{meeting.pk}" selected>' in response.content.decode()
    # The page's step buttons carry the meeting on.
    page = c.get(_page(external) + f"?meeting={meeting.pk}")
    assert f'name="meeting" value="{meeting.pk}"' in page.content.decode()
    # Another department's unit forum is not a choice.
    no = c.post(
        _step_url(external, "hand_down"),
        {"version": 0, "comment": "Test it", "target_forum": wf.forums["dept_b"].pk},
    )
    assert no.status_code == 400 and "target_forum" in no.context["form"].errors
    yes = c.post(
        _step_url(external, "hand_down"),
        {
            "version": 0,
            "comment": "Test it",
            "target_forum": wf.forums["unit_a2"].pk,
            "meeting": meeting.pk,
        },
    )
    assert yes.status_code == 302
    external.refresh_from_db()
    assert external.forum == wf.forums["unit_a2"] and external.state == State.LOCAL_TESTING
    assert Activity.objects.get(initiative=external, transition="hand_down").meeting == meeting


def test_a_meeting_of_another_forum_is_not_offered(client, wf):
    idea = log(wf, "unit")
    elsewhere = _meeting(wf, "unit_a2")
    c = _client(client, wf, "chair")
    response = c.post(_step_url(idea, "start_testing"), {"version": 0, "meeting": elsewhere.pk})
    assert response.status_code == 400 and "meeting" in response.context["form"].errors
    assert not Activity.objects.filter(initiative=idea, transition="start_testing").exists()


# -- editing -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("person", "allowed"),
    [
        ("chair", True),  # logged it, and chairs the forum
        ("unit_secretary", True),
        ("clinician", False),
        ("dept_chair", False),
        ("other_unit_chair", False),
    ],
)
def test_who_may_edit(client, wf, person, allowed):
    idea = log(wf, "unit", title="Old title")
    c = _client(client, wf, person)
    url = reverse("initiatives:initiative-edit", args=[idea.pk])
    assert c.get(url).status_code == (200 if allowed else 403)
    response = c.post(
        url,
        {"title": "New title", "version": 0, "measures": [wf.measures["honos"].pk]},
    )
    idea.refresh_from_db()
    if allowed:
        assert response.status_code == 302
        assert idea.title == "New title" and list(idea.measures.all()) == [wf.measures["honos"]]
        assert idea.version == 0  # an edit is not a step
    else:
        assert response.status_code == 403 and idea.title == "Old title"


def test_an_edit_of_a_moved_initiative_is_refused_and_a_closed_one_cannot_be_edited(client, wf):
    idea = log(wf, "unit", title="Old title")
    initiative_transition(initiative=idea, user=wf.people["chair"], transition="start_testing")
    c = _client(client, wf, "chair")
    url = reverse("initiatives:initiative-edit", args=[idea.pk])
    stale = c.post(url, {"title": "New", "version": 0})
    assert stale.status_code == 409 and 'value="New"' in stale.content.decode()
    initiative_transition(
        initiative=idea, user=wf.people["chair"], transition="reject", comment="No"
    )
    assert c.get(url).status_code == 403
    assert c.get(_page(idea)).context["can_edit"] is False


# -- PDSA cycles -------------------------------------------------------------------------------


def test_pdsa_cycles_per_unit_and_who_may_add_them(client, wf):
    idea = log(wf, "unit")
    url = reverse("initiatives:pdsa-new", args=[idea.pk])
    form = {
        "unit": wf.a1.pk,
        "measure": wf.measures["local"].pk,
        "plan": "Walk after lunch for two weeks",
        "start_date": "2025-03-03",
        "end_date": "2025-03-17",
    }
    outsider = _client(client, wf, "outsider")
    assert outsider.get(_page(idea)).context["pdsa_form"] is None
    assert outsider.post(url, form).status_code == 403
    client.logout()
    c = _client(client, wf, "clinician")  # a member of a1's forum runs cycles in a1
    page = c.get(_page(idea))
    pdsa_form = page.context["pdsa_form"]
    assert list(pdsa_form.fields["unit"].queryset) == [wf.a1]
    assert response_ok(c.post(url, form))
    cycle = PDSACycle.objects.get()
    assert (cycle.unit, cycle.measure, cycle.created_by) == (
        wf.a1,
        wf.measures["local"],
        wf.people["clinician"],
    )
    html = c.get(_page(idea)).content.decode()
    assert "Walk after lunch for two weeks" in html and "AFF-01" in html
    # A measure the unit does not record is not a choice; the dates must make sense.
    a2_measure = MeasureFactory(code="a2-only", scope="unit", unit=wf.a2)
    wrong = c.post(url, {**form, "measure": a2_measure.pk, "end_date": "2025-03-01"})
    assert wrong.status_code == 400 and "measure" in wrong.context["pdsa_form"].errors
    backwards = c.post(url, {**form, "end_date": "2025-03-01"})
    assert backwards.status_code == 400
    assert "end_date" in backwards.context["pdsa_form"].errors
    assert "Walk after lunch for two weeks" in backwards.content.decode()  # kept
    assert PDSACycle.objects.count() == 1


def test_the_pdsa_form_offers_the_chosen_units_measures(client, wf):
    idea = log(wf, "unit")
    c = _client(client, wf, "dept_secretary")  # department A's units
    fragment = c.get(
        reverse("initiatives:pdsa-new", args=[idea.pk]),
        {"unit": wf.a2.pk, "plan": "typed"},
        headers={"HX-Request": "true"},
    )
    form = fragment.context["pdsa_form"]
    assert set(form.fields["unit"].queryset) == {wf.a1, wf.a2}
    assert wf.measures["local"] not in set(form.fields["measure"].queryset)  # a1's own
    assert wf.measures["honos"] in set(form.fields["measure"].queryset)
    assert "typed" in fragment.content.decode()


def response_ok(response) -> bool:
    return response.status_code == 302


# -- navigation --------------------------------------------------------------------------------


def test_navigation_links_and_seats_from_the_rules(client, wf):
    chair = _client(client, wf, "chair").get(reverse("initiatives:help-workflow"))
    html = chair.content.decode()
    assert reverse("initiatives:initiative-list") in html
    assert reverse("initiatives:help-workflow") in html
    assert '<span class="role">Forum chair</span>' in html
    assert '<span class="role">Division board</span>' not in html
    client.logout()
    board = _client(client, wf, "board").get(reverse("initiatives:help-workflow"))
    assert '<span class="role">Division board</span>' in board.content.decode()
    client.logout()
    # An admin holds no seat: no badge (the rules' own answer, not the superuser shortcut).
    admin = _client(client, wf, "admin").get(reverse("initiatives:help-workflow"))
    assert 'class="role"' not in admin.content.decode()
