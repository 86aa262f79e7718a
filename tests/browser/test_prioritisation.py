"""Prioritisation in the browser: a member scores from the initiative's page (HTMX), a wrong
value is shown by its criterion; the ranked list, the impact/effort chart and the dialogue
render under the CSP with no serious axe-core finding. Screenshots for people to look at."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from initiatives.prioritisation import criteria_ensure_defaults, score_set
from initiatives.services import initiative_transition

from ..initiatives.conftest import log, wf
from .conftest import AXE, SCREENSHOTS, serious_axe

__all__ = ["wf"]  # the fixture, re-exported for pytest

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def referred(wf, title):
    idea = log(wf, "unit", title=title)
    for name in ("escalate", "prioritise", "refer_to_board"):
        initiative_transition(
            initiative=idea, user=wf.people["admin"], transition=name, comment="On."
        )
    return idea


def shot(page, name: str) -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / f"prioritisation-{name}.png"), full_page=True)


def test_a_member_scores_on_the_initiative_page_and_the_lists_show_it(page, log_in, wf):
    page.context.add_init_script(path=str(AXE))
    shared = [referred(wf, f"Shared idea {i}") for i in range(3)]
    local = log(wf, "dept", title="The group's own idea")
    dept, board = (
        criteria_ensure_defaults(wf.forums["dept"]),
        criteria_ensure_defaults(wf.forums["board"]),
    )
    for idea, mine, theirs in zip(shared, (5, 3, 2), (2, 3, 5), strict=True):
        score_set(
            user=wf.people["dept_chair"],
            initiative=idea,
            scores={c.pk: (mine if c.higher_is_better else 6 - mine) for c in dept},
        )
        score_set(user=wf.people["board"], initiative=idea, scores={c.pk: theirs for c in board})
    score_set(user=wf.people["dept_chair"], initiative=local, scores={dept[0].pk: 3})

    log_in("dept_member")
    page.goto(f"/initiatives/{shared[1].pk}/")
    block = page.locator(f"#scores-{wf.forums['dept'].pk}-{shared[1].pk}")
    expect(block.get_by_role("group", name="Impact")).to_be_visible()
    block.get_by_role("group", name="Impact").get_by_label("5").check()
    block.get_by_role("group", name="Effort").get_by_label("1").check()
    block.get_by_role("button", name="Save my scores").click()
    expect(block.get_by_role("status")).to_have_text("Your scores are saved.")
    expect(block.get_by_text("Your score", exact=True)).to_be_visible()
    # The block was swapped in place: the page did not reload.
    assert page.url.endswith(f"/initiatives/{shared[1].pk}/")
    # Saved values come back checked.
    expect(block.get_by_role("group", name="Impact").get_by_label("5")).to_be_checked()
    assert serious_axe(page) == []
    shot(page, "panel")

    page.goto(f"/forums/{wf.forums['dept'].pk}/prioritisation/")
    expect(page.get_by_role("heading", name="Ranked list")).to_be_visible()
    expect(page.locator("svg.impact-effort-chart circle").first).to_be_visible()
    assert page.locator("table.impact-effort-table tbody tr").count() == 3
    assert serious_axe(page) == []
    shot(page, "forum")

    page.goto(f"/departments/{wf.dept_a.code}/dialogue/")
    expect(page.get_by_role("heading", name="Where they disagree")).to_be_visible()
    assert page.locator("tr.shared").count() == 6
    assert serious_axe(page) == []
    shot(page, "dialogue")


def test_a_wrong_value_is_shown_by_its_criterion_without_a_reload(page, log_in, wf):
    idea = log(wf, "dept", title="Idea")
    criteria = criteria_ensure_defaults(wf.forums["dept"])
    log_in("dept_member")
    page.goto(f"/forums/{wf.forums['dept'].pk}/prioritisation/initiatives/{idea.pk}/")
    # A tampered radio value (as a crafted request would send).
    page.locator(f"#id_criterion_{criteria[1].pk}_5").evaluate("el => { el.value = '9' }")
    page.locator(f"#id_criterion_{criteria[1].pk}_5").check()
    page.get_by_role("button", name="Save my scores").click()
    expect(page.get_by_text("Evidence: give a whole number from 1 to 5.")).to_be_visible()
    page.context.clear_cookies()
    log_in("dept_chair")
    page.goto(f"/forums/{wf.forums['dept'].pk}/prioritisation/criteria/")
    expect(page.get_by_role("heading", name="Add a criterion")).to_be_visible()
    shot(page, "criteria")
