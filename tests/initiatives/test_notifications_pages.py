"""The notification pages and API: one's own only, marking read, e-mail settings, queries."""

from __future__ import annotations

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone
from rest_framework.test import APIClient

from forums.enums import EmailFrequency
from forums.models import Membership
from initiatives.models import Notification, NotificationPreference
from initiatives.services import initiative_transition

from .conftest import log

HTMX = {"HTTP_HX_REQUEST": "true"}
LIST = reverse("initiatives:notifications")
READ_ALL = reverse("initiatives:notifications-read-all")
SETTINGS = reverse("initiatives:notification-settings")


def client_for(wf, person: str | None) -> Client:
    client = Client()
    if person:
        client.force_login(wf.people[person])
    return client


def api_for(wf, person: str | None) -> APIClient:
    client = APIClient()
    if person:
        client.force_authenticate(wf.people[person])
    return client


def read_url(notice) -> str:
    return reverse("initiatives:notification-read", args=[notice.pk])


def mine(wf, person):
    return Notification.objects.filter(recipient=wf.people[person])


@pytest.fixture
def told(wf):
    """Two notices each for the unit forum's clinician and secretary."""
    idea = log(wf, "unit", title="Walks after lunch")
    for name, comment in (("start_testing", ""), ("adopt_locally", "It <b>works</b>.")):
        initiative_transition(
            initiative=idea, user=wf.people["chair"], transition=name, comment=comment
        )
    assert mine(wf, "clinician").count() == 2
    wf.idea = idea
    return wf


# --- the list --------------------------------------------------------------------------------


def test_the_list_shows_ones_own_unread_first_with_links(told):
    older, newer = mine(told, "clinician").order_by("created_at", "pk")
    Notification.objects.filter(pk=newer.pk).update(read_at=timezone.now())

    response = client_for(told, "clinician").get(LIST)

    assert response.status_code == 200
    html = response.content.decode()
    # Unread (the older) before read (the newer).
    assert html.index(f'id="notification-{older.pk}"') < html.index(f'id="notification-{newer.pk}"')
    assert f'href="/initiatives/{told.idea.pk}/"' in html
    assert "chair logged “Walks after lunch” in Forum AFF-01." in html
    assert "It &lt;b&gt;works&lt;/b&gt;." in html  # the decider's words, escaped
    assert "1 unread" in html
    # The navigation's count.
    assert 'id="nav-unread"' in html and '1<span class="visually-hidden"> unread' in html


@pytest.mark.parametrize("person", ["chair", "dept_chair", "outsider"])
def test_the_list_never_shows_anothers_notices(told, person):
    html = client_for(told, person).get(LIST).content.decode()
    for notice in mine(told, "clinician"):
        assert f'id="notification-{notice.pk}"' not in html


def test_the_list_needs_a_log_in(told):
    response = client_for(told, None).get(LIST)
    assert response.status_code == 302 and "/accounts/login/" in response["Location"]


def test_the_list_is_get_only(told):
    assert client_for(told, "clinician").post(LIST).status_code == 405


def test_the_list_is_rendered_in_the_readers_language(told):
    client = client_for(told, "clinician")
    html = client.get(LIST, HTTP_ACCEPT_LANGUAGE="sv").content.decode()
    assert "Forum AFF-01: inför lokalt." in html and "adopt locally" not in html
    # The person's language is remembered for their e-mails.
    assert NotificationPreference.objects.get(user=told.people["clinician"]).language == "sv"


def test_the_lists_queries_do_not_grow_with_its_length(told):
    client = client_for(told, "clinician")
    client.get(LIST)  # the session, the remembered language
    with CaptureQueriesContext(connection) as few:
        client.get(LIST)
    Notification.objects.bulk_create(
        Notification(
            recipient=told.people["clinician"],
            kind="decision",
            forum=told.forums["unit"],
            initiative=told.idea,
            params={"msg": "decision", "title": "T", "forum": "F", "step": "reject"},
            url="/initiatives/1/",
        )
        for _ in range(20)
    )
    with CaptureQueriesContext(connection) as many:
        response = client.get(LIST)
    assert response.content.decode().count('class="notification') >= 20
    assert len(many) == len(few), [q["sql"] for q in many.captured_queries]


# --- marking read ----------------------------------------------------------------------------


def test_marking_read_with_htmx_answers_the_item_and_the_new_count(told):
    first, second = mine(told, "clinician").order_by("pk")
    client = client_for(told, "clinician")

    response = client.post(read_url(first), **HTMX)

    assert response.status_code == 200
    html = response.content.decode()
    assert f'<li id="notification-{first.pk}" class="notification">' in html
    assert "Mark as read" not in html
    assert 'id="nav-unread" class="nav-count" hx-swap-oob="true"' in html
    assert ">1<" in html.replace('<span class="visually-hidden">, </span>', ">")
    first.refresh_from_db()
    second.refresh_from_db()
    assert first.read_at is not None and second.read_at is None


def test_marking_read_again_changes_nothing(told):
    notice = mine(told, "clinician").first()
    client = client_for(told, "clinician")
    assert client.post(read_url(notice)).status_code == 302
    notice.refresh_from_db()
    first_read = notice.read_at
    response = client.post(read_url(notice))
    assert response.status_code == 302 and response["Location"] == LIST
    notice.refresh_from_db()
    assert notice.read_at == first_read


@pytest.mark.parametrize("person", ["unit_secretary", "chair", "outsider", "admin"])
def test_one_cannot_mark_anothers_notice(told, person):
    notice = mine(told, "clinician").first()
    response = client_for(told, person).post(read_url(notice), **HTMX)
    assert response.status_code == 404
    notice.refresh_from_db()
    assert notice.read_at is None


def test_marking_read_is_post_only_and_needs_a_log_in(told):
    notice = mine(told, "clinician").first()
    assert client_for(told, "clinician").get(read_url(notice)).status_code == 405
    anonymous = client_for(told, None).post(read_url(notice))
    assert anonymous.status_code == 302 and "/accounts/login/" in anonymous["Location"]
    notice.refresh_from_db()
    assert notice.read_at is None


def test_mark_all_read_marks_only_ones_own(told):
    client = client_for(told, "clinician")
    response = client.post(READ_ALL, **HTMX)
    assert response.status_code == 200
    html = response.content.decode()
    assert 'id="notification-list"' in html and "0 unread" in html
    assert 'hx-swap-oob="true"' in html
    assert not mine(told, "clinician").filter(read_at__isnull=True).exists()
    assert mine(told, "unit_secretary").filter(read_at__isnull=True).count() == 2
    # Again: nothing more to mark, still fine.
    assert client.post(READ_ALL).status_code == 302
    assert client.get(READ_ALL).status_code == 405


# --- e-mail settings -------------------------------------------------------------------------


def test_settings_list_ones_forums_and_save_the_choices(told):
    Membership.objects.create(forum=told.forums["dept"], user=told.people["clinician"])
    unit = Membership.objects.get(forum=told.forums["unit"], user=told.people["clinician"])
    dept = Membership.objects.get(forum=told.forums["dept"], user=told.people["clinician"])
    client = client_for(told, "clinician")

    html = client.get(SETTINGS).content.decode()
    assert "Forum AFF-01" in html and "Group A" in html and "Board" not in html
    assert f'<label for="id_forum_{unit.pk}">' in html

    response = client.post(
        SETTINGS,
        {
            f"forum_{unit.pk}": EmailFrequency.IMMEDIATE,
            f"forum_{dept.pk}": EmailFrequency.NEVER,
            "email_frequency": EmailFrequency.NEVER,
            "language": "sv",
        },
    )
    assert response.status_code == 302 and response["Location"] == SETTINGS
    unit.refresh_from_db()
    dept.refresh_from_db()
    assert (unit.email_frequency, dept.email_frequency) == ("immediate", "never")
    preference = NotificationPreference.objects.get(user=told.people["clinician"])
    assert (preference.language, preference.email_frequency) == ("sv", "never")


def test_settings_cannot_change_anothers_membership(told):
    others = Membership.objects.get(forum=told.forums["unit"], user=told.people["chair"])
    client = client_for(told, "clinician")
    own = Membership.objects.get(forum=told.forums["unit"], user=told.people["clinician"])
    response = client.post(
        SETTINGS,
        {
            f"forum_{own.pk}": "daily",
            f"forum_{others.pk}": "never",
            "email_frequency": "daily",
            "language": "",
        },
    )
    assert response.status_code == 302
    others.refresh_from_db()
    assert others.email_frequency == EmailFrequency.DAILY


def test_settings_refuse_an_unknown_choice_and_keep_what_was_typed(told):
    own = Membership.objects.get(forum=told.forums["unit"], user=told.people["clinician"])
    response = client_for(told, "clinician").post(
        SETTINGS,
        {f"forum_{own.pk}": "hourly", "email_frequency": "never", "language": "sv"},
    )
    assert response.status_code == 400
    html = response.content.decode()
    assert f'id="id_forum_{own.pk}_error"' in html
    assert '<option value="never" selected>' in html
    own.refresh_from_db()
    assert own.email_frequency == EmailFrequency.DAILY


def test_settings_need_a_log_in_and_take_get_and_post_only(told):
    assert client_for(told, None).get(SETTINGS).status_code == 302
    assert client_for(told, "clinician").put(SETTINGS).status_code == 405


# --- the navigation's count ------------------------------------------------------------------


def test_the_api_and_fragments_pay_no_query_for_the_navigation_count(told):
    client = client_for(told, "clinician")
    client.get(LIST)
    with CaptureQueriesContext(connection) as queries:
        assert client.get("/api/measures/").status_code == 200
    assert not [q for q in queries.captured_queries if "notification" in q["sql"]]


def test_every_page_shows_the_count(told):
    html = client_for(told, "clinician").get(reverse("initiatives:initiative-list")).content
    assert b'id="nav-unread"' in html and b"2<span" in html
    html = client_for(told, "outsider").get(reverse("initiatives:initiative-list")).content
    assert b'<span id="nav-unread" class="nav-count"></span>' in html


# --- the API ---------------------------------------------------------------------------------


def test_the_api_lists_ones_own_in_the_readers_language(told):
    response = api_for(told, "clinician").get("/api/notifications/")
    assert response.status_code == 200
    body = response.json()
    assert body["count"] == 2
    assert {row["kind"] for row in body["results"]} == {"arrived", "decision"}
    decision = next(row for row in body["results"] if row["kind"] == "decision")
    assert decision["message"] == "Decision on “Walks after lunch” in Forum AFF-01: adopt locally."
    assert decision["comment"] == "It <b>works</b>."
    assert decision["read"] is False and decision["url"] == f"/initiatives/{told.idea.pk}/"
    assert api_for(told, "outsider").get("/api/notifications/").json()["count"] == 0


def test_the_api_marks_read_only_ones_own(told):
    notice = mine(told, "clinician").first()
    url = f"/api/notifications/{notice.pk}/read/"
    assert api_for(told, "unit_secretary").post(url).status_code == 404
    assert (
        api_for(told, "unit_secretary").get(f"/api/notifications/{notice.pk}/").status_code == 404
    )
    response = api_for(told, "clinician").post(url)
    assert response.status_code == 200 and response.json()["read"] is True
    assert api_for(told, "clinician").post(url).status_code == 200  # again: fine
    assert api_for(told, "clinician").get(url).status_code == 405
    assert api_for(told, "clinician").post("/api/notifications/999999/read/").status_code == 404


def test_the_api_marks_all_read(told):
    response = api_for(told, "clinician").post("/api/notifications/read-all/")
    assert response.status_code == 200 and response.json() == {"marked": 2}
    assert api_for(told, "clinician").post("/api/notifications/read-all/").json() == {"marked": 0}
    assert mine(told, "unit_secretary").filter(read_at__isnull=True).count() == 2
    assert api_for(told, "clinician").get("/api/notifications/read-all/").status_code == 405


def test_the_api_needs_a_log_in(told):
    assert api_for(told, None).get("/api/notifications/").status_code in (401, 403)
    assert api_for(told, None).post("/api/notifications/read-all/").status_code in (401, 403)


def test_the_api_lists_queries_do_not_grow(told):
    client = api_for(told, "clinician")
    with CaptureQueriesContext(connection) as few:
        client.get("/api/notifications/")
    Notification.objects.bulk_create(
        Notification(
            recipient=told.people["clinician"],
            kind="arrived",
            forum=told.forums["unit"],
            params={"msg": "arrived", "title": "T", "forum": "F", "from_forum": "G"},
        )
        for _ in range(15)
    )
    with CaptureQueriesContext(connection) as many:
        assert client.get("/api/notifications/").json()["count"] == 17
    assert len(many) == len(few)


def test_the_navigation_count_is_lazy(told, rf):
    from lhs.context_processors import navigation

    request = rf.get("/")
    request.user = told.people["clinician"]
    with CaptureQueriesContext(connection) as made:
        context = navigation(request)
    assert len(made) == 0
    with CaptureQueriesContext(connection) as shown:
        assert str(context["nav_unread_notifications"]) == "2"
        assert context["nav_unread_notifications"]
    assert len(shown) == 1
