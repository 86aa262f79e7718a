"""The improvement workflow in the browser, end to end: an idea from a unit to a board decision.

A unit forum's chair logs an idea and escalates it; the department group's chair prioritises
it and refers it to the division board; the board's chair opens a vote; both board members
vote; the round closes once everyone has voted and its outcome moves the initiative. Each
person uses only the pages and buttons they are shown, and the initiative's history shows
every step with who took it.
"""

import re

import pytest
from playwright.sync_api import expect

from forums.enums import ForumKind, MembershipRole
from forums.models import Forum
from initiatives.enums import RoundStatus, State
from initiatives.models import Activity, Initiative, Vote, VotingRound

from ..factories import MembershipFactory, UserFactory
from .conftest import AXE, SCREENSHOTS, serious_axe

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

TITLE = "Kvällspromenad med patienterna"


def _log_out(page) -> None:
    page.get_by_role("button", name="Log out").click()
    page.wait_for_url(re.compile(r"/accounts/login/"))


def _take_step(page, name: str, comment: str = "") -> None:
    """Press a step's button, fill in the small form it opens, and send it."""
    page.locator(f"button[data-step='{name}']").click()
    form = page.locator("#step-slot form.step-form")
    expect(form).to_be_visible()
    if comment:
        form.locator("textarea[name=comment]").fill(comment)
    form.locator("button[type=submit]").click()


def _history(page):
    return page.locator("ol.timeline > li")


@pytest.fixture
def board_chair(org):
    chair = UserFactory(username="board_chair", first_name="Bo", last_name="Ordförande")
    board = Forum.objects.get(kind=ForumKind.DIVISION_BOARD)
    MembershipFactory(forum=board, user=chair, role=MembershipRole.CHAIR)
    return chair


def test_an_idea_goes_from_a_unit_to_the_boards_approval(page, log_in, org, board_chair):
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)

    # The unit forum's chair logs the idea from the navigation.
    log_in("chair")
    page.locator("header nav").get_by_role("link", name="Initiatives").click()
    page.get_by_role("link", name="Log an initiative").first.click()
    if page.locator("select#id_forum").count():  # a chooser when one may log in several
        page.locator("select#id_forum").select_option(label=re.compile("Forum AFF-01"))
        page.get_by_role("button", name="Continue").click()
    page.get_by_label("Title").fill(TITLE)
    page.get_by_label("Description").fill("Tjugo minuter ute efter middagen, två gånger i veckan.")
    page.get_by_label("Kind").select_option("idea")
    page.get_by_role("button", name="Log it").click()
    page.wait_for_url(re.compile(r"/initiatives/\d+/$"))
    initiative = Initiative.objects.get(title=TITLE)
    url = f"/initiatives/{initiative.pk}/"
    expect(page.get_by_role("heading", level=1)).to_contain_text(TITLE)
    expect(_history(page)).to_have_count(1)

    # A decision needs its reason: the browser will not send the form empty; nothing moves.
    page.locator("button[data-step='escalate']").click()
    form = page.locator("#step-slot form.step-form")
    form.locator("button[type=submit]").click()
    reason = form.locator("textarea[name=comment]")
    assert reason.evaluate("el => el.validity.valueMissing")
    initiative.refresh_from_db()
    assert initiative.state == State.LOGGED
    form.locator("textarea[name=comment]").fill("Fler avdelningar vill pröva.")
    form.locator("button[type=submit]").click()
    expect(_history(page)).to_have_count(2)
    expect(_history(page).nth(1)).to_contain_text("Escalated to the department")
    # The chair of a unit forum has no steps left where the department group decides.
    expect(page.locator("button[data-step='prioritise']")).to_have_count(0)
    _log_out(page)

    # The department group's chair prioritises it and refers it to the board.
    log_in("dept_chair")
    page.goto(url)
    _take_step(page, "prioritise")
    expect(_history(page)).to_have_count(3)
    page.reload()
    _take_step(page, "refer_to_board", "Gäller hela divisionen.")
    expect(_history(page)).to_have_count(4)
    _log_out(page)

    # The board's chair opens the vote (the plain step is not a button: it has its own form).
    log_in("board_chair")
    page.goto(url)
    expect(page.locator("button[data-step='open_vote']")).to_have_count(0)
    opening = page.locator("form.voting-open")
    opening.get_by_label("Quorum").fill("2")
    opening.get_by_role("button", name="Open the vote").click()
    expect(page.locator(".voting-round")).to_contain_text("Vote in progress")
    round_ = VotingRound.objects.get(initiative=initiative)
    assert round_.status == RoundStatus.OPEN and round_.eligible == 2
    _log_out(page)

    # A board member votes; a second press changes the vote, it never adds one.
    log_in("board")
    page.goto(url)
    ballot = page.locator("form.ballot")
    ballot.get_by_label("Approve").check()
    ballot.get_by_role("button", name="Cast my vote").click()
    expect(page.locator(".voting-round .your-vote")).to_contain_text("You voted Approve")
    page.locator("form.ballot").get_by_label("Abstain").check()
    page.locator("form.ballot").get_by_role("button", name="Change my vote").click()
    expect(page.locator(".voting-round .your-vote")).to_contain_text("You voted Abstain")
    assert Vote.objects.filter(round=round_).count() == 1
    page.screenshot(path=str(SCREENSHOTS / "workflow-ballot.png"), full_page=True)
    _log_out(page)

    # The chair's vote is the last: the round closes and its outcome moves the initiative.
    log_in("board_chair")
    page.goto(url)
    page.locator("form.ballot").get_by_label("Approve").check()
    page.locator("form.ballot").get_by_role("button", name="Cast my vote").click()
    expect(page.locator(".voting-round")).to_contain_text("Vote closed")
    page.goto(url)
    initiative.refresh_from_db()
    assert initiative.state == State.APPROVED_FOR_SCALE_UP

    # The history shows every step, in order, with who took it.
    history = _history(page)
    expect(history).to_have_count(6)
    for index, (what, who) in enumerate(
        [
            ("Logged", "chair"),
            ("Escalated to the department", "chair"),
            ("Prioritised by the department", "dept_chair"),
            ("Referred to the division board", "dept_chair"),
            ("Voting", "Bo Ordförande"),
            ("Approved for scale-up", "the system"),
        ]
    ):
        expect(history.nth(index)).to_contain_text(what)
        expect(history.nth(index)).to_contain_text(who)
    assert list(
        Activity.objects.filter(initiative=initiative).order_by("pk").values_list("to_state")
    ) == [
        (State.LOGGED,),
        (State.ESCALATED_TO_DEPARTMENT,),
        (State.PRIORITISED,),
        (State.REFERRED_TO_BOARD,),
        (State.VOTING,),
        (State.APPROVED_FOR_SCALE_UP,),
    ]
    page.screenshot(path=str(SCREENSHOTS / "workflow-initiative.png"), full_page=True)
    assert not errors, errors


def test_axe_finds_no_serious_violation_on_the_workflow_pages(page, log_in, org, board_chair):
    """The pages of the workflow a board chair sees, with something on each: an initiative
    in a vote, its forum, a meeting with an agenda, the lists, the help page."""
    from datetime import timedelta

    from django.utils import timezone

    from forums.services import meeting_create
    from initiatives.agenda import agenda_proposals_add
    from initiatives.services import initiative_create, initiative_transition
    from initiatives.voting import voting_round_open

    board = Forum.objects.get(kind=ForumKind.DIVISION_BOARD)
    idea = initiative_create(
        user=board_chair,
        forum=board,
        title=TITLE,
        kind="innovation",
        origin_kind="literature",
        origin_reference="doi:10.1000/example",
    )
    meeting = meeting_create(
        user=board_chair, forum=board, starts_at=timezone.now() + timedelta(days=3)
    )
    voting_round_open(
        user=board_chair,
        initiative=idea,
        deadline=timezone.now() + timedelta(days=7),
        quorum=1,
        meeting=meeting,
    )
    agenda_proposals_add(user=board_chair, meeting=meeting)
    other = initiative_create(
        user=org.people["chair"],
        forum=org.forums["unit"],
        title="Ett annat",
        kind="idea",
        origin_kind="unit",
    )
    initiative_transition(initiative=other, user=org.people["chair"], transition="start_testing")

    page.context.add_init_script(path=str(AXE))
    log_in("board_chair")
    found = {}
    for path in (
        f"/initiatives/{idea.pk}/",
        f"/initiatives/{other.pk}/",
        "/initiatives/",
        "/initiatives/new/",
        "/forums/",
        f"/forums/{board.pk}/",
        f"/meetings/{meeting.pk}/",
        "/voting/",
        f"/forums/{board.pk}/prioritisation/",
        "/notifications/",
        "/help/workflow/",
    ):
        page.goto(path)
        expect(page.get_by_role("heading", level=1)).to_be_visible()
        serious = serious_axe(page)
        if serious:
            found[path] = serious
    assert not found, "axe-core:\n" + "\n".join(
        f"{path}\n  " + "\n  ".join(lines) for path, lines in found.items()
    )
