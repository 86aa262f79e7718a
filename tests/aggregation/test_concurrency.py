"""Two jobs on one measure cannot interleave; a failed job leaves the previous series."""

import threading
import time
from datetime import date, timedelta

import pytest
from django.db import connection, transaction

from measures.aggregation import (
    lock_measure,
    series_recompute,
    series_refresh_units,
)
from measures.models import Series

from .conftest import series_of

MONDAY = date(2024, 1, 1)


def _history(org, rows):
    honos = org.measures["honos"]
    batch = rows()
    for week in range(20):
        for unit in (org.a1, org.a2, org.b1):
            batch.value(honos, unit, MONDAY + timedelta(weeks=week), 10 + week % 3, times=6)
    batch.save()
    series_recompute()
    return honos


def _snapshot(measure):
    return {
        (s.node_key, s.grain): (s.points, s.variation_icon, s.observation_count)
        for s in Series.objects.filter(measure=measure)
    }


def _in_thread(target, errors):
    def run():
        try:
            target()
        except Exception as exc:  # reported to the test
            errors.append(exc)
        finally:
            connection.close()

    thread = threading.Thread(target=run)
    thread.start()
    return thread


@pytest.mark.django_db(transaction=True)
def test_a_refresh_waits_for_the_measure_lock(org, rows):
    honos = _history(org, rows)
    rows().value(honos, org.a1, MONDAY + timedelta(weeks=20), 40, times=6).save()
    held, release, errors, finished = threading.Event(), threading.Event(), [], []

    def holder():
        with transaction.atomic():
            lock_measure(honos.pk)
            held.set()
            release.wait(10)

    def refresher():
        held.wait(10)
        series_refresh_units(measure_id=honos.pk, unit_ids=[org.a1.pk])
        finished.append(time.monotonic())

    first = _in_thread(holder, errors)
    second = _in_thread(refresher, errors)
    held.wait(10)
    time.sleep(0.5)
    assert not finished  # blocked behind the lock
    released_at = time.monotonic()
    release.set()
    first.join(20)
    second.join(20)
    assert not errors
    assert finished and finished[0] >= released_at
    assert series_of(honos, "unit", org.a1, "week").points["value"][-1] == 40


@pytest.mark.django_db(transaction=True)
def test_concurrent_jobs_end_in_the_same_state_as_one_job(org, rows):
    honos = _history(org, rows)
    rows().value(honos, org.a1, MONDAY + timedelta(weeks=20), 40, times=6).value(
        honos, org.b1, MONDAY + timedelta(weeks=21), 5, times=7
    ).save()
    errors: list[Exception] = []
    threads = [
        _in_thread(lambda: series_refresh_units(measure_id=honos.pk, unit_ids=[org.a1.pk]), errors),
        _in_thread(lambda: series_refresh_units(measure_id=honos.pk, unit_ids=[org.b1.pk]), errors),
        _in_thread(lambda: series_recompute(measure_ids=[honos.pk]), errors),
        _in_thread(lambda: series_refresh_units(measure_id=honos.pk, unit_ids=[org.a1.pk]), errors),
    ]
    for thread in threads:
        thread.join(60)
    assert not errors
    concurrent = _snapshot(honos)
    assert Series.objects.filter(measure=honos).count() == len(concurrent) == 18
    series_recompute(measure_ids=[honos.pk])
    assert _snapshot(honos) == concurrent


@pytest.mark.django_db(transaction=True)
def test_a_job_that_fails_before_commit_leaves_the_previous_series(org, rows):
    honos = _history(org, rows)
    before = _snapshot(honos)
    rows().value(honos, org.a1, MONDAY + timedelta(weeks=20), 40, times=6).save()

    class WorkerLost(Exception):
        pass

    # The refresh writes inside one transaction; losing the worker before its commit is a
    # rollback, as when the connection of a killed process closes.
    with pytest.raises(WorkerLost), transaction.atomic():
        series_refresh_units(measure_id=honos.pk, unit_ids=[org.a1.pk])
        assert _snapshot(honos) != before  # written, not yet committed
        raise WorkerLost
    assert _snapshot(honos) == before
