"""Support requests: who may ask, take, answer and release; the lifecycle; two at once."""

from __future__ import annotations

import threading

import pytest
import rules
from django.core.exceptions import ValidationError
from django.db import connection

from forums.enums import ForumKind, MembershipRole
from forums.models import Forum, Membership
from initiatives import support as support_module
from initiatives.enums import SupportKind, SupportState
from initiatives.models import Activity, SupportRequest
from initiatives.services import initiative_transition
from initiatives.support import (
    support_queue,
    support_request_create,
    support_request_done,
    support_request_release,
    support_request_take,
)
from tests.concurrency import race_past
from tests.factories import ForumFactory, UserFactory

from .conftest import PERSONAS, log
from .helpers import codes_of


@pytest.fixture
def sup(wf):
    """``wf`` plus a second support-unit member and the support unit's chair."""
    for name, role in (
        ("support2", MembershipRole.MEMBER),
        ("support_chair", MembershipRole.CHAIR),
    ):
        wf.people[name] = UserFactory(username=name, first_name=name.title(), last_name="Staff")
        Membership.objects.create(forum=wf.forums["support"], user=wf.people[name], role=role)
    return wf


def _ask(wf, initiative, person="chair", kind=SupportKind.DATA, text="Help us define the measure."):
    return support_request_create(
        user=wf.people[person], initiative=initiative, kind=kind, description=text
    )


def _fresh(pk) -> SupportRequest:
    return SupportRequest.objects.select_related("support_forum", "taken_by").get(pk=pk)


def _refused(call) -> ValidationError:
    with pytest.raises(ValidationError) as caught:
        call()
    return caught.value


# --- asking ---------------------------------------------------------------------------------


def test_who_may_ask_for_support_on_an_initiative_at_a_unit(sup):
    idea = log(sup, "unit")
    may = set()
    for person in (*PERSONAS, "support2", "support_chair"):
        try:
            _ask(sup, idea, person, text=f"From {person}")
        except ValidationError as exc:
            assert codes_of(exc) == {"not_permitted"}, person
        else:
            may.add(person)
    # The forum it sits in (any role), its creator (the chair), the admin; nobody else: not
    # the department's chair, not the support unit, not another unit's chair, not the board.
    assert may == {"chair", "clinician", "unit_secretary", "admin"}
    assert SupportRequest.objects.count() == 4
    # The permission the pages and the API ask says the same.
    for person in PERSONAS:
        assert rules.has_perm("initiatives.add_supportrequest", sup.people[person], idea) == (
            person in may
        ), person


def test_the_creator_may_ask_after_the_initiative_moved_on(sup):
    idea = log(sup, "unit")
    initiative_transition(
        initiative=idea, user=sup.people["chair"], transition="escalate", comment="Up."
    )
    # Now at the department: its group's people may ask, the unit's clinician no longer…
    assert _ask(sup, idea, "dept_member").state == SupportState.OPEN
    assert codes_of(_refused(lambda: _ask(sup, idea, "clinician"))) == {"not_permitted"}
    # … but the person who logged it still may.
    assert _ask(sup, idea, "chair").requested_by == sup.people["chair"]


def test_a_request_goes_to_the_divisions_support_unit_and_starts_open(sup):
    idea = log(sup, "unit")
    request = _ask(sup, idea, "clinician", kind=SupportKind.IT, text="  The form needs a field. ")
    assert request.support_forum == sup.forums["support"]
    assert (request.state, request.version, request.kind) == ("open", 0, "it")
    assert request.description == "The form needs a field."
    assert request.taken_by is None and request.answer == ""
    # It moves the initiative nowhere and writes no workflow step.
    assert Activity.objects.filter(initiative=idea).count() == 1
    idea.refresh_from_db()
    assert (idea.state, idea.version) == ("logged", 0)


def test_a_support_unit_of_another_division_is_not_asked(sup):
    from tests.factories import DivisionFactory

    elsewhere = DivisionFactory(code="som", name="Somatik")
    ForumFactory(kind=ForumKind.SUPPORT_UNIT, name="Other support", division=elsewhere)
    idea = log(sup, "unit")
    assert _ask(sup, idea).support_forum == sup.forums["support"]


def test_no_support_unit_no_request(sup):
    idea = log(sup, "unit")
    Membership.objects.filter(forum=sup.forums["support"]).delete()
    Forum.objects.filter(pk=sup.forums["support"].pk).delete()
    assert codes_of(_refused(lambda: _ask(sup, idea))) == {"no_support_unit"}
    assert not SupportRequest.objects.exists()


def test_a_closed_initiative_takes_no_more_requests(sup):
    idea = log(sup, "unit")
    initiative_transition(
        initiative=idea, user=sup.people["chair"], transition="reject", comment="No."
    )
    error = _refused(lambda: _ask(sup, idea))
    assert codes_of(error) == {"not_permitted"}
    assert "closed" in error.messages[0]
    assert not rules.has_perm("initiatives.add_supportrequest", sup.people["admin"], idea)


@pytest.mark.parametrize(
    "kind, text, code, field",
    [
        ("coffee", "Help", "bad_kind", "kind"),
        ("", "Help", "bad_kind", "kind"),
        (SupportKind.DATA, "   ", "description_required", "description"),
        (SupportKind.DATA, "\x00", "description_required", "description"),
        (SupportKind.DATA, "x" * (support_module.MAX_TEXT + 1), "too_long", "description"),
    ],
)
def test_what_a_request_must_say(sup, kind, text, code, field):
    idea = log(sup, "unit")
    error = _refused(lambda: _ask(sup, idea, kind=kind, text=text))
    assert codes_of(error) == {code}
    assert list(error.error_dict) == [field]
    assert not SupportRequest.objects.exists()


def test_the_same_request_sent_twice_makes_one(sup):
    idea = log(sup, "unit")
    _ask(sup, idea)
    error = _refused(lambda: _ask(sup, idea))
    assert codes_of(error) == {"conflict"}
    assert SupportRequest.objects.count() == 1
    # Another question, another kind or another person is another request …
    _ask(sup, idea, text="And the handbook.")
    _ask(sup, idea, kind=SupportKind.IT)
    _ask(sup, idea, "clinician")
    assert SupportRequest.objects.count() == 4


def test_the_same_question_again_once_the_first_is_answered(sup):
    idea = log(sup, "unit")
    first = _ask(sup, idea)
    support_request_take(user=sup.people["support"], request=first)
    support_request_done(user=sup.people["support"], request=first, answer="Done.")
    assert _ask(sup, idea).pk != first.pk


# --- taking, answering, releasing -----------------------------------------------------------


def test_the_lifecycle_open_taken_done(sup):
    idea = log(sup, "unit")
    request = _ask(sup, idea)
    staff = sup.people["support"]
    support_request_take(user=staff, request=request)
    stored = _fresh(request.pk)
    assert (stored.state, stored.taken_by, stored.version) == ("taken", staff, 1)
    assert stored.taken_at is not None and stored.done_at is None
    error = _refused(lambda: support_request_done(user=staff, request=stored, answer="  "))
    assert codes_of(error) == {"answer_required"} and list(error.error_dict) == ["answer"]
    support_request_done(user=staff, request=stored, answer=" The measure is defined. ")
    stored = _fresh(request.pk)
    assert (stored.state, stored.answer, stored.version) == ("done", "The measure is defined.", 2)
    assert stored.done_at >= stored.taken_at
    # Done is the end: no take, no release, no second answer.
    for call in (
        lambda: support_request_take(user=staff, request=stored),
        lambda: support_request_release(user=staff, request=stored),
        lambda: support_request_done(user=staff, request=stored, answer="Again"),
    ):
        assert codes_of(_refused(call)) == {"stale"}
    assert _fresh(request.pk).version == 2


def test_release_gives_it_back_to_the_queue(sup):
    request = _ask(sup, log(sup, "unit"))
    support_request_take(user=sup.people["support"], request=request)
    support_request_release(user=sup.people["support"], request=request)
    stored = _fresh(request.pk)
    assert (stored.state, stored.taken_by, stored.taken_at, stored.version) == (
        "open",
        None,
        None,
        2,
    )
    support_request_take(user=sup.people["support2"], request=stored)
    assert _fresh(request.pk).taken_by == sup.people["support2"]


def test_who_may_take(sup):
    idea = log(sup, "unit")
    may = set()
    for person in (*PERSONAS, "support2", "support_chair"):
        request = _ask(sup, idea, text=f"For {person}")
        assert rules.has_perm("initiatives.take_supportrequest", sup.people[person], request) == (
            person in {"support", "support2", "support_chair", "admin"}
        ), person
        try:
            support_request_take(user=sup.people[person], request=request)
        except ValidationError as exc:
            assert codes_of(exc) == {"not_permitted"}, person
            assert _fresh(request.pk).state == "open"
        else:
            may.add(person)
    assert may == {"support", "support2", "support_chair", "admin"}


def test_who_may_answer_or_release_a_taken_request(sup):
    idea = log(sup, "unit")
    for action in ("done", "release"):
        for person in (*PERSONAS, "support2", "support_chair"):
            request = _ask(sup, idea, text=f"{action} {person}")
            support_request_take(user=sup.people["support"], request=request)
            perm = "answer" if action == "done" else "release"
            allowed = person in {"support", "support_chair", "admin"}
            assert (
                rules.has_perm(f"initiatives.{perm}_supportrequest", sup.people[person], request)
                == allowed
            ), (action, person)
            if action == "done":
                call = lambda r=request, p=person: support_request_done(  # noqa: E731
                    user=sup.people[p], request=r, answer="Here."
                )
            else:
                call = lambda r=request, p=person: support_request_release(  # noqa: E731
                    user=sup.people[p], request=r
                )
            if allowed:
                call()
                assert _fresh(request.pk).state == ("done" if action == "done" else "open")
            else:
                error = _refused(call)
                # A fellow member (support2) is told who took it; outsiders just "no".
                assert codes_of(error) == {"not_permitted"}, (action, person)
                assert _fresh(request.pk).state == "taken"


def test_an_outsider_answering_an_open_request_is_refused_not_told_it_is_stale(sup):
    request = _ask(sup, log(sup, "unit"))
    error = _refused(
        lambda: support_request_done(user=sup.people["clinician"], request=request, answer="x")
    )
    assert codes_of(error) == {"not_permitted"}


def test_the_one_who_read_it_open_hears_who_took_it(sup):
    request = _ask(sup, log(sup, "unit"))
    mine, theirs = _fresh(request.pk), _fresh(request.pk)
    support_request_take(user=sup.people["support2"], request=theirs)
    error = _refused(lambda: support_request_take(user=sup.people["support"], request=mine))
    assert codes_of(error) == {"stale"}
    assert "Support2 Staff took this request" in error.messages[0]
    assert _fresh(request.pk).taken_by == sup.people["support2"]


def test_taking_twice_is_one_take(sup):
    request = _ask(sup, log(sup, "unit"))
    staff = sup.people["support"]
    support_request_take(user=staff, request=request)
    again = _fresh(request.pk)
    error = _refused(lambda: support_request_take(user=staff, request=again))
    assert codes_of(error) == {"stale"} and "You took this request already" in error.messages[0]
    # The old copy (still "open" in memory) too.
    stale = SupportRequest.objects.get(pk=request.pk)
    stale.state, stale.version = "open", 0
    assert codes_of(_refused(lambda: support_request_take(user=staff, request=stale))) == {"stale"}
    assert _fresh(request.pk).version == 1


def test_an_answer_on_an_old_copy_after_a_release_is_refused(sup):
    request = _ask(sup, log(sup, "unit"))
    staff = sup.people["support"]
    support_request_take(user=staff, request=request)
    old = _fresh(request.pk)
    support_request_release(user=staff, request=request)
    support_request_take(user=staff, request=request)  # taken again: same state, new version
    error = _refused(lambda: support_request_done(user=staff, request=old, answer="Late."))
    assert codes_of(error) == {"stale"}
    assert _fresh(request.pk).answer == ""


# --- the queue ------------------------------------------------------------------------------


def test_the_queue_open_oldest_first_mine_and_done(sup):
    idea = log(sup, "unit")
    first, second, third = (_ask(sup, idea, text=t) for t in ("one", "two", "three"))
    staff, other = sup.people["support"], sup.people["support2"]
    support_request_take(user=staff, request=second)
    support_request_take(user=other, request=third)
    support_request_done(user=other, request=third, answer="Yes.")

    def ids(user, show):
        return [r.pk for r in support_queue(user=user, show=show)]

    assert ids(staff, "open") == [first.pk]
    assert ids(staff, "mine") == [second.pk]
    assert ids(other, "mine") == []
    assert ids(staff, "taken") == [second.pk]
    assert ids(staff, "done") == [third.pk]
    assert ids(staff, "all") == [first.pk, second.pk, third.pk]
    fourth = _ask(sup, idea, text="four")
    assert ids(staff, "open") == [first.pk, fourth.pk]
    # Not support staff: an empty queue, whatever they ask for.
    for person in ("chair", "clinician", "board", "outsider"):
        assert ids(sup.people[person], "all") == [], person
    assert ids(sup.people["admin"], "open") == [first.pk, fourth.pk]


def test_the_queue_reads_in_a_fixed_number_of_queries(sup, django_assert_max_num_queries):
    idea = log(sup, "unit")
    for i in range(6):
        _ask(sup, idea, text=f"q{i}")
    with django_assert_max_num_queries(2):
        rows = [
            (r.initiative.title, r.requested_by.username, r.support_forum.name)
            for r in support_queue(user=sup.people["support"], show="all")
        ]
    assert len(rows) == 6


# --- two at once ----------------------------------------------------------------------------


def _race(monkeypatch, calls):
    """Run ``calls`` in threads, all held until every one has passed the guard."""
    return race_past(monkeypatch, support_module, "sits_in_support_unit_of", calls)


@pytest.mark.django_db(transaction=True)
def test_two_support_staff_take_the_same_request_at_once(sup, monkeypatch):
    if connection.vendor != "postgresql":
        pytest.skip("Two writers at once need PostgreSQL (SQLite locks the whole file).")
    pk = _ask(sup, log(sup, "unit")).pk
    first, second = _fresh(pk), _fresh(pk)  # both read it open, version 0
    one, two = sup.people["support"], sup.people["support2"]
    results = _race(
        monkeypatch,
        [
            lambda: support_request_take(user=one, request=first),
            lambda: support_request_take(user=two, request=second),
        ],
    )
    wins = [r for r in results if isinstance(r, SupportRequest)]
    losses = [r for r in results if isinstance(r, ValidationError)]
    assert len(wins) == 1 and len(losses) == 1, results
    assert codes_of(losses[0]) == {"stale"}
    winner = wins[0].taken_by
    assert f"{winner.get_full_name()} took this request" in losses[0].messages[0]
    stored = _fresh(pk)
    assert (stored.state, stored.taken_by, stored.version) == ("taken", winner, 1)


@pytest.mark.django_db(transaction=True)
def test_the_same_request_sent_twice_at_once_makes_one(sup):
    if connection.vendor != "postgresql":
        pytest.skip("Two writers at once need PostgreSQL (SQLite locks the whole file).")
    idea = log(sup, "unit")
    barrier = threading.Barrier(2, timeout=20)
    real = support_module.support_forum_for
    results: list[object] = [None, None]

    def held(initiative):
        found = real(initiative)
        barrier.wait()
        return found

    support_module.support_forum_for = held
    try:

        def run(i):
            try:
                results[i] = _ask(sup, idea)
            except Exception as exc:
                results[i] = exc
            finally:
                connection.close()

        threads = [threading.Thread(target=run, args=(i,)) for i in range(2)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(30)
    finally:
        support_module.support_forum_for = real
    assert sorted(type(r).__name__ for r in results) == ["SupportRequest", "ValidationError"]
    assert SupportRequest.objects.count() == 1
