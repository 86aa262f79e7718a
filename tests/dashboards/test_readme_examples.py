"""Every example file the README links imports cleanly into the demo division it ships with."""

from __future__ import annotations

import re
from datetime import date
from pathlib import Path

import pytest
from django.contrib.auth import get_user_model
from django.core.files.uploadedfile import SimpleUploadedFile

from demo.division import demo_load
from measures.enums import ImportStatus
from measures.services import import_batch_create, import_batch_process

ROOT = Path(__file__).resolve().parents[2]


def readme_examples() -> list[str]:
    return sorted(
        set(re.findall(r"\((static/examples/[^)\s]+\.csv)\)", (ROOT / "README.md").read_text()))
    )


@pytest.mark.django_db
def test_every_readme_example_imports_into_the_demo():
    links = readme_examples()
    assert len(links) >= 2
    # Small but real: the demo's own measures, units and a window of data that the examples'
    # periods may meet, loaded through the import path as `manage.py load_demo` does.
    demo_load(end=date(2025, 6, 1), weeks=30, scale=0.05)
    admin = get_user_model().objects.create_superuser("readme", "readme@example.org", "x" * 16)

    for link in links:
        upload = SimpleUploadedFile(Path(link).name, (ROOT / link).read_bytes(), "text/csv")
        batch = import_batch_create(user=admin, upload=upload, enqueue=False)
        batch = import_batch_process(batch_id=batch.pk)

        assert batch.status == ImportStatus.SUCCEEDED, (link, batch.message, batch.rendered_errors)
        assert batch.rows_new == batch.rows_total > 0, link
