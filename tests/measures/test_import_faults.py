"""Imports under faults of the services around them: broker, cache, workers, two people at once.

Real components throughout: an unreachable Redis is a real Redis client talking to a port
where nothing listens; the end-to-end versions with real processes are in tests/e2e.
"""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest
from django.core.exceptions import ValidationError
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import connection
from django.utils import timezone

from lhs.celery import app as celery_app
from lhs.workers import heartbeat
from measures import services
from measures.enums import ImportStatus
from measures.models import ImportBatch, Observation
from measures.services import (
    CLAIM_GRACE,
    SEND_GRACE,
    import_batch_create,
    import_batch_process,
    import_batch_revert,
    import_batches_sweep,
)
from measures.throttling import ImportUploadThrottle

from .conftest import as_upload

pytestmark = pytest.mark.django_db

#: Nothing listens here: connecting is refused at once.
NOWHERE = "redis://127.0.0.1:1/0"
BODY = b"measure_code,unit_code,date,value\nhonos-total,AFF-01,2025-01-07,3\n"


def _reset_broker_pools() -> None:
    celery_app._pool = None
    amqp = celery_app.__dict__.get("amqp")
    if amqp is not None:
        amqp._producer_pool = None


@pytest.fixture
def broker_down():
    """This process publishes to a broker that is not there (as while Redis restarts)."""
    saved = celery_app.conf.broker_url, celery_app.conf.task_always_eager
    celery_app.conf.broker_url, celery_app.conf.task_always_eager = NOWHERE, False
    _reset_broker_pools()
    yield
    celery_app.conf.broker_url, celery_app.conf.task_always_eager = saved
    _reset_broker_pools()


@pytest.fixture
def cache_down(settings):
    settings.CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": NOWHERE,
            "OPTIONS": {"socket_connect_timeout": 1, "socket_timeout": 1},
        }
    }


def upload(client, name: str = "f.csv", body: bytes = BODY):
    return client.post(
        "/api/imports/", {"file": SimpleUploadedFile(name, body)}, format="multipart"
    )


# --- the broker away ---------------------------------------------------------------------------


def test_an_upload_while_the_broker_is_away_is_kept_and_sent_once_it_is_back(
    org, token_client, broker_down, django_capture_on_commit_callbacks
):
    client = token_client("chair")

    with django_capture_on_commit_callbacks(execute=True):
        response = upload(client)

    assert response.status_code == 201, response.content
    batch = ImportBatch.objects.get(pk=response.json()["id"])
    # Kept, queued, and marked as not sent: nothing is lost and nothing waits silently.
    assert (batch.status, batch.enqueued_at) == (ImportStatus.QUEUED, None)
    assert batch.file.storage.exists(batch.file.name)

    services._broker_was_emptied()  # the sweeper's marker: this is not about a restart
    # Within its upload's own grace the sweeper leaves it (the upload may still be sending).
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        assert import_batches_sweep() == {"requeued": 0, "failed": 0}
    assert callbacks == []
    ImportBatch.objects.filter(pk=batch.pk).update(
        created_at=timezone.now() - SEND_GRACE - timedelta(seconds=1)
    )
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        assert import_batches_sweep() == {"requeued": 1, "failed": 0}
    assert len(callbacks) == 1
    batch.refresh_from_db()
    assert batch.enqueued_at is not None


def test_after_the_broker_was_emptied_every_queued_batch_is_sent_again_at_once(
    org, django_capture_on_commit_callbacks
):
    batches = [
        import_batch_create(
            user=org.people["chair"], upload=as_upload("patient_level.csv"), enqueue=False
        )
        for _ in range(3)
    ]
    ImportBatch.objects.update(enqueued_at=timezone.now() - timedelta(minutes=2))
    services._broker_was_emptied()
    # Nothing was lost: two minutes in the queue is no reason to send again.
    with django_capture_on_commit_callbacks(execute=False):
        assert import_batches_sweep() == {"requeued": 0, "failed": 0}

    # Redis restarts (it keeps nothing on disk): the cache loses the sweeper's marker too.
    from django.core.cache import cache

    cache.clear()
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        assert import_batches_sweep() == {"requeued": 3, "failed": 0}

    assert len(callbacks) == 3
    assert all(
        b.status == ImportStatus.QUEUED
        for b in ImportBatch.objects.filter(pk__in=[b.pk for b in batches])
    )


# --- the cache away ----------------------------------------------------------------------------


def test_a_cache_outage_fails_no_import_and_no_request(org, token_client, cache_down, client):
    api = token_client("chair")

    created = upload(api)  # the upload limit lives in the cache: let through, not a 500
    assert created.status_code == 201, created.content
    batch = import_batch_process(batch_id=created.json()["id"])  # progress is written on the way

    assert batch.status == ImportStatus.SUCCEEDED, batch.message
    assert Observation.objects.filter(batch=batch).count() == 1
    report = api.get(f"/api/imports/{batch.pk}/")
    assert report.status_code == 200
    assert report.json()["progress"]["percent"] == 100

    health = client.get("/healthz")
    assert health.status_code == 200  # the web node serves; the body tells what is wrong
    lines = health.content.decode().splitlines()
    assert lines[0] == "degraded"
    assert any(line.startswith("cache: unavailable") for line in lines)


def test_the_progress_of_a_running_batch_reads_as_zero_while_the_cache_is_away(org, cache_down):
    batch = import_batch_create(
        user=org.people["chair"], upload=as_upload("patient_level.csv"), enqueue=False
    )
    ImportBatch.objects.filter(pk=batch.pk).update(status=ImportStatus.RUNNING)
    batch.refresh_from_db()

    assert services.import_batch_progress(batch)["percent"] == 0


# --- workers -----------------------------------------------------------------------------------


def _running(org, *, claimed_by: str, started_ago: timedelta) -> ImportBatch:
    services._broker_was_emptied()
    batch = import_batch_create(
        user=org.people["chair"], upload=as_upload("patient_level.csv"), enqueue=False
    )
    ImportBatch.objects.filter(pk=batch.pk).update(
        status=ImportStatus.RUNNING,
        attempts=1,
        claimed_by=claimed_by,
        started_at=timezone.now() - started_ago,
        enqueued_at=timezone.now() - started_ago,
    )
    return batch


def test_a_slow_import_whose_worker_is_alive_is_left_alone(org):
    """The worker's heartbeat says it is alive, however long the attempt has run."""
    from lhs.workers import worker_id

    heartbeat()
    batch = _running(org, claimed_by=worker_id(), started_ago=timedelta(minutes=30))

    result = import_batches_sweep()

    batch.refresh_from_db()
    if connection.features.has_select_for_update_skip_locked:
        # PostgreSQL asks the row lock instead (a live worker holds it; here nobody does).
        assert (result["requeued"], batch.status) == (1, ImportStatus.QUEUED)
    else:
        assert (result["requeued"], batch.status) == (0, ImportStatus.RUNNING)


def test_a_batch_whose_worker_stopped_beating_is_queued_again(org):
    batch = _running(org, claimed_by="gone-host:4242", started_ago=timedelta(minutes=2))

    assert import_batches_sweep() == {"requeued": 1, "failed": 0}
    batch.refresh_from_db()
    assert (batch.status, batch.attempts) == (ImportStatus.QUEUED, 1)


def test_a_batch_claimed_a_moment_ago_is_left_alone(org):
    batch = _running(org, claimed_by="gone-host:4242", started_ago=CLAIM_GRACE / 2)

    assert import_batches_sweep() == {"requeued": 0, "failed": 0}
    batch.refresh_from_db()
    assert batch.status == ImportStatus.RUNNING


def test_a_claim_records_the_worker(org):
    from lhs.workers import worker_id

    batch = import_batch_create(
        user=org.people["chair"], upload=as_upload("patient_level.csv"), enqueue=False
    )

    processed = import_batch_process(batch_id=batch.pk)

    assert processed.claimed_by == worker_id()


@pytest.mark.parametrize("path", ["/measures/imports/upload/", "/measures/imports/", "/admin/"])
def test_pages_say_when_no_worker_has_been_seen(org, client, path):
    client.force_login(org.people["admin"])

    assert b'id="worker-warning"' in client.get(path).content

    heartbeat()
    assert b'id="worker-warning"' not in client.get(path).content


def test_healthz_reports_the_worker(client):
    lines = client.get("/healthz").content.decode().splitlines()
    assert (lines[0], "worker: not seen" in lines) == ("degraded", True)

    heartbeat()
    lines = client.get("/healthz").content.decode().splitlines()
    assert lines[0] == "ok", lines
    assert lines[1:4] == ["database: ok", "cache: ok", "broker: ok"]


# --- the upload limit, one for both ways in --------------------------------------------------


def test_the_upload_page_and_the_api_share_one_limit(org, client, token_client, monkeypatch):
    monkeypatch.setattr(ImportUploadThrottle, "THROTTLE_RATES", {"imports": "2/hour"})
    client.force_login(org.people["chair"])
    api = token_client("chair")

    page = client.post("/measures/imports/upload/", {"file": SimpleUploadedFile("a.csv", BODY)})
    assert page.status_code == 302
    assert upload(api).status_code == 201

    refused = client.post("/measures/imports/upload/", {"file": SimpleUploadedFile("c.csv", BODY)})
    assert refused.status_code == 429
    assert "limit of uploads an hour" in refused.content.decode()
    assert upload(api).status_code == 429
    assert ImportBatch.objects.count() == 2


# --- the identical-file short-cut respects scope ----------------------------------------------


def test_an_identical_file_does_not_lend_its_rights_to_a_narrower_uploader(org, run_import):
    wide = (
        b"measure_code,unit_code,date,value\n"
        b"honos-total,AFF-01,2025-01-07,3\n"
        b"honos-total,PSY-01,2025-01-07,4\n"
    )
    first = run_import(org.people["support"], "wide.csv", wide)
    assert first.status == ImportStatus.SUCCEEDED

    second = run_import(org.people["chair"], "wide.csv", wide)

    # The chair may not import for PSY-01: the file is checked as if it were new.
    assert second.status == ImportStatus.REJECTED
    assert second.duplicate_of is None
    assert [(e["row"], e["value"]) for e in second.errors] == [(3, "PSY-01")]
    assert f"#{first.pk}" not in second.message


def test_an_identical_file_within_the_uploaders_rights_is_still_a_short_cut(org, run_import):
    body = b"measure_code,unit_code,date,value\nhonos-total,AFF-01,2025-01-07,3\n"
    first = run_import(org.people["chair"], "a.csv", body)

    second = run_import(org.people["chair"], "a.csv", body)

    assert (second.status, second.duplicate_of_id, second.rows_new) == (
        ImportStatus.SUCCEEDED,
        first.pk,
        0,
    )


def test_an_identical_file_for_a_unit_closed_since_is_checked_again(org, run_import):
    body = b"measure_code,unit_code,date,value\nhonos-total,AFF-01,2025-01-07,3\n"
    run_import(org.people["chair"], "a.csv", body)
    org.a1.active = False
    org.a1.save()

    second = run_import(org.people["chair"], "a.csv", body)

    assert second.duplicate_of is None
    assert second.status == ImportStatus.REJECTED


# --- reverting: two admins at once --------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_two_people_reverting_at_once_revert_once(org, run_import):
    batch = run_import(org.people["chair"], "patient_level.csv")
    assert batch.status == ImportStatus.SUCCEEDED
    people = [org.people["support"], org.people["admin"]]
    barrier = threading.Barrier(2)
    outcomes: list[object] = []

    def revert(user):
        from django.db import connection as thread_connection

        try:
            mine = ImportBatch.objects.get(pk=batch.pk)  # both read "succeeded"
            barrier.wait(5)
            outcomes.append(import_batch_revert(batch=mine, user=user))
        except ValidationError as exc:
            outcomes.append(exc.code)
        finally:
            thread_connection.close()

    threads = [threading.Thread(target=revert, args=(p,)) for p in people]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert sorted(outcomes, key=str) == sorted([9, "state"], key=str)
    batch.refresh_from_db()
    assert batch.status == ImportStatus.REVERTED
    assert batch.reverted_by in people
    assert batch.reverted_at is not None
    assert Observation.objects.count() == 0


def test_the_batch_page_says_who_reverted_it(org, run_import, client):
    batch = run_import(org.people["chair"], "patient_level.csv")
    import_batch_revert(batch=batch, user=org.people["support"])
    client.force_login(org.people["support"])

    page = client.get(f"/measures/imports/{batch.pk}/").content.decode()

    assert 'id="reverted"' in page
    assert "support" in page.split('id="reverted"')[1].split("</dd>")[0]


def test_a_waiting_batch_page_warns_while_no_worker_is_seen(org, client):
    batch = import_batch_create(
        user=org.people["chair"], upload=as_upload("patient_level.csv"), enqueue=False
    )
    client.force_login(org.people["chair"])

    assert b'id="worker-warning"' in client.get(f"/measures/imports/{batch.pk}/").content
    heartbeat()
    assert b'id="worker-warning"' not in client.get(f"/measures/imports/{batch.pk}/").content


def test_a_conflicting_period_names_the_other_batch_only_to_who_may_see_it(org, run_import):
    from measures.problems import rendered_errors

    first = b"measure_code,unit_code,period_start,numerator,denominator\ncare-plan,AFF-01,2025-01-01,8,10\n"
    other = b"measure_code,unit_code,period_start,numerator,denominator\ncare-plan,AFF-01,2025-01-01,9,10\n"
    by_support = run_import(org.people["support"], "a.csv", first)
    assert by_support.status == ImportStatus.SUCCEEDED

    chairs = run_import(org.people["chair"], "b.csv", other)

    assert chairs.status == ImportStatus.REJECTED
    [problem] = rendered_errors(chairs.errors)
    assert problem["code"] == "period_conflict_hidden"
    assert f"#{by_support.pk}" not in problem["message"]
    assert "numerator 8" in problem["message"]

    supports = run_import(org.people["support"], "c.csv", other)
    [problem] = rendered_errors(supports.errors)
    assert f"#{by_support.pk}" in problem["message"]
