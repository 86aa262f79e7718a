"""Lists must not run a query per item (STYLE.md): one item and many cost the same."""

from __future__ import annotations

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from tests.factories import MeasureFactory

pytestmark = pytest.mark.django_db


def queries(fetch) -> int:
    fetch()  # warm: a token's "last used" is written once a minute, not on every request
    with CaptureQueriesContext(connection) as captured:
        response = fetch()
    assert response.status_code == 200
    return len(captured)


def add_batches(org, run_import, count: int) -> None:
    for i in range(count):
        content = f"measure_code,unit_code,date,value\nhonos-total,AFF-01,2025-02-{i + 1:02d},5\n"
        run_import(org.people["chair"], f"b{i}.csv", content.encode())


def add_measures(org, count: int) -> None:
    for _ in range(count):
        MeasureFactory(scope="unit", unit=org.a2, owner=org.people["support"])
        MeasureFactory(scope="department", department=org.dept_b)


@pytest.mark.parametrize("username", ["chair", "support"])
def test_batch_list_page(client, org, run_import, username):
    client.force_login(org.people[username])
    fetch = lambda: client.get(reverse("measures:batch-list"))  # noqa: E731
    add_batches(org, run_import, 1)
    one = queries(fetch)

    add_batches(org, run_import, 6)

    assert queries(fetch) == one


def test_imports_api_list(org, run_import, token_client):
    client = token_client("support")
    fetch = lambda: client.get("/api/imports/")  # noqa: E731
    add_batches(org, run_import, 1)
    one = queries(fetch)

    add_batches(org, run_import, 6)

    assert queries(fetch) == one


def test_catalogue_page(client, org):
    client.force_login(org.people["clinician"])
    fetch = lambda: client.get(reverse("measures:catalogue"))  # noqa: E731
    add_measures(org, 1)
    one = queries(fetch)

    add_measures(org, 6)

    assert queries(fetch) == one


def test_measures_api_list(org, token_client):
    client = token_client("clinician")
    fetch = lambda: client.get("/api/measures/")  # noqa: E731
    add_measures(org, 1)
    one = queries(fetch)

    add_measures(org, 6)

    assert queries(fetch) == one
