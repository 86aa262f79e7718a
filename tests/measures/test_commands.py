"""`manage.py import_data PATH --as USER` (measures/management/commands/import_data.py)."""

from __future__ import annotations

from io import StringIO

import pytest
from django.core.management import CommandError, call_command

from measures.enums import ImportSource, ImportStatus
from measures.models import ImportBatch, Observation

from .conftest import FIXTURES

pytestmark = pytest.mark.django_db


def import_data(*args: str) -> str:
    out = StringIO()
    call_command("import_data", *args, stdout=out, stderr=StringIO())
    return out.getvalue()


def test_imports_a_file_in_process(org):
    output = import_data(str(FIXTURES / "patient_level.csv"), "--as", "chair")

    batch = ImportBatch.objects.get()
    assert output.strip() == (
        f"Batch #{batch.pk}: Imported. 9 new rows imported; 0 were already present."
    )
    assert (batch.status, batch.source) == (ImportStatus.SUCCEEDED, ImportSource.COMMAND)
    assert batch.uploaded_by == org.people["chair"]
    assert Observation.objects.count() == 9  # imported here, not handed to a worker


def test_the_same_file_again_adds_nothing(org):
    import_data(str(FIXTURES / "aggregated.csv"), "--as", "support")

    output = import_data(str(FIXTURES / "aggregated.csv"), "--as", "support")

    assert "nothing new was imported" in output
    assert Observation.objects.count() == 8


def test_a_rejected_file_lists_every_problem_and_fails(org):
    out = StringIO()
    with pytest.raises(CommandError) as info:
        call_command(
            "import_data", str(FIXTURES / "out_of_range.csv"), "--as", "support", stdout=out
        )

    batch = ImportBatch.objects.get()
    assert str(info.value) == f"Batch #{batch.pk} was not imported."
    lines = out.getvalue().splitlines()
    assert lines[0].startswith(f"Batch #{batch.pk}: Rejected. The file was rejected with 2")
    assert lines[1:] == [
        "  row 3, value: '49': '49' is outside the valid range of honos-total (0 to 48).",
        "  row 4, value: '-1': '-1' is outside the valid range of honos-total (0 to 48).",
    ]
    assert Observation.objects.count() == 0


def test_personnummer_is_not_printed(org):
    out = StringIO()
    with pytest.raises(CommandError):
        call_command(
            "import_data", str(FIXTURES / "personnummer.csv"), "--as", "support", stdout=out
        )

    assert "personal identity number" in out.getvalue()
    assert "19121212-1212" not in out.getvalue()


def test_the_users_rights_decide_the_units(org):
    out = StringIO()
    with pytest.raises(CommandError):
        call_command("import_data", str(FIXTURES / "aggregated.csv"), "--as", "chair", stdout=out)

    assert "You may not import data for unit 'PSY-01'" in out.getvalue()
    assert Observation.objects.count() == 0


@pytest.mark.parametrize("username", ["clinician", "board"])
def test_a_user_without_upload_rights_is_refused(org, username):
    with pytest.raises(CommandError, match="You may not import data for any unit"):
        import_data(str(FIXTURES / "patient_level.csv"), "--as", username)

    assert ImportBatch.objects.count() == 0


def test_unknown_or_inactive_user_is_refused(org):
    support = org.people["support"]
    support.is_active = False
    support.save()

    with pytest.raises(CommandError, match="No active user called 'nobody'"):
        import_data(str(FIXTURES / "patient_level.csv"), "--as", "nobody")
    with pytest.raises(CommandError, match="No active user called 'support'"):
        import_data(str(FIXTURES / "patient_level.csv"), "--as", "support")


def test_a_missing_path_is_refused(org, tmp_path):
    with pytest.raises(CommandError, match="is not a file"):
        import_data(str(tmp_path / "nope.csv"), "--as", "support")


def test_as_is_required(org):
    with pytest.raises(CommandError):
        import_data(str(FIXTURES / "patient_level.csv"))


def test_queue_hands_the_batch_to_the_worker(org, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        output = import_data(str(FIXTURES / "patient_level.csv"), "--as", "chair", "--queue")

    batch = ImportBatch.objects.get()
    assert output.strip() == f"Batch #{batch.pk} queued."
    assert batch.status == ImportStatus.QUEUED
    assert len(callbacks) == 1
    assert Observation.objects.count() == 0
