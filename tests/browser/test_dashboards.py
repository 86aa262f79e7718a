"""The dashboards in Chromium, on the demo division: what a clinician, a department chair and a
forum meeting see; tables, CSV downloads, print, and axe-core on every dashboard page.

Each test leaves full-page screenshots in ``artifacts/screenshots/`` (``LHS_SCREENSHOTS``
overrides it), which CI keeps as artefacts.
"""

import csv
import io
import re
from datetime import date, timedelta
from pathlib import Path

import pytest
from django.apps import apps
from django.db import transaction
from django.test import override_settings
from django.utils import translation
from playwright.sync_api import expect

from demo.division import DIVISION_CODE, PASSWORD, demo_load
from lhs.collation import name_key
from units.models import Division

from .conftest import SCREENSHOTS

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

AXE = Path(__file__).parent / "vendor" / "axe.min.js"
#: 90 weeks at full volume: every intervention inside the window, weekly n mostly above the
#: minimum, and still some suppressed small periods (~13 s to load).
DEMO = {"weeks": 90, "scale": 1.0}
#: Re-created by ``post_migrate`` after each flush, or never read by a dashboard: the pages
#: read the precomputed series only, so the ~160,000 observations are not put back.
NOT_RESTORED = {"contenttypes.ContentType", "auth.Permission", "measures.Observation"}
WARD = "AFF-AVD1"  # the demo clinician's unit: the care-plan intervention, a local measure
#: The ward's care-plan share: weekly, with a step change after the intervention, a target.
CARE_PLAN = "#m-care-plan"
DRAWN = ".plot[data-spec]:has(.main-svg)"

# --- fixtures and helpers -----------------------------------------------------------------


@pytest.fixture(scope="module")
def demo_rows(django_db_setup, django_db_blocker, tmp_path_factory):
    """The demo division, loaded once per module, and its rows kept in memory.

    Live-server tests are transactional: the database is emptied after each test. Loading
    the demo for each test would cost ~13 s; putting its rows back costs under a second.
    The demo's passwords are hashed with the tests' MD5 hasher so that log-ins match.
    """
    with (
        django_db_blocker.unblock(),
        override_settings(
            PASSWORD_HASHERS=["django.contrib.auth.hashers.MD5PasswordHasher"],
            MEDIA_ROOT=tmp_path_factory.mktemp("demo-media"),
        ),
    ):
        demo_load(**DEMO)
        return {
            model: rows
            for model in apps.get_models(include_auto_created=True)
            if not model._meta.proxy and model._meta.label not in NOT_RESTORED
            if (rows := list(model._base_manager.all()))
        }


@pytest.fixture
def demo(demo_rows, live_server):
    """The demo's rows in the database (the previous test's flush removed them)."""
    if not Division.objects.filter(code=DIVISION_CODE).exists():
        # Foreign keys are deferred to the commit on SQLite and PostgreSQL: any order works.
        with transaction.atomic():
            for model, rows in demo_rows.items():
                model._base_manager.bulk_create(rows, batch_size=2000)


@pytest.fixture
def console_errors(page) -> list[str]:
    """Every console error and uncaught exception of the page, from its first request."""
    errors: list[str] = []
    page.on(
        "console",
        lambda m: errors.append(f"{page.url}: {m.text}") if m.type == "error" else None,
    )
    page.on("pageerror", lambda e: errors.append(f"{page.url}: uncaught {e}"))
    return errors


def log_in(page, username: str) -> None:
    """Through the log-in form, with the demo's password; lands where ``/`` sends them."""
    page.goto("/accounts/login/")
    page.get_by_label("User name").fill(username)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    page.wait_for_url(lambda url: "/accounts/login/" not in url)


def screenshot(page, name: str, *, full_page: bool = True) -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    # caret="initial": hiding the caret leaves style="" on the inputs, which the page's
    # Content-Security-Policy then reports when HTMX copies the page for its history.
    page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=full_page, caret="initial")


def wait_for_charts(page) -> None:
    """Until every chart the page has a spec for is drawn (plotly has put its SVG in)."""
    page.wait_for_function(
        """() => {
            const plots = [...document.querySelectorAll('.plot[data-spec]')];
            return plots.length > 0 && plots.every(p => p.querySelector('.main-svg'));
        }"""
    )


def points(page) -> dict[str, int]:
    """Per panel: how many periods the drawn chart's first trace (the values) has."""
    return page.evaluate(
        """() => Object.fromEntries([...document.querySelectorAll('section.panel')]
            .filter(s => s.querySelector('.plot') && s.querySelector('.plot')._fullData)
            .map(s => [s.id, s.querySelector('.plot').data[0].x.length]))"""
    )


def panels_with_data(page):
    """Panels that show figures (a panel without data shows "No data yet" instead)."""
    return page.locator("section.panel:has(dl.figures)")


def download(page, link) -> bytes:
    with page.expect_download() as info:
        link.click()
    return Path(info.value.path()).read_bytes()


# --- the clinician ------------------------------------------------------------------------


def test_clinician_lands_on_the_unit_dashboard_with_every_chart_drawn(page, console_errors, demo):
    log_in(page, "clinician")

    expect(page).to_have_url(re.compile(rf"/units/{WARD}/$"))
    expect(page.get_by_role("heading", level=1)).to_contain_text("Affektiv slutenvård, avdelning 1")
    wait_for_charts(page)
    with_data = panels_with_data(page)
    assert with_data.count() >= 8
    # One drawn chart per panel with data, and none elsewhere.
    expect(page.locator(DRAWN)).to_have_count(with_data.count())
    expect(with_data.locator(DRAWN)).to_have_count(with_data.count())
    # The rest say so rather than show an empty chart.
    no_data = page.locator("section.panel:not(:has(dl.figures))")
    expect(no_data.locator(".notice")).to_have_text(
        ["No data yet for this measure in this unit."] * no_data.count()
    )
    # The story the demo tells on this ward: the care-plan intervention shows as special
    # cause of improvement, a local measure of its own, and suppressed small periods.
    expect(page.locator(f"{CARE_PLAN} .panel-head svg.icon-variation")).to_have_attribute(
        "aria-label", "Special cause of improvement: higher"
    )
    expect(page.locator("section.panel .badge", has_text="local measure")).to_have_count(1)
    expect(page.locator("figcaption", has_text="suppressed (fewer than 5)").first).to_be_visible()
    # Every chart has its text alternative.
    for label in page.locator(".plot[data-spec]").evaluate_all(
        "els => els.map(e => e.getAttribute('aria-label'))"
    ):
        assert label.startswith("Control chart of ")
    screenshot(page, "unit")
    assert console_errors == []


def test_grain_switch_redraws_the_charts_and_the_back_button_restores_them(
    page, console_errors, demo
):
    log_in(page, "clinician")
    wait_for_charts(page)
    weekly = points(page)
    assert weekly["m-care-plan"] >= 80  # 90 weeks

    page.get_by_label("Grain").select_option(label="Monthly")

    page.wait_for_url(re.compile(r"[?&]grain=month(&|$)"))
    page.wait_for_function(
        "n => { const p = document.querySelector('#m-care-plan .plot');"
        " return p && p._fullData && p.data[0].x.length < n; }",
        arg=weekly["m-care-plan"],
    )
    wait_for_charts(page)
    monthly = points(page)
    assert monthly.keys() == weekly.keys()
    assert 18 <= monthly["m-care-plan"] <= 23  # 90 weeks are 21 or 22 months
    assert all(monthly[k] <= weekly[k] for k in weekly)
    expect(page.locator(DRAWN)).to_have_count(panels_with_data(page).count())
    expect(page.locator(f"{CARE_PLAN} dl.figures dt").first).to_contain_text(
        re.compile(
            r"\((January|February|March|April|May|June|July|August|September|"
            r"October|November|December) \d{4}\)"
        )
    )
    screenshot(page, "unit-monthly")

    page.go_back()

    page.wait_for_url(lambda url: "grain=" not in url)
    page.wait_for_function(
        "n => { const p = document.querySelector('#m-care-plan .plot');"
        " return p && p._fullData && p.data[0].x.length === n; }",
        arg=weekly["m-care-plan"],
    )
    wait_for_charts(page)
    assert points(page) == weekly
    expect(page.get_by_label("Grain")).to_have_value("")
    assert console_errors == []


def test_table_view_of_a_chart_and_without_javascript(
    page, console_errors, demo, chromium, live_server
):
    log_in(page, "clinician")
    wait_for_charts(page)
    periods = points(page)["m-care-plan"]
    caption = page.locator(f"{CARE_PLAN} figcaption").inner_text()
    suppressed = int(re.search(r"(\d+) periods? suppressed", caption).group(1))

    page.locator(CARE_PLAN).get_by_role("link", name="Table").click()

    table = page.locator(f"{CARE_PLAN}-table table.numbers")
    expect(table).to_be_visible()
    rows = table.locator("tbody tr")
    expect(rows).to_have_count(periods)
    expect(table.locator("tbody tr.suppressed")).to_have_count(suppressed)
    # A suppressed period says so and has no number: one cell after the period's label.
    expect(table.locator("tbody tr.suppressed td")).to_have_text(
        ["Suppressed: fewer than 5 observations"] * suppressed
    )
    shown = table.locator("tbody tr:not(.suppressed)").first.locator("td")
    expect(shown).to_have_count(6)
    expect(shown.first).to_have_text(re.compile(r"^\d+(\.\d)? %$"))
    screenshot(page, "unit-table-fragment")
    assert console_errors == []

    # Without JavaScript the same tables are the page: every panel with data has one.
    context = chromium.new_context(
        base_url=live_server.url, locale="en-GB", java_script_enabled=False
    )
    try:
        plain = context.new_page()
        log_in(plain, "clinician")
        plain.goto(f"/units/{WARD}/?view=table")
        with_data = panels_with_data(plain)
        assert with_data.count() >= 8
        expect(plain.locator(".plot")).to_have_count(0)
        expect(with_data.locator("table.numbers")).to_have_count(with_data.count())
        care_plan = plain.locator(f"{CARE_PLAN} table.numbers tbody tr")
        expect(care_plan).to_have_count(periods)
        hidden = plain.locator("table.numbers tbody tr.suppressed")
        assert hidden.count() >= suppressed
        for text in hidden.locator("td").all_inner_texts():
            assert text == "Suppressed: fewer than 5 observations"
        # No suppressed latest figure either: the panel says "fewer than 5", never a number,
        # and beside it the last figure that is shown, with its own (earlier) period.
        for text in plain.locator("dd.big .suppressed").all_inner_texts():
            assert text.strip() == "fewer than 5"
        for text in plain.locator("dd.big .last-shown").all_inner_texts():
            assert re.fullmatch(r"last shown: [\d.,]+ \S.* \(week \d+, \d{4}\)", text), text
        # The first screen only: every table of the page is ~30,000 px tall (6 s to shoot).
        screenshot(plain, "unit-tables-without-javascript", full_page=False)
    finally:
        context.close()


def _rows(data: bytes, *, delimiter: str) -> list[list[str]]:
    return list(csv.reader(io.StringIO(data.decode("utf-8-sig")), delimiter=delimiter))


def test_series_csv_in_english_and_in_swedish_excel(page, console_errors, demo):
    log_in(page, "clinician")
    link = page.locator(f"{CARE_PLAN} a[download][href*='/care-plan.csv']")

    english = download(page, link)

    header, *rows = _rows(english, delimiter=",")
    assert header == [
        "Period start",
        "Period",
        "Value",
        "n",
        "Numerator",
        "Denominator",
        "Centre line",
        "Lower process limit",
        "Upper process limit",
        "Signal",
        "Suppressed",
    ]
    assert len(rows) >= 80  # one row per week
    assert all(len(row) == len(header) for row in rows)
    assert "improvement" in {row[9] for row in rows}  # the intervention's weeks
    shown = next(row for row in rows if "." in row[2])
    assert re.fullmatch(r"\d{4}-\d{2}-\d{2}", shown[0])
    assert re.fullmatch(r"\d+\.\d+", shown[2]), shown  # a share: a decimal point
    assert re.fullmatch(r"\d+", shown[3]) and int(shown[3]) >= 5
    hidden = [row for row in rows if row[10]]
    assert hidden, "the demo ward has suppressed weeks"
    assert all(row[10] == "yes, fewer than 5" for row in hidden)
    assert all(row[2:9] == [""] * 7 for row in hidden), "a suppressed week shows a number"

    page.locator("#language-select").select_option("sv")
    page.locator("form.language button[type=submit]").click()
    expect(page.locator("html")).to_have_attribute("lang", "sv")

    swedish = download(page, link)

    assert swedish.startswith(b"\xef\xbb\xbf"), "no UTF-8 byte-order mark: Excel garbles å ä ö"
    sv_header, *sv_rows = _rows(swedish, delimiter=";")
    with translation.override("sv"):
        assert sv_header[:3] == [
            translation.gettext("Period start"),
            translation.gettext("Period"),
            translation.gettext("Value"),
        ]
    assert sv_header[0] == "Periodens början"
    assert len(sv_header) == len(header) and len(sv_rows) == len(rows)
    sv_shown = next(row for row in sv_rows if row[0] == shown[0])
    assert sv_shown[2] == shown[2].replace(".", ","), (sv_shown, shown)
    assert sv_shown[3] == shown[3]
    assert "." not in "".join(sv_shown[2:9])
    screenshot(page, "unit-swedish")
    assert console_errors == []


def test_png_download_of_a_chart(page, console_errors, demo):
    log_in(page, "clinician")
    wait_for_charts(page)

    png = download(page, page.locator(f"{CARE_PLAN} button.png"))

    assert png.startswith(b"\x89PNG\r\n\x1a\n")
    width, height = int.from_bytes(png[16:20], "big"), int.from_bytes(png[20:24], "big")
    assert width >= 800 and height >= 600  # drawn at scale 2
    assert console_errors == []


def test_print_layout_one_measure_per_a4_landscape_page(page, console_errors, demo):
    log_in(page, "clinician")
    wait_for_charts(page)
    count = panels_with_data(page).count()
    panels = page.locator("section.panel").count()

    page.emulate_media(media="print")

    style = page.evaluate(
        """() => ({
            topbar: getComputedStyle(document.querySelector('.topbar')).display,
            filters: getComputedStyle(document.querySelector('form.filters')).display,
            actions: getComputedStyle(document.querySelector('.panel .actions')).display,
            breaks: [...document.querySelectorAll('section.panel')]
                .map(p => getComputedStyle(p).breakAfter),
        })"""
    )
    assert style["topbar"] == style["filters"] == style["actions"] == "none"
    assert style["breaks"] == ["page"] * (panels - 1) + ["auto"]
    screenshot(page, "unit-print")
    pdf = page.pdf(format="A4", landscape=True, print_background=True)
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    (SCREENSHOTS / "unit-print.pdf").write_bytes(pdf)
    assert pdf.startswith(b"%PDF")
    pages = len(re.findall(rb"/Type\s*/Page(?!s)", pdf))
    # One panel a page (a long panel may take two); the charts are in it.
    assert panels <= pages <= 2 * panels, (pages, panels)
    assert count >= 8
    assert console_errors == []


# --- the department chair -----------------------------------------------------------------


def _names(page) -> list[str]:
    return page.locator("table.matrix tbody th[scope=row]").all_inner_texts()


def _values(page, column: int) -> list[float | None]:
    """The figures of a matrix column (1 = the first measure); None for "–" or suppressed."""
    texts = page.locator(f"table.matrix tbody tr td:nth-of-type({column})").all_inner_texts()
    out = []
    for text in texts:
        found = re.match(r"\s*(-?\d+(?:\.\d+)?)", text)
        out.append(float(found.group(1)) if found else None)
    return out


def test_department_chair_sorts_the_matrix_and_sees_a_funnel_plot(page, console_errors, demo):
    log_in(page, "deptchair")

    expect(page).to_have_url(re.compile(r"/departments/aff/$"))
    expect(page.get_by_role("heading", level=1)).to_have_text("Affektiva sjukdomar")
    before = _names(page)
    assert len(before) == 6
    # By name until told otherwise, in the reader's language (English: Å as A).
    assert before == sorted(before, key=lambda name: name_key(name, "en"))
    headings = page.locator("table.matrix thead th")
    measures = headings.locator("a").all_inner_texts()
    column = measures.index("HoNOS total score")  # the name column is 0
    heading = headings.nth(column)
    expect(heading).to_have_attribute("aria-sort", "none")
    screenshot(page, "department")

    heading.get_by_role("link").click()

    page.wait_for_url(re.compile(r"sort=honos-total&dir=asc"))
    heading = page.locator("table.matrix thead th").nth(column)
    expect(heading).to_have_attribute("aria-sort", "ascending")
    expect(page.locator("table.matrix thead th").first).to_have_attribute("aria-sort", "none")
    ascending = _values(page, column)
    assert None not in ascending and ascending == sorted(ascending)
    assert _names(page) != before and sorted(_names(page)) == sorted(before)

    heading.get_by_role("link").click()

    page.wait_for_url(re.compile(r"sort=honos-total&dir=desc"))
    expect(page.locator("table.matrix thead th").nth(column)).to_have_attribute(
        "aria-sort", "descending"
    )
    assert _values(page, column) == sorted(ascending, reverse=True)
    screenshot(page, "department-sorted")

    # Funnel plots load when they scroll into view (HTMX "revealed").
    slot = page.locator(".funnel-slot").last
    expect(slot.locator(".plot")).to_have_count(0)
    slot.scroll_into_view_if_needed()
    expect(slot.locator(".plot .main-svg").first).to_be_attached()
    assert slot.locator(".plot").get_attribute("aria-label").startswith("Funnel plot of ")
    expect(slot.locator("details.chart-table tbody tr")).not_to_have_count(0)
    page.wait_for_load_state("networkidle")
    screenshot(page, "department-funnels")
    assert console_errors == []


# --- accessibility ------------------------------------------------------------------------

#: Every dashboard page; the tables of the last 20 weeks only (the same markup as all 90,
#: which take axe ~9 s). The unit and department pages have screenshots from other tests.
PAGES = {
    "chooser": "/?choose=1",
    "unit": f"/units/{WARD}/",
    "unit-tables": f"/units/{WARD}/?view=table&start={date.today() - timedelta(weeks=20)}",
    "department": "/departments/aff/",
    "division": f"/divisions/{DIVISION_CODE}/",
    "measure": "/measures/care-plan/",
}
SHOT_ELSEWHERE = {"unit", "department"}


def _reveal_everything(page) -> None:
    """Scroll to the bottom so that the funnel plots load, and wait for them."""
    for slot in page.locator(".funnel-slot").all():
        slot.scroll_into_view_if_needed()
    page.wait_for_load_state("networkidle")
    if page.locator(".plot[data-spec]").count():
        wait_for_charts(page)


def test_axe_finds_no_serious_violation_on_any_dashboard_page(page, console_errors, demo):
    # An init script runs in every document before the page's own scripts, and, unlike a
    # <script> tag added to the page, is not subject to the page's Content-Security-Policy.
    page.context.add_init_script(path=str(AXE))
    log_in(page, "board")
    expect(page).to_have_url(re.compile(rf"/divisions/{DIVISION_CODE}/$"))
    found = {}
    for name, path in PAGES.items():
        page.goto(path)
        _reveal_everything(page)
        result = page.evaluate("() => axe.run(document, {resultTypes: ['violations']})")
        assert result["testEngine"]["name"] == "axe-core"
        serious = [v for v in result["violations"] if v["impact"] in ("critical", "serious")]
        if serious:
            found[path] = [
                f"{v['impact']} {v['id']}: {v['help']} — "
                + "; ".join(" ".join(n["target"]) for n in v["nodes"][:5])
                + (f" (+{len(v['nodes']) - 5} more)" if len(v["nodes"]) > 5 else "")
                for v in serious
            ]
        if name not in SHOT_ELSEWHERE:
            screenshot(page, name)
    assert not found, "axe-core:\n" + "\n".join(
        f"{path}\n  " + "\n  ".join(lines) for path, lines in found.items()
    )
    assert console_errors == []
