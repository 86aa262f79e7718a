"""CSV downloads of a series and of a matrix, in the reader's spreadsheet dialect.

Suppressed periods are rows that say so, with no number (the figures come from
``measures.series.public_columns``, which blanks them); no total over periods is written, so
nothing suppressed can be worked out from a download either.
"""

from __future__ import annotations

from django.utils.translation import gettext as _

from lhs.spreadsheet import csv_bytes
from measures.models import Measure, Series
from measures.series import public_columns

from .charts import period_label
from .panels import Filters, Matrix


def series_csv(
    measure: Measure, series: Series, grain: str, filters: Filters, *, language
) -> bytes:
    columns = public_columns(series, period_from=filters.start, period_to=filters.end)
    header = [
        _("Period start"),
        _("Period"),
        _("Value"),
        "n",
        _("Numerator"),
        _("Denominator"),
        _("Centre line"),
        _("Lower process limit"),
        _("Upper process limit"),
        _("Signal"),
        _("Suppressed"),
    ]
    classes = {
        "common": _("common cause"),
        "improvement": _("improvement"),
        "concern": _("concern"),
        "neither": _("special cause"),
    }
    rows = []
    for i, period in enumerate(columns["period"]):
        hidden = columns["suppressed"][i]
        rows.append(
            [
                period,
                period_label(period, grain),
                columns["value"][i],
                columns["n"][i],
                columns["numerator"][i],
                columns["denominator"][i],
                columns["centre"][i],
                columns["lower"][i],
                columns["upper"][i],
                classes.get(columns["point_class"][i] or "", ""),
                _("yes, fewer than %(n)s") % {"n": measure.minimum_n} if hidden else "",
            ]
        )
    return csv_bytes(header, rows, language=language)


def matrix_csv(matrix: Matrix, *, language) -> bytes:
    header = [_("Name"), _("Level")]
    for measure in matrix.measures:
        unit = f" ({measure.display_unit})" if measure.display_unit else ""
        header += [f"{measure.name}{unit}", _("%(measure)s: period") % {"measure": measure.name}]
    rows = []
    for row in [*matrix.rows, *matrix.totals]:
        line: list[object] = [row.name, row.level]
        for cell in row.cells:
            latest = cell.latest
            if latest is None:
                line += [None, None]
            elif latest.suppressed:
                line += [_("suppressed"), latest.period]
            else:
                line += [latest.value, latest.period]
        rows.append(line)
    return csv_bytes(header, rows, language=language)
