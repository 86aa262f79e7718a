"""Reading and validating import files: pandas and the standard library, no database.

A file is read twice, both times streamed: once as raw bytes (encoding, row count, and the
personal-identity-number guard) and once in pandas chunks, which are validated with vectorised
checks and handed, clean, to the writer. Every problem is reported with the file's own row
number (the header is row 1, as a spreadsheet shows it), the column, the value and what is
wrong; a caller must not write anything from a file that produced errors.
"""

from __future__ import annotations

import codecs
import csv
import hashlib
import hmac
import os
import re
import tempfile
import weakref
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd

from .problems import SUMMARY_ROWS, clip, render

PATIENT = "patient"
AGGREGATE = "aggregate"

#: Canonical column → accepted header spellings (compared lower-case, spaces/hyphens as "_").
COLUMN_ALIASES: dict[str, tuple[str, ...]] = {
    "measure_code": ("measure_code", "measure", "mått", "måttkod", "matt", "mattkod", "indikator"),
    "unit_code": ("unit_code", "unit", "enhet", "enhetskod", "vårdenhet", "vardenhet"),
    "date": ("date", "datum"),
    "value": ("value", "värde", "varde"),
    "subject_key": ("subject_key", "subject", "patientnyckel", "pseudonym", "nyckel"),
    "period_start": ("period_start", "period", "periodstart", "period_från", "period_fran"),
    "numerator": ("numerator", "täljare", "taljare"),
    "denominator": ("denominator", "nämnare", "namnare"),
}
SHAPE_COLUMNS = {
    PATIENT: (("measure_code", "unit_code", "date", "value"), ("subject_key",)),
    AGGREGATE: (("measure_code", "unit_code", "period_start", "numerator", "denominator"), ()),
}
_ALIAS_TO_COLUMN = {alias: col for col, aliases in COLUMN_ALIASES.items() for alias in aliases}

CHUNK_ROWS = 250_000
#: A chunk holds at most about this many cells and bytes of text, whatever the file's shape:
#: a normal 4–6 column file keeps CHUNK_ROWS rows a chunk, a wide or long-lined one fewer.
CHUNK_CELLS = 2_000_000
CHUNK_BYTES = 64 << 20
MAX_ERRORS = 10_000
#: Caps that reject a file at once, before pandas reads it: no import file needs more.
MAX_HEADER_BYTES = 8 << 10
MAX_COLUMNS = 50
MAX_ROW_BYTES = 64 << 10
_BLOCK = 1 << 20


@dataclass(frozen=True)
class MeasureSpec:
    """What validation needs to know of a measure."""

    id: int
    code: str
    kind: str  # proportion | mean | count | rate
    frequency: str  # week | month | quarter
    value_min: float | None = None
    value_max: float | None = None
    #: For a department- or unit-scoped measure, the units it may hold data for.
    unit_ids: frozenset[int] | None = None
    owner: str = ""


@dataclass(frozen=True, order=True)
class RowError:
    """One problem: where (row, column, the cell's text) and what (a code and parameters).

    The sentence (``message``) is rendered in the active language when read, so a report
    written by a worker reads in each reader's language. The cell's text is cut to
    ``problems.VALUE_CHARS`` here, so ten thousand errors never hold ten thousand long cells.
    """

    row: int  # 1-based row in the file; the header is row 1; 0 for the file as a whole
    column: str
    value: str
    code: str
    params: dict = field(default_factory=dict, compare=False, hash=False)

    def __post_init__(self):
        object.__setattr__(self, "column", clip(self.column))
        object.__setattr__(self, "value", clip(self.value))

    @property
    def message(self) -> str:
        return render(self.code, self.params, value=self.value)

    def as_dict(self) -> dict:
        return {
            "row": self.row,
            "column": self.column,
            "value": self.value,
            "code": self.code,
            "params": self.params,
        }


class FileRejected(Exception):
    """The file cannot be read at all (encoding, header, personal identity numbers, …).

    ``rows_total`` is how many data rows the file holds (its lines less the header).
    """

    def __init__(
        self, errors: list[RowError], *, personal_numbers: bool = False, rows_total: int = 0
    ):
        super().__init__("; ".join(e.code for e in errors[:3]))
        self.errors = errors
        self.personal_numbers = personal_numbers
        self.rows_total = rows_total


@dataclass
class FileLayout:
    encoding: str
    separator: str
    shape: str
    header: list[str]
    #: canonical column name → position in the file
    positions: dict[str, int]
    line_count: int
    ignored_columns: list[str] = field(default_factory=list)
    #: The longest line in bytes (with its line break), to size the chunks.
    longest_line: int = 0
    #: The file pandas reads: the upload, or a copy with CR line endings made LF.
    path: Path | None = None


# --- personal identity numbers -------------------------------------------------------------

# 6 or 8 digits of birth date, an optional - or +, 4 digits; not inside a longer number.
_PNR = re.compile(rb"(?<![0-9])((?:18|19|20)?[0-9]{6})[-+]?([0-9]{4})(?![0-9])")


def luhn_valid(digits: str) -> bool:
    """Luhn (mod 10) check as used for Swedish personnummer (Skatteverket SKV 704)."""
    total = 0
    for i, ch in enumerate(digits):
        n = int(ch) * (2 if i % 2 == 0 else 1)
        total += n - 9 if n > 9 else n
    return total % 10 == 0


def looks_like_personal_number(birth: str, tail: str) -> bool:
    """A personnummer or samordningsnummer (day + 60) with a valid check digit.

    Skatteverket SKV 704 (personnummer) and SKV 707 (samordningsnummer). ``birth`` is YYMMDD
    or YYYYMMDD, ``tail`` the three serial digits and the check digit.
    """
    short = birth[-6:]
    month, day = int(short[2:4]), int(short[4:6])
    if not 1 <= month <= 12:
        return False
    if not (1 <= day <= 31 or 61 <= day <= 91):
        return False
    return luhn_valid(short + tail)


def _field_at(line: bytes, pos: int, sep: bytes) -> int:
    """Index of the field (0-based) of ``line`` that holds byte offset ``pos``."""
    return line[:pos].count(sep)


# --- layout ---------------------------------------------------------------------------------


def _normalise_header(name: str) -> str:
    return re.sub(r"[\s\-]+", "_", name.strip().strip('"').strip().lower())


def detect_encoding(path: Path) -> str:
    """UTF-8 (with or without BOM) when the whole file decodes as such, else Windows-1252.

    Excel on Swedish Windows saves "CSV" as Windows-1252; Latin-1 differs from it only in
    0x80–0x9F, where Latin-1 has control characters no real file contains.
    """
    with open(path, "rb") as fh:
        head = fh.read(3)
        fh.seek(0)
        decoder = codecs.getincrementaldecoder("utf-8")()
        try:
            while block := fh.read(_BLOCK):
                decoder.decode(block)
            decoder.decode(b"", final=True)
        except UnicodeDecodeError:
            pass
        else:
            return "utf-8-sig" if head == codecs.BOM_UTF8 else "utf-8"
        # Windows-1252 leaves five bytes undefined; a file using them is Latin-1.
        fh.seek(0)
        decoder = codecs.getincrementaldecoder("cp1252")()
        try:
            while block := fh.read(_BLOCK):
                decoder.decode(block)
        except UnicodeDecodeError:
            return "latin-1"
    return "cp1252"


#: Control characters no CSV text holds (tab, line feed and carriage return excepted).
_CONTROL = bytes([*range(1, 9), 11, 12, *range(14, 32), 127])
_SAMPLE = 64 << 10


def _kilobytes(size: int) -> str:
    return f"{size / 1024:,.0f} kB" if size >= 1024 else f"{size:,} B"


def _names(header: list[str], limit: int = 10) -> str:
    """The first few column names, each cut short: never a whole (huge) header."""
    shown = ", ".join(clip(name, 40) for name in header[:limit])
    return (shown + ", …" if len(header) > limit else shown) or "-"


def _scan_lines(path: Path) -> tuple[int, int, int]:
    """Lines in the file, the longest one's length in bytes and its row (1-based).

    Block by block with numpy: the positions of the line feeds give every line's length
    without a Python loop over lines.
    """
    lines = longest = longest_row = 0
    open_line = 0  # bytes of the line still open at the end of the previous block
    with open(path, "rb") as fh:
        while block := fh.read(_BLOCK):
            feeds = np.flatnonzero(np.frombuffer(block, dtype=np.uint8) == 10)
            if not len(feeds):
                open_line += len(block)
                continue
            lengths = np.diff(feeds, prepend=-1)
            lengths[0] += open_line
            at = int(lengths.argmax())
            if lengths[at] > longest:
                longest, longest_row = int(lengths[at]), lines + at + 1
            lines += len(feeds)
            open_line = len(block) - int(feeds[-1]) - 1
    if open_line:
        # A last line without a newline is a row too.
        lines += 1
        if open_line > longest:
            longest, longest_row = open_line, lines
    return lines, longest, longest_row


def _lf_copy(path: Path) -> Path:
    """A copy of a file with CR-only line endings (Excel for Mac's "CSV (Macintosh)") with
    LF endings, so row numbers and the byte scans work as for any other file."""
    handle, name = tempfile.mkstemp(prefix="lhs-import-", suffix=".csv")
    with open(path, "rb") as source, os.fdopen(handle, "wb") as copy:
        while block := source.read(_BLOCK):
            copy.write(block.replace(b"\r", b"\n"))
    return Path(name)


def read_layout(path: Path) -> FileLayout:
    """Encoding, separator, row shape and column positions, from the header line.

    Rejects at once, before any parsing, what no import file looks like: a binary file, a
    header over MAX_HEADER_BYTES or MAX_COLUMNS, a row over MAX_ROW_BYTES.
    """
    path = Path(path)
    encoding = detect_encoding(path)
    with open(path, "rb") as fh:
        sample = fh.read(_SAMPLE)
    read_path = path
    if b"\r" in sample and b"\n" not in sample:
        read_path = _lf_copy(path)
        sample = sample.replace(b"\r", b"\n")
    line_count, longest, longest_row = _scan_lines(read_path)
    rows_total = max(line_count - 1, 0)

    def reject(at: int, code: str, **params) -> FileRejected:
        if read_path != path:
            read_path.unlink(missing_ok=True)
        return FileRejected([RowError(at, "", "", code, params)], rows_total=rows_total)

    with open(read_path, "rb") as fh:
        first = fh.readline(MAX_HEADER_BYTES + 1)
    if b"\x00" in first:
        # A workbook (.xlsx is a zip) or UTF-16 text ("Unicode text" from Excel), not CSV.
        raise reject(1, "not_csv_nul")
    control = sum(sample.count(byte) for byte in _CONTROL)
    if control > max(8, len(sample) // 100):
        raise reject(1, "not_csv_binary")
    if len(first) > MAX_HEADER_BYTES:
        raise reject(1, "header_too_long", limit=_kilobytes(MAX_HEADER_BYTES))
    try:
        header_text = first.decode(encoding).lstrip("\ufeff").rstrip("\r\n")
    except UnicodeDecodeError:
        header_text = first.decode("latin-1").rstrip("\r\n")
    if not header_text.strip():
        raise reject(1, "empty_header")
    separator = ";" if header_text.count(";") > header_text.count(",") else ","
    if header_text.count("\t") > max(header_text.count(";"), header_text.count(",")):
        separator = "\t"
    try:
        header = next(csv.reader([header_text], delimiter=separator), [])
    except csv.Error as exc:
        raise reject(1, "header_unreadable", error=clip(exc)) from exc
    if len(header) > MAX_COLUMNS:
        raise reject(
            1,
            "too_many_columns",
            count=f"{len(header):,}",
            limit=MAX_COLUMNS,
            header=_names(header),
        )
    if longest > MAX_ROW_BYTES:
        raise reject(
            longest_row,
            "row_too_long",
            row=longest_row,
            size=_kilobytes(longest),
            limit=_kilobytes(MAX_ROW_BYTES),
        )
    positions: dict[str, int] = {}
    errors: list[RowError] = []
    ignored: list[str] = []
    for index, raw in enumerate(header):
        column = _ALIAS_TO_COLUMN.get(_normalise_header(raw))
        if column is None:
            ignored.append(raw)
            continue
        if column in positions:
            errors.append(RowError(1, raw, raw, "column_twice", {"column": repr(column)}))
        positions[column] = index
    is_aggregate = any(c in positions for c in ("period_start", "numerator", "denominator"))
    is_patient = any(c in positions for c in ("date", "value"))
    if is_aggregate and is_patient:
        errors.append(RowError(1, "", header_text, "mixed_shapes"))
    shape = AGGREGATE if is_aggregate else PATIENT
    required, _optional = SHAPE_COLUMNS[shape]
    for column in required:
        if column not in positions:
            errors.append(
                RowError(
                    1,
                    column,
                    "",
                    "missing_column",
                    {
                        "column": repr(column),
                        "required": ", ".join(required),
                        "header": _names(header),
                    },
                )
            )
    if errors:
        if read_path != path:
            read_path.unlink(missing_ok=True)
        raise FileRejected(errors, rows_total=rows_total)
    layout = FileLayout(
        encoding, separator, shape, header, positions, line_count, ignored, longest, read_path
    )
    if read_path != path:
        weakref.finalize(layout, read_path.unlink, missing_ok=True)
    return layout


def scan_personal_numbers(path: Path, layout: FileLayout, limit: int = 100) -> list[RowError]:
    """Every cell that looks like a Swedish personal identity number, by row and column.

    Scans raw bytes (digits are ASCII in every accepted encoding), which is much faster than
    testing each parsed cell. The number itself is never echoed back.
    """
    sep = layout.separator.encode()
    found: list[RowError] = []
    row_offset = 0  # rows before the current block
    carry = b""
    with open(path, "rb") as fh:
        while len(found) < limit:
            block = fh.read(4 * _BLOCK)
            if not block and not carry:
                break
            block, carry = (carry + block, b"") if not block else _split_last_line(carry + block)
            if not _may_hold_personal_number(block):
                row_offset += block.count(b"\n")
                continue
            for match in _PNR.finditer(block):
                if not looks_like_personal_number(match.group(1).decode(), match.group(2).decode()):
                    continue
                row = row_offset + block.count(b"\n", 0, match.start()) + 1
                if found and found[-1].row == row:
                    continue  # one report per row is enough
                line_start = block.rfind(b"\n", 0, match.start()) + 1
                index = _field_at(block[line_start:], match.start() - line_start, sep)
                column = layout.header[index] if index < len(layout.header) else f"#{index + 1}"
                found.append(
                    RowError(
                        row,
                        column,
                        # Not even the birth date: a masked value that still shows the shape.
                        "*" * len(match.group(1)) + "-****",
                        "personal_number",
                    )
                )
                if len(found) >= limit:
                    break
            row_offset += block.count(b"\n")
    return found


_DIGITS_AS_ZERO = bytes.maketrans(b"0123456789", b"0" * 10)


def _may_hold_personal_number(block: bytes) -> bool:
    """A fast screen: ten digits in a row, or six, a - or +, and four.

    ``translate`` and ``find`` run at memory speed; the regular expression only runs on the
    rare block that passes.
    """
    digits = block.translate(_DIGITS_AS_ZERO)
    return any(digits.find(p) >= 0 for p in (b"0" * 10, b"000000-0000", b"000000+0000"))


def _split_last_line(data: bytes) -> tuple[bytes, bytes]:
    """Whole lines, and the unfinished last line to carry into the next block."""
    cut = data.rfind(b"\n") + 1
    return (data, b"") if cut == 0 else (data[:cut], data[cut:])


# --- row validation -------------------------------------------------------------------------


def subject_key_hash(raw: str, secret: bytes) -> str:
    """Keyed hash (HMAC-SHA-256, RFC 2104) of a subject key, 128 bits in hex."""
    return hmac.digest(secret, raw.encode(), "sha256")[:16].hex()


#: The largest magnitude a number in a file may have (±10¹⁵).
MAX_ABS_NUMBER = 1e15


def parse_numbers(text: pd.Series) -> tuple[pd.Series, pd.Series]:
    """Numbers with a decimal point or a decimal comma, spaces as thousands separators.

    Returns the numbers (NaN where not a number) and a mask of texts that were ambiguous
    (both a point and a comma, such as 1.234,5).
    """
    cleaned = text.str.replace("\u00a0", "", regex=False).str.replace(" ", "", regex=False)
    ambiguous = cleaned.str.contains(".", regex=False) & cleaned.str.contains(",", regex=False)
    numbers = pd.to_numeric(cleaned.str.replace(",", ".", regex=False), errors="coerce")
    numbers = numbers.where(np.isfinite(numbers))
    return numbers.where(~ambiguous), ambiguous


def _period_start_ok(dates: pd.Series, frequency: pd.Series) -> pd.Series:
    weekly = (frequency == "week") & (dates.dt.day_of_week == 0)
    monthly = (frequency == "month") & (dates.dt.day == 1)
    quarterly = (frequency == "quarter") & (dates.dt.day == 1) & (dates.dt.month % 3 == 1)
    return weekly | monthly | quarterly


CLEAN_COLUMNS = (
    "row",
    "measure_id",
    "unit_id",
    "date",
    "value",
    "numerator",
    "denominator",
    "subject_key",
    "row_hash",
)


class ImportFile:
    """One file being validated. Iterate :meth:`chunks` for clean rows; then read ``errors``.

    ``measures`` and ``units`` map codes (any case) to what validation needs; ``allowed_unit_ids``
    is the set of unit ids the uploader may import for (``None``: all).
    """

    def __init__(
        self,
        path: Path | str,
        *,
        measures: Mapping[str, MeasureSpec],
        units: Mapping[str, int],
        allowed_unit_ids: set[int] | None,
        today: date,
        subject_secret: bytes,
        chunk_rows: int = CHUNK_ROWS,
        max_errors: int = MAX_ERRORS,
        inactive_unit_ids: set[int] | frozenset[int] = frozenset(),
    ):
        self.path = Path(path)
        self.measures = {code.lower(): spec for code, spec in measures.items()}
        self._scoped = [spec for spec in self.measures.values() if spec.unit_ids is not None]
        # One dict per attribute: Series.map with a dict is a vectorised hash lookup, a
        # function per row is not (five times slower on a million rows).
        self._by_code = {
            attribute: {code: getattr(spec, attribute) for code, spec in self.measures.items()}
            for attribute in ("id", "kind", "frequency", "value_min", "value_max")
        }
        self.units = {code.upper(): unit_id for code, unit_id in units.items()}
        self.allowed_unit_ids = allowed_unit_ids
        self.inactive_unit_ids = set(inactive_unit_ids)
        self.today = pd.Timestamp(today)
        self.subject_secret = subject_secret
        self.max_errors = max_errors
        self.errors: list[RowError] = []
        self.error_count = 0
        #: code → [how many rows have it, its first rows]: every problem, also those not kept.
        self.problems: dict[str, list] = {}
        self.rows_total = 0
        self.layout = read_layout(self.path)
        # The file as read: a CR-only upload's LF copy, so rows are counted as pandas does.
        personal_numbers = scan_personal_numbers(self.layout.path or self.path, self.layout)
        if personal_numbers:
            raise FileRejected(
                personal_numbers,
                personal_numbers=True,
                rows_total=max(self.layout.line_count - 1, 0),
            )
        # A chunk's memory is bounded by its cells and its bytes, not by its rows alone. By
        # the mean line, not the longest: one long line must not make a file of short ones
        # crawl through in thousands of chunks (it adds at most MAX_ROW_BYTES to its chunk).
        columns = max(len(self.layout.header), 1)
        lines = max(self.layout.line_count, 1)
        mean_line = max(os.path.getsize(self.layout.path or self.path) // lines, 1)
        bounded = max(1000, min(CHUNK_CELLS // columns, CHUNK_BYTES // mean_line))
        self.chunk_rows = min(chunk_rows, bounded)
        # (measure_id, unit_id, period) → first row, to refuse a period given twice in one file.
        self._aggregate_keys: dict[tuple[int, int, int], int] = {}
        # Per file: how often each row content has been seen, and subject keys hashed so far.
        self._seen = pd.Index([], dtype="int64")
        self._seen_counts = np.zeros(0, dtype="int64")
        self._subject_hashes: dict[str, tuple[str | None, int]] = {}

    @property
    def shape(self) -> str:
        return self.layout.shape

    @property
    def estimated_rows(self) -> int:
        return max(self.layout.line_count - 1, 0)

    # errors --------------------------------------------------------------------------------

    def _add_errors(
        self,
        rows: pd.Series,
        column: str,
        values: pd.Series,
        specs: pd.Series,
        code: str,
        params: dict | None = None,
    ) -> None:
        """Record one error per row in ``rows`` (the file row numbers where the check failed).

        The error's parameters are ``params`` and what the row's measure allows.
        """
        count = len(rows)
        if not count:
            return
        self.error_count += count
        self._count_problem(code, count, rows.iloc[:SUMMARY_ROWS].tolist())
        room = self.max_errors - len(self.errors)
        if room <= 0:
            return
        header = self._header_name(column)
        for row, value, spec in zip(
            rows.iloc[:room], values.iloc[:room], specs.iloc[:room], strict=True
        ):
            self.errors.append(
                RowError(int(row), header, value, code, {**_spec_params(spec), **(params or {})})
            )

    def _count_problem(self, code: str, count: int, first_rows: list[int]) -> None:
        """Count every problem by code, and keep each code's first rows (the summary)."""
        found = self.problems.get(code)
        if found is None:
            self.problems[code] = [count, sorted(int(r) for r in first_rows)[:SUMMARY_ROWS]]
        else:
            found[0] += count
            found[1] = sorted({*found[1], *(int(r) for r in first_rows)})[:SUMMARY_ROWS]

    def problem_summary(self) -> list[dict]:
        """Every distinct problem: its code, how many rows have it, the first of them, and the
        first stored example (for its sentence)."""
        return summarise(self.errors, self.problems)

    def _header_name(self, column: str) -> str:
        index = self.layout.positions.get(column)
        return self.layout.header[index] if index is not None else column

    # reading -------------------------------------------------------------------------------

    def _reader(self):
        layout = self.layout
        # Every column and the header as a row: only so does pandas check each row's field
        # count against the header's. With ``usecols`` (or a header row) it silently drops
        # extra fields, so an unquoted decimal comma (12,5) would be imported as 12.
        return pd.read_csv(
            layout.path or self.path,
            sep=layout.separator,
            encoding=layout.encoding,
            header=None,
            dtype=str,
            keep_default_na=False,
            na_filter=False,
            skip_blank_lines=False,
            chunksize=self.chunk_rows,
            engine="c",
        )

    def chunks(self) -> Iterator[pd.DataFrame]:
        """Validated rows, chunk by chunk: only rows without any error are yielded.

        Columns: row, measure_id, unit_id, date, value, numerator, denominator, subject_key,
        row_hash. ``date`` is the observation date or the period start.
        """
        names = {index: column for column, index in self.layout.positions.items()}
        first_row = 1  # the header, read as a row and dropped below
        try:
            for raw in self._reader():
                raw.index = pd.RangeIndex(first_row, first_row + len(raw))
                first_row += len(raw)
                raw = raw[sorted(names)].rename(columns=names).drop(index=1, errors="ignore")
                raw = raw.fillna("")
                # Excel leaves rows of bare separators behind; they carry nothing.
                stripped = raw.apply(lambda col: col.str.strip())
                raw = stripped[(stripped != "").any(axis=1)]
                self.rows_total += len(raw)
                clean = self._validate(raw)
                if len(clean):
                    yield clean
        except (pd.errors.ParserError, pd.errors.EmptyDataError, csv.Error, OverflowError) as exc:
            self._parser_error(exc)
        except UnicodeDecodeError as exc:  # pragma: no cover - detect_encoding guards this
            self._append(RowError(0, "", "", "unreadable_characters", {"error": clip(exc)}))
        order = {name: index for index, name in enumerate(self.layout.header)}
        self.errors.sort(key=lambda e: (e.row, order.get(e.column, len(order)), e.code))

    def _parser_error(self, exc: Exception) -> None:
        text = str(exc)
        match = re.search(r"line (\d+), saw (\d+)", text)
        expected = re.search(r"Expected (\d+) fields", text)
        if match and expected:
            error = RowError(
                int(match.group(1)),
                "",
                "",
                "field_count",
                {
                    "found": match.group(2),
                    "expected": expected.group(1),
                    "separator": repr(self.layout.separator),
                },
            )
        elif quote := re.search(r"EOF inside string starting at row (\d+)", text):
            # pandas counts from 0 with the header as a row; the file's rows count from 1.
            row = int(quote.group(1)) + 1
            error = RowError(row, "", "", "unclosed_quote", {"row": row})
        else:
            error = RowError(0, "", "", "unreadable_csv", {"error": clip(text)})
        self._append(error)

    def _append(self, error: RowError) -> None:
        """Count one problem, and keep it while there is room."""
        self.error_count += 1
        self._count_problem(error.code, 1, [error.row])
        if len(self.errors) < self.max_errors:
            self.errors.append(error)

    # validation ----------------------------------------------------------------------------

    def _validate(self, raw: pd.DataFrame) -> pd.DataFrame:
        rows = pd.Series(raw.index, index=raw.index)
        bad = pd.Series(False, index=raw.index)
        measure_text, unit_text = raw["measure_code"], raw["unit_code"]
        codes = measure_text.str.lower()
        measure_id = _lookup(codes, self._by_code["id"])

        failed_cells: dict[str, pd.Series] = {}

        def fail(mask: pd.Series, column: str, code: str, params: dict | None = None) -> None:
            """Report rows where ``mask`` holds: every problem of a row, one per cell."""
            nonlocal bad
            done = failed_cells.get(column)
            mask = mask.fillna(False).astype(bool)
            if done is not None:
                mask &= ~done
            if mask.any():
                specs = codes[mask].map(self.measures)
                self._add_errors(rows[mask], column, raw.loc[mask, column], specs, code, params)
                failed_cells[column] = mask if done is None else done | mask
                bad = bad | mask

        fail(measure_text == "", "measure_code", "missing_measure")
        fail(measure_id.isna(), "measure_code", "unknown_measure")
        unit_id = _lookup(unit_text.str.upper(), self.units)
        fail(unit_text == "", "unit_code", "missing_unit")
        fail(unit_id.isna(), "unit_code", "unknown_unit")
        if self.inactive_unit_ids:
            fail(unit_id.isin(self.inactive_unit_ids), "unit_code", "inactive_unit")
        if self.allowed_unit_ids is not None:
            fail(
                ~unit_id.isin(self.allowed_unit_ids),
                "unit_code",
                "unit_not_allowed",
            )

        for spec in self._scoped:
            fail(
                (measure_id == spec.id) & unit_id.notna() & ~unit_id.isin(spec.unit_ids),
                "unit_code",
                "measure_scope",
            )

        known = codes.where(~bad)
        kind = _lookup(known, self._by_code["kind"])
        frequency = _lookup(known, self._by_code["frequency"])
        low = _lookup(known, self._by_code["value_min"]).astype(float)
        high = _lookup(known, self._by_code["value_max"]).astype(float)

        date_column = "date" if self.shape == PATIENT else "period_start"
        date_text = raw[date_column]
        dates = pd.to_datetime(date_text, format="%Y-%m-%d", errors="coerce")
        fail(date_text == "", date_column, "missing_date")
        fail(dates.isna(), date_column, "not_iso_date")
        fail(dates > self.today, date_column, "future_date")
        fail(dates.dt.year < 1990, date_column, "before_1990")

        out = pd.DataFrame({"row": rows, "date": dates}, index=raw.index)
        if self.shape == PATIENT:
            value = self._number(raw, "value", fail, required=True)
            fail(
                kind == "rate",
                "value",
                "rate_needs_aggregate",
            )
            fail(
                (kind == "proportion") & ~value.isin([0.0, 1.0]),
                "value",
                "proportion_not_0_1",
            )
            fail((kind == "count") & (value < 0), "value", "count_negative")
            fail(
                (kind == "count") & (value != np.round(value)),
                "value",
                "not_whole",
            )
            fail(
                (value < low) | (value > high),
                "value",
                "out_of_range",
            )
            out["value"] = value
            out["numerator"] = np.nan
            out["denominator"] = np.nan
            if "subject_key" in raw:
                out["subject_key"], subject_ints = self._hash_subject_keys(raw["subject_key"])
            else:
                out["subject_key"] = None
                subject_ints = np.zeros(len(raw), dtype="int64")
        else:
            numerator = self._number(raw, "numerator", fail, required=True)
            denominator = self._number(raw, "denominator", fail, required=False)
            fail(
                (raw["denominator"] == "") & (kind != "count"),
                "denominator",
                "missing_denominator",
            )
            fail(numerator < 0, "numerator", "numerator_negative")
            fail(denominator <= 0, "denominator", "denominator_not_positive")
            fail(
                (kind == "proportion") & (denominator > 0) & (numerator > denominator),
                "numerator",
                "numerator_above_denominator",
            )
            fail(
                kind.isin(["count", "rate", "proportion"]) & (numerator != np.round(numerator)),
                "numerator",
                "not_whole",
            )
            fail(
                (kind == "mean") & (denominator != np.round(denominator)),
                "denominator",
                "mean_denominator_whole",
            )
            mean = numerator / denominator
            fail(
                (kind == "mean") & ((mean < low) | (mean > high)),
                "numerator",
                "mean_out_of_range",
            )
            fail(
                frequency.notna() & dates.notna() & ~_period_start_ok(dates, frequency),
                "period_start",
                "not_period_start",
            )
            subject_ints = np.zeros(len(raw), dtype="int64")
            out["value"] = np.nan
            out["numerator"] = numerator
            out["denominator"] = denominator
            out["subject_key"] = None

        out["measure_id"] = measure_id
        out["unit_id"] = unit_id
        keep = ~bad.to_numpy()
        out = out[keep]
        if not len(out):
            return out
        out = out.astype({"measure_id": "int64", "unit_id": "int64"})
        if self.shape == AGGREGATE:
            out = self._drop_repeated_periods(out, raw)
            out["row_hash"] = np.int64(0)
        else:
            out["row_hash"] = self._row_hashes(out, subject_ints[keep])
        return out[list(CLEAN_COLUMNS)]

    def _row_hashes(self, out: pd.DataFrame, subject_ints: np.ndarray) -> np.ndarray:
        """The natural key's last part for patient-level rows: content hash XOR repeat number.

        The same rating of the same subject twice on one day is two rows: repeats are numbered
        0, 1, 2 … in file order across the whole file, so the same extract uploaded again maps
        onto the same keys. The numbering keeps one count per distinct content seen so far.
        """
        content = content_hash(
            out["measure_id"].to_numpy(),
            out["unit_id"].to_numpy(),
            out["date"].to_numpy().astype("datetime64[D]").astype("int64"),
            out["value"].to_numpy(dtype="float64"),
            subject_ints,
        )
        series = pd.Series(content)
        within = np.zeros(len(content), dtype="int64")
        if series.duplicated().any():
            within = series.groupby(content, sort=False).cumcount().to_numpy()
        distinct, inverse, counts = np.unique(content, return_inverse=True, return_counts=True)
        position = self._seen.get_indexer(distinct)
        known = position >= 0
        earlier = np.zeros(len(distinct), dtype="int64")
        earlier[known] = self._seen_counts[position[known]]
        self._seen_counts[position[known]] += counts[known]
        self._seen = self._seen.append(pd.Index(distinct[~known]))
        self._seen_counts = np.concatenate([self._seen_counts, counts[~known]])
        return np.bitwise_xor(content, within + earlier[inverse])

    def _hash_subject_keys(self, keys: pd.Series) -> tuple[pd.Series, np.ndarray]:
        """HMAC of each subject key (hex, for storage) and its first 64 bits (for the key).

        Each distinct key is hashed once per file (a patient has many rows); a plain dict
        remembers them across chunks.
        """
        codes, uniques = pd.factorize(keys)
        cache, secret = self._subject_hashes, self.subject_secret
        found = []
        for key in uniques.tolist():
            hit = cache.get(key)
            if hit is None:
                if key:
                    digest = subject_key_hash(key, secret)
                    number = int(digest[:16], 16)
                    hit = (digest, number - (1 << 64) if number >= 1 << 63 else number)
                else:
                    hit = (None, 0)
                cache[key] = hit
            found.append(hit)
        # factorize gives -1 for a missing key: the appended last slot means "no key".
        hex_values = np.array([hit[0] for hit in found] + [None], dtype=object)[codes]
        int_values = np.array([hit[1] for hit in found] + [0], dtype="int64")[codes]
        return pd.Series(hex_values, index=keys.index, dtype=object), int_values

    def _number(self, raw: pd.DataFrame, column: str, fail, *, required: bool) -> pd.Series:
        text = raw[column]
        numbers, ambiguous = parse_numbers(text)
        if required:
            fail(text == "", column, "missing_value", params={"column": column})
        fail(ambiguous, column, "mixed_decimal")
        fail(numbers.isna() & (text != ""), column, "not_a_number")
        # Far beyond any clinical figure; sums and moving ranges of such values overflow the
        # statistics, and one such row would stop its measure's nightly run.
        fail(numbers.abs() > MAX_ABS_NUMBER, column, "too_large")
        return numbers

    def _drop_repeated_periods(self, out: pd.DataFrame, raw: pd.DataFrame) -> pd.DataFrame:
        keep = np.ones(len(out), dtype=bool)
        keys = zip(
            out["measure_id"].to_numpy(),
            out["unit_id"].to_numpy(),
            out["date"].to_numpy().astype("datetime64[D]").astype("int64"),
            strict=True,
        )
        for i, (key, row) in enumerate(zip(keys, out["row"].to_numpy(), strict=True)):
            first = self._aggregate_keys.setdefault(key, int(row))
            if first != row:
                keep[i] = False
                self._append(
                    RowError(
                        int(row),
                        self._header_name("period_start"),
                        str(raw.at[row, "period_start"]),
                        "repeated_period",
                        {"row": first},
                    )
                )
        return out[keep]


_GOLDEN = np.uint64(0x9E3779B97F4A7C15)


def _mix64(x: np.ndarray) -> np.ndarray:
    """SplitMix64's finaliser (Steele, Lea & Flood 2014): a fast, well-mixed 64-bit hash."""
    x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return x ^ (x >> np.uint64(31))


def content_hash(
    measure_ids: np.ndarray,
    unit_ids: np.ndarray,
    days: np.ndarray,
    values: np.ndarray,
    subjects: np.ndarray,
) -> np.ndarray:
    """A stable 64-bit hash of a patient-level row's content, vectorised.

    Defined here, not borrowed from a library, so that the same row hashes the same after any
    upgrade: the natural key of every stored row depends on it.
    """
    with np.errstate(over="ignore"):
        h = np.zeros(len(measure_ids), dtype="uint64")
        for column in (
            measure_ids.astype("int64").view("uint64"),
            unit_ids.astype("int64").view("uint64"),
            days.astype("int64").view("uint64"),
            np.ascontiguousarray(values, dtype="float64").view("uint64"),
            subjects.astype("int64").view("uint64"),
        ):
            h = _mix64(h * _GOLDEN + column)
    return h.view("int64")


def _lookup(keys: pd.Series, table: Mapping) -> pd.Series:
    """``keys.map(table)``, done once per distinct key (a file has few distinct codes)."""
    codes, uniques = pd.factorize(keys)
    found = np.array([table.get(key) for key in uniques] + [None], dtype=object)
    return pd.Series(found[codes], index=keys.index)


def _spec_params(spec: MeasureSpec | float) -> dict:
    """What a row's measure allows, as a problem's parameters (the frequency as its key)."""
    if not isinstance(spec, MeasureSpec):  # unknown measure: NaN in the lookup
        return {}
    return {
        "code": spec.code,
        "min": _fmt(spec.value_min),
        "max": _fmt(spec.value_max),
        "frequency": spec.frequency,
        "owner": spec.owner,
    }


def summarise(errors: list[RowError], counts: Mapping[str, list] | None = None) -> list[dict]:
    """Each distinct problem once, in the order first met: code, count, first rows, example.

    ``counts`` (code → [count, first rows]) covers errors beyond the ones kept; without it
    the kept errors are counted.
    """
    examples: dict[str, RowError] = {}
    tally: dict[str, list] = {}
    for error in errors:
        examples.setdefault(error.code, error)
        found = tally.setdefault(error.code, [0, []])
        found[0] += 1
        if len(found[1]) < SUMMARY_ROWS:
            found[1].append(error.row)
    if counts:
        tally = {code: [found[0], list(found[1])] for code, found in counts.items()}
    summary = []
    for code, (count, rows) in tally.items():
        example = examples.get(code)
        summary.append(
            {
                "code": code,
                "count": count,
                "rows": rows,
                "example": (
                    {
                        "row": example.row,
                        "column": example.column,
                        "value": example.value,
                        "params": example.params,
                    }
                    if example is not None
                    else {}
                ),
            }
        )
    summary.sort(key=lambda item: (item["rows"][:1] or [0], item["code"]))
    return summary


def _fmt(number: float | None) -> str:
    if number is None or (isinstance(number, float) and np.isnan(number)):
        return "…"
    return f"{number:g}"


def file_checksum(path: Path | str) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(_BLOCK):
            digest.update(block)
    return digest.hexdigest()
