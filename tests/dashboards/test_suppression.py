"""No suppressed figure reaches a page, a fragment, a table, a chart spec or a CSV, and no
total shown includes one (DESIGN.md §5; issue 8 "Tests").

The series of the ``dash`` fixture hold the true sums of their suppressed periods on the
server (parents are pooled from them). Every response is searched, as bytes, for each
suppressed period's n, numerator, denominator and value as a page, a JSON spec or a CSV could
write them (an integer, 1 to 6 decimals, a decimal point or comma, Python's float repr). A
number that some published figure also has cannot be searched for meaningfully and is left
out; the distinctive ones of a1's two small months are asserted to be among those searched.
Then the structure is checked: at a suppressed period every trace of a chart is null, every
table row and CSV row says "suppressed" with no figure, and the funnel plot leaves the unit
out.
"""

from __future__ import annotations

import csv
import gzip
import html
import io
import json
import math
import re
from datetime import date

import pytest
from django.urls import reverse

from dashboards.selectors import grain_for
from measures.enums import MeasureKind
from measures.models import Series
from measures.series import public_columns, published_totals

from .conftest import A1_SUPPRESSED, number_pattern, page_specs, stored_cells

pytestmark = pytest.mark.django_db

FIGURES = ("n", "numerator", "denominator", "value", "centre", "upper", "lower")
PUBLIC = (*FIGURES, "upper_2s", "lower_2s")


def _texts(value: float) -> set[str]:
    """Every way a page, a spec or a CSV may write ``value``."""
    value = float(value)
    texts = {repr(value)}
    if value.is_integer():
        texts |= {str(int(value)), f"{int(value)}.0", f"{int(value)},0"}
    for places in range(1, 7):
        text = f"{value:.{places}f}"
        for t in (text, text.rstrip("0").rstrip(".")):
            if t:
                texts |= {t, t.replace(".", ",")}
    return texts


def _true_value(cell: dict, kind: str) -> float | None:
    if not cell.get("denominator"):
        return None
    scale = 100.0 if kind == MeasureKind.PROPORTION else 1.0
    return cell["numerator"] / cell["denominator"] * scale


class Secrets:
    """The suppressed figures of the fixture's measures, as text to search for."""

    def __init__(self, measures):
        published: set[str] = set()
        secret: dict[str, str] = {}  # text → what it is
        for measure in measures:
            for series in Series.objects.filter(measure=measure):
                columns = public_columns(series)
                for name in PUBLIC:
                    for v in columns[name]:
                        if v is not None:
                            published |= _texts(v)
                totals = published_totals(series)
                published |= _texts(totals.observations) | _texts(totals.n)
            for extra in (measure.minimum_n, measure.target):
                if extra is not None:
                    published |= _texts(float(extra))
            for cell in stored_cells(measure):
                if not cell["suppressed"]:
                    continue
                what = f"{measure.code} {cell['series']} {cell['grain']} {cell['period']}"
                values = {k: cell.get(k) for k in ("n", "numerator", "denominator")}
                values["value"] = _true_value(cell, measure.kind)
                for name, v in values.items():
                    # Small whole numbers are on every page (dates, counts): not searchable.
                    if v is None or (float(v).is_integer() and v < 100):
                        continue
                    for text in _texts(v):
                        secret.setdefault(text, f"{name} {v} of {what}")
        self.collisions = {t for t in secret if t in published}
        self.texts = {t: w for t, w in secret.items() if t not in published}
        self.pattern = number_pattern(set(self.texts))

    def leaks(self, content: bytes, content_type: str = "text/html") -> list[str]:
        """Where a suppressed figure is written: in the text of a page (its JSON specs parsed
        apart, since a list's comma is no thousands separator), in a CSV's cells, in JSON."""
        if content_type.startswith("text/csv"):
            text = content.decode("utf-8-sig")
            delimiter = ";" if text.split("\r\n", 1)[0].count(";") else ","
            cells = [c for row in csv.reader(io.StringIO(text), delimiter=delimiter) for c in row]
            return [w for c in cells for w in self._in_text(c.encode(), exact=True)]
        if content_type.startswith("application/json"):
            return self._in_json(json.loads(content))
        found = []
        for script in re.findall(
            rb'<script type="application/json"[^>]*>(.*?)</script>', content, re.S
        ):
            found += self._in_json(json.loads(script))
        html = re.sub(
            rb'<script type="application/json"[^>]*>.*?</script>', b"", content, flags=re.S
        )
        return found + self._in_text(html)

    def _in_text(self, content: bytes, *, exact: bool = False) -> list[str]:
        if exact and content.decode() in self.texts:
            return [f"{self.texts[content.decode()]} as the cell {content.decode()!r}"]
        found = []
        for match in self.pattern.finditer(content):
            text = match.group(0).decode()
            context = content[max(0, match.start() - 80) : match.end() + 40]
            found.append(f"{self.texts[text]} as {text!r} in …{context.decode(errors='replace')}…")
        return found

    def _in_json(self, value) -> list[str]:
        if isinstance(value, bool) or value is None:
            return []
        if isinstance(value, (int, float)):
            text = repr(value)
            return [f"{self.texts[text]} as the JSON number {text}"] if text in self.texts else []
        if isinstance(value, str):
            return self._in_text(value.encode())
        items = value.values() if isinstance(value, dict) else value
        return [w for item in items for w in self._in_json(item)]


@pytest.fixture
def secrets(dash):
    return Secrets([dash.measures["careplan"], dash.measures["honos"]])


def test_the_search_is_meaningful(dash, secrets):
    """a1's small months are searched for in every form (none is published anywhere), and
    the search finds a number where it is written."""
    for (numerator, denominator), month in zip(A1_SUPPRESSED.values(), A1_SUPPRESSED, strict=True):
        value = numerator / denominator * 100
        for v, forms in (
            (numerator, ["124", "139"]),
            (denominator, ["189", "213"]),
            (value, [f"{value:.1f}", f"{value:.1f}".replace(".", ","), f"{value:.4f}"]),
        ):
            wanted = {f for f in forms if f in _texts(v)}
            assert wanted and wanted <= set(secrets.texts), (month, v, wanted)
    # HoNOS's small week: 3 ratings, mean 43.67.
    assert {"43.7", "43,7", "43.6667", "131"} <= set(secrets.texts)
    assert len(secrets.texts) > 100
    assert len(secrets.leaks(b"<td>65.6 %</td> n = 189 <i>43,7</i>")) == 3
    spec = b'<script type="application/json" id="s">{"y":[1,65.6085,2],"c":[6,189]}</script>'
    assert len(secrets.leaks(spec)) == 2
    assert len(secrets.leaks(b"a;189;65,608466;x\r\n", "text/csv")) == 2
    assert len(secrets.leaks(b"a,189,65.608466,x\r\n", "text/csv")) == 2
    assert len(secrets.leaks(b'{"n": 189.0, "v": [131]}', "application/json")) == 2
    assert secrets.leaks("<td>165.6</td> 1189 1\xa0189 65.61x 2024-06-01 #1F4E79".encode()) == []


# --------------------------------------------------------------------------------------------
# Every page, fragment, table view and export
# --------------------------------------------------------------------------------------------


def _urls(o) -> list[tuple[str, dict[str, str]]]:
    htmx = {"HX-Request": "true", "HX-Target": "dashboard-body"}
    fragment = {"HX-Request": "true"}
    urls: list[tuple[str, dict[str, str]]] = []
    for unit in (o.a1, o.a2, o.b1):
        page = reverse("dashboards:unit", args=[unit.code])
        for query in (
            "",
            "?view=table",
            "?grain=month",
            "?grain=quarter",
            "?grain=quarter&view=table",
            "?compare=department",
            "?compare=division&view=table",
            "?start=2024-03-01&end=2024-07-31",
        ):
            urls.append((page + query, {}))
        urls.append((page + "?grain=month", htmx))
        for measure in ("care-plan", "honos-total"):
            for query in ("", "?grain=month", "?grain=quarter"):
                urls.append(
                    (reverse("dashboards:unit-table", args=[unit.code, measure]) + query, fragment)
                )
                urls.append((reverse("dashboards:unit-csv", args=[unit.code, measure]) + query, {}))
    for department in (o.dept_a, o.dept_b):
        page = reverse("dashboards:department", args=[department.code])
        for query in ("", "?grain=quarter", "?sort=care-plan&dir=desc", "?sort=honos-total"):
            urls.append((page + query, {}))
            urls.append((reverse("dashboards:department-csv", args=[department.code]) + query, {}))
        urls.append((page, htmx))
    page = reverse("dashboards:division", args=[o.division.code])
    for query in ("", "?rows=units", "?rows=units&grain=quarter", "?sort=care-plan"):
        urls.append((page + query, {}))
        urls.append((reverse("dashboards:division-csv", args=[o.division.code]) + query, {}))
    urls.append((page + "?rows=units", htmx))
    for code in ("care-plan", "honos-total"):
        page = reverse("dashboards:measure", args=[code])
        for query in ("", "?grain=quarter", "?sort=" + code):
            urls.append((page + query, {}))
    for level, code in (("department", o.dept_a.code), ("division", o.division.code)):
        funnel = reverse("dashboards:funnel", args=[level, code, "care-plan"])
        for query in (
            "",
            "?period=2024-04-01",
            "?period=2024-05-01",
            "?period=2024-06-01",
            "?period=2025-01-01",
            "?period=2025-03-01",
            "?grain=quarter",
            "?grain=quarter&period=2024-04-01",
        ):
            urls.append((funnel + query, {}))
            urls.append((funnel + query, fragment))
    return urls


@pytest.mark.parametrize("language", ["en", "sv"])
def test_no_suppressed_figure_in_any_response(client, dash, secrets, language):
    client.force_login(dash.people["clinician"])
    client.cookies["django_language"] = language
    leaks = {}
    charts_checked = 0
    urls = _urls(dash)
    assert len(urls) > 100
    for url, headers in urls:
        response = client.get(url, headers=headers)
        assert response.status_code == 200, url
        if language == "sv" and "csv" not in url:
            assert b'lang="sv"' in response.content or "HX-Request" in headers, url
        found = secrets.leaks(response.content, response["Content-Type"])
        if found:
            leaks[url] = found[:3]
        # A unit page's chart specs, as dashboards.js fetches them (gzipped) and plain.
        for link in re.findall(rb'data-charts="([^"]+)"', response.content):
            charts = html.unescape(link.decode())
            for encoding in ("gzip", ""):
                answer = client.get(charts, headers={"Accept-Encoding": encoding})
                assert answer.status_code == 200, charts
                content = answer.content
                if answer.get("Content-Encoding") == "gzip":
                    content = gzip.decompress(content)
                assert json.loads(content), charts
                charts_checked += 1
                found = secrets.leaks(content, answer["Content-Type"])
                if found:
                    leaks[charts] = found[:3]
    assert not leaks, leaks
    # Every unit page in chart view links its specs: 5 pages and a fragment of 3 units, each
    # fetched in 2 encodings.
    assert charts_checked == 3 * 6 * 2


def test_no_suppressed_figure_in_the_api_either(client, dash, secrets):
    """The series API is built on the same selector (public_points)."""
    client.force_login(dash.people["clinician"])

    response = client.get("/api/series/", {"measure": "care-plan"})

    assert response.status_code == 200
    assert response.json()
    assert secrets.leaks(response.content, response["Content-Type"]) == []


# --------------------------------------------------------------------------------------------
# Structure: charts, tables, CSVs
# --------------------------------------------------------------------------------------------


def _unit_series(measure, unit, grain) -> Series:
    return Series.objects.get(measure=measure, node_key=f"unit:{unit.pk}", grain=grain)


def _hidden_periods(series: Series) -> set[str]:
    points = series.points
    return {p for p, s in zip(points["period"], points["suppressed"], strict=True) if s}


@pytest.mark.parametrize("grain", ["", "month", "quarter"])
@pytest.mark.parametrize("compare", ["", "department"])
def test_a_chart_is_blank_at_every_suppressed_period(client, dash, grain, compare):
    client.force_login(dash.people["clinician"])
    url = reverse("dashboards:unit", args=[dash.a1.code]) + f"?grain={grain}&compare={compare}"

    specs = page_specs(client.get(url).content, client)

    checked = 0
    for key, measure in (("careplan", "care-plan"), ("honos", "honos-total")):
        measure_obj = dash.measures[key]
        shown = grain_for(measure_obj, grain or None)
        series = _unit_series(measure_obj, dash.a1, shown)
        hidden = _hidden_periods(series)
        spec = specs[f"spec-m-{measure}"]
        markers = [t for t in spec["data"] if t.get("yaxis") == "y2"]
        if hidden:
            # The gap is marked, with "fewer than N" and no number (the height is constant).
            [marker] = markers
            assert set(marker["x"]) == hidden
            assert len(set(marker["y"])) == 1
            assert "customdata" not in marker and "text" not in marker
            text = marker["hovertemplate"]
            assert f"fewer than {measure_obj.minimum_n} observations" in text
            assert re.sub(r"%\{[^}]*\}", "", text).count(str(measure_obj.minimum_n)) == 1
            assert not re.search(r"\d", text.replace(str(measure_obj.minimum_n), ""))
        else:
            assert markers == []
        checked += len(hidden)
        for trace in spec["data"]:
            if trace.get("yaxis") == "y2":
                continue
            if compare and trace["name"] == "Department":
                continue  # the department's own periods, checked below
            if trace["name"].startswith(("Target", "Median")):
                continue  # a constant line from the first period to the last
            for i, x in enumerate(trace["x"]):
                if x in hidden:
                    assert trace["y"][i] is None, (measure, trace["name"], x)
                    for per_point in ("customdata", "text"):
                        if isinstance(trace.get(per_point), list):
                            assert trace[per_point][i] in (None, ""), (measure, per_point, x)
        if compare:
            [line] = [t for t in spec["data"] if t["name"] == "Department"]
            department = Series.objects.get(
                measure=measure_obj, node_key=f"department:{dash.dept_a.pk}", grain=shown
            )
            dept_hidden = _hidden_periods(department)
            columns = public_columns(department)
            assert line["x"] == columns["period"]
            for x, y in zip(line["x"], line["y"], strict=True):
                assert (y is None) == (x in dept_hidden)
    # a1 has suppressed months and weeks (not quarters).
    assert (checked > 0) is (grain != "quarter")


def _table_rows(content: str) -> list[tuple[str, str, list[str]]]:
    """(class, period label, cells) of each body row of the tables of a page."""
    out = []
    for body in re.findall(r"<tbody>(.*?)</tbody>", content, re.S):
        for attrs, row in re.findall(r"<tr([^>]*)>(.*?)</tr>", body, re.S):
            label = re.search(r"<th[^>]*>(.*?)</th>", row, re.S)
            cells = [
                re.sub(r"<[^>]+>", "", c).strip()
                for c in re.findall(r"<td[^>]*>(.*?)</td>", row, re.S)
            ]
            out.append(
                (attrs, re.sub(r"<[^>]+>", "", label.group(1)).strip() if label else "", cells)
            )
    return out


@pytest.mark.parametrize("grain", ["", "quarter"])
def test_the_table_view_says_suppressed_and_shows_no_figure(client, dash, grain):
    from django.utils import translation

    from dashboards.charts import period_label

    client.force_login(dash.people["clinician"])
    url = reverse("dashboards:unit", args=[dash.a1.code]) + f"?view=table&grain={grain}"

    content = client.get(url).content.decode()

    checked = 0
    for key, measure in (("careplan", "care-plan"), ("honos", "honos-total")):
        measure_obj = dash.measures[key]
        shown = grain_for(measure_obj, grain or None)
        series = _unit_series(measure_obj, dash.a1, shown)
        section = content.split(f'id="m-{measure}"', 1)[1].split("</section>", 1)[0]
        rows = _table_rows(section)
        columns = public_columns(series)
        with translation.override("en"):
            labels = [period_label(p, shown) for p in columns["period"]]
        assert [r[1] for r in rows] == labels
        for (attrs, _label, cells), hidden in zip(rows, columns["suppressed"], strict=True):
            if hidden:
                checked += 1
                assert 'class="suppressed"' in attrs
                assert cells == [f"Suppressed: fewer than {measure_obj.minimum_n} observations"]
            else:
                assert 'class="suppressed"' not in attrs
                assert len(cells) == 6 and cells[0] not in ("", "–")
    assert (checked > 0) is (grain != "quarter")


@pytest.mark.parametrize("grain", ["", "quarter"])
def test_the_series_csv_leaves_suppressed_rows_blank(client, dash, grain):
    client.force_login(dash.people["clinician"])
    for unit in (dash.a1, dash.a2):
        for key, measure in (("careplan", "care-plan"), ("honos", "honos-total")):
            measure_obj = dash.measures[key]
            url = reverse("dashboards:unit-csv", args=[unit.code, measure]) + f"?grain={grain}"
            text = client.get(url).content.decode("utf-8-sig")
            header, *rows = list(csv.reader(io.StringIO(text)))
            series = _unit_series(measure_obj, unit, grain or measure_obj.frequency)
            hidden = _hidden_periods(series)
            assert [r[0] for r in rows] == series.points["period"]
            assert header[-1] == "Suppressed"
            for row in rows:
                if row[0] in hidden:
                    assert row[2:10] == [""] * 8, row
                    assert row[10] == f"yes, fewer than {measure_obj.minimum_n}"
                else:
                    assert row[10] == "" and row[2] != "" and row[3] != ""


def test_the_matrices_show_a_suppressed_latest_value_as_suppressed(client, dash):
    """a1's and a2's latest care-plan month is suppressed (a1's n is 213)."""
    client.force_login(dash.people["clinician"])
    page = client.get(reverse("dashboards:department", args=[dash.dept_a.code])).content.decode()

    for unit in (dash.a1, dash.a2):
        row = page.split(f">{unit.name}</a></th>", 1)[1].split("</tr>", 1)[0]
        cells = re.findall(r'<td class="cell">(.*?)</td>', row, re.S)
        care_plan = cells[[m.code for m in _matrix_measures(page)].index("care-plan")]
        assert 'class="suppressed"' in care_plan and "n =" not in care_plan
        assert "fewer than 300" in care_plan

    text = client.get(reverse("dashboards:department-csv", args=[dash.dept_a.code])).content.decode(
        "utf-8-sig"
    )
    header, *rows = list(csv.reader(io.StringIO(text)))
    column = header.index("Share with a care plan (%)")
    by_name = {r[0]: r for r in rows}
    for unit in (dash.a1, dash.a2):
        assert by_name[unit.name][column] == "suppressed"
        assert by_name[unit.name][column + 1] == "2025-03-01"
    # The department's own figure for that month is shown (its n, 766, is not small).
    department = by_name[dash.dept_a.name][column]
    assert department not in ("", "suppressed") and float(department) > 0


def _matrix_measures(page: str):
    from measures.models import Measure

    head = page.split("<thead>", 1)[1].split("</thead>", 1)[0]
    codes = re.findall(r'href="\?[^"]*sort=([\w-]+)', head)
    return [Measure.objects.get(code=c) for c in codes if c != "name"]


# --------------------------------------------------------------------------------------------
# Totals and counts
# --------------------------------------------------------------------------------------------


def _captions(content: str) -> dict[str, str]:
    """Section id → its 'Computed at … from N observations' caption."""
    out = {}
    for section_id, body in re.findall(
        r'<section class="panel" id="([^"]+)".*?>(.*?)</section>', content, re.S
    ):
        caption = re.search(r"<figcaption[^>]*>(.*?)</figcaption>", body, re.S)
        if caption:
            out[section_id] = re.sub(r"\s+", " ", caption.group(1))
    return out


@pytest.mark.parametrize("grain", ["", "month", "quarter"])
def test_the_observation_count_of_a_chart_leaves_suppressed_periods_out(client, dash, grain):
    client.force_login(dash.people["clinician"])

    content = client.get(
        reverse("dashboards:unit", args=[dash.a1.code]) + f"?grain={grain}"
    ).content.decode()

    captions = _captions(content)
    differs = 0
    for key, measure in (("careplan", "care-plan"), ("honos", "honos-total")):
        measure_obj = dash.measures[key]
        series = _unit_series(measure_obj, dash.a1, grain or measure_obj.frequency)
        totals = published_totals(series)
        caption = captions[f"m-{measure}"]
        count = int(re.search(r"from ([\d,\s]+) observations", caption).group(1).replace(",", ""))
        assert count == totals.observations, caption
        if totals.suppressed_periods:
            differs += 1
            # The engine's count includes the suppressed periods: it must not be shown.
            assert series.observation_count > totals.observations
            assert f"from {series.observation_count} " not in content
            assert f"{totals.suppressed_periods} period" in caption
        else:
            assert "suppressed" not in caption
    assert (differs > 0) is (grain != "quarter")


def test_the_measure_page_counts_only_shown_periods(client, dash, secrets):
    client.force_login(dash.people["clinician"])
    for measure in ("care-plan", "honos-total"):
        content = client.get(reverse("dashboards:measure", args=[measure])).content.decode()
        caption = re.search(r"<figcaption[^>]*>(.*?)</figcaption>", content, re.S).group(1)
        top = Series.objects.get(
            measure__code=measure,
            node_key=f"division:{dash.division.pk}",
            grain=dash.measures["careplan" if measure == "care-plan" else "honos"].frequency,
        )
        count = int(re.search(r"from ([\d,]+) observations", caption).group(1).replace(",", ""))
        assert count == published_totals(top).observations


def test_the_honos_small_week_cannot_be_worked_out_from_the_page(client, dash):
    """The three ratings of a1's small week are in no count on the page: the sum of the shown
    weeks' n equals the caption, so no "total − shown" gives 3."""
    client.force_login(dash.people["clinician"])
    page = reverse("dashboards:unit", args=[dash.a1.code])
    table = client.get(page + "?view=table").content.decode()
    section = table.split('id="m-honos-total"', 1)[1].split("</section>", 1)[0]

    shown_n = sum(int(cells[1]) for _a, _l, cells in _table_rows(section) if len(cells) == 6)

    chart = client.get(page).content.decode().split('id="m-honos-total"', 1)[1]
    caption = re.search(r"from (\d+) observations", chart)
    series = _unit_series(dash.measures["honos"], dash.a1, "week")
    assert int(caption.group(1)) == shown_n == published_totals(series).observations
    assert series.observation_count - shown_n == 3 + 9 + 6  # what a leak would give away


# --------------------------------------------------------------------------------------------
# Funnel plots
# --------------------------------------------------------------------------------------------


def _funnel(client, level, code, query=""):
    url = reverse("dashboards:funnel", args=[level, code, "care-plan"]) + query
    response = client.get(url, headers={"HX-Request": "true"})
    assert response.status_code == 200
    content = response.content.decode()
    specs = page_specs(response.content)
    return content, specs.get("funnel-care-plan")


@pytest.mark.parametrize(
    ("period", "hidden"),
    [
        ("2024-05-01", set()),
        ("2024-06-01", {"a1", "a2"}),
        ("2025-03-01", {"a1", "a2"}),
        ("", {"a1", "a2"}),  # the latest period
        ("2024-04-01", {"a1", "a2"}),
    ],
)
def test_the_funnel_does_not_place_a_suppressed_unit(client, dash, period, hidden):
    client.force_login(dash.people["clinician"])
    units = {"a1": dash.a1, "a2": dash.a2, "b1": dash.b1}
    month = period or "2025-03-01"
    careplan = dash.measures["careplan"]

    content, spec = _funnel(client, "division", dash.division.code, f"?period={period}")

    [dots] = [t for t in spec["data"] if t["mode"] == "markers"]
    placed = {name for name, u in units.items() if any(t.startswith(u.name) for t in dots["text"])}
    assert placed == set(units) - hidden
    # Each unit placed at its own published figures; θ pooled from them alone.
    numerators = denominators = 0.0
    for name in sorted(placed):
        series = _unit_series(careplan, units[name], "month")
        columns = public_columns(
            series, period_from=date.fromisoformat(month), period_to=date.fromisoformat(month)
        )
        assert columns["suppressed"] == [False]
        numerators += columns["numerator"][0]
        denominators += columns["denominator"][0]
        assert columns["denominator"][0] in dots["x"]
    [pooled] = [t for t in spec["data"] if t["name"].startswith("Pooled value")]
    assert math.isclose(pooled["y"][0], numerators / denominators * 100, rel_tol=1e-9)
    for name in hidden:
        assert units[name].name not in content
    if hidden:
        assert f"{len(hidden)} units left out: too few observations to show" in content
    else:
        assert "left out" not in content


def test_a_department_whose_units_are_all_suppressed_has_no_funnel(client, dash):
    client.force_login(dash.people["clinician"])

    content, spec = _funnel(client, "department", dash.dept_a.code, "?period=2024-06-01")

    assert spec is None
    assert "No unit has a figure to compare in this period." in content
    assert dash.a1.name not in content and dash.a2.name not in content


def test_the_funnel_defaults_to_the_latest_period_in_which_a_unit_is_shown(client, dash):
    """Department A's units are both suppressed in its latest month (March 2025): the funnel
    opens at February, not on an empty plot."""
    client.force_login(dash.people["clinician"])

    content, spec = _funnel(client, "department", dash.dept_a.code, "")

    assert spec is not None
    assert '<option value="2025-02-01" selected>' in content
    assert dash.a1.name in content and dash.a2.name in content


def test_the_period_chooser_stays_when_no_unit_is_shown(client, dash):
    client.force_login(dash.people["clinician"])

    content, _spec = _funnel(client, "department", dash.dept_a.code, "?period=2024-06-01")

    assert '<select name="period"' in content
    assert '<option value="2024-06-01" selected>' in content
