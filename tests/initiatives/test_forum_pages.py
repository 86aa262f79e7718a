"""Forum and meeting pages: who sees what, who may change it, the agenda's HTMX edits, the
print layout and the Word export (opened again), and the forum page's query count."""

from __future__ import annotations

import io
from datetime import timedelta

import pytest
from django.conf import settings
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone
from docx import Document

from forums.models import Meeting
from forums.services import meeting_create
from initiatives import agenda
from initiatives.models import AgendaItem
from initiatives.services import initiative_transition
from units.enums import AuditAction
from units.models import AuditEvent

from .conftest import log

pytestmark = pytest.mark.django_db

HTMX = {"HX-Request": "true"}

#: Who may read the unit forum's meetings, and who may record them.
RECORDERS = ("chair", "unit_secretary")
READERS = (
    "clinician",  # a member
    "dept_chair",  # the coordinating group of the unit's department
    "dept_member",
    "board",  # the division board
    "admin",
)
STRANGERS = ("other_unit_chair", "other_dept_chair", "support", "outsider")


@pytest.fixture
def meeting(wf) -> Meeting:
    return meeting_create(
        user=wf.people["chair"],
        forum=wf.forums["unit"],
        starts_at=timezone.now() + timedelta(days=2),
        location="Room 4",
        present=[wf.people["chair"]],
        minutes="First point.\n\nSecond point.",
    )


def _as(client, wf, person):
    if person is not None:
        client.force_login(wf.people[person])
    return client


def _login_redirect(response) -> bool:
    return response.status_code == 302 and "/accounts/login/" in response["Location"]


# --------------------------------------------------------------------------------------------
# The forums list and a forum's page
# --------------------------------------------------------------------------------------------


def test_the_forums_list_puts_mine_first(client, wf):
    _as(client, wf, "dept_chair_on_board")
    response = client.get(reverse("initiatives:forum-list"))
    assert response.status_code == 200
    html = response.content.decode()
    mine, others = html.split('id="forums-all"', 1)
    assert "Group A" in mine and "Board" in mine and "Chair" in mine
    assert "Forum AFF-01" in others and "Forum AFF-01" not in mine
    assert "Group A" not in others


@pytest.mark.parametrize("person", ["chair", "clinician", "outsider", "support"])
def test_every_member_of_staff_sees_every_forum(client, wf, person, meeting):
    initiative = log(wf, "unit", title="Walk every morning")
    _as(client, wf, person)
    assert client.get(reverse("initiatives:forum-list")).status_code == 200
    response = client.get(reverse("initiatives:forum", args=[wf.forums["unit"].pk]))
    assert response.status_code == 200
    html = response.content.decode()
    assert reverse("initiatives:initiative", args=[initiative.pk]) in html
    assert "Walk every morning" in html and "Logged" in html
    assert "unit_secretary" in html and "Secretary" in html  # members with roles
    new = reverse("initiatives:meeting-new", args=[wf.forums["unit"].pk])
    assert (new in html) == (person == "chair")
    link = reverse("initiatives:meeting", args=[meeting.pk])
    assert (link in html) == (person in ("chair", "clinician"))


def test_closed_initiatives_are_collapsed(client, wf):
    open_one = log(wf, "unit", title="Still open")
    closed = log(wf, "unit", title="Turned down")
    initiative_transition(
        initiative=closed, user=wf.people["chair"], transition="reject", comment="No."
    )
    _as(client, wf, "clinician")
    html = client.get(reverse("initiatives:forum", args=[wf.forums["unit"].pk])).content.decode()
    before, details = html.split("<details", 1)
    assert open_one.title in before and closed.title not in before
    assert closed.title in details.split("</details>", 1)[0]


def test_forum_pages_refuse_anonymous_other_methods_and_unknown_forums(client, wf):
    url = reverse("initiatives:forum", args=[wf.forums["unit"].pk])
    assert _login_redirect(client.get(url))
    assert _login_redirect(client.get(reverse("initiatives:forum-list")))
    _as(client, wf, "chair")
    assert client.post(url).status_code == 405
    assert client.post(reverse("initiatives:forum-list")).status_code == 405
    assert client.get(reverse("initiatives:forum", args=[99999])).status_code == 404


def _forum_page_queries(client, wf) -> int:
    url = reverse("initiatives:forum", args=[wf.forums["unit"].pk])
    client.get(url)  # warm (sessions, content types)
    with CaptureQueriesContext(connection) as queries:
        assert client.get(url).status_code == 200
    return len(queries)


def test_the_forum_page_costs_the_same_with_one_or_many_things(client, wf):
    _as(client, wf, "chair")
    log(wf, "unit", title="Only one")
    meeting_create(
        user=wf.people["chair"],
        forum=wf.forums["unit"],
        starts_at=timezone.now() + timedelta(days=1),
    )
    meeting_create(
        user=wf.people["chair"],
        forum=wf.forums["unit"],
        starts_at=timezone.now() - timedelta(days=1),
    )
    one = _forum_page_queries(client, wf)
    for i in range(12):
        initiative = log(wf, "unit", title=f"Idea {i}")
        if i % 3 == 0:
            initiative_transition(
                initiative=initiative, user=wf.people["chair"], transition="reject", comment="-"
            )
        for days in (i + 2, -(i + 2)):
            m = meeting_create(
                user=wf.people["chair"],
                forum=wf.forums["unit"],
                starts_at=timezone.now() + timedelta(days=days),
            )
            agenda.agenda_item_add(user=wf.people["chair"], meeting=m, title="Item")
    many = _forum_page_queries(client, wf)
    assert many == one, (one, many)


def test_the_forums_list_costs_the_same_with_one_or_many_forums(client, wf):
    _as(client, wf, "chair")
    url = reverse("initiatives:forum-list")
    client.get(url)
    with CaptureQueriesContext(connection) as few:
        client.get(url)
    from tests.factories import ForumFactory, MembershipFactory

    for i in range(8):
        forum = ForumFactory(name=f"Extra {i}", division=wf.division)
        MembershipFactory(forum=forum, user=wf.people["chair"])
    with CaptureQueriesContext(connection) as many:
        html = client.get(url).content.decode()
    assert "Extra 7" in html
    assert len(many) == len(few)


# --------------------------------------------------------------------------------------------
# Planning a meeting
# --------------------------------------------------------------------------------------------


def _new_data(wf, **extra):
    data = {
        "starts_at": (timezone.localtime() + timedelta(days=7)).strftime("%Y-%m-%dT%H:%M"),
        "location": "Room 1",
        "present": [wf.people["clinician"].pk],
        "minutes": "",
    }
    data.update(extra)
    return data


@pytest.mark.parametrize("person", ["chair", "unit_secretary"])
def test_chair_and_secretary_plan_a_meeting_once(client, wf, person):
    _as(client, wf, person)
    url = reverse("initiatives:meeting-new", args=[wf.forums["unit"].pk])
    assert client.get(url).status_code == 200
    data = _new_data(wf)
    response = client.post(url, data)
    meeting = Meeting.objects.get()
    assert response.status_code == 302
    assert response["Location"] == reverse("initiatives:meeting", args=[meeting.pk])
    assert meeting.location == "Room 1" and list(meeting.present.all()) == [wf.people["clinician"]]
    # The same form sent again does not plan a second meeting.
    again = client.post(url, data)
    assert again.status_code == 400 and "already has a meeting" in again.content.decode()
    assert Meeting.objects.count() == 1


@pytest.mark.parametrize("person", ["clinician", "dept_chair", "other_unit_chair", "outsider"])
def test_others_may_not_plan_a_meeting(client, wf, person):
    _as(client, wf, person)
    url = reverse("initiatives:meeting-new", args=[wf.forums["unit"].pk])
    assert client.get(url).status_code == 403
    assert client.post(url, _new_data(wf)).status_code == 403
    assert not Meeting.objects.exists()


def test_planning_refuses_anonymous_and_shows_errors_next_to_fields(client, wf):
    url = reverse("initiatives:meeting-new", args=[wf.forums["unit"].pk])
    assert _login_redirect(client.post(url, _new_data(wf)))
    assert not Meeting.objects.exists()
    _as(client, wf, "chair")
    stranger = wf.people["other_unit_chair"].pk
    response = client.post(url, _new_data(wf, present=[stranger], location="Kept place"))
    assert response.status_code == 400
    assert 'id="id_present_error"' in response.content.decode()
    assert 'value="Kept place"' in response.content.decode()
    response = client.post(url, _new_data(wf, starts_at="not a date"))
    assert response.status_code == 400 and 'id="id_starts_at_error"' in response.content.decode()
    assert client.put(url).status_code == 405
    assert not Meeting.objects.exists()


# --------------------------------------------------------------------------------------------
# A meeting's page and its record
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("person", RECORDERS + READERS + STRANGERS)
def test_who_opens_a_meeting(client, wf, meeting, person):
    _as(client, wf, person)
    response = client.get(reverse("initiatives:meeting", args=[meeting.pk]))
    if person in STRANGERS:
        assert response.status_code == 404
        return
    assert response.status_code == 200
    html = response.content.decode()
    assert "Room 4" in html and "First point." in html
    has_form = 'name="minutes"' in html
    assert has_form == (person in RECORDERS or person == "admin")


def test_a_meeting_page_refuses_anonymous(client, meeting):
    url = reverse("initiatives:meeting", args=[meeting.pk])
    assert _login_redirect(client.get(url))
    assert _login_redirect(client.post(url, {"minutes": "x"}))
    assert Meeting.objects.get(pk=meeting.pk).minutes.startswith("First")


def _record(wf, meeting, **extra):
    data = {
        "starts_at": timezone.localtime(meeting.starts_at).strftime("%Y-%m-%dT%H:%M"),
        "location": meeting.location,
        "present": [wf.people["chair"].pk, wf.people["clinician"].pk],
        "minutes": "Agreed to try.",
        "version": meeting.version,
    }
    data.update(extra)
    return data


@pytest.mark.parametrize(
    ("person", "status"),
    [
        ("chair", 302),
        ("unit_secretary", 302),
        ("clinician", 403),
        ("dept_chair", 403),
        ("board", 403),
        ("other_unit_chair", 404),
        ("outsider", 404),
    ],
)
def test_who_records_a_meeting(client, wf, meeting, person, status):
    _as(client, wf, person)
    url = reverse("initiatives:meeting", args=[meeting.pk])
    response = client.post(url, _record(wf, meeting))
    assert response.status_code == status
    saved = Meeting.objects.get(pk=meeting.pk)
    if status == 302:
        assert saved.minutes == "Agreed to try." and saved.version == 1
        assert set(saved.present.all()) == {wf.people["chair"], wf.people["clinician"]}
    else:
        assert saved.minutes.startswith("First") and saved.version == 0


def test_a_save_over_a_newer_record_is_refused_and_keeps_what_was_typed(client, wf, meeting):
    _as(client, wf, "unit_secretary")
    url = reverse("initiatives:meeting", args=[meeting.pk])
    stale = _record(wf, meeting, minutes="The secretary's version")
    assert client.post(url, _record(wf, meeting, minutes="The chair's version")).status_code == 302
    # The same form sent again (or the other secretary's, read before): refused.
    response = client.post(url, stale)
    assert response.status_code == 409
    html = response.content.decode()
    assert "meanwhile" in html
    assert "The secretary&#x27;s version" in html  # what they typed is kept
    assert "The chair&#x27;s version" in html  # and what was saved is shown
    assert Meeting.objects.get(pk=meeting.pk).minutes == "The chair's version"
    # The form now carries the version just read: a deliberate second save goes through.
    assert 'name="version" value="1"' in html
    assert client.post(url, _record(wf, meeting, minutes="Merged", version=1)).status_code == 302
    assert Meeting.objects.get(pk=meeting.pk).minutes == "Merged"


def test_recording_a_stranger_as_present_is_refused_next_to_the_field(client, wf, meeting):
    _as(client, wf, "chair")
    url = reverse("initiatives:meeting", args=[meeting.pk])
    data = _record(wf, meeting, present=[wf.people["other_unit_chair"].pk])
    response = client.post(url, data)
    assert response.status_code == 400
    assert 'id="id_present_error"' in response.content.decode()
    assert client.put(url).status_code == 405


def test_a_meeting_is_removed_only_while_it_has_no_decisions(client, wf, meeting):
    url = reverse("initiatives:meeting-remove", args=[meeting.pk])
    _as(client, wf, "clinician")
    assert client.post(url).status_code == 403
    _as(client, wf, "other_unit_chair")
    assert client.post(url).status_code == 404
    _as(client, wf, "chair")
    assert client.get(url).status_code == 405
    initiative = log(wf, "unit")
    initiative_transition(
        initiative=initiative, user=wf.people["chair"], transition="start_testing", meeting=meeting
    )
    page = client.get(reverse("initiatives:meeting", args=[meeting.pk])).content.decode()
    assert url not in page
    response = client.post(url, follow=True)
    assert "stays on record" in response.content.decode()
    assert Meeting.objects.filter(pk=meeting.pk).exists()
    empty = meeting_create(
        user=wf.people["chair"], forum=wf.forums["unit"], starts_at=timezone.now()
    )
    gone = reverse("initiatives:meeting-remove", args=[empty.pk])
    response = client.post(gone)
    assert response.status_code == 302
    assert response["Location"] == reverse("initiatives:forum", args=[wf.forums["unit"].pk])
    assert client.post(gone).status_code == 404  # the repeated POST


def test_the_decisions_and_the_agenda_link_to_the_initiatives(client, wf, meeting):
    initiative = log(wf, "unit", title="Morning walks")
    item = agenda.agenda_item_add(user=wf.people["chair"], meeting=meeting, initiative=initiative)
    initiative_transition(
        initiative=initiative,
        user=wf.people["chair"],
        transition="start_testing",
        meeting=meeting,
    )
    _as(client, wf, "clinician")
    html = client.get(reverse("initiatives:meeting", args=[meeting.pk])).content.decode()
    detail = reverse("initiatives:initiative", args=[initiative.pk])
    assert f'href="{detail}?meeting={meeting.pk}"' in html  # the agenda item: steps preselect it
    decisions = html.split('id="meeting-decisions"', 1)[1]
    assert f'href="{detail}"' in decisions and "Start local testing" in decisions
    assert item.title in html
    # A member sees no editing controls.
    assert reverse("initiatives:agenda-item-move", args=[item.pk]) not in html


# --------------------------------------------------------------------------------------------
# The agenda's edits
# --------------------------------------------------------------------------------------------


def _agenda_urls(meeting, item):
    return [
        (reverse("initiatives:agenda-add", args=[meeting.pk]), {"title": "Mine"}),
        (reverse("initiatives:agenda-add-proposed", args=[meeting.pk]), {}),
        (reverse("initiatives:agenda-item-edit", args=[item.pk]), {"title": "X", "notes": "Y"}),
        (reverse("initiatives:agenda-item-move", args=[item.pk]), {"direction": "down"}),
        (reverse("initiatives:agenda-item-remove", args=[item.pk]), {}),
    ]


@pytest.mark.parametrize(
    ("person", "status"),
    [("clinician", 403), ("dept_chair", 403), ("other_unit_chair", 404), ("outsider", 404)],
)
def test_only_the_chair_and_secretary_edit_the_agenda(client, wf, meeting, person, status):
    log(wf, "unit")
    item = agenda.agenda_item_add(user=wf.people["chair"], meeting=meeting, title="Kept")
    _as(client, wf, person)
    for url, data in _agenda_urls(meeting, item):
        assert client.post(url, data, headers=HTMX).status_code == status, url
        assert client.get(url).status_code == 405, url
    assert list(AgendaItem.objects.values_list("title", "position")) == [("Kept", 1)]


def test_agenda_edits_refuse_anonymous(client, wf, meeting):
    item = agenda.agenda_item_add(user=wf.people["chair"], meeting=meeting, title="Kept")
    for url, data in _agenda_urls(meeting, item):
        assert _login_redirect(client.post(url, data)), url
    assert list(AgendaItem.objects.values_list("title", "position")) == [("Kept", 1)]


def test_the_secretary_keeps_the_agenda_with_htmx(client, wf, meeting):
    first = log(wf, "unit", title="First idea")
    log(wf, "unit", title="Second idea")
    _as(client, wf, "unit_secretary")
    page = client.get(reverse("initiatives:meeting", args=[meeting.pk])).content.decode()
    assert "First idea" in page.split('id="proposals-heading"', 1)[1]

    add_all = reverse("initiatives:agenda-add-proposed", args=[meeting.pk])
    response = client.post(add_all, headers=HTMX)
    assert response.status_code == 200
    fragment = response.content.decode()
    assert fragment.lstrip().startswith('<section id="agenda"') and "<html" not in fragment
    assert "2 items are added." in fragment
    assert "Nothing else waits for the forum." in fragment
    # Sent again (a double click): nothing more is added.
    assert "0 items are added." in client.post(add_all, headers=HTMX).content.decode()
    assert AgendaItem.objects.filter(meeting=meeting).count() == 2

    response = client.post(
        reverse("initiatives:agenda-add", args=[meeting.pk]),
        {"title": "Any other business", "notes": ""},
        headers=HTMX,
    )
    assert "Any other business" in response.content.decode()
    other = AgendaItem.objects.get(title="Any other business")
    assert other.position == 3

    response = client.post(
        reverse("initiatives:agenda-item-move", args=[other.pk]), {"direction": "up"}, headers=HTMX
    )
    fragment = response.content.decode()
    assert "is now item 2" in fragment
    assert f'id="up-{other.pk}" autofocus' in fragment  # the focus stays on the moved item
    titles = list(
        AgendaItem.objects.filter(meeting=meeting)
        .order_by("position")
        .values_list("position", "title")
    )
    assert [p for p, _t in titles] == [1, 2, 3] and titles[1][1] == "Any other business"

    item = AgendaItem.objects.get(initiative=first)
    edit = reverse("initiatives:agenda-item-edit", args=[item.pk])
    digest = agenda.item_digest(item)
    response = client.post(
        edit, {"title": item.title, "notes": "Try for a month.", "digest": digest}, headers=HTMX
    )
    assert "Try for a month." in response.content.decode()
    # The same edit sent again over what is now saved: refused, the text kept in the form.
    response = client.post(
        edit, {"title": item.title, "notes": "An older text", "digest": digest}, headers=HTMX
    )
    fragment = response.content.decode()
    assert "meanwhile" in fragment and "An older text" in fragment
    assert AgendaItem.objects.get(pk=item.pk).notes == "Try for a month."

    remove = reverse("initiatives:agenda-item-remove", args=[other.pk])
    assert "The item is removed." in client.post(remove, headers=HTMX).content.decode()
    assert client.post(remove, headers=HTMX).status_code == 404  # the repeated POST
    assert list(
        AgendaItem.objects.filter(meeting=meeting)
        .order_by("position")
        .values_list("position", flat=True)
    ) == [1, 2]


def test_agenda_edits_work_without_javascript(client, wf, meeting):
    _as(client, wf, "chair")
    response = client.post(
        reverse("initiatives:agenda-add", args=[meeting.pk]), {"title": "By hand"}
    )
    assert response.status_code == 302
    assert response["Location"] == reverse("initiatives:meeting", args=[meeting.pk]) + "#agenda"
    response = client.post(reverse("initiatives:agenda-add", args=[meeting.pk]), {"title": ""})
    assert response.status_code == 302
    page = client.get(response["Location"]).content.decode()
    assert "Give the item a title." in page
    assert list(AgendaItem.objects.values_list("title", flat=True)) == ["By hand"]


# --------------------------------------------------------------------------------------------
# Print and export
# --------------------------------------------------------------------------------------------


def _with_business(wf, meeting):
    initiative = log(wf, "unit", title="Morning walks")
    agenda.agenda_item_add(
        user=wf.people["chair"], meeting=meeting, initiative=initiative, notes="Start in May."
    )
    agenda.agenda_item_add(user=wf.people["chair"], meeting=meeting, title="Any other business")
    initiative_transition(
        initiative=initiative,
        user=wf.people["chair"],
        transition="start_testing",
        meeting=meeting,
    )
    return initiative


@pytest.mark.parametrize("person", ["clinician", "board"])
def test_the_print_layout_holds_agenda_attendance_minutes_and_decisions(
    client, wf, meeting, person
):
    _with_business(wf, meeting)
    _as(client, wf, person)
    response = client.get(reverse("initiatives:meeting-print", args=[meeting.pk]))
    assert response.status_code == 200
    html = response.content.decode()
    document = html.split('class="meeting-document"', 1)[1]
    for text in ("Attendance", "Morning walks", "Start in May.", "Any other business"):
        assert text in document
    assert "First point." in document and "Second point." in document
    assert "Start local testing" in document.split('id="doc-decisions"', 1)[1]
    assert "<form" not in document.split("</p>", 1)[1]  # no editing controls in the document
    css = (settings.BASE_DIR / "static" / "css" / "lhs.css").read_text()
    assert "@page meeting { size: A4 portrait" in css and ".meeting-document { page: meeting" in css


def test_print_and_export_are_for_readers_only(client, wf, meeting):
    urls = [
        reverse("initiatives:meeting-print", args=[meeting.pk]),
        reverse("initiatives:meeting-export", args=[meeting.pk]),
    ]
    for url in urls:
        assert _login_redirect(client.get(url))
    _as(client, wf, "other_unit_chair")
    for url in urls:
        assert client.get(url).status_code == 404
        assert client.post(url).status_code in (403, 405)
    assert not AuditEvent.objects.filter(action=AuditAction.DOWNLOAD).exists()


def test_the_export_opens_as_a_word_document(client, wf, meeting):
    initiative = _with_business(wf, meeting)
    Meeting.objects.filter(pk=meeting.pk).update(minutes="Line one\nline two\n\nNext\x01 part")
    _as(client, wf, "dept_chair")
    response = client.get(reverse("initiatives:meeting-export", args=[meeting.pk]))
    assert response.status_code == 200
    assert response["Content-Type"].startswith(
        "application/vnd.openxmlformats-officedocument.wordprocessingml.document"
    )
    day = timezone.localtime(meeting.starts_at).date().isoformat()
    assert f'filename="forum-aff-01-{day}.docx"' in response["Content-Disposition"]
    document = Document(io.BytesIO(response.content))
    text = "\n".join(p.text for p in document.paragraphs)
    assert "Forum AFF-01" in document.core_properties.title
    assert "Agenda" in text and "Minutes" in text and "Decisions" in text
    assert "Morning walks" in text and "Start in May." in text and "Any other business" in text
    assert "Present: chair" in text and "Not present:" in text
    assert "Line one\nline two" in text and "Next part" in text  # the control character gone
    cells = [[c.text for c in row.cells] for table in document.tables for row in table.rows]
    assert ["Place", "Room 4"] in cells
    decision = next(row for row in cells if row[0] == initiative.title)
    assert "Start local testing" in decision[1] and "Local testing" in decision[2]
    section = document.sections[0]
    assert (round(section.page_width.mm), round(section.page_height.mm)) == (210, 297)
    event = AuditEvent.objects.get(action=AuditAction.DOWNLOAD)
    assert event.actor_id == wf.people["dept_chair"].pk
    assert event.target == f"meeting {meeting.pk} document"


def _meeting_page_queries(client, meeting) -> int:
    url = reverse("initiatives:meeting", args=[meeting.pk])
    client.get(url)
    with CaptureQueriesContext(connection) as queries:
        assert client.get(url).status_code == 200
    return len(queries)


def test_the_meeting_page_costs_the_same_with_one_or_many_things(client, wf, meeting):
    _as(client, wf, "chair")

    def business(n):
        for i in range(n):
            initiative = log(wf, "unit", title=f"Idea {n}-{i}")
            agenda.agenda_item_add(user=wf.people["chair"], meeting=meeting, title=f"T {n}-{i}")
            initiative_transition(
                initiative=initiative,
                user=wf.people["chair"],
                transition="start_testing",
                meeting=meeting,
            )
            log(wf, "unit", title=f"Waiting {n}-{i}")  # a proposal

    business(1)
    one = _meeting_page_queries(client, meeting)
    business(10)
    many = _meeting_page_queries(client, meeting)
    html = client.get(reverse("initiatives:meeting", args=[meeting.pk])).content.decode()
    assert "Waiting 10-9" in html and "T 10-9" in html
    assert many == one, (one, many)
