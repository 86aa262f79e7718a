"""Background jobs of the workflow: thin, idempotent, each calling one service.

The beat schedule in ``lhs/settings.py`` (CELERY_BEAT_SCHEDULE) names them.
"""
