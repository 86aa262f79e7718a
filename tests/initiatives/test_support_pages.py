"""The support pages: the initiative's panel, the support unit's queue, their forms."""

from __future__ import annotations

import pytest
from django.test import Client
from django.urls import reverse

from forums.enums import MembershipRole
from forums.models import Membership
from initiatives.enums import SupportKind
from initiatives.models import SupportRequest
from initiatives.services import initiative_transition
from initiatives.support import support_request_create, support_request_take
from tests.factories import UserFactory

from .conftest import log

HTMX = {"HTTP_HX_REQUEST": "true"}


@pytest.fixture
def sup(wf):
    for name, role in (
        ("support2", MembershipRole.MEMBER),
        ("support_chair", MembershipRole.CHAIR),
    ):
        wf.people[name] = UserFactory(username=name, first_name=name.title(), last_name="Staff")
        Membership.objects.create(forum=wf.forums["support"], user=wf.people[name], role=role)
    return wf


def client_for(wf, person: str | None) -> Client:
    client = Client()
    if person:
        client.force_login(wf.people[person])
    return client


def ask(wf, initiative, person="chair", text="Help with the extract."):
    return support_request_create(
        user=wf.people[person], initiative=initiative, kind=SupportKind.DATA, description=text
    )


def _new_url(initiative):
    return reverse("initiatives:support-request-new", args=[initiative.pk])


# --- the initiative's panel -----------------------------------------------------------------


def test_the_panel_on_the_initiative_page(sup):
    idea = log(sup, "unit")
    request = ask(sup, idea, text="Which extract?")
    support_request_take(user=sup.people["support"], request=request)
    page = client_for(sup, "clinician").get(reverse("initiatives:initiative", args=[idea.pk]))
    assert page.status_code == 200
    html = page.content.decode()
    assert 'id="support-panel"' in html and "Which extract?" in html
    assert "is on it" in html
    # The clinician sits in the forum: the form is there; the support queue link is not.
    queue_link = f'href="{reverse("initiatives:support-queue")}"'
    assert 'name="description"' in html and queue_link not in html
    # The board member sees the requests, no form; support staff see the queue link.
    html = client_for(sup, "board").get(reverse("initiatives:initiative", args=[idea.pk]))
    assert "Which extract?" in html.content.decode()
    assert 'name="description"' not in html.content.decode()
    html = client_for(sup, "support").get(reverse("initiatives:initiative", args=[idea.pk]))
    assert queue_link in html.content.decode()


@pytest.mark.parametrize("person", ["chair", "clinician", "unit_secretary", "admin"])
def test_asking_from_the_panel(sup, person):
    idea = log(sup, "unit")
    response = client_for(sup, person).post(
        _new_url(idea), {"kind": "it", "description": "The form needs a field."}, **HTMX
    )
    assert response.status_code == 200
    html = response.content.decode()
    assert html.lstrip().startswith("{% load") is False and 'id="support-panel"' in html
    assert "Your request went to Support" in html and "The form needs a field." in html
    (made,) = SupportRequest.objects.all()
    assert (made.kind, made.requested_by, made.state) == ("it", sup.people[person], "open")


@pytest.mark.parametrize(
    "person", ["dept_chair", "support", "board", "outsider", "other_unit_chair"]
)
def test_asking_is_refused_to_others(sup, person):
    idea = log(sup, "unit")
    response = client_for(sup, person).post(
        _new_url(idea), {"kind": "data", "description": "Please."}, **HTMX
    )
    assert response.status_code == 403
    assert "Only the members of Forum AFF-01" in response.content.decode()
    assert not SupportRequest.objects.exists()


def test_asking_anonymously_goes_to_the_log_in(sup):
    idea = log(sup, "unit")
    response = client_for(sup, None).post(_new_url(idea), {"kind": "data", "description": "x"})
    assert response.status_code == 302 and "/accounts/login/" in response["Location"]
    assert not SupportRequest.objects.exists()


def test_asking_needs_post(sup):
    idea = log(sup, "unit")
    assert client_for(sup, "chair").get(_new_url(idea)).status_code == 405
    assert client_for(sup, "chair").put(_new_url(idea)).status_code == 405


def test_asking_on_an_initiative_that_does_not_exist(sup):
    url = reverse("initiatives:support-request-new", args=[999999])
    assert (
        client_for(sup, "chair").post(url, {"kind": "data", "description": "x"}).status_code == 404
    )


def test_the_form_keeps_what_was_typed_and_says_what_is_wrong(sup):
    idea = log(sup, "unit")
    client = client_for(sup, "chair")
    response = client.post(_new_url(idea), {"kind": "coffee", "description": "Mitt ärende"}, **HTMX)
    assert response.status_code == 400
    html = response.content.decode()
    assert "Mitt ärende" in html and 'id="id_support_kind_error"' in html
    # Without JavaScript: a page of its own with the same form.
    response = client.post(_new_url(idea), {"kind": "data", "description": " "})
    assert response.status_code == 400
    assert "<h1>" in response.content.decode() and "id_support_description_error" in (
        response.content.decode()
    )
    assert not SupportRequest.objects.exists()


def test_a_form_sent_twice_makes_one_request(sup):
    idea = log(sup, "unit")
    client = client_for(sup, "chair")
    data = {"kind": "data", "description": "Same words."}
    assert client.post(_new_url(idea), data, **HTMX).status_code == 200
    second = client.post(_new_url(idea), data, **HTMX)
    assert second.status_code == 409 and "asked for exactly this already" in second.content.decode()
    assert SupportRequest.objects.count() == 1


def test_without_javascript_a_request_redirects_to_the_panel(sup):
    idea = log(sup, "unit")
    response = client_for(sup, "chair").post(
        _new_url(idea), {"kind": "data", "description": "Plain form."}
    )
    assert response.status_code == 302
    assert response["Location"].endswith(f"/initiatives/{idea.pk}/#panel-support")


def test_a_closed_initiative_shows_no_form(sup):
    idea = log(sup, "unit")
    initiative_transition(
        initiative=idea, user=sup.people["chair"], transition="reject", comment="No."
    )
    html = client_for(sup, "chair").get(reverse("initiatives:initiative", args=[idea.pk]))
    assert 'name="description"' not in html.content.decode()


# --- the queue ------------------------------------------------------------------------------


def _queue(client, show=""):
    url = reverse("initiatives:support-queue") + (f"?show={show}" if show else "")
    return client.get(url)


@pytest.mark.parametrize("person", ["support", "support_chair", "admin"])
def test_the_queue_is_for_the_support_unit(sup, person):
    ask(sup, log(sup, "unit"), text="Open question")
    response = _queue(client_for(sup, person))
    assert response.status_code == 200 and "Open question" in response.content.decode()


@pytest.mark.parametrize("person", ["chair", "clinician", "dept_chair", "board", "outsider"])
def test_the_queue_is_not_for_others(sup, person):
    assert _queue(client_for(sup, person)).status_code == 403


def test_the_queue_anonymously_and_by_the_wrong_method(sup):
    response = _queue(client_for(sup, None))
    assert response.status_code == 302 and "/accounts/login/" in response["Location"]
    assert client_for(sup, "support").post(reverse("initiatives:support-queue")).status_code == 405


def test_the_queues_tabs(sup):
    idea = log(sup, "unit")
    _first, second, third = (ask(sup, idea, text=t) for t in ("Alpha", "Bravo", "Charlie"))
    support_request_take(user=sup.people["support"], request=second)
    support_request_take(user=sup.people["support2"], request=third)
    client = client_for(sup, "support")

    def shown(show):
        html = _queue(client, show).content.decode()
        return [t for t in ("Alpha", "Bravo", "Charlie") if t in html]

    assert shown("") == ["Alpha"] == shown("open")
    assert shown("mine") == ["Bravo"]
    assert shown("taken") == ["Bravo", "Charlie"]
    assert shown("done") == []
    assert shown("nonsense") == ["Alpha"]


def test_the_queue_asks_the_same_number_of_queries_for_one_and_many(
    sup, django_assert_max_num_queries
):
    idea = log(sup, "unit")
    client = client_for(sup, "support")
    ask(sup, idea, text="only one")
    _queue(client)  # warm: session, sites, translations
    with django_assert_max_num_queries(30) as one:
        assert _queue(client).status_code == 200
    for i in range(12):
        request = ask(sup, idea, text=f"many {i}")
        if i % 2:
            support_request_take(user=sup.people["support"], request=request)
    with django_assert_max_num_queries(len(one.captured_queries)):
        _queue(client, "open")
    with django_assert_max_num_queries(len(one.captured_queries)):
        _queue(client, "mine")


def _take(client, request, *, htmx=True, version=None, show="open"):
    data = {"version": request.version if version is None else version, "show": show}
    url = reverse("initiatives:support-request-take", args=[request.pk])
    return client.post(url, data, **(HTMX if htmx else {}))


def test_taking_from_the_queue(sup):
    request = ask(sup, log(sup, "unit"))
    response = _take(client_for(sup, "support"), request)
    assert response.status_code == 200
    html = response.content.decode()
    assert f'id="support-request-{request.pk}"' in html and "You took it" in html
    assert "Answer and close" in html and "Give it back" in html
    request.refresh_from_db()
    assert (request.state, request.taken_by) == ("taken", sup.people["support"])


@pytest.mark.parametrize("person", ["chair", "clinician", "dept_chair", "board", "outsider"])
def test_taking_is_refused_to_others(sup, person):
    request = ask(sup, log(sup, "unit"))
    assert _take(client_for(sup, person), request).status_code == 403
    assert _take(client_for(sup, person), request, htmx=False).status_code == 403
    request.refresh_from_db()
    assert request.state == "open"


def test_taking_twice_is_one_take_and_the_second_hears_so(sup):
    request = ask(sup, log(sup, "unit"))
    client = client_for(sup, "support")
    assert _take(client, request).status_code == 200
    again = _take(client, request)  # the same button, pressed again (version 0)
    assert again.status_code == 409 and "You took this request already" in again.content.decode()
    request.refresh_from_db()
    assert request.version == 1


def test_the_second_of_two_support_staff_hears_who_took_it(sup):
    request = ask(sup, log(sup, "unit"))
    assert _take(client_for(sup, "support2"), request).status_code == 200
    late = _take(client_for(sup, "support"), request)
    assert late.status_code == 409
    assert "Support2 Staff took this request" in late.content.decode()
    # Without JavaScript: back to the queue, with the same message.
    plain = client_for(sup, "support")
    response = _take(plain, request, htmx=False)
    assert response.status_code == 302 and response["Location"].endswith("?show=open")
    assert "Support2 Staff took this request" in plain.get(response["Location"]).content.decode()
    request.refresh_from_db()
    assert request.taken_by == sup.people["support2"]


def test_a_page_that_showed_an_older_version_is_refused(sup):
    request = ask(sup, log(sup, "unit"))
    staff = client_for(sup, "support")
    _take(staff, request)
    release = reverse("initiatives:support-request-release", args=[request.pk])
    assert staff.post(release, {"version": 1}, **HTMX).status_code == 200
    # The first page still says version 0 and open: taking from it now is refused …
    assert _take(client_for(sup, "support2"), request, version=0).status_code == 409
    # … while a page showing version 2 takes it.
    assert _take(client_for(sup, "support2"), request, version=2).status_code == 200


def test_the_take_and_answer_urls_need_post(sup):
    request = ask(sup, log(sup, "unit"))
    client = client_for(sup, "support")
    for name in ("take", "release", "answer"):
        url = reverse(f"initiatives:support-request-{name}", args=[request.pk])
        assert client.get(url).status_code == 405, name


def test_the_take_url_anonymously(sup):
    request = ask(sup, log(sup, "unit"))
    response = _take(client_for(sup, None), request, htmx=False)
    assert response.status_code == 302 and "/accounts/login/" in response["Location"]
    # HTMX is sent to the log-in page as a whole page.
    assert "/accounts/login/" in _take(client_for(sup, None), request)["HX-Redirect"]
    request.refresh_from_db()
    assert request.state == "open"


def _answer(client, request, answer, *, htmx=True):
    url = reverse("initiatives:support-request-answer", args=[request.pk])
    data = {"answer": answer, "version": request.version, "show": "mine"}
    return client.post(url, data, **(HTMX if htmx else {}))


def test_answering(sup):
    request = ask(sup, log(sup, "unit"))
    support_request_take(user=sup.people["support"], request=request)
    client = client_for(sup, "support")
    empty = _answer(client, request, "  ")
    assert empty.status_code == 400 and f"id_answer_{request.pk}_answer_error" in (
        empty.content.decode()
    )
    done = _answer(client, request, "Extract attached, see the files.")
    assert done.status_code == 200 and "Answered: the request is done." in done.content.decode()
    request.refresh_from_db()
    assert (request.state, request.answer) == ("done", "Extract attached, see the files.")
    # The one who asked sees the answer on the initiative's page.
    page = client_for(sup, "chair").get(
        reverse("initiatives:initiative", args=[request.initiative_id])
    )
    assert "Extract attached, see the files." in page.content.decode()
    # Answering again is refused (it is done); the answer stays.
    again = _answer(client, request, "Another answer")
    assert again.status_code == 409
    request.refresh_from_db()
    assert request.answer == "Extract attached, see the files."


@pytest.mark.parametrize("person", ["support2", "chair", "outsider"])
def test_answering_is_refused_to_others(sup, person):
    request = ask(sup, log(sup, "unit"))
    support_request_take(user=sup.people["support"], request=request)
    assert _answer(client_for(sup, person), request, "Mine.").status_code == 403
    request.refresh_from_db()
    assert request.state == "taken" and request.answer == ""


def test_the_support_chair_may_answer_what_another_took(sup):
    request = ask(sup, log(sup, "unit"))
    support_request_take(user=sup.people["support"], request=request)
    assert _answer(client_for(sup, "support_chair"), request, "Covered.").status_code == 200


def test_answering_without_javascript(sup):
    request = ask(sup, log(sup, "unit"))
    support_request_take(user=sup.people["support"], request=request)
    client = client_for(sup, "support")
    page = _answer(client, request, "", htmx=False)
    assert page.status_code == 400 and "<h1>" in page.content.decode()
    done = _answer(client, request, "Done by mail.", htmx=False)
    assert done.status_code == 302 and done["Location"].endswith("?show=mine")
