"""End-to-end fixtures: a real Celery worker process and an API client with a bearer token."""

import pytest
from rest_framework.test import APIClient

from units.services import api_token_create

from .worker import Worker, celery_worker, worker_settings

__all__ = ["celery_worker", "worker_settings"]  # fixtures, re-exported for pytest


@pytest.fixture(autouse=True)
def _fast_password_hashing(settings):
    """The org fixture creates seven users; the default hasher takes ~0.3 s each."""
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture
def worker(worker_settings: Worker) -> Worker:
    """The running worker; this test's uploads and cache are shared with it."""
    return worker_settings


@pytest.fixture
def chair_api(org) -> APIClient:
    """The API as the unit forum's chair (may import for AFF-01 only), over HTTPS."""
    _token, key = api_token_create(user=org.people["chair"], name="e2e extract")
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {key}")
    return client
