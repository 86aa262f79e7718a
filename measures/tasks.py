"""Celery tasks: thin wrappers that take ids and call one service."""

from celery import shared_task
from django.db import DatabaseError

from . import services


@shared_task(
    acks_late=True,
    reject_on_worker_lost=True,
    autoretry_for=(DatabaseError,),
    retry_backoff=5,
    retry_backoff_max=300,
    max_retries=5,
    soft_time_limit=55 * 60,
    time_limit=60 * 60,
)
def import_batch_process_task(batch_id: int) -> None:
    services.import_batch_process(batch_id=batch_id)


@shared_task(acks_late=True, time_limit=120)
def import_batches_sweep() -> dict[str, int]:
    return services.import_batches_sweep()
