"""Browser tests: Playwright's sync API driving Debian's Chromium against the live server.

Imports in these tests run in the real Celery worker of ``tests/e2e/worker.py``: the live
server enqueues after commit, exactly as in production.
"""

import http.client
import os
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from django.test import override_settings

from ..e2e.worker import celery_worker, worker_settings

__all__ = ["celery_worker", "worker_settings"]  # fixtures, re-exported for pytest

# Playwright's sync API runs an event loop in this thread; Django refuses ORM calls from a
# thread with a running loop unless told that this is intended.
os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
FACTORY_PASSWORD = "pw"  # tests/factories.py: UserFactory
#: Screenshots (and the print layout's PDF) for people to look at; CI keeps the folder.
SCREENSHOTS = Path(
    os.environ.get("LHS_SCREENSHOTS")
    or Path(__file__).resolve().parents[2] / "artifacts" / "screenshots"
)


@pytest.fixture(scope="session")
def chromium() -> Iterator:
    """Debian's Chromium, headless. Missing: skipped, or failed when LHS_REQUIRE_BROWSER=1."""
    if not CHROMIUM.exists():
        reason = (
            f"{CHROMIUM} is missing: apt-get install chromium (Playwright's own browser "
            "download does not work here)."
        )
        if os.environ.get("LHS_REQUIRE_BROWSER") == "1":
            pytest.fail(reason)
        pytest.skip(reason)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS
        )
        yield browser
        browser.close()


@pytest.fixture(scope="session", autouse=True)
def _live_server_over_http(django_db_setup, request):
    """Start the session's live server with SECURE_SSL_REDIRECT off: it serves plain HTTP.

    SecurityMiddleware reads the setting once, when the server builds its handler, so the
    per-test ``settings`` fixture cannot turn it off. If an earlier test started the live
    server with the redirect on, say so rather than fail obscurely.
    (Requesting ``django_db_setup`` first makes the server stop before the test database is
    dropped.)
    """
    with override_settings(SECURE_SSL_REDIRECT=False):
        server = request.getfixturevalue("live_server")
    url = urlsplit(server.url)
    conn = http.client.HTTPConnection(url.hostname, url.port, timeout=10)
    try:
        conn.request("HEAD", "/accounts/login/")
        response = conn.getresponse()
    finally:
        conn.close()
    if response.status in (301, 302) and response.getheader("Location", "").startswith("https:"):
        pytest.fail(
            "The live server redirects to HTTPS: it was started with SECURE_SSL_REDIRECT on "
            "by an earlier test. Run the browser tests in their own pytest session or set "
            "DJANGO_SECURE_SSL_REDIRECT=0."
        )


@pytest.fixture(autouse=True)
def _plain_http_and_fast_logins(settings):
    """Cookies over HTTP, static files without collectstatic, and cheap password checks."""
    settings.SESSION_COOKIE_SECURE = False
    settings.CSRF_COOKIE_SECURE = False
    settings.STORAGES = {
        **settings.STORAGES,
        "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
    }
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture
def page(chromium, live_server) -> Iterator:
    """A fresh browser context (no cookies) on the live server, in English."""
    from playwright.sync_api import expect

    expect.set_options(timeout=10_000)
    context = chromium.new_context(
        base_url=live_server.url, locale="en-GB", viewport={"width": 1280, "height": 900}
    )
    context.set_default_timeout(10_000)
    page = context.new_page()
    violations = csp_violations(page)
    yield page
    context.close()
    if violations:
        pytest.fail("Content-Security-Policy violations:\n" + "\n".join(violations))


def csp_violations(page) -> list[str]:
    """Collect what Chromium reports on the console when the CSP blocks something.

    Chromium logs every blocked script, style, image, frame or connection as an error
    beginning "Refused to ..." that names the Content Security Policy.
    """
    violations: list[str] = []

    def on_console(message) -> None:
        text = message.text
        if "Content Security Policy" in text or text.startswith("Refused to"):
            violations.append(f"{page.url}: {text}")

    page.on("console", on_console)
    return violations


@pytest.fixture
def log_in(page):
    """Log in through the form, as a person does: ``log_in("chair")``."""

    def log_in(username: str) -> None:
        page.goto("/accounts/login/")
        page.get_by_label("User name").fill(username)
        page.get_by_label("Password").fill(FACTORY_PASSWORD)
        page.get_by_role("button", name="Log in").click()
        page.wait_for_url(lambda url: "/accounts/login/" not in url)

    return log_in


#: axe-core, vendored from npm for the tests only.
AXE = Path(__file__).parent / "vendor" / "axe.min.js"


def serious_axe(page) -> list[str]:
    """axe-core's critical and serious findings on the page, one line each (needs
    ``page.context.add_init_script(path=str(AXE))`` before the page loads: an init script is
    not subject to the page's Content-Security-Policy)."""
    result = page.evaluate("() => axe.run(document, {resultTypes: ['violations']})")
    assert result["testEngine"]["name"] == "axe-core"
    return [
        f"{v['impact']} {v['id']}: {v['help']} — "
        + "; ".join(" ".join(n["target"]) for n in v["nodes"][:5])
        for v in result["violations"]
        if v["impact"] in ("critical", "serious")
    ]
