"""The CSV reader and validator on small files, without the database (measures/importing.py)."""

from __future__ import annotations

import hashlib
import hmac
from datetime import date
from pathlib import Path

import pandas as pd
import pytest

from measures.importing import (
    AGGREGATE,
    PATIENT,
    FileRejected,
    ImportFile,
    MeasureSpec,
    detect_encoding,
    file_checksum,
    looks_like_personal_number,
    luhn_valid,
    parse_numbers,
    read_layout,
    subject_key_hash,
)

from .conftest import FIXTURES, MANY_PROBLEMS_REPORT

SECRET = b"test-subject-secret"
TODAY = date(2026, 1, 15)

# The org fixture's measures and units, as the validator sees them.
MEASURES = {
    "honos-total": MeasureSpec(1, "honos-total", "mean", "week", 0.0, 48.0),
    "care-plan": MeasureSpec(2, "care-plan", "proportion", "month"),
    "coercion": MeasureSpec(3, "coercion", "rate", "month"),
    "incidents": MeasureSpec(4, "incidents", "count", "week"),
    "local-walks": MeasureSpec(5, "local-walks", "count", "week"),
}
UNITS = {"AFF-01": 11, "AFF-02": 12, "PSY-01": 21}


class Result:
    def __init__(self, file: ImportFile, rows: pd.DataFrame):
        self.file = file
        self.rows = rows
        self.errors = file.errors
        self.error_count = file.error_count
        self.rows_total = file.rows_total

    def cells(self) -> list[tuple[int, str, str]]:
        return [(e.row, e.column, e.value) for e in self.errors]


def validate(source: str | Path | bytes, tmp_path: Path, *, allowed=None, **kwargs) -> Result:
    """Validate a fixture file (by name) or raw bytes; collect every clean row."""
    if isinstance(source, bytes):
        path = tmp_path / "upload.csv"
        path.write_bytes(source)
    else:
        path = FIXTURES / source
    file = ImportFile(
        path,
        measures=MEASURES,
        units=UNITS,
        allowed_unit_ids=allowed,
        today=TODAY,
        subject_secret=SECRET,
        **kwargs,
    )
    chunks = list(file.chunks())
    rows = pd.concat(chunks) if chunks else pd.DataFrame()
    return Result(file, rows)


def rejected(source: str | bytes, tmp_path: Path) -> list:
    with pytest.raises(FileRejected) as info:
        validate(source, tmp_path)
    return info.value.errors


def luhn_check_digit(nine_digits: str) -> str:
    """Independent Luhn computation (Skatteverket SKV 704) for building test numbers."""
    total = 0
    for i, ch in enumerate(nine_digits):
        n = int(ch) * (2 if i % 2 == 0 else 1)
        total += n // 10 + n % 10
    return str((10 - total % 10) % 10)


# --- good files ---------------------------------------------------------------------------


def test_patient_level_file_yields_every_row_with_file_row_numbers(tmp_path):
    result = validate("patient_level.csv", tmp_path)

    assert result.errors == []
    assert result.file.shape == PATIENT
    assert result.rows_total == 9
    assert list(result.rows["row"]) == list(range(2, 11))
    first = result.rows.iloc[0]
    assert (first["measure_id"], first["unit_id"]) == (1, 11)
    assert first["date"] == pd.Timestamp("2025-01-07")
    assert first["value"] == 12.0
    assert pd.isna(first["numerator"]) and pd.isna(first["denominator"])
    assert list(result.rows["value"])[:5] == [12.0, 12.0, 20.5, 0.0, 48.0]


def test_identical_patient_rows_are_two_rows(tmp_path):
    rows = validate("patient_level.csv", tmp_path).rows

    content = ["measure_id", "unit_id", "date", "value", "subject_key"]
    assert rows.iloc[0][content].equals(rows.iloc[1][content])
    assert list(rows["row"][:2]) == [2, 3]


def test_aggregated_file_yields_numerators_and_denominators(tmp_path):
    result = validate("aggregated.csv", tmp_path)

    assert result.errors == []
    assert result.file.shape == AGGREGATE
    assert result.rows_total == 8
    by_row = result.rows.set_index("row")
    assert (by_row.at[2, "numerator"], by_row.at[2, "denominator"]) == (45.0, 50.0)
    assert by_row.at[6, "denominator"] == 2210.5
    # A count needs no denominator.
    assert by_row.at[7, "numerator"] == 4.0 and pd.isna(by_row.at[7, "denominator"])
    assert by_row.at[2, "date"] == pd.Timestamp("2025-01-01")
    assert result.rows["value"].isna().all()


@pytest.mark.parametrize(
    ("name", "encoding", "separator"),
    [
        ("swedish_headers.csv", "utf-8", ";"),
        ("semicolon_decimal_comma_cp1252.csv", "cp1252", ";"),
        ("utf8_bom.csv", "utf-8-sig", ","),
        ("latin1_aggregated.csv", "cp1252", ";"),
        ("patient_level.csv", "utf-8", ","),
    ],
)
def test_encoding_and_separator_are_detected(name, encoding, separator):
    layout = read_layout(FIXTURES / name)

    assert layout.encoding == encoding
    assert layout.separator == separator
    assert detect_encoding(FIXTURES / name) == encoding


def test_swedish_headers_and_decimal_commas(tmp_path):
    result = validate("swedish_headers.csv", tmp_path)

    assert result.errors == []
    assert list(result.rows["value"]) == [14.5, 3.25]
    # Measure and unit codes match whatever their case.
    assert list(result.rows["measure_id"]) == [1, 1]
    assert list(result.rows["unit_id"]) == [11, 11]


def test_cp1252_file_with_swedish_letters_reads_like_its_utf8_twin(tmp_path):
    cp1252 = validate("semicolon_decimal_comma_cp1252.csv", tmp_path)
    utf8 = validate("swedish_headers.csv", tmp_path)

    assert cp1252.errors == []
    assert list(cp1252.rows["value"]) == [14.5, 3.25]
    # "Åsa-1" decoded correctly: the same pseudonym hashes the same in both encodings.
    assert cp1252.rows.iloc[0]["subject_key"] == utf8.rows.iloc[0]["subject_key"]
    assert cp1252.rows.iloc[0]["subject_key"] == subject_key_hash("Åsa-1", SECRET)
    assert cp1252.rows.iloc[1]["subject_key"] == subject_key_hash("Östen-3", SECRET)


def test_latin1_aggregated_file_with_swedish_headers(tmp_path):
    result = validate("latin1_aggregated.csv", tmp_path)

    assert result.errors == []
    assert result.file.shape == AGGREGATE
    assert list(result.rows["numerator"]) == [30.0, 7.0]
    assert list(result.rows["unit_id"]) == [11, 12]


def test_swedish_aggregated_headers(tmp_path):
    result = validate("swedish_headers_aggregated.csv", tmp_path)

    assert result.errors == []
    assert result.file.shape == AGGREGATE
    assert result.file.layout.positions == {
        "measure_code": 0,
        "unit_code": 1,
        "period_start": 2,
        "numerator": 3,
        "denominator": 4,
    }


def test_headers_are_case_insensitive_and_spaces_count_as_underscores(tmp_path):
    result = validate("case_insensitive_headers.csv", tmp_path)

    assert result.errors == []
    assert result.rows_total == 1


def test_bom_is_not_part_of_the_first_header(tmp_path):
    result = validate("utf8_bom.csv", tmp_path)

    assert result.file.layout.header[0] == "measure_code"
    assert result.errors == []
    assert list(result.rows["value"]) == [10.0]


def test_crlf_blank_lines_and_bare_separators_are_skipped_but_keep_row_numbers(tmp_path):
    result = validate("crlf_blank_lines.csv", tmp_path)

    assert result.errors == []
    assert result.rows_total == 2
    assert list(result.rows["row"]) == [2, 5]


def test_row_numbers_after_blank_lines_point_at_the_file_line(tmp_path):
    content = b"measure_code,unit_code,date,value\n\n\nhonos-total,AFF-01,2025-01-07,99\n"
    result = validate(content, tmp_path)

    assert result.cells() == [(4, "value", "99")]


def test_extra_columns_are_ignored(tmp_path):
    content = b"kommentar,measure_code,unit_code,date,value\nbra,honos-total,AFF-01,2025-01-07,5\n"
    result = validate(content, tmp_path)

    assert result.errors == []
    assert result.file.layout.ignored_columns == ["kommentar"]
    assert list(result.rows["value"]) == [5.0]


def test_subject_keys_are_hmac_never_the_raw_key(tmp_path):
    rows = validate("patient_level.csv", tmp_path).rows

    expected = hmac.new(SECRET, b"P0001", hashlib.sha256).digest()[:16].hex()
    assert rows.iloc[0]["subject_key"] == expected
    assert "P0001" not in set(rows["subject_key"].dropna())
    # Rows without a key have none.
    assert rows.iloc[4]["subject_key"] is None or pd.isna(rows.iloc[4]["subject_key"])


def test_subject_key_hash_depends_on_the_secret():
    assert subject_key_hash("P0001", b"one") != subject_key_hash("P0001", b"two")
    assert len(subject_key_hash("P0001", b"one")) == 32


def test_quoted_decimal_comma_with_comma_separator(tmp_path):
    content = b'measure_code,unit_code,date,value\nhonos-total,AFF-01,2025-01-07,"12,5"\n'

    assert list(validate(content, tmp_path).rows["value"]) == [12.5]


def test_only_rows_the_uploader_may_import_for_pass(tmp_path):
    result = validate("aggregated.csv", tmp_path, allowed={11})

    assert [(e.row, e.column) for e in result.errors] == [
        (4, "unit_code"),
        (5, "unit_code"),
        (6, "unit_code"),
        (9, "unit_code"),
    ]
    assert all("You may not import data for unit" in e.message for e in result.errors)
    assert "'PSY-01'" in result.errors[1].message


def test_chunks_number_rows_across_chunk_boundaries(tmp_path):
    result = validate("patient_level.csv", tmp_path, chunk_rows=2)

    assert result.errors == []
    assert list(result.rows["row"]) == list(range(2, 11))


def test_errors_in_a_later_chunk_keep_their_row_numbers(tmp_path):
    result = validate("bad_date.csv", tmp_path, chunk_rows=2)

    assert [e.row for e in result.errors] == [2, 3, 4, 5, 6, 7]


def test_file_checksum_is_sha256_of_the_bytes():
    path = FIXTURES / "aggregated.csv"

    assert file_checksum(path) == hashlib.sha256(path.read_bytes()).hexdigest()


# --- bad rows: the exact row, column, value and message -------------------------------------


def test_unknown_measure(tmp_path):
    result = validate("unknown_measure.csv", tmp_path)

    assert result.cells() == [(3, "measure_code", "no-such-measure")]
    assert result.errors[0].message == "Unknown measure 'no-such-measure'."
    assert list(result.rows["row"]) == [2]  # only the valid row is handed on


def test_unknown_measure_with_swedish_letters_is_echoed_intact(tmp_path):
    result = validate("unknown_measure_cp1252.csv", tmp_path)

    assert result.cells() == [(2, "Mått", "bältesläggning")]
    assert "bältesläggning" in result.errors[0].message


def test_unknown_unit(tmp_path):
    result = validate("unknown_unit.csv", tmp_path)

    assert result.cells() == [(3, "unit_code", "XYZ-99")]
    assert result.errors[0].message == "Unknown unit 'XYZ-99'."


def test_bad_dates(tmp_path):
    result = validate("bad_date.csv", tmp_path)

    assert [(e.row, e.column) for e in result.errors] == [
        (2, "date"),
        (3, "date"),
        (4, "date"),
        (5, "date"),
        (6, "date"),
        (7, "date"),
    ]
    messages = [e.message for e in result.errors]
    assert "is not a date in ISO form (YYYY-MM-DD)" in messages[0]
    assert "'07/01/2025' is not a date in ISO form" in messages[1]
    assert "'2025-02-30' is not a date" in messages[2]
    assert messages[3] == "Missing date."
    assert messages[4] == "'2099-01-06' is in the future."
    assert messages[5] == "'1989-12-31' is before 1990."
    assert list(result.rows["row"]) == [8]


def test_value_outside_the_measures_range(tmp_path):
    result = validate("out_of_range.csv", tmp_path)

    assert result.cells() == [(3, "value", "49"), (4, "value", "-1")]
    assert result.errors[0].message == ("'49' is outside the valid range of honos-total (0 to 48).")
    assert list(result.rows["row"]) == [2, 5]  # 48 and 0 are the inclusive limits


def test_numerator_above_denominator(tmp_path):
    result = validate("numerator_above_denominator.csv", tmp_path)

    assert result.cells() == [(3, "numerator", "51")]
    assert result.errors[0].message == "The numerator '51' is above the denominator."


def test_missing_cells(tmp_path):
    result = validate("missing_cells.csv", tmp_path)

    assert [(e.row, e.column, e.message) for e in result.errors] == [
        (2, "measure_code", "Missing measure code."),
        (3, "unit_code", "Missing unit code."),
        (4, "value", "Missing value."),
    ]


def test_numbers_that_are_not_numbers(tmp_path):
    result = validate("not_a_number.csv", tmp_path)

    assert result.cells() == [(2, "value", "tolv"), (3, "value", "1.234,5")]
    assert result.errors[0].message == "'tolv' is not a number."
    assert result.errors[1].message == "'1.234,5' mixes a decimal point and a decimal comma."


def test_numbers_too_large_for_any_measure_are_refused(tmp_path):
    """Finite but absurd: sums and moving ranges of such numbers overflow the statistics."""
    source = (
        b"measure_code,unit_code,period_start,numerator,denominator\n"
        b"care-plan,AFF-01,2025-01-01,45,1e300\n"
        b"care-plan,AFF-01,2025-02-01,40,1000000000000000\n"
    )
    result = validate(source, tmp_path)

    assert result.cells() == [(2, "denominator", "1e300")]
    assert (
        result.errors[0].message == "'1e300' is too large: no measure holds numbers beyond ±10¹⁵."
    )


def test_proportion_rows_are_zero_or_one(tmp_path):
    result = validate("proportion_not_binary.csv", tmp_path)

    assert result.cells() == [(3, "value", "2")]
    assert "is not 0 or 1" in result.errors[0].message


def test_a_rate_cannot_come_as_patient_level_rows(tmp_path):
    result = validate("rate_as_patient_level.csv", tmp_path)

    assert result.cells() == [(2, "value", "1")]
    assert "pre-aggregated rows" in result.errors[0].message


def test_counts_are_whole_and_not_negative(tmp_path):
    result = validate("negative_count.csv", tmp_path)

    assert result.cells() == [(2, "value", "-1"), (3, "value", "1.5")]
    assert result.errors[0].message == "A count cannot be negative."
    assert "whole numbers" in result.errors[1].message


def test_aggregated_numbers(tmp_path):
    result = validate("aggregated_bad_numbers.csv", tmp_path)

    assert [(e.row, e.column, e.message) for e in result.errors] == [
        (2, "numerator", "The numerator cannot be negative."),
        # A zero denominator is one problem, not also "numerator above the denominator".
        (3, "denominator", "The denominator must be above zero."),
        (4, "numerator", "'2.5': events and patients are counted in whole numbers."),
        (5, "denominator", "Missing denominator."),
        (
            6,
            "numerator",
            "The mean (numerator / denominator) is outside the valid range of honos-total "
            "(0 to 48).",
        ),
        (
            7,
            "denominator",
            "'2.5': for a mean the denominator is the number of ratings, a whole number.",
        ),
    ]
    assert result.rows.empty


def test_period_start_must_start_the_measures_period(tmp_path):
    result = validate("period_not_start.csv", tmp_path)

    assert result.cells() == [(2, "period_start", "2025-01-15"), (3, "period_start", "2025-01-07")]
    assert result.errors[0].message == (
        "'2025-01-15' is not the start of a period: care-plan is reported per month, so "
        "period_start must be the first day of a month."
    )
    assert "incidents is reported per week" in result.errors[1].message
    assert "a Monday" in result.errors[1].message
    assert list(result.rows["row"]) == [4]


def test_quarterly_period_starts(tmp_path):
    measures = {"q": MeasureSpec(9, "q", "count", "quarter")}
    content = (
        b"measure_code,unit_code,period_start,numerator,denominator\n"
        b"q,AFF-01,2025-04-01,1,\nq,AFF-01,2025-05-01,1,\nq,AFF-01,2025-10-01,1,\n"
    )
    path = tmp_path / "q.csv"
    path.write_bytes(content)
    file = ImportFile(
        path,
        measures=measures,
        units=UNITS,
        allowed_unit_ids=None,
        today=TODAY,
        subject_secret=SECRET,
    )
    list(file.chunks())

    assert [(e.row, e.column) for e in file.errors] == [(3, "period_start")]
    assert "first day of a quarter" in file.errors[0].message


def test_a_period_given_twice_in_one_file(tmp_path):
    result = validate("duplicate_period.csv", tmp_path)

    assert result.cells() == [(4, "period_start", "2025-01-01")]
    assert result.errors[0].message == "Row 2 already gives this measure, unit and period."


def test_a_period_given_twice_across_chunks(tmp_path):
    result = validate("duplicate_period.csv", tmp_path, chunk_rows=1)

    assert result.cells() == [(4, "period_start", "2025-01-01")]


def test_wrong_field_count_is_reported_not_silently_truncated(tmp_path):
    # "12,5" unquoted in a comma-separated file: five fields, not the value 12.
    result = validate("wrong_field_count.csv", tmp_path)

    assert result.error_count >= 1
    assert result.errors[0].row == 3
    assert result.errors[0].message == (
        "The row has 5 fields where the header has 4: check the separator (',') and quoting."
    )


def test_extra_field_on_the_first_data_row_is_reported(tmp_path):
    content = b"measure_code,unit_code,date,value\nhonos-total,AFF-01,2025-01-07,12,5\n"
    result = validate(content, tmp_path)

    assert [e.row for e in result.errors] == [2]
    assert "5 fields where the header has 4" in result.errors[0].message


def test_every_problem_of_every_row_is_reported_in_file_order(tmp_path):
    result = validate("many_problems.csv", tmp_path)

    assert [(e.row, e.column) for e in result.errors] == MANY_PROBLEMS_REPORT
    assert result.error_count == 8
    assert list(result.rows["row"]) == [2, 7]


def test_error_list_is_capped_but_counted(tmp_path):
    body = b"".join(b"nope,AFF-01,2025-01-07,1\n" for _ in range(30))
    result = validate(b"measure_code,unit_code,date,value\n" + body, tmp_path, max_errors=10)

    assert result.error_count == 30
    assert len(result.errors) == 10


def test_header_only_file_has_no_rows_and_no_errors(tmp_path):
    result = validate("header_only.csv", tmp_path)

    assert result.rows_total == 0
    assert result.errors == []


# --- files rejected as a whole ----------------------------------------------------------------


def test_empty_file_is_rejected(tmp_path):
    errors = rejected("empty.csv", tmp_path)

    assert [(e.row, e.message) for e in errors] == [
        (1, "The file is empty or its first row is blank.")
    ]


def test_missing_column(tmp_path):
    errors = rejected("missing_column.csv", tmp_path)

    assert [(e.row, e.column) for e in errors] == [(1, "value")]
    assert errors[0].message.startswith("Missing column 'value'.")
    assert "measure_code, unit_code, date, value" in errors[0].message


def test_header_without_any_known_column(tmp_path):
    errors = rejected(b"foo;bar\n1;2\n", tmp_path)

    assert [e.column for e in errors] == ["measure_code", "unit_code", "date", "value"]
    assert all("its header has foo, bar" in e.message for e in errors)


def test_mixed_shapes(tmp_path):
    errors = rejected("mixed_shapes.csv", tmp_path)

    assert errors[0].row == 1
    assert "mixes patient-level columns" in errors[0].message
    assert "use one shape per file" in errors[0].message


def test_a_column_given_twice(tmp_path):
    errors = rejected(b"measure_code,measure,unit_code,date,value\n", tmp_path)

    assert [(e.row, e.column) for e in errors] == [(1, "measure")]
    assert "appears twice" in errors[0].message


# --- personal identity numbers ------------------------------------------------------------


def test_personnummer_is_refused_without_echoing_it(tmp_path):
    errors = rejected("personnummer.csv", tmp_path)

    assert [(e.row, e.column) for e in errors] == [(3, "subject_key")]
    error = errors[0]
    assert "personal identity number" in error.message
    assert "Nothing from this file was imported" in error.message
    text = f"{error.value} {error.message}"
    assert "19121212-1212" not in text
    assert "1212121212" not in text
    assert "1212" not in error.value.split("-")[-1]


def test_samordningsnummer_in_any_column_is_refused(tmp_path):
    errors = rejected("samordningsnummer.csv", tmp_path)

    assert [(e.row, e.column) for e in errors] == [(2, "anteckning")]
    assert "samordningsnummer" in errors[0].message
    assert "7010632391" not in errors[0].value + errors[0].message


def test_personnummer_with_invalid_check_digit_is_an_ordinary_subject_key(tmp_path):
    result = validate("personnummer_invalid_check_digit.csv", tmp_path)

    assert result.errors == []
    assert result.rows.iloc[0]["subject_key"] == subject_key_hash("19121212-1213", SECRET)


@pytest.mark.parametrize(
    "birth",
    ["850304", "19850304", "20100229", "850364", "000101", "991231", "121212"],
)
@pytest.mark.parametrize("separator", ["-", "+", ""])
def test_every_form_of_a_valid_number_is_refused(tmp_path, birth, separator):
    serial = "123"
    number = birth + separator + serial + luhn_check_digit(birth[-6:] + serial)
    content = (
        "measure_code,unit_code,date,value,subject_key\n"
        f"honos-total,AFF-01,2025-01-07,12,{number}\n"
    ).encode()

    errors = rejected(content, tmp_path)

    assert [(e.row, e.column) for e in errors] == [(2, "subject_key")]
    assert number not in errors[0].value


def test_a_number_in_a_value_cell_is_refused_whatever_the_column(tmp_path):
    number = "121212" + "121" + luhn_check_digit("121212121")
    content = f"measure_code;unit_code;date;value\nhonos-total;AFF-01;2025-01-07;{number}\n"

    errors = rejected(content.encode(), tmp_path)

    assert [(e.row, e.column) for e in errors] == [(2, "value")]


def test_every_row_with_an_identity_number_is_listed(tmp_path):
    number = "19121212-1212"
    body = "".join(f"honos-total,AFF-01,2025-01-07,12,{number}\n" for _ in range(3))
    content = ("measure_code,unit_code,date,value,subject_key\n" + body).encode()

    assert [e.row for e in rejected(content, tmp_path)] == [2, 3, 4]


@pytest.mark.parametrize(
    "text",
    [
        "2025-01-07",  # an ISO date
        "20250107",  # a compact date
        "12345678901234",  # a long number
        "121212-1213",  # wrong check digit
        "121312-1212",  # month 13
        "121200-1212",  # day 0
        "121292-1212",  # day 92 (past the samordningsnummer range)
    ],
)
def test_things_that_are_not_identity_numbers_pass(tmp_path, text):
    content = (
        f"measure_code,unit_code,date,value,subject_key\nhonos-total,AFF-01,2025-01-07,12,{text}\n"
    )

    assert validate(content.encode(), tmp_path).errors == []


def test_luhn():
    assert luhn_valid("1212121212")
    assert not luhn_valid("1212121213")
    assert luhn_valid("7010632391")  # Skatteverket's example samordningsnummer
    assert looks_like_personal_number("19121212", "1212")
    assert looks_like_personal_number("701063", "2391")
    assert not looks_like_personal_number("121312", "1212")


# --- numbers ------------------------------------------------------------------------------


def test_parse_numbers():
    numbers, ambiguous = parse_numbers(
        pd.Series(["1,5", "2.25", "1 234", "1\u00a0234,5", "1.234,5", "x", "inf", "-3"])
    )

    assert list(numbers[:4]) == [1.5, 2.25, 1234.0, 1234.5]
    assert pd.isna(numbers[4]) and pd.isna(numbers[5]) and pd.isna(numbers[6])
    assert numbers[7] == -3.0
    assert list(ambiguous) == [False, False, False, False, True, False, False, False]


# --- the example files offered on the upload page ------------------------------------------------


@pytest.mark.parametrize(
    ("name", "shape", "rows"),
    [("patient-level.csv", PATIENT, 5), ("pre-aggregated.csv", AGGREGATE, 3)],
)
def test_the_example_files_are_valid(tmp_path, name, shape, rows):
    """The demo division's codes, as the examples use them."""
    from django.conf import settings

    measures = {
        "honos-total": MeasureSpec(1, "honos-total", "mean", "week", 0.0, 48.0),
        "care-plan": MeasureSpec(2, "care-plan", "proportion", "month"),
        "eq5d-index": MeasureSpec(3, "eq5d-index", "mean", "month", -0.6, 1.0),
        "coercion-rate": MeasureSpec(4, "coercion-rate", "rate", "week"),
        "register-reported": MeasureSpec(5, "register-reported", "proportion", "week"),
    }
    units = {"AFF-AVD1": 1, "AFF-OPV1": 2, "PSY-AVD1": 3, "PSY-AVD2": 4}
    path = Path(settings.BASE_DIR) / "static" / "examples" / name
    file = ImportFile(
        path,
        measures=measures,
        units=units,
        allowed_unit_ids=None,
        today=TODAY,
        subject_secret=SECRET,
    )
    list(file.chunks())

    assert file.errors == []
    assert (file.shape, file.rows_total) == (shape, rows)


# --- caps and chunk sizes -------------------------------------------------------------------


def _chunk_rows(content: bytes, tmp_path: Path) -> int:
    path = tmp_path / "upload.csv"
    path.write_bytes(content)
    return ImportFile(
        path,
        measures=MEASURES,
        units=UNITS,
        allowed_unit_ids=None,
        today=TODAY,
        subject_secret=SECRET,
    ).chunk_rows


def test_wide_or_long_lined_files_are_read_in_smaller_chunks(tmp_path):
    # A normal file keeps 250,000 rows a chunk (the import benchmark depends on it).
    content = b"measure_code;unit_code;date;value;subject_key\n"
    content += b"honos-total;AFF-01;2025-01-06;12;P000123\n" * 100
    assert _chunk_rows(content, tmp_path) == 250_000

    wide = ",".join(["measure_code", "unit_code", "date", "value"] + [f"x{i}" for i in range(46)])
    assert _chunk_rows((wide + "\n" + "a," * 49 + "a\n").encode(), tmp_path) == 40_000

    long_cells = (
        b"measure_code,unit_code,date,value\n"
        + (b"honos-total,AFF-01,2025-01-06," + b"9" * 20_000 + b"\n") * 10
    )
    assert 3_000 < _chunk_rows(long_cells, tmp_path) < 4_000  # 64 MB of 20 kB lines


def test_a_header_of_51_columns_is_rejected_with_the_limit(tmp_path):
    header = ",".join(["measure_code", "unit_code", "date", "value"] + [f"x{i}" for i in range(47)])

    errors = rejected((header + "\n").encode(), tmp_path)

    assert [(e.row, e.code) for e in errors] == [(1, "too_many_columns")]
    assert "51 columns; at most 50" in errors[0].message
    assert "x46" not in errors[0].message


def test_a_cr_only_file_reads_like_its_lf_twin(tmp_path):
    lf = (FIXTURES / "patient_level.csv").read_bytes().replace(b"\r\n", b"\n")
    cr = lf.replace(b"\n", b"\r")

    twin = validate(lf, tmp_path)
    mac = validate(cr, tmp_path)

    assert mac.errors == twin.errors == []
    assert mac.rows_total == twin.rows_total > 0
    pd.testing.assert_frame_equal(mac.rows, twin.rows)


def test_row_error_values_are_cut_when_made(tmp_path):
    from measures.importing import RowError

    error = RowError(2, "value", "x" * 20_000, "not_a_number")

    assert len(error.value) == 200
    assert error.value.endswith("…")
    assert error.message.startswith("'xxx")


def test_an_unclosed_quote_names_its_row(tmp_path):
    content = b"measure_code,unit_code,date,value\nhonos-total,AFF-01,2025-01-06,5\n"
    content += b'honos-total,AFF-01,2025-01-06,"5\n' + b"honos-total,AFF-01,2025-01-06,5\n" * 3

    result = validate(content, tmp_path)

    assert [(e.row, e.code) for e in result.errors] == [(3, "unclosed_quote")]
    assert result.errors[0].message.startswith("A quote opened in row 3 is never closed")
