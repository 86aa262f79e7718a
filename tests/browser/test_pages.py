"""What people do in the browser: log in, navigate by role, import a file, switch language."""

import re
from pathlib import Path

import pytest
from django.conf import settings
from playwright.sync_api import expect

from measures.enums import ImportStatus
from measures.models import ImportBatch, Measure

from ..e2e.files import INVALID_ROWS, PATIENT_ROWS
from .conftest import SCREENSHOTS

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

NAV = "header nav"


def choose_file(page, name: str, text: str) -> None:
    page.get_by_label("CSV file").set_input_files(
        files=[{"name": name, "mimeType": "text/csv", "buffer": text.encode()}]
    )


def upload_from_the_navigation(page, name: str, text: str) -> int:
    """Open the upload page from the navigation, send a file, land on the batch page."""
    page.locator(NAV).get_by_role("link", name="Import data").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Import data")
    choose_file(page, name, text)
    page.get_by_role("button", name="Upload and import").click()
    page.wait_for_url(re.compile(r"/measures/imports/\d+/$"))
    # The progress block is there from the first render, whatever the worker has done so far.
    expect(page.locator("#batch-progress")).to_be_visible()
    return int(re.search(r"/imports/(\d+)/$", page.url).group(1))


def test_anonymous_visitor_is_sent_to_the_login_page(page):
    page.goto("/")

    expect(page).to_have_url(re.compile(r"/accounts/login/\?next=/$"))
    expect(page.get_by_role("heading", name="Log in")).to_be_visible()
    expect(page.locator(NAV)).to_have_count(0)


def test_forum_chair_logs_in_and_sees_the_navigation_of_their_role(page, log_in, org):
    log_in("chair")

    # A person affiliated to one unit lands on its dashboard.
    expect(page).to_have_url(re.compile(r"/units/AFF-01/$"))
    expect(page.get_by_role("heading", level=1)).to_contain_text("Avdelning 1 – Ångest")
    nav = page.locator(NAV)
    for link in ("Dashboards", "Measure catalogue", "Import data", "Import batches"):
        expect(nav.get_by_role("link", name=link)).to_be_visible()
    expect(nav.locator(".role")).to_have_text(["Forum chair"])
    expect(nav.get_by_role("link", name="Administration")).to_have_count(0)

    nav.get_by_role("link", name="Dashboards").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Welcome, chair")
    expect(page.get_by_role("heading", name="My units").locator("..")).to_contain_text(
        "Avdelning 1 – Ångest"
    )


def test_chair_uploads_a_valid_file_and_watches_it_import(page, log_in, org, worker_settings):
    log_in("chair")
    polls = []
    page.on("request", lambda r: polls.append(r.url) if r.url.endswith("/progress/") else None)

    batch_id = upload_from_the_navigation(page, "honos.csv", PATIENT_ROWS)
    first_status = page.locator("#batch-status").inner_text()

    # HTMX polls every second; when the worker is done the page reloads with the report.
    expect(page.locator("#batch-status")).to_have_text("Imported", timeout=60_000)
    assert first_status in {"Queued", "Running", "Imported"}
    if first_status != "Imported":
        assert polls, "the page reached its final state without polling"
    expect(page.locator("#batch-progress")).not_to_have_attribute("hx-get", re.compile(".*"))
    # A finished batch shows its status, not a full bar that could read as success.
    expect(page.locator("#batch-progress progress")).to_have_count(0)
    expect(page.locator("#rows-total")).to_have_text("6")
    expect(page.locator("#rows-new")).to_have_text("6")
    expect(page.locator("#batch-message")).to_have_text(
        "6 new rows imported; 0 were already present."
    )
    expect(page.locator("#error-report")).to_have_count(0)
    batch = ImportBatch.objects.get(pk=batch_id)
    assert (batch.status, batch.rows_new, batch.uploaded_by) == (
        ImportStatus.SUCCEEDED,
        6,
        org.people["chair"],
    )
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / "batch-imported.png"), full_page=True)


def test_invalid_file_shows_the_problems_by_row(page, log_in, org, worker_settings):
    log_in("chair")

    upload_from_the_navigation(page, "bad.csv", INVALID_ROWS)

    expect(page.locator("#batch-status")).to_have_text("Rejected", timeout=60_000)
    expect(page.get_by_role("heading", name="4 problems")).to_be_visible()
    rows = page.locator("#error-report tbody tr")
    expect(rows).to_have_count(4)
    expect(rows.locator("td:first-child")).to_have_text(["3", "4", "5", "6"])
    expect(rows.locator("td:nth-child(2)")).to_have_text(
        ["value", "measure_code", "unit_code", "date"]
    )
    expect(rows.locator("td:nth-child(4)")).to_have_text(
        [
            re.compile("outside the valid range of honos-total"),
            re.compile("Unknown measure"),
            re.compile("may not import data for unit"),
            re.compile("not a date"),
        ]
    )
    expect(page.locator("#batch-message")).to_contain_text("nothing was imported")
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / "batch-rejected.png"), full_page=True)


def test_language_switch_to_swedish(page, log_in, org):
    log_in("chair")
    expect(page.locator("html")).to_have_attribute("lang", "en")

    page.locator("#language-select").select_option("sv")
    page.locator("form.language button[type=submit]").click()

    expect(page.locator("html")).to_have_attribute("lang", "sv")
    expect(page.locator("#language-select")).to_have_value("sv")
    expect(page.locator("#language-select option:checked")).to_have_text("Svenska")
    catalog = Path(settings.BASE_DIR) / "locale" / "sv" / "LC_MESSAGES" / "django.mo"
    if catalog.exists():
        expect(page.get_by_role("button", name="Logga ut")).to_be_visible()
    # The choice sticks: the next page is Swedish too.
    page.goto("/measures/")
    expect(page.locator("html")).to_have_attribute("lang", "sv")


def test_clinician_cannot_import(page, log_in, org):
    log_in("clinician")

    nav = page.locator(NAV)
    expect(nav.get_by_role("link", name="Measure catalogue")).to_be_visible()
    expect(nav.get_by_role("link", name="Import data")).to_have_count(0)
    expect(nav.get_by_role("link", name="Import batches")).to_have_count(0)
    response = page.goto("/measures/imports/upload/")
    assert response.status == 403


def test_measure_catalogue_and_recording_handbook(page, log_in, org):
    Measure.objects.filter(pk=org.measures["honos"].pk).update(
        recording_handbook="Rate all twelve items at admission and at discharge."
    )
    log_in("clinician")

    page.locator(NAV).get_by_role("link", name="Measure catalogue").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Measure catalogue")
    names = page.locator("main table tbody tr td:first-child a")
    expect(names).to_have_count(len(org.measures))
    for measure in org.measures.values():
        expect(names.filter(has_text=measure.name)).to_have_count(1)

    names.filter(has_text="HoNOS total").click()

    expect(page).to_have_url(re.compile(r"/measures/honos-total/$"))
    expect(page.get_by_role("heading", level=1)).to_contain_text("HoNOS total")
    handbook = page.get_by_role("complementary", name="Recording handbook")
    expect(handbook).to_contain_text("Rate all twelve items at admission and at discharge.")
