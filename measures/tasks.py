"""Celery tasks: thin wrappers that take ids and call one service."""

from celery import shared_task
from django.db import DatabaseError

from . import services
from .services import INFRASTRUCTURE_ERRORS, MAX_ATTEMPTS


@shared_task(
    acks_late=True,
    reject_on_worker_lost=True,
    # Only faults of the database connection are worth another attempt; the batch counts
    # its attempts and fails after the last one (services.import_batch_process).
    autoretry_for=INFRASTRUCTURE_ERRORS,
    retry_backoff=5,
    retry_backoff_max=60,
    max_retries=MAX_ATTEMPTS - 1,
    soft_time_limit=55 * 60,
    time_limit=60 * 60,
)
def import_batch_process_task(batch_id: int) -> None:
    services.import_batch_process(batch_id=batch_id)


@shared_task(acks_late=True, time_limit=120)
def import_batches_sweep() -> dict[str, int]:
    return services.import_batches_sweep()


# Aggregation (measures.aggregation). Every task is idempotent: it recomputes from the
# observations and replaces whole series in one transaction, so a retry or a duplicate
# message does no harm, and a worker killed mid-job leaves the previous series in place.
_AGGREGATION_TASK = {
    "acks_late": True,
    "reject_on_worker_lost": True,
    "autoretry_for": (DatabaseError,),
    "retry_backoff": 2,
    "retry_backoff_max": 120,
    "retry_jitter": True,
    "max_retries": 5,
}


@shared_task(soft_time_limit=25 * 60, time_limit=30 * 60, **_AGGREGATION_TASK)
def series_refresh_task(
    measure_ids: list[int] | None = None,
    unit_ids: list[int] | None = None,
    force: bool = False,
) -> dict:
    """Recompute series: all of these measures (default all active), or only these units'."""
    from .aggregation import series_refresh

    result = series_refresh(measure_ids=measure_ids, unit_ids=unit_ids, force=force)
    return {"written": result.series_written, "deleted": result.series_deleted}


@shared_task(soft_time_limit=5 * 60, time_limit=6 * 60, **_AGGREGATION_TASK)
def series_refresh_for_batch_task(batch_id: int) -> dict:
    """After an import: recompute exactly the series the batch touched, and their parents."""
    from .aggregation import series_refresh_for_batch

    result = series_refresh_for_batch(batch_id=batch_id)
    return {"written": result.series_written, "deleted": result.series_deleted}


@shared_task(soft_time_limit=5 * 60, time_limit=6 * 60, **_AGGREGATION_TASK)
def series_refresh_windows_task(windows: list[list]) -> dict:
    """After a revert: recompute the series of these [measure, unit, first day, last day]."""
    from datetime import date

    from .aggregation import series_refresh_pairs

    result = series_refresh_pairs(
        windows={
            (int(m), int(u)): (date.fromisoformat(lo), date.fromisoformat(hi))
            for m, u, lo, hi in windows
        }
    )
    return {"written": result.series_written, "deleted": result.series_deleted}


@shared_task(acks_late=True, time_limit=120)
def series_recompute_all_task() -> int:
    """Nightly: recompute every active measure (in chunks when there are very many)."""
    from .aggregation import series_recompute_chunks

    chunks = series_recompute_chunks()
    for chunk in chunks:
        series_refresh_task.delay(measure_ids=chunk)
    return len(chunks)
