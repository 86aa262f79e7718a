"""CSV files that open correctly in Excel, in the reader's language, and run no formula.

Excel reads a CSV in the dialect of the computer's regional settings: in Swedish the list
separator is ``;`` and the decimal separator ``,``, so a comma-separated file with decimal
points opens as one column of text. A UTF-8 byte-order mark makes it read å, ä and ö right.

A text cell that begins with ``=``, ``+``, ``-``, ``@``, a tab or a carriage return is run as a
formula by spreadsheet programs (OWASP "CSV injection"); such a cell gets a leading ``'``.
Numbers are written as numbers (a negative number stays a number).
"""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Iterable, Sequence
from decimal import Decimal

_FORMULA_START = "=+-@\t\r"


def safe_cell(text: object) -> str:
    """A text cell a spreadsheet will not run as a formula. Every text that begins with a
    formula character is neutralised, even one that looks like a number ("+1" as a unit's
    name): numbers are written by :func:`number_cell`, never through here."""
    text = str(text)
    if text and text[0] in _FORMULA_START:
        return "'" + text
    return text


def number_cell(
    value: float | int | Decimal | None, *, decimal_comma: bool, places: int = 6
) -> str:
    """A number as a spreadsheet reads it in the reader's dialect; blank for none."""
    if value is None:
        return ""
    if isinstance(value, float) and not math.isfinite(value):
        return ""
    if isinstance(value, int) and not isinstance(value, bool):
        text = str(value)
    else:
        text = f"{round(float(value), places):.{places}f}".rstrip("0").rstrip(".")
        if text in ("-0", ""):
            text = "0"
    return text.replace(".", ",") if decimal_comma else text


def uses_decimal_comma(language: str | None) -> bool:
    return bool(language) and language.split("-")[0] in ("sv", "da", "nb", "nn", "fi", "de")


def csv_bytes(
    header: Sequence[str], rows: Iterable[Sequence[object]], *, language: str | None
) -> bytes:
    """A CSV in the reader's dialect: ``;`` and decimal commas in Swedish, ``,`` in English.

    Cells that are ``int``/``float``/``Decimal`` are written as numbers, everything else as
    text made safe with :func:`safe_cell`.
    """
    comma = uses_decimal_comma(language)
    out = io.StringIO()
    writer = csv.writer(out, delimiter=";" if comma else ",", lineterminator="\r\n")
    writer.writerow([safe_cell(h) for h in header])
    for row in rows:
        cells = []
        for cell in row:
            if isinstance(cell, (int, float, Decimal)) and not isinstance(cell, bool):
                cells.append(number_cell(cell, decimal_comma=comma))
            elif cell is None:
                cells.append("")
            else:
                cells.append(safe_cell(cell))
        writer.writerow(cells)
    return ("\ufeff" + out.getvalue()).encode("utf-8")
