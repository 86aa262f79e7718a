"""Fixtures for the measures tests: import files, running an import, API clients."""

from __future__ import annotations

from pathlib import Path

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from rest_framework.test import APIClient

from measures.enums import ImportSource
from measures.models import ImportBatch
from measures.services import import_batch_create, import_batch_process
from units.services import api_token_create

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "imports"


def fixture_bytes(name: str) -> bytes:
    return (FIXTURES / name).read_bytes()


def as_upload(name: str, content: bytes | None = None) -> SimpleUploadedFile:
    """A fixture file (or the given bytes) as the upload a browser or API client sends."""
    if content is None:
        content = fixture_bytes(name)
    return SimpleUploadedFile(name, content, content_type="text/csv")


#: (row, column) of every problem in fixtures/imports/many_problems.csv, in file order; the
#: parser, the service and the API must all report exactly these.
MANY_PROBLEMS_REPORT = [
    (3, "measure_code"),
    (4, "unit_code"),
    (5, "date"),
    (6, "value"),
    (8, "measure_code"),
    (8, "unit_code"),
    (8, "date"),
    (8, "value"),
]


@pytest.fixture(autouse=True)
def _static_files(settings):
    """Pages render ``{% static %}`` without the manifest (and folder) ``collectstatic`` makes."""
    settings.STORAGES = {
        **settings.STORAGES,
        "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
    }
    settings.STATIC_ROOT = None


@pytest.fixture
def run_import(org):
    """Create a batch from a fixture file (or bytes) as ``user`` and import it in-process."""

    def run(
        user,
        name: str,
        content: bytes | None = None,
        source: str = ImportSource.UPLOAD,
    ) -> ImportBatch:
        batch = import_batch_create(
            user=user, upload=as_upload(name, content), source=source, enqueue=False
        )
        processed = import_batch_process(batch_id=batch.pk)
        assert processed is not None
        return processed

    return run


@pytest.fixture
def token_client(org):
    """An API client that authenticates with a fresh bearer token of the named person."""

    def make(username: str) -> APIClient:
        token, key = api_token_create(user=org.people[username], name="test")
        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION=f"Bearer {key}")
        client.token = token
        return client

    return make


@pytest.fixture
def other_chair(org):
    """Chairs the unit forum of AFF-02: another unit, same department."""
    from forums.enums import ForumKind, MembershipRole
    from tests.factories import ForumFactory, MembershipFactory, UserFactory

    forum = ForumFactory(kind=ForumKind.UNIT_FORUM, name="Forum AFF-02", division=org.division)
    forum.units.add(org.a2)
    user = UserFactory(username="other_chair")
    MembershipFactory(forum=forum, user=user, role=MembershipRole.CHAIR)
    return user
