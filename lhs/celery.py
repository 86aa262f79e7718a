"""The Celery application: imports, aggregation and reminders run here."""

import os

from celery import Celery, signals
from kombu.transport import TRANSPORT_ALIASES

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "lhs.settings")

# The embedded default broker (lhs/broker.py). Celery names transports by URL scheme only (a
# dotted path in a URL is refused, kombu #2641), so it gets a scheme of its own.
TRANSPORT_ALIASES.setdefault("lhs-sqlite", "lhs.broker:Transport")

app = Celery("lhs")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


@signals.worker_ready.connect
@signals.worker_process_init.connect
def _start_heartbeat(**_kwargs) -> None:
    """Each process that runs tasks says it is alive (lhs/workers.py)."""
    from .workers import start_heartbeat

    start_heartbeat()
