"""Background jobs of the workflow: thin, idempotent, each calling one service.

The beat schedule in ``lhs/settings.py`` (CELERY_BEAT_SCHEDULE) names them.
"""

from celery import shared_task

# --- Attachments ----------------------------------------------------------------------------


@shared_task(acks_late=True, reject_on_worker_lost=True, time_limit=15 * 60)
def attachment_files_sweep_task() -> int:
    """Delete attachment files no row names (a rolled-back upload, a deleted initiative)."""
    from .attachments import attachment_files_sweep

    return attachment_files_sweep()
