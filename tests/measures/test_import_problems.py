"""Import reports: problems as codes rendered in the reader's language, a bounded stored report
with every problem in a downloadable CSV, whole-file rejections that say what is wrong."""

from __future__ import annotations

import csv
import io
import json
import time

import pytest
from django.core.exceptions import ValidationError
from django.urls import reverse
from django.utils import translation

from measures.enums import ImportStatus
from measures.importing import RowError
from measures.models import ImportBatch, Observation
from measures.problems import batch_message, render, rendered_summary
from measures.services import _reject, import_batch_create

from .conftest import as_upload

pytestmark = pytest.mark.django_db

HEADER = "measure_code,unit_code,date,value\n"


def rows(*values: str, unit: str = "AFF-01") -> bytes:
    return (HEADER + "".join(f"honos-total,{unit},2025-01-06,{v}\n" for v in values)).encode()


# --- the reader's language ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("bad", "english", "swedish"),
    [
        (
            ["x"],
            "The file was rejected with 1 problem; nothing was imported. Correct the row listed",
            "Filen avvisades med 1 fel; inget har importerats. Rätta den listade raden",
        ),
        (
            ["x", "y", "z"],
            "The file was rejected with 3 problems; nothing was imported. Correct the rows",
            "Filen avvisades med 3 fel; inget har importerats. Rätta de listade raderna",
        ),
    ],
)
def test_a_report_written_in_english_reads_in_swedish(
    client, org, run_import, bad, english, swedish
):
    batch = run_import(org.people["chair"], "bad.csv", rows(*bad))  # uploaded in English
    assert (batch.language, batch.status) == ("en", ImportStatus.REJECTED)

    with translation.override("en"):
        assert batch_message(batch, reader=org.people["chair"]).startswith(english)
        assert batch.rendered_errors[0]["message"] == "'x' is not a number."
    with translation.override("sv"):
        assert batch_message(batch, reader=org.people["chair"]).startswith(swedish)
        assert batch.rendered_errors[0]["message"] == "'x' är inte ett tal."
    client.force_login(org.people["chair"])
    page = client.get(
        reverse("measures:batch-detail", args=[batch.pk]), headers={"accept-language": "sv"}
    )
    assert swedish in page.content.decode()
    assert "rejected with" not in page.content.decode()
    api = client.get(f"/api/imports/{batch.pk}/", headers={"accept-language": "sv"}).json()
    assert api["message"].startswith(swedish)
    assert api["errors"][0]["message"] == "'x' är inte ett tal."
    assert api["errors"][0]["code"] == "not_a_number"


def test_a_stored_entry_is_a_code_with_parameters_not_a_sentence(org, run_import):
    batch = run_import(org.people["support"], "bad.csv", rows("2025"))  # out of range 0–48

    assert batch.errors[0] == {
        "row": 2,
        "column": "value",
        "value": "2025",
        "code": "out_of_range",
        "params": {
            "code": "honos-total",
            "min": "0",
            "max": "48",
            "frequency": "week",
            "owner": "",
        },
    }
    assert batch.message_code == "batch_rejected"
    assert batch.message_params == {"count": 1}


def test_a_period_word_is_translated_when_read(org, run_import):
    content = b"measure_code,unit_code,period_start,numerator,denominator\n"
    content += b"incidents,AFF-01,2025-01-07,3,\n"  # a Tuesday, for a weekly measure
    batch = run_import(org.people["support"], "agg.csv", content)

    with translation.override("sv"):
        message = batch.rendered_errors[0]["message"]
    assert "per vecka" in message
    assert "en måndag" in message


def test_an_old_batch_with_only_sentences_still_reads(org):
    batch = ImportBatch.objects.create(
        uploaded_by=org.people["chair"],
        source="upload",
        checksum="0" * 64,
        status=ImportStatus.REJECTED,
        message="The file was rejected with 1 problems.",
        errors=[{"row": 2, "column": "value", "value": "x", "message": "'x' is not a number."}],
    )

    assert batch_message(batch, reader=org.people["chair"]) == batch.message
    assert batch.rendered_errors[0]["message"] == "'x' is not a number."


def test_an_identical_file_names_the_earlier_batch_only_to_who_may_see_it(client, org, run_import):
    first = run_import(org.people["support"], "first.csv", rows("5"))
    second = run_import(org.people["chair"], "second.csv", rows("5"))
    assert second.duplicate_of_id == first.pk

    with translation.override("en"):
        for_chair = batch_message(second, reader=org.people["chair"])
        for_support = batch_message(second, reader=org.people["support"])
    assert f"#{first.pk}" not in for_chair
    assert "identical to a file imported earlier" in for_chair
    assert f"identical to batch #{first.pk}" in for_support

    client.force_login(org.people["chair"])
    api = client.get(f"/api/imports/{second.pk}/").json()
    listed = client.get("/api/imports/").json()
    page = client.get(reverse("measures:batch-detail", args=[second.pk])).content.decode()
    assert f"#{first.pk}" not in api["message"]
    assert all(f"#{first.pk}" not in b["message"] for b in listed["results"])
    assert f"batch #{first.pk}" not in page


# --- a bounded report, every problem in a file ----------------------------------------------


def test_many_long_bad_cells_end_rejected_fast_with_a_small_report(client, org, run_import):
    long_value = "n" * 20_000
    started = time.monotonic()

    batch = run_import(org.people["support"], "long.csv", rows(*[long_value] * 7_000))

    elapsed = time.monotonic() - started
    assert batch.status == ImportStatus.REJECTED
    assert (batch.error_count, batch.rows_total) == (7_000, 7_000)
    stored = json.dumps(batch.errors) + json.dumps(batch.problem_summary) + batch.message
    assert len(stored.encode()) < 1_000_000
    assert all(len(e["value"]) <= 200 and e["value"].endswith("…") for e in batch.errors)
    summary = rendered_summary(batch.problem_summary)
    assert [(s["code"], s["count"], s["rows"]) for s in summary] == [
        ("not_a_number", 7_000, [2, 3, 4, 5, 6])
    ]
    assert "is not a number" in summary[0]["message"]
    assert elapsed < 60, elapsed

    client.force_login(org.people["support"])
    download = client.get(reverse("measures:batch-report", args=[batch.pk]))
    lines = list(csv.reader(io.StringIO(download.content.decode("utf-8-sig"))))
    assert len(lines) == 1 + 7_000
    assert lines[1][:2] == ["2", "value"]


def test_every_distinct_problem_is_summarised_even_beyond_the_stored_entries(org, run_import):
    values = ["x"] * 300 + ["-1"]  # 300 not numbers, then one out of range after them
    batch = run_import(org.people["support"], "many.csv", rows(*values))

    assert batch.error_count == 301
    assert len(batch.errors) == 200
    assert {s["code"]: s["count"] for s in batch.problem_summary} == {
        "not_a_number": 300,
        "out_of_range": 1,
    }
    assert [s["rows"] for s in batch.problem_summary][1] == [302]


def test_the_report_download_is_a_safe_csv_in_the_readers_language(client, org, run_import):
    batch = run_import(
        org.people["chair"], "bad.csv", rows("=HYPERLINK(1)", "+1+2", "@SUM(A1)", "-1")
    )
    client.force_login(org.people["chair"])

    response = client.get(
        reverse("measures:batch-report", args=[batch.pk]), headers={"accept-language": "sv"}
    )

    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/csv")
    assert response["Content-Disposition"].startswith("attachment;")
    table = list(csv.reader(io.StringIO(response.content.decode("utf-8-sig"))))
    assert table[0] == ["Rad", "Kolumn", "Värde", "Vad som är fel"]
    assert [line[2] for line in table[1:]] == ["'=HYPERLINK(1)", "'+1+2", "'@SUM(A1)", "-1"]
    assert "är inte ett tal" in table[1][3]
    assert all(not line[3].startswith(("=", "+", "-", "@")) for line in table[1:])
    # Who took the file, and when, is in the audit log.
    from units.models import AuditEvent

    download = AuditEvent.objects.filter(action="download").get()
    assert (download.actor_name, download.target) == (
        "chair",
        f"import batch {batch.pk} problem report",
    )


@pytest.mark.parametrize(
    ("username", "status"),
    [("chair", 200), ("support", 200), ("admin", 200), ("other_chair", 404), ("outsider", 404)],
)
def test_the_report_download_is_for_who_may_see_the_batch(
    client, org, run_import, other_chair, username, status
):
    batch = run_import(org.people["chair"], "bad.csv", rows("x"))
    user = other_chair if username == "other_chair" else org.people[username]
    client.force_login(user)

    assert client.get(reverse("measures:batch-report", args=[batch.pk])).status_code == status


def test_the_report_download_wants_a_login_and_a_report(client, org, run_import):
    batch = run_import(org.people["chair"], "ok.csv", rows("5"))
    url = reverse("measures:batch-report", args=[batch.pk])

    assert client.get(url).status_code == 302  # anonymous: to the log-in page
    client.force_login(org.people["chair"])
    assert client.get(url).status_code == 404  # imported: no problems, no report
    assert client.post(url).status_code == 405


def test_the_batch_page_offers_the_report_and_the_summary(client, org, run_import):
    batch = run_import(org.people["chair"], "bad.csv", rows(*["x"] * 250, "-1"))
    client.force_login(org.people["chair"])

    page = client.get(reverse("measures:batch-detail", args=[batch.pk])).content.decode()

    assert reverse("measures:batch-report", args=[batch.pk]) in page
    assert 'id="problem-summary"' in page
    assert ">250<" in page


def test_a_report_the_database_cannot_hold_never_sends_the_batch_round_again(org):
    batch = import_batch_create(user=org.people["chair"], upload=as_upload("a.csv", rows("x")))
    batch.status = ImportStatus.RUNNING
    batch.save()
    # A NUL deep in the parameters (jsonb refuses it) and an endless error text.
    errors = [RowError(0, "", "\x00", "unreadable_csv", {"error": "bad\x00byte" + "e" * 10**6})]

    _reject(batch, errors, 1)

    batch.refresh_from_db()
    assert batch.status == ImportStatus.REJECTED
    assert "\x00" not in json.dumps(batch.errors)
    assert len(json.dumps(batch.errors)) < 2_000
    assert Observation.objects.count() == 0


def test_a_report_the_database_refuses_still_ends_the_batch_rejected(org):
    # 2**40 problems do not fit PostgreSQL's integer: a DataError, the same on every attempt.
    batch = import_batch_create(user=org.people["chair"], upload=as_upload("a.csv", rows("x")))
    ImportBatch.objects.filter(pk=batch.pk).update(status=ImportStatus.RUNNING)
    batch.refresh_from_db()

    _reject(batch, [RowError(2, "value", "x", "not_a_number")], 2**40, rows_total=1)

    batch.refresh_from_db()
    assert batch.status == ImportStatus.REJECTED
    assert batch.message_code == "batch_rejected"
    assert batch.report


# --- whole-file rejections ------------------------------------------------------------------


def test_a_whole_file_rejection_counts_the_rows_the_file_holds(org, run_import):
    missing = b"measure_code,unit_code,date\n" + b"honos-total,AFF-01,2025-01-06\n" * 5
    batch = run_import(org.people["support"], "missing.csv", missing)
    assert (batch.status, batch.rows_total) == (ImportStatus.REJECTED, 5)

    personal = rows("5", "6") + b"honos-total,AFF-01,2025-01-06,5,19121212-1212\n"
    personal = personal.replace(b"value\n", b"value,subject_key\n", 1)
    batch = run_import(org.people["support"], "pnr.csv", personal)
    assert (batch.status, batch.rows_total) == (ImportStatus.REJECTED, 3)


def test_random_bytes_are_rejected_with_a_clear_message_not_failed(org, run_import):
    import random

    noise = random.Random(7).randbytes(1 << 20).replace(b"\x00", b"\x01")
    batch = run_import(org.people["support"], "noise.csv", noise)

    assert batch.status == ImportStatus.REJECTED
    with translation.override("en"):
        assert batch.rendered_errors[0]["message"].startswith("This is not a CSV text file")


@pytest.mark.parametrize(
    ("header", "words"),
    [
        ("a" * 200_000, "longer than 8 kB"),  # one field over csv's 131,072-byte limit
        (",".join(f"col{i}" for i in range(200_000)), "longer than 8 kB"),
        (",".join(f"col{i}" for i in range(60)), "60 columns; at most 50"),
    ],
)
def test_a_header_over_the_caps_is_rejected_at_once(org, run_import, header, words):
    content = (header + "\n" + "1,2,3\n" * 3).encode()

    batch = run_import(org.people["support"], "wide.csv", content)

    assert (batch.status, batch.rows_total) == (ImportStatus.REJECTED, 3)
    with translation.override("en"):
        message = batch.rendered_errors[0]["message"]
    assert words in message
    assert len(message) < 600  # never the whole header
    assert "col59" not in message


def test_a_missing_column_message_shows_only_the_first_names(org, run_import):
    header = ",".join(
        ["measure_code", "unit_code", "date"] + [f"extra_{i}_" + "z" * 60 for i in range(40)]
    )
    batch = run_import(org.people["support"], "missing.csv", (header + "\n").encode())

    with translation.override("en"):
        message = batch.rendered_errors[0]["message"]
    assert message.startswith("Missing column 'value'")
    assert "extra_6_" in message
    assert "extra_30_" not in message
    assert len(message) < 800


def test_a_row_over_64_kb_is_rejected_with_its_row_number(org, run_import):
    content = rows("5", "6", "1" * 70_000, "7")

    batch = run_import(org.people["support"], "long-row.csv", content)

    assert batch.status == ImportStatus.REJECTED
    assert batch.errors[0]["row"] == 4
    with translation.override("en"):
        assert batch.rendered_errors[0]["message"].startswith("Row 4 is 68 kB long")


def test_cr_only_line_endings_are_imported(org, run_import):
    content = rows("5", "6", "7").replace(b"\n", b"\r")

    batch = run_import(org.people["support"], "mac.csv", content)

    assert batch.status == ImportStatus.SUCCEEDED, batch.rendered_errors
    assert (batch.rows_total, batch.rows_new) == (3, 3)


def test_a_cr_only_file_reports_the_right_rows(org, run_import):
    content = rows("5", "x", "7", "y").replace(b"\n", b"\r")

    batch = run_import(org.people["support"], "mac.csv", content)

    assert [(e["row"], e["value"]) for e in batch.errors] == [(3, "x"), (5, "y")]


def test_a_cr_only_file_is_scanned_for_identity_numbers(org, run_import):
    content = (
        b"measure_code,unit_code,date,value,subject_key\r"
        b"honos-total,AFF-01,2025-01-06,5,P1\r"
        b"honos-total,AFF-01,2025-01-06,5,19121212-1212\r"
    )

    batch = run_import(org.people["support"], "mac.csv", content)

    assert batch.status == ImportStatus.REJECTED
    assert [(e["row"], e["code"]) for e in batch.errors] == [(3, "personal_number")]


# --- sizes, inactive units ------------------------------------------------------------------


def test_the_size_message_tells_the_sizes_apart(org, settings):
    settings.LHS_IMPORT_MAX_BYTES = 1 << 20

    with pytest.raises(ValidationError) as info, translation.override("en"):
        import_batch_create(
            user=org.people["chair"], upload=as_upload("big.csv", b"x" * ((1 << 20) + 10))
        )

    message = info.value.messages[0]
    assert message == ("The file is 1,048,586 bytes; the largest accepted is 1,048,576 bytes."), (
        message
    )


def test_the_size_message_in_megabytes(org, settings):
    settings.LHS_IMPORT_MAX_BYTES = 1 << 20

    with pytest.raises(ValidationError) as info, translation.override("en"):
        import_batch_create(user=org.people["chair"], upload=as_upload("big.csv", b"x" * (3 << 19)))

    assert info.value.messages[0] == "The file is 1.5 MB; the largest accepted is 1.0 MB."


def test_data_for_an_inactive_unit_is_rejected_row_by_row(org, run_import):
    org.a2.active = False
    org.a2.save()
    content = rows("5") + b"honos-total,AFF-02,2025-01-06,6\nhonos-total,AFF-02,2025-01-13,7\n"

    batch = run_import(org.people["support"], "inactive.csv", content)

    assert batch.status == ImportStatus.REJECTED
    assert [(e["row"], e["value"], e["code"]) for e in batch.errors] == [
        (3, "AFF-02", "inactive_unit"),
        (4, "AFF-02", "inactive_unit"),
    ]
    with translation.override("en"):
        assert batch.rendered_errors[0]["message"].startswith("Unit 'AFF-02' is no longer active")
    assert Observation.objects.count() == 0


def test_every_code_renders_in_both_languages():
    from measures.problems import PROBLEMS

    params = {
        "count": 2,
        "new": 2,
        "existing": 0,
        "attempts": 2,
        "user": "u",
        "id": 1,
        "row": 2,
        "size": "1 kB",
        "limit": "1 kB",
        "header": "a",
        "error": "e",
        "column": "c",
        "required": "r",
        "found": 1,
        "expected": 2,
        "separator": "','",
        "numerator": 1,
        "denominator": 2,
        "batch": 3,
        "code": "m",
        "min": 0,
        "max": 1,
        "frequency": "month",
        "owner": "o",
    }
    for code in PROBLEMS:
        with translation.override("en"):
            english = render(code, params, value="v")
        with translation.override("sv"):
            swedish = render(code, params, value="v")
        assert english != code and "%(" not in english, code
        assert swedish != english, code
        assert "%(" not in swedish, code
