"""Imports end to end: the API or the sweeper enqueues, a real Celery worker process imports.

Data must be committed for the worker to see it, hence ``transaction=True``.
"""

from datetime import timedelta

import pytest
from django.conf import settings
from django.core.files.uploadedfile import SimpleUploadedFile
from django.utils import timezone

from measures.enums import ImportStatus
from measures.importing import subject_key_hash
from measures.models import ImportBatch, Observation
from measures.services import REQUEUE_AFTER, import_batch_create, import_batches_sweep
from measures.tasks import import_batches_sweep as import_batches_sweep_task

from .files import AGGREGATE_ROWS, INVALID_ROWS, PATIENT_ROWS, PATIENT_ROWS_OVERLAPPING

pytestmark = [pytest.mark.worker, pytest.mark.django_db(transaction=True)]


def csv_file(name: str, text: str) -> SimpleUploadedFile:
    return SimpleUploadedFile(name, text.encode(), content_type="text/csv")


def api_upload(client, name: str, text: str) -> dict:
    response = client.post(
        "/api/imports/", {"file": csv_file(name, text)}, format="multipart", secure=True
    )
    assert response.status_code == 201, response.content
    return response.json()


def api_batch(client, batch_id: int) -> dict:
    response = client.get(f"/api/imports/{batch_id}/", secure=True)
    assert response.status_code == 200, response.content
    return response.json()


def lost_batch(user, name: str, text: str) -> ImportBatch:
    """A queued batch whose message never reached a worker, long enough ago to be swept."""
    batch = import_batch_create(user=user, upload=csv_file(name, text), enqueue=False)
    ImportBatch.objects.filter(pk=batch.pk).update(
        enqueued_at=timezone.now() - REQUEUE_AFTER - timedelta(minutes=1)
    )
    return batch


def test_upload_through_the_api_is_imported_by_the_worker(org, worker, chair_api):
    created = api_upload(chair_api, "honos.csv", PATIENT_ROWS)
    assert created["status"] == ImportStatus.QUEUED

    batch = worker.wait_for_batch(created["id"])

    assert batch.status == ImportStatus.SUCCEEDED, batch.message
    assert (batch.shape, batch.rows_total, batch.rows_new, batch.rows_existing) == (
        "patient",
        6,
        6,
        0,
    )
    assert (batch.error_count, batch.errors, batch.attempts) == (0, [], 1)
    rows = Observation.objects.filter(batch=batch)
    honos = rows.filter(measure=org.measures["honos"], unit=org.a1)
    assert sorted(honos.values_list("value", flat=True)) == [9, 12, 15, 20]
    # Two identical rows on one day are two events, both kept.
    assert rows.filter(measure=org.measures["incidents"]).count() == 2
    # The worker hashed the subject keys with the same secret as the web process.
    secret = settings.SUBJECT_KEY_SECRET.encode()
    assert set(honos.values_list("subject_key", flat=True)) == {
        subject_key_hash(f"p00{i}", secret) for i in range(1, 5)
    }
    report = api_batch(chair_api, batch.pk)
    assert (report["status"], report["rows_total"], report["rows_new"]) == ("succeeded", 6, 6)
    assert report["progress"]["percent"] == 100

    # The same extract sent again with two new ratings: only those two are written.
    again = worker.wait_for_batch(
        api_upload(chair_api, "honos-2.csv", PATIENT_ROWS_OVERLAPPING)["id"]
    )

    assert again.status == ImportStatus.SUCCEEDED, again.message
    assert (again.rows_total, again.rows_new, again.rows_existing) == (6, 2, 4)
    assert Observation.objects.filter(batch=again).count() == 2
    assert Observation.objects.count() == 8


def test_invalid_upload_is_rejected_by_the_worker_and_nothing_is_written(org, worker, chair_api):
    created = api_upload(chair_api, "bad.csv", INVALID_ROWS)

    batch = worker.wait_for_batch(created["id"])

    assert batch.status == ImportStatus.REJECTED, batch.message
    assert (batch.rows_total, batch.rows_new, batch.error_count) == (5, 0, 4)
    problems = [(e["row"], e["column"], e["value"]) for e in batch.errors]
    assert problems == [
        (3, "value", "99"),
        (4, "measure_code", "no-such-measure"),
        (5, "unit_code", "AFF-02"),
        (6, "date", "2024-13-01"),
    ]
    messages = [e["message"] for e in batch.rendered_errors]
    assert "outside the valid range of honos-total (0 to 48)" in messages[0]
    assert "Unknown measure" in messages[1]
    assert "may not import data for unit" in messages[2]
    assert "not a date" in messages[3]
    assert "nothing was imported" in batch.message
    assert not Observation.objects.exists()
    report = api_batch(chair_api, batch.pk)
    assert report["status"] == "rejected"
    assert [(e["row"], e["column"]) for e in report["errors"]] == [p[:2] for p in problems]


def test_sweeper_requeues_a_batch_whose_message_was_lost(org, worker):
    chair = org.people["chair"]
    lost = lost_batch(chair, "care-plan.csv", AGGREGATE_ROWS)
    # Queued a moment ago: its message may still be on its way, so it is left alone.
    recent = import_batch_create(
        user=chair, upload=csv_file("honos.csv", PATIENT_ROWS), enqueue=False
    )

    assert import_batches_sweep() == {"requeued": 1, "failed": 0}

    batch = worker.wait_for_batch(lost.pk)
    assert batch.status == ImportStatus.SUCCEEDED, batch.message
    assert (batch.shape, batch.rows_total, batch.rows_new, batch.attempts) == ("aggregate", 3, 3, 1)
    stored = Observation.objects.filter(batch=batch, measure=org.measures["careplan"])
    assert sorted(stored.values_list("numerator", "denominator")) == [(8, 10), (9, 12), (11, 11)]
    recent.refresh_from_db()
    assert recent.status == ImportStatus.QUEUED
    assert not recent.observations.exists()


def test_sweep_task_on_the_worker_requeues_a_lost_batch(org, worker):
    """Beat's path: the worker runs the sweep, enqueues the import and then runs it."""
    lost = lost_batch(org.people["support"], "care-plan.csv", AGGREGATE_ROWS)

    import_batches_sweep_task.delay()

    batch = worker.wait_for_batch(lost.pk)
    assert batch.status == ImportStatus.SUCCEEDED, batch.message
    assert (batch.rows_new, batch.attempts) == (3, 1)
    assert Observation.objects.filter(batch=batch).count() == 3
