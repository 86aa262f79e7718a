"""Celery tasks of the organisation app: thin wrappers around one service each."""

from celery import shared_task

from .audit import audit_events_purge


@shared_task(acks_late=True, time_limit=30 * 60)
def audit_events_purge_task() -> int:
    """Daily: drop audit events past their retention (idempotent)."""
    return audit_events_purge()
