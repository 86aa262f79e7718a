"""The Celery application: imports, aggregation and reminders run here."""

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "lhs.settings")

app = Celery("lhs")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
