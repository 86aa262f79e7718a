"""The API against its own OpenAPI schema: schemathesis, bounded, on the live test server.

Every operation is called with generated requests, valid ones (each must be accepted) and
invalid ones (each must be rejected with a 4xx), as an importing user with a Bearer token and
as a clinician with a session cookie; every response must match the schema (status code,
content type, body). ``LHS_SCHEMATHESIS_EXAMPLES`` sets the examples per operation.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from django.conf import settings as django_settings
from django.test import Client

from measures.aggregation import series_recompute
from units.services import api_token_create

pytestmark = pytest.mark.django_db(transaction=True)

EXAMPLES = int(os.environ.get("LHS_SCHEMATHESIS_EXAMPLES", "15"))
ST = str(Path(sys.executable).with_name("st"))


def _start(live_server, name: str, header: str, tmp_path, *extra: str) -> subprocess.Popen:
    """One schemathesis run, its output to a file. ``LHS_SCHEMATHESIS_PATHS``, a regular
    expression, limits the paths (a quick look at a few endpoints while working on them)."""
    paths = os.environ.get("LHS_SCHEMATHESIS_PATHS")
    return subprocess.Popen(
        [
            ST,
            "run",
            f"{live_server.url}/api/schema/?format=json",
            "--url",
            live_server.url,
            "-H",
            header,
            "--checks",
            "all",
            "--max-examples",
            str(EXAMPLES),
            "--seed",
            "7",
            "--generation-deterministic",
            "--no-color",
            "--request-timeout",
            "30",
            *(["--include-path-regex", paths] if paths else []),
            *extra,
        ],
        stdout=(tmp_path / f"{name}.out").open("w"),
        stderr=subprocess.STDOUT,
        text=True,
        cwd=tmp_path,
        env={**os.environ, "NO_COLOR": "1"},
    )


def _report(run: subprocess.Popen, tmp_path, name: str) -> tuple[int, str]:
    code = run.wait(timeout=900)
    out = (tmp_path / f"{name}.out").read_text()
    # The failures come first, the (long) warnings and summary last: keep both ends.
    return code, out if len(out) < 24_000 else out[:18_000] + "\n[…]\n" + out[-5_000:]


def test_the_api_keeps_to_its_schema(org, live_server, tmp_path, settings):
    settings.REST_FRAMEWORK = {
        **django_settings.REST_FRAMEWORK,
        # Generated uploads by the hundred: the hourly upload limit is tested elsewhere.
        "DEFAULT_THROTTLE_RATES": {"imports": "100000/hour"},
    }
    series_recompute()
    _token, key = api_token_create(user=org.people["support"], name="schemathesis")
    browser = Client()
    browser.force_login(org.people["clinician"])
    session = browser.cookies[django_settings.SESSION_COOKIE_NAME].value
    started = time.monotonic()
    # One after the other: on SQLite (make test) concurrent requests could lock each other.
    results = {
        "bearer (importer)": _report(
            _start(live_server, "bearer", f"Authorization: Bearer {key}", tmp_path),
            tmp_path,
            "bearer",
        ),
        "session (clinician)": _report(
            _start(
                live_server,
                "session",
                f"Cookie: {django_settings.SESSION_COOKIE_NAME}={session}",
                tmp_path,
                # The cookie goes as a plain header, which schemathesis cannot take away when
                # it tries a request without valid credentials (the Bearer run checks that).
                "--exclude-checks",
                "ignored_auth",
            ),
            tmp_path,
            "session",
        ),
    }
    elapsed = time.monotonic() - started
    print(f"schemathesis: {elapsed:.0f} s for both runs")
    failed = {who: out for who, (code, out) in results.items() if code}
    assert not failed, "\n\n".join(f"--- {who}\n{out}" for who, out in failed.items())
