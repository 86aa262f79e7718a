"""A chair keeps a meeting's agenda in the browser, by keyboard, and prints the record."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from django.utils import timezone

from forums.services import meeting_create
from initiatives.models import AgendaItem
from tests.initiatives.conftest import log, wf  # noqa: F401 - the fixture

from .conftest import SCREENSHOTS

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_the_chair_adds_the_proposals_and_reorders_them_by_keyboard(page, log_in, wf):  # noqa: F811
    from playwright.sync_api import expect

    for title in ("Morning walks", "Shorter handovers"):
        log(wf, "unit", title=title)
    meeting = meeting_create(
        user=wf.people["chair"],
        forum=wf.forums["unit"],
        starts_at=timezone.now() + timedelta(days=2),
        location="Room 4",
        minutes="We looked at the coercion chart.\n\nAgreed to try morning walks.",
    )
    log_in("chair")
    page.goto(f"/meetings/{meeting.pk}/")
    proposals = page.locator(".proposals li")
    expect(proposals).to_have_count(2)
    page.get_by_role("button", name="Add all proposed items").click()
    items = page.locator("#agenda .agenda-item")
    expect(items).to_have_count(2)
    expect(page.locator("#agenda [role=status]")).to_have_text("2 items are added.")

    first = items.nth(0).locator(".agenda-title").inner_text()
    second = items.nth(1).locator(".agenda-title").inner_text()
    down = items.nth(0).get_by_role("button", name=re.compile(f"^Down.*{first}$"))
    down.focus()
    page.keyboard.press("Enter")
    expect(items.nth(0).locator(".agenda-title")).to_have_text(second)
    expect(items.nth(1).locator(".agenda-title")).to_have_text(first)
    # The focus stays with the moved item (its "Up" button, as "Down" is now disabled).
    moved = page.locator("#agenda .agenda-item").nth(1)
    expect(moved.get_by_role("button", name=re.compile(f"^Up.*{first}$"))).to_be_focused()
    expect(page.locator("#agenda [role=status]")).to_contain_text("is now item 2")
    assert list(
        AgendaItem.objects.filter(meeting=meeting)
        .order_by("position")
        .values_list("title", flat=True)
    ) == [second, first]
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / "meeting.png"), full_page=True)

    page.goto(f"/meetings/{meeting.pk}/print/")
    expect(page.locator(".meeting-document h1")).to_have_text("Forum AFF-01")
    page.emulate_media(media="print")
    expect(page.locator(".topbar")).to_be_hidden()
    expect(page.locator(".meeting-document .actions")).to_be_hidden()
    expect(page.get_by_text("Agreed to try morning walks.")).to_be_visible()
    page.set_viewport_size({"width": 794, "height": 1123})  # A4 at 96 dpi
    page.screenshot(path=str(SCREENSHOTS / "meeting-print.png"), full_page=True)
    page.pdf(path=str(SCREENSHOTS / "meeting-print.pdf"), prefer_css_page_size=True)
