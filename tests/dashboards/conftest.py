"""Dashboard fixtures: the shared ``org`` with computed series, some periods suppressed.

The data is chosen so that a search of a page's bytes for a suppressed figure means
something: the care-plan measure needs 300 patients a month before a unit's month is shown,
and the two suppressed months of unit a1 have numbers that nothing published has (n 189 and
213, numerators 124 and 139, values 65.6 % and 65.3 %; every shown month of every unit has
more than 300 and a share between 72 % and 80 %).
"""

from __future__ import annotations

import re
from datetime import date, timedelta

import pytest

from measures.aggregation import series_recompute
from measures.models import Series
from tests.aggregation.conftest import Rows

#: The months of the care-plan data: July 2023 to March 2025 (21: enough for limits with
#: four of them suppressed).
MONTHS = [date(2023 + (m - 1) // 12, (m - 1) % 12 + 1, 1) for m in range(7, 28)]
#: a1's suppressed months: (month, numerator, denominator). Nothing published has these.
A1_SUPPRESSED = {date(2024, 6, 1): (124, 189), date(2025, 3, 1): (139, 213)}
#: The first Monday of the HoNOS data (weekly, 20 weeks).
MONDAY = date(2024, 1, 1)
WEEKS = 20
#: a1's small week: three ratings with a mean (43.7) no other week comes near.
HONOS_SMALL_WEEK = 10
HONOS_SMALL_SCORES = (47, 44, 40)


def _share(unit_index: int, month_index: int) -> float:
    """A share between 72 % and 80 % that differs between units and months."""
    return 0.72 + ((unit_index * 7 + month_index * 3) % 17) / 17 * 0.08


def care_plan_rows(batch: Rows, measure, units) -> None:
    """One pre-aggregated row per unit and month: the denominator is n (patients)."""
    bases = (400, 330, 640)
    for u, unit in enumerate(units):
        for m, month in enumerate(MONTHS):
            if u == 0 and month in A1_SUPPRESSED:
                numerator, denominator = A1_SUPPRESSED[month]
            else:
                denominator = bases[u] + 11 * m + 3 * u
                numerator = round(denominator * _share(u, m))
            batch.aggregate(measure, unit, month, numerator, denominator)


def honos_rows(batch: Rows, measure, units) -> None:
    """Patient-level HoNOS ratings: 6 to 9 a week per unit, scores 8 to 16."""
    for u, unit in enumerate(units):
        for week in range(WEEKS):
            day = MONDAY + timedelta(weeks=week)
            if u == 0 and week == HONOS_SMALL_WEEK:
                for score in HONOS_SMALL_SCORES:
                    batch.value(measure, unit, day, score)
                continue
            for i in range(6 + (week + u) % 4):
                batch.value(measure, unit, day, 8 + (week * 3 + i * 5 + u) % 9)


@pytest.fixture
def dash(org):
    """``org`` with care-plan (monthly proportion, minimum n 300, target 90 %) and HoNOS
    (weekly mean, minimum n 5) series computed for a1, a2 and b1."""
    careplan = org.measures["careplan"]
    careplan.minimum_n = 300
    careplan.target = 90
    careplan.display_unit = "%"
    careplan.save()
    honos = org.measures["honos"]
    batch = Rows(org.people["support"])
    care_plan_rows(batch, careplan, [org.a1, org.a2, org.b1])
    honos_rows(batch, honos, [org.a1, org.a2, org.b1])
    batch.save()
    series_recompute()
    return org


# --------------------------------------------------------------------------------------------
# Searching response bytes for numbers
# --------------------------------------------------------------------------------------------


def number_texts(value: float, *, places: tuple[int, ...] = (1, 2)) -> set[str]:
    """How a number may be written on a page, in a spec or in a CSV: as an integer, rounded
    to some decimals with a point or a comma, and as Python/JSON writes a float."""
    texts = {repr(float(value)), str(value)}
    if float(value).is_integer():
        texts |= {str(int(value)), f"{int(value)}.0", f"{int(value)},0"}
    for p in places:
        text = f"{value:.{p}f}"
        texts |= {text, text.replace(".", ",")}
    return texts


def number_pattern(texts: set[str]) -> re.Pattern[bytes]:
    """Any of ``texts`` as a whole number: not inside a longer number (after a thousands
    separator: a comma, Swedish's no-break space) or a word (a colour like ``#1F4E79``), nor
    followed by more decimals."""
    alternatives = b"|".join(re.escape(t.encode()) for t in sorted(texts, key=len, reverse=True))
    return re.compile(
        rb"(?<![\w.,\-])(?<!\xc2\xa0)(?<!\xe2\x80\xaf)(?:"
        + alternatives
        + rb")(?![\w]|[.,]\d|\xc2\xa0\d)"
    )


def find_number(content: bytes, value: float) -> str | None:
    """The first place ``value`` is written in ``content`` (with some context), or None."""
    match = number_pattern(number_texts(value)).search(content)
    if match is None:
        return None
    return content[max(0, match.start() - 60) : match.end() + 60].decode(errors="replace")


def stored_cells(measure) -> list[dict]:
    """Every period of every stored series of ``measure``, with its true (server-side) figures
    and ``scale`` (a proportion's value is shown in %)."""
    out = []
    for series in Series.objects.filter(measure=measure):
        points = series.points
        for i, period in enumerate(points["period"]):
            out.append(
                {
                    "series": series.node_key,
                    "grain": series.grain,
                    "period": period,
                    "suppressed": bool(points["suppressed"][i]),
                    **{
                        name: points[name][i]
                        for name in (
                            "n",
                            "numerator",
                            "denominator",
                            "value",
                            "centre",
                            "upper",
                            "lower",
                        )
                        if points.get(name) is not None
                    },
                }
            )
    return out


def page_specs(content: bytes, client=None) -> dict[str, dict]:
    """The chart specs a page carries: script id → the parsed spec. With ``client``, also the
    specs of the JSON resource the page links (``data-charts``: a unit's page), fetched as
    its ``dashboards.js`` does."""
    import html
    import json

    specs = {
        m.group(1).decode(): json.loads(m.group(2))
        for m in re.finditer(
            rb'<script type="application/json" id="([^"]+)">(.*?)</script>', content, re.S
        )
    }
    if client is not None:
        for url in re.findall(rb'data-charts="([^"]+)"', content):
            response = client.get(html.unescape(url.decode()))
            assert response.status_code == 200, (url, response.status_code)
            assert response["Content-Type"] == "application/json"
            specs.update(json.loads(response.content))
    return specs
