"""Background jobs of the workflow: thin, idempotent, each calling one service.

The beat schedule in ``lhs/settings.py`` (CELERY_BEAT_SCHEDULE) names them.
"""

from celery import shared_task

# --- Voting rounds --------------------------------------------------------------------------


@shared_task(acks_late=True, reject_on_worker_lost=True, time_limit=5 * 60)
def voting_rounds_close_due_task() -> int:
    """Every minute: close the rounds whose deadline has passed (idempotent: a round closes
    once, whoever gets there first)."""
    from .voting import voting_rounds_close_due

    return voting_rounds_close_due()


# --- Attachments ----------------------------------------------------------------------------


@shared_task(acks_late=True, reject_on_worker_lost=True, time_limit=15 * 60)
def attachment_files_sweep_task() -> int:
    """Delete attachment files no row names (a rolled-back upload, a deleted initiative)."""
    from .attachments import attachment_files_sweep

    return attachment_files_sweep()
