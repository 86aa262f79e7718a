"""Import problems as codes with parameters, rendered in the reader's language.

A worker writes a batch's report in no particular language: each problem is stored as a code
and its parameters, and turned into a sentence only when someone reads it (page, API, CSV
download), in that reader's language. Parameters that are words themselves (a period name,
"a Monday") are stored as keys and translated at render time too.

Old batches stored the English (or Swedish) sentence in ``message``; those still read as they
were stored.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterable, Mapping

from django.utils.translation import gettext_lazy as _
from django.utils.translation import ngettext_lazy

#: Longest value kept in a report entry (the cell's text); longer ones are cut with "…".
VALUE_CHARS = 200
#: Report entries stored on the batch itself; the full list is the CSV file beside it.
STORED_ERRORS = 200
#: First rows kept per problem code in the summary.
SUMMARY_ROWS = 5

PROBLEMS: dict[str, object] = {
    # --- the file as a whole --------------------------------------------------------------
    "not_csv_nul": _(
        "This is not a CSV text file (it holds NUL bytes: an Excel workbook or "
        "UTF-16 text?). Save it as CSV (comma or semicolon separated, UTF-8 or "
        "Windows-1252) and upload that."
    ),
    "not_csv_binary": _(
        "This is not a CSV text file: it holds control characters that no text file has "
        "(a binary file, an image or an archive?). Save it as CSV (comma or semicolon "
        "separated, UTF-8 or Windows-1252) and upload that."
    ),
    "empty_header": _("The file is empty or its first row is blank."),
    "header_too_long": _(
        "The first row (the header) is longer than %(limit)s: this is not the header of an "
        "import file. The header names the columns, such as measure_code;unit_code;date;value."
    ),
    "too_many_columns": _(
        "The header has %(count)s columns; at most %(limit)s are accepted. It begins: %(header)s"
    ),
    "header_unreadable": _("The header row cannot be read as CSV: %(error)s"),
    "row_too_long": _(
        "Row %(row)s is %(size)s long; the longest row accepted is %(limit)s. Check the "
        "quoting: an unclosed quote makes the rest of the file one cell."
    ),
    "column_twice": _("Column %(column)s appears twice in the header."),
    "mixed_shapes": _(
        "The header mixes patient-level columns (date, value) with pre-aggregated "
        "columns (period_start, numerator, denominator); use one shape per file."
    ),
    "missing_column": _(
        "Missing column %(column)s. This file needs the columns %(required)s; "
        "its header has %(header)s."
    ),
    "personal_number": _(
        "This looks like a Swedish personal identity number "
        "(personnummer or samordningsnummer). Identity numbers must "
        "never be uploaded: replace them with a pseudonymous key "
        "before exporting. Nothing from this file was imported."
    ),
    "no_data_rows": _("The file has no data rows."),
    "field_count": _(
        "The row has %(found)s fields where the header has %(expected)s: check the "
        "separator (%(separator)s) and quoting."
    ),
    "unreadable_csv": _("The file cannot be read as CSV: %(error)s"),
    "unclosed_quote": _(
        "A quote opened in row %(row)s is never closed, so the rest of the file reads as one "
        "cell: check the quoting."
    ),
    "unreadable_characters": _("Unreadable characters: %(error)s"),
    # --- one row --------------------------------------------------------------------------
    "missing_measure": _("Missing measure code."),
    "unknown_measure": _("Unknown measure %(value)s."),
    "missing_unit": _("Missing unit code."),
    "unknown_unit": _("Unknown unit %(value)s."),
    "inactive_unit": _(
        "Unit %(value)s is no longer active: it takes no new data. Ask the support unit if "
        "these rows belong to another unit."
    ),
    "unit_not_allowed": _("You may not import data for unit %(value)s."),
    "measure_scope": _("%(code)s belongs to %(owner)s and takes no data for unit %(value)s."),
    "missing_date": _("Missing date."),
    "not_iso_date": _("%(value)s is not a date in ISO form (YYYY-MM-DD)."),
    "future_date": _("%(value)s is in the future."),
    "before_1990": _("%(value)s is before 1990."),
    "rate_needs_aggregate": _(
        "A rate needs events and exposure: send this measure as pre-aggregated rows "
        "(period_start, numerator, denominator)."
    ),
    "proportion_not_0_1": _(
        "%(value)s is not 0 or 1: a proportion's patient-level row says whether the "
        "patient counts in the numerator (1) or not (0)."
    ),
    "count_negative": _("A count cannot be negative."),
    "not_whole": _("%(value)s: events and patients are counted in whole numbers."),
    "out_of_range": _("%(value)s is outside the valid range of %(code)s (%(min)s to %(max)s)."),
    "missing_value": _("Missing %(column)s."),
    "missing_denominator": _("Missing denominator."),
    "mixed_decimal": _("%(value)s mixes a decimal point and a decimal comma."),
    "not_a_number": _("%(value)s is not a number."),
    "too_large": _("%(value)s is too large: no measure holds numbers beyond ±10¹⁵."),
    "numerator_negative": _("The numerator cannot be negative."),
    "denominator_not_positive": _("The denominator must be above zero."),
    "numerator_above_denominator": _("The numerator %(value)s is above the denominator."),
    "mean_denominator_whole": _(
        "%(value)s: for a mean the denominator is the number of ratings, a whole number."
    ),
    "mean_out_of_range": _(
        "The mean (numerator / denominator) is outside the valid range of %(code)s "
        "(%(min)s to %(max)s)."
    ),
    "not_period_start": _(
        "%(value)s is not the start of a period: %(code)s is reported per "
        "%(frequency)s, so period_start must be %(period_start)s."
    ),
    "repeated_period": _("Row %(row)s already gives this measure, unit and period."),
    "period_conflict": _(
        "This period is already imported with numerator %(numerator)s and "
        "denominator %(denominator)s (batch #%(batch)s). To correct it, "
        "revert that batch first."
    ),
    "period_conflict_hidden": _(
        "This period is already imported with numerator %(numerator)s and "
        "denominator %(denominator)s, by an earlier batch. To correct it, ask the support "
        "unit to revert that batch first."
    ),
    # --- the batch ------------------------------------------------------------------------
    "batch_rejected": ngettext_lazy(
        "The file was rejected with %(count)s problem; nothing was imported. Correct the "
        "row listed and upload the whole file again.",
        "The file was rejected with %(count)s problems; nothing was imported. Correct the "
        "rows listed and upload the whole file again.",
        "count",
    ),
    "file_deleted": _("The file has been deleted."),
    "batch_imported": ngettext_lazy(
        "%(new)s new row imported; %(existing)s were already present.",
        "%(new)s new rows imported; %(existing)s were already present.",
        "new",
    ),
    "batch_duplicate": _("This file is identical to batch #%(id)s; nothing new was imported."),
    "batch_duplicate_hidden": _(
        "This file is identical to a file imported earlier; nothing new was imported."
    ),
    "batch_failed": _("The import failed on the server. Support has been notified."),
    "batch_failed_told": _(
        "The import failed on the server; nothing was imported. The support unit has been "
        "told by e-mail."
    ),
    "batch_failed_untold": _(
        "The import failed on the server; nothing was imported. Please tell the support unit."
    ),
    "batch_interrupted": ngettext_lazy(
        "The import was interrupted %(attempts)s time and has been stopped. "
        "Nothing was imported; contact the support unit.",
        "The import was interrupted %(attempts)s times and has been stopped. "
        "Nothing was imported; contact the support unit.",
        "attempts",
    ),
    "batch_reverted": ngettext_lazy(
        "Reverted by %(user)s: %(count)s row removed.",
        "Reverted by %(user)s: %(count)s rows removed.",
        "count",
    ),
}

#: Parameters that are words: stored as a key, translated when rendered.
PERIOD_NAMES = {
    "week": _("week"),
    "month": _("month"),
    "quarter": _("quarter"),
}
PERIOD_STARTS = {
    "week": _("a Monday"),
    "month": _("the first day of a month"),
    "quarter": _("the first day of a quarter (1 January, 1 April, 1 July or 1 October)"),
}


class _Params(dict):
    """A missing parameter reads as "…" instead of failing the whole page."""

    def __missing__(self, key):
        return "…"


def clip(text: object, limit: int = VALUE_CHARS) -> str:
    """``text`` as a string of at most ``limit`` characters, NUL-free, cut with an ellipsis."""
    text = str(text)
    if len(text) > limit:
        text = text[: limit - 1] + "…"
    return text.replace("\x00", "\ufffd")


def render(code: str, params: Mapping | None = None, *, value: str | None = None) -> str:
    """The problem ``code`` as a sentence in the active language."""
    template = PROBLEMS.get(code)
    if template is None:
        return code
    filled = _Params(params or {})
    if value is not None:
        filled.setdefault("value", repr(value))
    frequency = filled.get("frequency")
    if frequency in PERIOD_NAMES:
        filled["period_start"] = PERIOD_STARTS[frequency]
        filled["frequency"] = PERIOD_NAMES[frequency]
    try:
        return str(template % filled)
    except (KeyError, TypeError, ValueError):
        # A plural form without its number: say what can be said rather than fail the page.
        return code


def render_error(entry: Mapping) -> str:
    """The sentence of one stored report entry (new: code and params; old: message)."""
    code = entry.get("code")
    if not code:
        return str(entry.get("message", ""))
    return render(code, entry.get("params"), value=entry.get("value", ""))


def rendered_errors(entries: Iterable[Mapping]) -> list[dict]:
    """Report entries with their ``message`` in the active language, for pages and the API."""
    return [
        {
            "row": entry.get("row", 0),
            "column": entry.get("column", ""),
            "value": entry.get("value", ""),
            "code": entry.get("code", ""),
            "message": render_error(entry),
        }
        for entry in entries
    ]


def rendered_summary(summary: Iterable[Mapping]) -> list[dict]:
    """Each distinct problem once: its first example's sentence, count and first rows."""
    return [
        {
            "code": item.get("code", ""),
            "count": item.get("count", 0),
            "rows": list(item.get("rows", [])),
            "column": (item.get("example") or {}).get("column", ""),
            "message": render_error({"code": item.get("code"), **(item.get("example") or {})}),
        }
        for item in summary
    ]


def batch_message(batch, *, reader) -> str:
    """The batch's message in the active language, naming other batches only if ``reader``
    may see them."""
    from .enums import ImportStatus
    from .rules import visible_batches

    code = batch.message_code
    if batch.duplicate_of_id and batch.status == ImportStatus.SUCCEEDED:
        # Old rows stored "identical to batch #…" as text: never show it to someone who
        # may not see that batch.
        visible = getattr(batch, "duplicate_visible", None)  # see with_duplicate_visibility
        if visible is None:
            visible = reader is not None and (
                visible_batches(reader).filter(pk=batch.duplicate_of_id).exists()
            )
        if visible:
            return render("batch_duplicate", {"id": batch.duplicate_of_id})
        return render("batch_duplicate_hidden")
    if not code:
        return batch.message
    params = batch.message_params or {}
    text = render(code, params)
    if params.get("file_deleted"):
        text += " " + render("file_deleted")
    return text


def with_duplicate_visibility(batches, reader):
    """``batches`` annotated with whether ``reader`` may see the batch each duplicates, in
    the same query: a list of batch messages costs no query per item."""
    from django.db.models import Exists, OuterRef

    from .rules import visible_batches

    return batches.annotate(
        duplicate_visible=Exists(visible_batches(reader).filter(pk=OuterRef("duplicate_of_id")))
    )


# --- the full report as CSV -------------------------------------------------------------

REPORT_FIELDS = ("row", "column", "value", "code", "params")


def report_csv(errors: Iterable) -> bytes:
    """The stored full report: one line per problem, codes and parameters (no language)."""
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(REPORT_FIELDS)
    for error in errors:
        writer.writerow(
            [
                error.row,
                clip(error.column),
                clip(error.value),
                error.code,
                json.dumps(error.params, ensure_ascii=False, default=str),
            ]
        )
    return out.getvalue().encode("utf-8")


def _safe_cell(text: object) -> str:
    """A cell a spreadsheet will not run as a formula (OWASP: CSV injection)."""
    text = str(text)
    if text and text[0] in "=+-@\t\r":
        try:
            float(text)
        except ValueError:
            return "'" + text
    return text


def report_download(stored: bytes) -> bytes:
    """The stored report for a reader: the problem as a sentence in the active language."""
    text = stored.decode("utf-8")
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow([str(_("Row")), str(_("Column")), str(_("Value")), str(_("What is wrong"))])
    for record in csv.DictReader(io.StringIO(text)):
        try:
            params = json.loads(record.get("params") or "{}")
        except ValueError:
            params = {}
        entry = {
            "row": record.get("row", ""),
            "column": record.get("column", ""),
            "value": record.get("value", ""),
            "code": record.get("code", ""),
            "params": params,
        }
        cells = (entry["row"], entry["column"], entry["value"], render_error(entry))
        writer.writerow([_safe_cell(cell) for cell in cells])
    # A BOM so that Excel opens UTF-8 with å, ä and ö intact.
    return ("\ufeff" + out.getvalue()).encode("utf-8")
