"""Every main page works under the Content-Security-Policy: no violation in Chromium.

The ``page`` fixture fails a test on any violation Chromium reports; these tests visit the
pages and check that the policy is really sent (an absent policy would pass trivially).
"""

import re

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from playwright.sync_api import expect

from measures.services import import_batch_create, import_batch_process

from .conftest import csp_violations

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

CSV = b"measure_code,unit_code,date,value\nhonos-total,AFF-01,2024-01-01,12\n"


def visit(page, path: str):
    response = page.goto(path)
    assert response.status == 200, f"{path}: {response.status}"
    policy = response.headers.get("content-security-policy", "")
    assert "script-src 'self'" in policy, f"{path} has no CSP: {policy!r}"
    assert "'unsafe-inline'" not in policy
    page.wait_for_load_state("networkidle")
    return response


def test_the_policy_forbids_inline_code_foreign_origins_and_framing(page, org):
    response = visit(page, "/accounts/login/")

    policy = dict(
        directive.strip().split(" ", 1)
        for directive in response.headers["content-security-policy"].split(";")
    )
    assert policy["default-src"] == "'self'"
    assert policy["script-src"] == "'self'"
    assert policy["style-src"] == "'self'"
    assert policy["frame-ancestors"] == "'none'"
    assert policy["form-action"] == "'self'"


def test_the_pages_of_an_importer_work_under_the_policy(page, log_in, org):
    user = org.people["support"]
    done = import_batch_create(user=user, upload=SimpleUploadedFile("a.csv", CSV), enqueue=False)
    import_batch_process(batch_id=done.pk)
    # Never processed: its page polls the progress fragment with HTMX.
    queued = import_batch_create(
        user=user,
        upload=SimpleUploadedFile("b.csv", CSV.replace(b"12", b"13")),
        enqueue=False,
    )
    log_in("support")

    for path in (
        "/",
        "/measures/",
        "/measures/honos-total/",
        "/measures/imports/upload/",
        "/measures/imports/",
        f"/measures/imports/{done.pk}/",
    ):
        visit(page, path)

    polls = []
    page.on("response", lambda r: polls.append(r) if r.url.endswith("/progress/") else None)
    visit(page, f"/measures/imports/{queued.pk}/")
    page.wait_for_timeout(2500)
    assert polls, "the progress fragment was never polled"
    expect(page.locator("#batch-progress")).to_be_visible()


def test_the_admin_works_under_the_policy(page, log_in, org):
    log_in("admin")

    for path in (
        "/admin/",
        "/admin/units/unit/",
        f"/admin/units/unit/{org.a1.pk}/change/",
        "/admin/measures/measure/",
        f"/admin/measures/measure/{org.measures['honos'].pk}/change/",
        "/admin/auth/user/add/",
        "/admin/units/auditevent/",
    ):
        visit(page, path)


def test_the_api_docs_work_under_the_policy(page, log_in, org):
    log_in("clinician")

    visit(page, "/api/docs/")

    expect(page.locator(".swagger-ui .info .title")).to_contain_text("Learning Health System API")
    expect(page.locator(".opblock").first).to_be_visible()


def test_the_fixture_catches_a_violation(chromium, live_server, org):
    """The check itself: an inline script added to a page is blocked and reported."""
    context = chromium.new_context(base_url=live_server.url)
    try:
        page = context.new_page()
        violations = csp_violations(page)
        page.goto("/accounts/login/")
        page.evaluate(
            """() => {
                const script = document.createElement("script");
                script.textContent = "window.inlineRan = true";
                document.body.appendChild(script);
            }"""
        )
        page.wait_for_timeout(200)

        assert page.evaluate("() => window.inlineRan === true") is False
        assert any(re.search("inline script", v) for v in violations), violations
    finally:
        context.close()
