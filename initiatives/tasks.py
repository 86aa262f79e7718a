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


# --- Notifications --------------------------------------------------------------------------
# Mail-server trouble (initiatives.notifications.EmailNotSent, raised after every other e-mail
# went out) is retried with backoff; each e-mail is sent once (see that module).


def _mail_retry_options() -> dict:
    from .notifications import EmailNotSent

    return {
        "autoretry_for": (EmailNotSent,),
        "retry_backoff": 30,
        "retry_backoff_max": 30 * 60,
        "retry_jitter": True,
        "max_retries": 8,
    }


@shared_task(
    acks_late=True, reject_on_worker_lost=True, time_limit=10 * 60, **_mail_retry_options()
)
def notifications_send_immediate_task(ids: list[int] | None = None) -> int:
    """E-mail these notices to those who want every notice at once; without ids (beat, every
    few minutes) every such notice whose task was lost."""
    from .notifications import notifications_send_immediate

    return notifications_send_immediate(ids=ids)


@shared_task(
    acks_late=True, reject_on_worker_lost=True, time_limit=30 * 60, **_mail_retry_options()
)
def notifications_send_digests_task() -> int:
    """Every hour: the day's digest per person and forum (one a day at most)."""
    from .notifications import notifications_send_digests

    return notifications_send_digests()


@shared_task(acks_late=True, reject_on_worker_lost=True, time_limit=5 * 60)
def voting_rounds_remind_task() -> int:
    """Every quarter of an hour: remind once the members who have not voted in a round that
    closes soon."""
    from .notifications import voting_rounds_remind

    return voting_rounds_remind()
