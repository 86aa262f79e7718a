"""Import batches through the services, with the database (measures/services.py, bulk.py)."""

from __future__ import annotations

import functools
import threading
from datetime import timedelta

import pytest
from django.core import mail
from django.core.cache import cache
from django.core.exceptions import ValidationError
from django.db import connection, transaction
from django.utils import timezone

from measures import services
from measures.enums import ImportSource, ImportStatus, RowShape
from measures.importing import ImportFile, subject_key_hash
from measures.models import ImportBatch, Observation
from measures.problems import render_error
from measures.services import (
    MAX_ATTEMPTS,
    import_batch_create,
    import_batch_process,
    import_batch_progress,
    import_batch_revert,
    import_batches_sweep,
)
from tests.factories import UnitFactory, UserFactory

from .conftest import MANY_PROBLEMS_REPORT, as_upload, fixture_bytes

pytestmark = pytest.mark.django_db


def observations(**filters) -> list[tuple]:
    return sorted(
        Observation.objects.filter(**filters).values_list(
            "measure__code", "unit__code", "date", "value", "numerator", "denominator"
        ),
        key=str,
    )


# --- success -----------------------------------------------------------------------------------


def test_patient_level_import(org, run_import, settings):
    settings.SUBJECT_KEY_SECRET = "a-test-secret"

    batch = run_import(org.people["chair"], "patient_level.csv")

    assert batch.status == ImportStatus.SUCCEEDED
    assert batch.shape == RowShape.PATIENT
    assert (batch.rows_total, batch.rows_new, batch.rows_existing) == (9, 9, 0)
    assert (batch.error_count, batch.errors) == (0, [])
    assert batch.message == "9 new rows imported; 0 were already present."
    assert batch.attempts == 1
    assert batch.started_at <= batch.finished_at
    assert Observation.objects.count() == 9
    assert batch.observations.count() == 9
    honos = Observation.objects.filter(measure=org.measures["honos"], unit=org.a1)
    assert sorted(honos.values_list("value", flat=True)) == [0.0, 12.0, 12.0, 20.5, 48.0]
    # Two identical ratings on one day are two rows.
    assert honos.filter(date="2025-01-07").count() == 2
    assert Observation.objects.filter(measure=org.measures["local"]).get().value == 3.0


def test_subject_keys_are_stored_only_as_hmac(org, run_import, settings):
    settings.SUBJECT_KEY_SECRET = "a-test-secret"

    run_import(org.people["chair"], "patient_level.csv")

    keys = set(Observation.objects.values_list("subject_key", flat=True))
    assert keys == {
        None,
        subject_key_hash("P0001", b"a-test-secret"),
        subject_key_hash("P0002", b"a-test-secret"),
        subject_key_hash("P0003", b"a-test-secret"),
    }
    assert not Observation.objects.filter(subject_key__contains="P000").exists()


def test_aggregated_import(org, run_import):
    batch = run_import(org.people["support"], "aggregated.csv")

    assert batch.status == ImportStatus.SUCCEEDED
    assert batch.shape == RowShape.AGGREGATE
    assert (batch.rows_total, batch.rows_new) == (8, 8)
    care = Observation.objects.get(measure=org.measures["careplan"], unit=org.a1, date="2025-02-01")
    assert (care.numerator, care.denominator, care.value) == (40.0, 52.0, None)
    coercion = Observation.objects.get(
        measure=org.measures["coercion"], unit=org.b1, date="2025-02-01"
    )
    assert (coercion.numerator, coercion.denominator) == (0.0, 2210.5)
    incidents = Observation.objects.get(
        measure=org.measures["incidents"], unit=org.a1, date="2025-01-06"
    )
    assert (incidents.numerator, incidents.denominator) == (4.0, None)


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("swedish_headers.csv", [14.5, 3.25]),
        ("semicolon_decimal_comma_cp1252.csv", [14.5, 3.25]),
        ("utf8_bom.csv", [10.0]),
        ("case_insensitive_headers.csv", [9.0]),
        ("crlf_blank_lines.csv", [9.0, 10.0]),
        ("personnummer_invalid_check_digit.csv", [12.0]),
    ],
)
def test_accepted_formats(org, run_import, name, expected):
    batch = run_import(org.people["chair"], name)

    assert batch.status == ImportStatus.SUCCEEDED, batch.errors
    assert sorted(Observation.objects.values_list("value", flat=True)) == sorted(expected)


def test_swedish_pseudonyms_hash_alike_in_cp1252_and_utf8(org, run_import):
    run_import(org.people["chair"], "semicolon_decimal_comma_cp1252.csv")
    second = run_import(org.people["chair"], "swedish_headers.csv")

    # Same measure, unit, date, value and subject: the second file adds only the row whose
    # date differs; "Åsa-1" and "Östen-3" survived the cp1252 decoding.
    assert second.status == ImportStatus.SUCCEEDED
    assert (second.rows_new, second.rows_existing) == (0, 2)


def test_latin1_aggregated_import(org, run_import):
    batch = run_import(org.people["dept_chair"], "latin1_aggregated.csv")

    assert batch.status == ImportStatus.SUCCEEDED
    assert observations() == [
        ("care-plan", "AFF-01", timezone.datetime(2025, 3, 1).date(), None, 30.0, 40.0),
        ("care-plan", "AFF-02", timezone.datetime(2025, 3, 1).date(), None, 7.0, 9.0),
    ]


def test_a_unit_code_with_swedish_letters_in_a_cp1252_file(org, run_import):
    unit = UnitFactory(department=org.dept_a, code="ÄTS-01", name="Ätstörningsenheten")
    content = "Mått;Enhet;Datum;Värde\nincidents;äts-01;2025-01-07;2\n".encode("cp1252")

    batch = run_import(org.people["dept_chair"], "ätstörning.csv", content)

    assert batch.status == ImportStatus.SUCCEEDED, batch.errors
    assert batch.original_name == "ätstörning.csv"
    assert Observation.objects.get().unit == unit


def test_tab_separated_file(org, run_import):
    content = b"measure_code\tunit_code\tdate\tvalue\nhonos-total\tAFF-01\t2025-01-07\t7\n"

    batch = run_import(org.people["chair"], "export.tsv", content)

    assert batch.status == ImportStatus.SUCCEEDED
    assert Observation.objects.get().value == 7.0


@pytest.mark.parametrize(
    "content",
    [
        b"PK\x03\x04\x14\x00\x06\x00[Content_Types].xml\x00\x9d\x81\n\x00\x02",
        "measure_code,unit_code,date,value\nhonos-total,AFF-01,2025-01-07,7\n".encode("utf-16"),
    ],
    ids=["xlsx", "utf-16"],
)
def test_a_binary_file_is_rejected_with_advice(org, run_import, content):
    # NUL bytes cannot be stored in PostgreSQL text: the report must not echo them.
    batch = run_import(org.people["chair"], "data.xlsx", content)

    assert batch.status == ImportStatus.REJECTED
    assert [(e["row"], e["column"]) for e in batch.errors] == [(1, "")]
    assert batch.rendered_errors[0]["message"].startswith("This is not a CSV text file")
    assert "Save it as CSV" in batch.rendered_errors[0]["message"]
    assert Observation.objects.count() == 0


def test_nul_characters_in_cells_are_not_echoed_raw(org, run_import):
    content = b"measure_code,unit_code,date,value\nhonos-total,AFF-01,2025-01-07,1\x002\n"

    batch = run_import(org.people["chair"], "nul.csv", content)

    assert batch.status == ImportStatus.REJECTED
    assert batch.errors[0]["row"] == 2
    assert "\x00" not in str(batch.errors)
    assert Observation.objects.count() == 0


def test_bytes_that_are_no_character_are_rejected_not_failed(org, run_import):
    content = b"measure_code;unit_code;date;value\nhonos-total;AFF-01;2025-01-07;\x81\n"

    batch = run_import(org.people["chair"], "broken.csv", content)

    assert batch.status == ImportStatus.REJECTED
    # 0x81 is undefined in Windows-1252, so the file is read as Latin-1: the cell is a
    # control character, not a number.
    assert (batch.errors[0]["row"], batch.errors[0]["column"]) == (2, "value")
    assert "is not a number" in batch.rendered_errors[0]["message"]
    assert Observation.objects.count() == 0


def test_file_and_report_are_kept_with_the_batch(org, run_import):
    batch = run_import(org.people["chair"], "patient_level.csv")

    with batch.file.open("rb") as fh:
        assert fh.read() == fixture_bytes("patient_level.csv")
    assert batch.original_name == "patient_level.csv"
    assert batch.size_bytes == len(fixture_bytes("patient_level.csv"))
    assert len(batch.checksum) == 64
    assert batch.uploaded_by == org.people["chair"]
    assert batch.source == ImportSource.UPLOAD


# --- rejection: all or nothing ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("unknown_measure.csv", [(3, "measure_code", "no-such-measure", "Unknown measure")]),
        ("unknown_unit.csv", [(3, "unit_code", "XYZ-99", "Unknown unit")]),
        ("out_of_range.csv", [(3, "value", "49", "outside the valid range")]),
        ("numerator_above_denominator.csv", [(3, "numerator", "51", "above the denominator")]),
        ("missing_column.csv", [(1, "value", "", "Missing column 'value'")]),
        ("mixed_shapes.csv", [(1, "", None, "mixes patient-level columns")]),
        ("wrong_field_count.csv", [(3, "", "", "5 fields where the header has 4")]),
        ("period_not_start.csv", [(2, "period_start", "2025-01-15", "not the start of a period")]),
        ("duplicate_period.csv", [(4, "period_start", "2025-01-01", "Row 2 already gives")]),
        ("header_only.csv", [(2, "", "", "The file has no data rows.")]),
        ("not_a_number.csv", [(2, "value", "tolv", "is not a number")]),
        ("proportion_not_binary.csv", [(3, "value", "2", "is not 0 or 1")]),
        ("rate_as_patient_level.csv", [(2, "value", "1", "A rate needs events and exposure")]),
        ("negative_count.csv", [(2, "value", "-1", "A count cannot be negative.")]),
        ("bad_date.csv", [(2, "date", "2025-13-01", "not a date in ISO form")]),
        ("personnummer.csv", [(3, "subject_key", None, "personal identity number")]),
        ("samordningsnummer.csv", [(2, "anteckning", None, "samordningsnummer")]),
    ],
)
def test_a_file_with_any_bad_row_is_rejected_whole(org, run_import, name, expected):
    batch = run_import(org.people["support"], name)

    assert batch.status == ImportStatus.REJECTED
    assert batch.rows_new == 0
    assert batch.error_count == len(batch.errors) >= len(expected)
    for error, (row, column, value, words) in zip(batch.errors, expected, strict=False):
        assert set(error) == {"row", "column", "value", "code", "params"}
        assert (error["row"], error["column"]) == (row, column)
        if value is not None:
            assert error["value"] == value
        assert words in render_error(error)
    assert batch.message.startswith(f"The file was rejected with {batch.error_count} problem")
    assert "nothing was imported" in batch.message
    assert Observation.objects.count() == 0
    # The file is kept with its report.
    with batch.file.open("rb") as fh:
        assert fh.read() == fixture_bytes(name)


def test_the_report_reads_in_the_readers_language(org):
    from django.utils import translation

    batch = import_batch_create(
        user=org.people["chair"],
        upload=as_upload("unknown_measure.csv"),
        language="sv",
        enqueue=False,
    )

    processed = import_batch_process(batch_id=batch.pk)

    assert processed.language == "sv"
    with translation.override("sv"):
        swedish = processed.rendered_errors[0]["message"]
    with translation.override("en"):
        english = processed.rendered_errors[0]["message"]
    assert english == "Unknown measure 'no-such-measure'."
    assert swedish != english
    assert "'no-such-measure'" in swedish


def test_every_problem_is_reported(org, run_import):
    batch = run_import(org.people["support"], "many_problems.csv")

    assert batch.status == ImportStatus.REJECTED
    assert batch.error_count == 8
    assert [(e["row"], e["column"]) for e in batch.errors] == MANY_PROBLEMS_REPORT
    assert batch.rows_total == 7
    assert Observation.objects.count() == 0


def test_personnummer_is_not_kept_in_the_report(org, run_import):
    batch = run_import(org.people["support"], "personnummer.csv")

    report = f"{batch.errors} {batch.message}"
    assert "19121212-1212" not in report
    assert "1212121212" not in report
    assert Observation.objects.count() == 0


def test_nothing_is_written_when_the_bad_row_comes_in_a_later_chunk(org, run_import, monkeypatch):
    monkeypatch.setattr(services, "ImportFile", functools.partial(ImportFile, chunk_rows=2))
    good = fixture_bytes("patient_level.csv")
    content = good + b"honos-total,AFF-01,2025-01-07,49,P9\n"

    batch = run_import(org.people["chair"], "late_error.csv", content)

    assert batch.status == ImportStatus.REJECTED
    assert [(e["row"], e["column"]) for e in batch.errors] == [(11, "value")]
    assert Observation.objects.count() == 0


def test_chunked_import_writes_every_chunk(org, run_import, monkeypatch):
    monkeypatch.setattr(services, "ImportFile", functools.partial(ImportFile, chunk_rows=2))

    batch = run_import(org.people["chair"], "patient_level.csv")

    assert (batch.status, batch.rows_new) == (ImportStatus.SUCCEEDED, 9)
    assert Observation.objects.count() == 9


def test_chair_may_not_import_for_another_unit(org, run_import):
    batch = run_import(org.people["chair"], "aggregated.csv")

    assert batch.status == ImportStatus.REJECTED
    assert [(e["row"], e["value"]) for e in batch.errors] == [
        (4, "AFF-02"),
        (5, "PSY-01"),
        (6, "PSY-01"),
        (9, "AFF-02"),
    ]
    assert all("You may not import data for unit" in e["message"] for e in batch.rendered_errors)
    assert Observation.objects.count() == 0


def test_department_chair_imports_for_the_department_only(org, run_import):
    batch = run_import(org.people["dept_chair"], "aggregated.csv")

    assert batch.status == ImportStatus.REJECTED
    assert {e["value"] for e in batch.errors} == {"PSY-01"}


def test_an_inactive_measure_is_unknown(org, run_import):
    org.measures["honos"].active = False
    org.measures["honos"].save()

    batch = run_import(org.people["support"], "out_of_range.csv")

    assert batch.status == ImportStatus.REJECTED
    assert [(e["row"], e["message"]) for e in batch.rendered_errors][:2] == [
        (2, "Unknown measure 'honos-total'."),
        (3, "Unknown measure 'honos-total'."),
    ]


# --- create: who and what is refused before a batch exists --------------------------------------


@pytest.mark.parametrize("username", ["clinician", "board", "outsider"])
def test_people_without_upload_rights_cannot_create_a_batch(org, username):
    with pytest.raises(ValidationError) as info:
        import_batch_create(
            user=org.people[username], upload=as_upload("patient_level.csv"), enqueue=False
        )

    assert info.value.code == "permission"
    assert ImportBatch.objects.count() == 0


def test_an_inactive_chair_cannot_create_a_batch(org):
    chair = org.people["chair"]
    chair.is_active = False
    chair.save()

    with pytest.raises(ValidationError):
        import_batch_create(user=chair, upload=as_upload("patient_level.csv"), enqueue=False)


def test_empty_file_is_refused_before_a_batch_exists(org):
    with pytest.raises(ValidationError) as info:
        import_batch_create(user=org.people["chair"], upload=as_upload("empty.csv"), enqueue=False)

    assert info.value.code == "empty"
    assert ImportBatch.objects.count() == 0


def test_too_large_file_is_refused(org, settings):
    settings.LHS_IMPORT_MAX_BYTES = 100

    with pytest.raises(ValidationError) as info:
        import_batch_create(
            user=org.people["chair"], upload=as_upload("patient_level.csv"), enqueue=False
        )

    assert info.value.code == "too_large"
    assert ImportBatch.objects.count() == 0


def test_create_queues_the_batch_after_commit(org, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        batch = import_batch_create(user=org.people["chair"], upload=as_upload("utf8_bom.csv"))

    assert len(callbacks) == 1
    batch.refresh_from_db()
    assert batch.status == ImportStatus.QUEUED
    assert batch.enqueued_at is not None
    assert batch.attempts == 0


def test_create_without_enqueue_queues_nothing(org, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        import_batch_create(
            user=org.people["chair"], upload=as_upload("utf8_bom.csv"), enqueue=False
        )

    assert callbacks == []


def test_enqueued_batch_is_imported_by_the_task(
    org, celery_eager, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        batch = import_batch_create(user=org.people["chair"], upload=as_upload("patient_level.csv"))

    batch.refresh_from_db()
    assert batch.status == ImportStatus.SUCCEEDED
    assert batch.rows_new == 9


def test_processing_twice_is_safe(org):
    batch = import_batch_create(
        user=org.people["chair"], upload=as_upload("patient_level.csv"), enqueue=False
    )
    assert import_batch_process(batch_id=batch.pk).status == ImportStatus.SUCCEEDED

    assert import_batch_process(batch_id=batch.pk) is None
    batch.refresh_from_db()
    assert batch.attempts == 1
    assert Observation.objects.count() == 9


def test_a_batch_whose_file_is_gone_fails_cleanly(org):
    batch = import_batch_create(
        user=org.people["chair"], upload=as_upload("patient_level.csv"), enqueue=False
    )
    batch.file.storage.delete(batch.file.name)

    processed = import_batch_process(batch_id=batch.pk)

    assert processed.status == ImportStatus.FAILED
    assert processed.message == (
        "The import failed on the server; nothing was imported. The support unit has been "
        "told by e-mail."
    )
    # What the message says happened: the support unit's members got a mail naming the batch.
    assert [m.to for m in mail.outbox] == [[org.people["support"].email]]
    assert f"#{batch.pk}" in mail.outbox[0].subject
    assert processed.finished_at is not None
    assert Observation.objects.count() == 0


def test_a_failure_nobody_could_be_told_of_says_so(org):
    org.people["support"].email = ""
    org.people["support"].save()
    batch = import_batch_create(
        user=org.people["chair"], upload=as_upload("patient_level.csv"), enqueue=False
    )
    batch.file.storage.delete(batch.file.name)

    processed = import_batch_process(batch_id=batch.pk)

    assert processed.status == ImportStatus.FAILED
    assert processed.message == (
        "The import failed on the server; nothing was imported. Please tell the support unit."
    )
    assert mail.outbox == []


# --- idempotency ------------------------------------------------------------------------------


def test_the_same_file_twice_adds_nothing(org, run_import):
    first = run_import(org.people["chair"], "patient_level.csv")

    second = run_import(org.people["chair"], "patient_level.csv")

    assert second.status == ImportStatus.SUCCEEDED
    assert second.duplicate_of == first
    assert (second.rows_total, second.rows_new, second.rows_existing) == (9, 0, 9)
    assert (
        second.message == f"This file is identical to batch #{first.pk}; nothing new was imported."
    )
    assert second.checksum == first.checksum
    assert Observation.objects.count() == 9


def test_rows_already_present_are_skipped_by_natural_key(org, run_import):
    lines = fixture_bytes("patient_level.csv").splitlines(keepends=True)
    run_import(org.people["chair"], "first_half.csv", b"".join(lines[:5]))

    # More rows, in another order and with Windows line endings: another checksum.
    reordered = [lines[0], *reversed(lines[1:])]
    batch = run_import(org.people["chair"], "all.csv", b"".join(reordered).replace(b"\n", b"\r\n"))

    assert batch.status == ImportStatus.SUCCEEDED
    assert batch.duplicate_of is None
    assert (batch.rows_total, batch.rows_new, batch.rows_existing) == (9, 5, 4)
    assert batch.message == "5 new rows imported; 4 were already present."
    assert Observation.objects.count() == 9


def test_a_third_identical_rating_is_new(org, run_import):
    run_import(org.people["chair"], "patient_level.csv")
    content = fixture_bytes("patient_level.csv") + b"honos-total,AFF-01,2025-01-07,12,P0001\n"

    batch = run_import(org.people["chair"], "three.csv", content)

    assert (batch.rows_new, batch.rows_existing) == (1, 9)
    assert Observation.objects.filter(date="2025-01-07", value=12.0).count() == 3


def test_an_aggregated_period_with_the_same_numbers_is_already_present(org, run_import):
    run_import(org.people["support"], "aggregated.csv")
    content = fixture_bytes("aggregated.csv").replace(b"\n", b"\r\n")

    batch = run_import(org.people["support"], "again.csv", content)

    assert batch.status == ImportStatus.SUCCEEDED
    assert (batch.rows_new, batch.rows_existing) == (0, 8)
    assert Observation.objects.count() == 8


def test_an_aggregated_period_with_other_numbers_is_refused(org, run_import):
    first = run_import(org.people["support"], "aggregated.csv")
    content = (
        b"measure_code,unit_code,period_start,numerator,denominator\n"
        b"care-plan,AFF-01,2025-03-01,1,2\n"
        b"care-plan,AFF-01,2025-02-01,41,52\n"
    )

    batch = run_import(org.people["support"], "correction.csv", content)

    assert batch.status == ImportStatus.REJECTED
    assert [(e["row"], e["column"]) for e in batch.errors] == [(3, "numerator")]
    assert f"batch #{first.pk}" in batch.rendered_errors[0]["message"]
    assert "numerator 40" in batch.rendered_errors[0]["message"]
    assert "revert that batch first" in batch.rendered_errors[0]["message"]
    assert Observation.objects.count() == 8  # nothing of the new file, not even row 2
    assert not Observation.objects.filter(date="2025-03-01").exists()


# --- revert -------------------------------------------------------------------------------------


def test_support_reverts_a_batch(org, run_import):
    batch = run_import(org.people["chair"], "patient_level.csv")

    removed = import_batch_revert(batch=batch, user=org.people["support"])

    assert removed == 9
    batch.refresh_from_db()
    assert batch.status == ImportStatus.REVERTED
    assert batch.message == "Reverted by support: 9 rows removed."
    assert Observation.objects.count() == 0


def test_revert_removes_only_the_rows_that_batch_added(org, run_import):
    lines = fixture_bytes("patient_level.csv").splitlines(keepends=True)
    first = run_import(org.people["chair"], "first.csv", b"".join(lines[:5]))
    second = run_import(org.people["chair"], "second.csv", b"".join(lines))

    assert import_batch_revert(batch=second, user=org.people["admin"]) == 5

    assert Observation.objects.count() == 4
    assert set(Observation.objects.values_list("batch", flat=True)) == {first.pk}


@pytest.mark.parametrize("username", ["chair", "dept_chair", "clinician", "board"])
def test_only_support_and_admins_revert(org, run_import, username):
    batch = run_import(org.people["chair"], "patient_level.csv")

    with pytest.raises(ValidationError):
        import_batch_revert(batch=batch, user=org.people[username])

    assert Observation.objects.count() == 9
    batch.refresh_from_db()
    assert batch.status == ImportStatus.SUCCEEDED


def test_a_rejected_or_reverted_batch_cannot_be_reverted(org, run_import):
    rejected = run_import(org.people["chair"], "out_of_range.csv")
    with pytest.raises(ValidationError):
        import_batch_revert(batch=rejected, user=org.people["support"])

    batch = run_import(org.people["chair"], "patient_level.csv")
    import_batch_revert(batch=batch, user=org.people["support"])
    batch.refresh_from_db()
    with pytest.raises(ValidationError):
        import_batch_revert(batch=batch, user=org.people["support"])


def test_a_reverted_file_can_be_imported_again(org, run_import):
    first = run_import(org.people["chair"], "patient_level.csv")
    import_batch_revert(batch=first, user=org.people["support"])

    again = run_import(org.people["chair"], "patient_level.csv")

    assert again.status == ImportStatus.SUCCEEDED
    assert again.duplicate_of is None
    assert again.rows_new == 9
    assert Observation.objects.count() == 9


def test_a_reverted_file_can_be_imported_again_after_a_duplicate_upload(org, run_import):
    first = run_import(org.people["chair"], "patient_level.csv")
    duplicate = run_import(org.people["chair"], "patient_level.csv")
    assert duplicate.duplicate_of == first
    import_batch_revert(batch=first, user=org.people["support"])

    again = run_import(org.people["chair"], "patient_level.csv")

    # The duplicate still says "succeeded" but holds no rows: it must not stand in for them.
    assert again.status == ImportStatus.SUCCEEDED
    assert again.rows_new == 9
    assert Observation.objects.count() == 9


def test_a_file_is_imported_again_when_rows_it_found_present_were_reverted(org, run_import):
    lines = fixture_bytes("patient_level.csv").splitlines(keepends=True)
    first_half = run_import(org.people["chair"], "first_half.csv", b"".join(lines[:5]))
    whole = run_import(org.people["chair"], "whole.csv", b"".join(lines))
    assert (whole.rows_new, whole.rows_existing) == (5, 4)
    import_batch_revert(batch=first_half, user=org.people["support"])
    assert Observation.objects.count() == 5

    again = run_import(org.people["chair"], "whole.csv", b"".join(lines))

    assert again.status == ImportStatus.SUCCEEDED
    assert again.duplicate_of is None
    assert (again.rows_new, again.rows_existing) == (4, 5)
    assert Observation.objects.count() == 9


# --- progress -------------------------------------------------------------------------------------


def test_progress(org, run_import):
    batch = import_batch_create(
        user=org.people["chair"], upload=as_upload("patient_level.csv"), enqueue=False
    )
    assert import_batch_progress(batch) == {
        "status": "queued",
        "rows_done": 0,
        "rows_estimated": 0,
        "percent": 0,
    }

    ImportBatch.objects.filter(pk=batch.pk).update(status=ImportStatus.RUNNING)
    batch.refresh_from_db()
    cache.set(services._progress_key(batch.pk), {"rows_done": 50, "rows_estimated": 200})
    assert import_batch_progress(batch)["percent"] == 25
    cache.set(services._progress_key(batch.pk), {"rows_done": 250, "rows_estimated": 200})
    assert import_batch_progress(batch)["percent"] == 99  # never 100 before it is done

    done = run_import(org.people["chair"], "aggregated.csv")
    assert import_batch_progress(done) == {
        "status": done.status,
        "rows_done": done.rows_total,
        "rows_estimated": done.rows_total,
        "percent": 100,
    }


# --- sweeper ------------------------------------------------------------------------------------


def make_batch(org, *, status, attempts=0, **ago) -> ImportBatch:
    # The sweeper has run before (its marker is in the cache): the broker was not emptied.
    services._broker_was_emptied()
    batch = import_batch_create(
        user=org.people["chair"], upload=as_upload("patient_level.csv"), enqueue=False
    )
    now = timezone.now()
    fields = {name: now - delta for name, delta in ago.items()}
    ImportBatch.objects.filter(pk=batch.pk).update(status=status, attempts=attempts, **fields)
    batch.refresh_from_db()
    return batch


def test_a_batch_whose_message_was_lost_is_queued_again(org, django_capture_on_commit_callbacks):
    batch = make_batch(org, status=ImportStatus.QUEUED, enqueued_at=timedelta(minutes=11))
    waiting = make_batch(org, status=ImportStatus.QUEUED, enqueued_at=timedelta(minutes=2))

    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        result = import_batches_sweep()

    assert result == {"requeued": 1, "failed": 0}
    assert len(callbacks) == 1
    batch.refresh_from_db()
    assert batch.status == ImportStatus.QUEUED
    assert timezone.now() - batch.enqueued_at < timedelta(minutes=1)
    waiting.refresh_from_db()
    assert timezone.now() - waiting.enqueued_at > timedelta(minutes=1)


def test_a_requeued_batch_is_imported(org, celery_eager, django_capture_on_commit_callbacks):
    batch = make_batch(org, status=ImportStatus.QUEUED, enqueued_at=timedelta(hours=1))

    with django_capture_on_commit_callbacks(execute=True):
        import_batches_sweep()

    batch.refresh_from_db()
    assert batch.status == ImportStatus.SUCCEEDED
    assert batch.attempts == 1
    assert Observation.objects.count() == 9


def test_a_batch_whose_worker_died_is_queued_again(org, django_capture_on_commit_callbacks):
    dead = make_batch(
        org,
        status=ImportStatus.RUNNING,
        attempts=1,
        enqueued_at=timedelta(hours=3),
        started_at=timedelta(hours=2),
    )
    # Claimed a moment ago: between its claim and its row lock a worker holds no lock yet.
    alive = make_batch(
        org,
        status=ImportStatus.RUNNING,
        attempts=1,
        enqueued_at=timedelta(minutes=1),
        started_at=timedelta(seconds=5),
    )

    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        assert import_batches_sweep() == {"requeued": 1, "failed": 0}

    assert len(callbacks) == 1
    dead.refresh_from_db()
    alive.refresh_from_db()
    assert (dead.status, dead.attempts) == (ImportStatus.QUEUED, 1)
    assert alive.status == ImportStatus.RUNNING


def test_how_soon_a_running_batch_counts_as_dead_depends_on_row_locks(org):
    batch = make_batch(
        org,
        status=ImportStatus.RUNNING,
        attempts=1,
        enqueued_at=timedelta(minutes=6),
        started_at=timedelta(minutes=5),
    )

    import_batches_sweep()

    batch.refresh_from_db()
    # PostgreSQL: an unlocked row is proof enough that its worker is gone. SQLite: the batch
    # names no worker with a heartbeat, so its worker is gone too.
    assert batch.status == ImportStatus.QUEUED


@pytest.mark.parametrize("status", [ImportStatus.QUEUED, ImportStatus.RUNNING])
def test_after_three_attempts_a_batch_fails(org, status, django_capture_on_commit_callbacks):
    batch = make_batch(
        org,
        status=status,
        attempts=MAX_ATTEMPTS,
        enqueued_at=timedelta(hours=3),
        started_at=timedelta(hours=2),
    )

    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        assert import_batches_sweep() == {"requeued": 0, "failed": 1}

    assert callbacks == []
    batch.refresh_from_db()
    assert batch.status == ImportStatus.FAILED
    assert batch.finished_at is not None
    assert batch.message == (
        "The import was interrupted 3 times and has been stopped. Nothing was imported; "
        "contact the support unit."
    )
    assert Observation.objects.count() == 0


def test_two_attempts_still_get_a_third(org):
    batch = make_batch(
        org,
        status=ImportStatus.RUNNING,
        attempts=MAX_ATTEMPTS - 1,
        enqueued_at=timedelta(hours=3),
        started_at=timedelta(hours=2),
    )

    assert import_batches_sweep() == {"requeued": 1, "failed": 0}
    assert import_batch_process(batch_id=batch.pk).status == ImportStatus.SUCCEEDED
    batch.refresh_from_db()
    assert batch.attempts == MAX_ATTEMPTS


@pytest.mark.parametrize(
    "status",
    [
        ImportStatus.SUCCEEDED,
        ImportStatus.REJECTED,
        ImportStatus.FAILED,
        ImportStatus.REVERTED,
    ],
)
def test_finished_batches_are_left_alone(org, status):
    batch = make_batch(
        org, status=status, enqueued_at=timedelta(days=2), started_at=timedelta(days=2)
    )

    assert import_batches_sweep() == {"requeued": 0, "failed": 0}
    batch.refresh_from_db()
    assert batch.status == status


@pytest.mark.django_db(transaction=True)
def test_a_running_batch_locked_by_its_worker_is_not_swept():
    if not connection.features.has_select_for_update_skip_locked:
        pytest.skip("row locks need PostgreSQL")
    user = UserFactory(username="worker-test", is_superuser=True)
    batch = ImportBatch.objects.create(
        uploaded_by=user,
        source=ImportSource.API,
        original_name="x.csv",
        checksum="0" * 64,
        status=ImportStatus.RUNNING,
        attempts=1,
        enqueued_at=timezone.now() - timedelta(hours=3),
        started_at=timezone.now() - timedelta(hours=2),
    )
    locked, release = threading.Event(), threading.Event()

    def worker():
        from django.db import connection as worker_connection

        try:
            with transaction.atomic():
                ImportBatch.objects.select_for_update().filter(pk=batch.pk).exists()
                locked.set()
                release.wait(10)
        finally:
            worker_connection.close()

    thread = threading.Thread(target=worker)
    thread.start()
    try:
        assert locked.wait(10)
        assert import_batches_sweep() == {"requeued": 0, "failed": 0}
    finally:
        release.set()
        thread.join()
    batch.refresh_from_db()
    assert batch.status == ImportStatus.RUNNING


# --- measure scope and identity numbers (lead) -----------------------------------------------


def test_a_local_measure_takes_data_only_from_its_own_unit(org, run_import):
    # local-walks belongs to AFF-01; the support unit may import for every unit, but not this.
    content = (
        b"measure_code,unit_code,date,value\n"
        b"local-walks,AFF-01,2025-01-07,3\n"
        b"local-walks,PSY-01,2025-01-07,2\n"
    )

    batch = run_import(org.people["support"], "walks.csv", content)

    assert batch.status == ImportStatus.REJECTED
    assert [(e["row"], e["column"], e["value"]) for e in batch.errors] == [
        (3, "unit_code", "PSY-01")
    ]
    assert "local-walks belongs to" in batch.rendered_errors[0]["message"]
    assert Observation.objects.count() == 0


def test_a_department_measure_takes_data_from_its_departments_units(org, run_import):
    org.measures["honos"].scope = "department"
    org.measures["honos"].department = org.dept_a
    org.measures["honos"].save()
    content = (
        b"measure_code,unit_code,date,value\n"
        b"honos-total,AFF-02,2025-01-07,10\n"
        b"honos-total,PSY-01,2025-01-07,12\n"
    )

    batch = run_import(org.people["support"], "dept.csv", content)

    assert [(e["row"], e["value"]) for e in batch.errors] == [(3, "PSY-01")]


def test_a_file_with_identity_numbers_is_not_kept_and_the_number_is_fully_masked(
    org, run_import, django_capture_on_commit_callbacks
):
    content = b"measure_code,unit_code,date,value,subject_key\nhonos-total,AFF-01,2025-01-07,3,19121212-1212\n"

    with django_capture_on_commit_callbacks(execute=True):
        batch = run_import(org.people["chair"], "pnr.csv", content)

    batch.refresh_from_db()
    assert batch.status == ImportStatus.REJECTED
    assert batch.errors[0]["value"] == "********-****"
    assert not batch.file or not batch.file.storage.exists(batch.file.name)
    assert "deleted" in batch.message
