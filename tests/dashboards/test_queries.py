"""A dashboard's SQL queries do not grow with the units and measures it shows, and its caches
never serve a figure older than the series (issue 8 "Speed").

Each page is fetched for an organisation of one unit and one measure and for one of 8 units ×
6 measures (every kind, a department's and a unit's own measure among them), with the cache
cold and warm: the counts must be equal. A page that read a series, a summary or a chart per
unit or per measure would differ by dozens of queries.
"""

from __future__ import annotations

import html
import json
import re
from datetime import date, timedelta

import pytest
from django.core.cache import cache
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from measures.aggregation import series_recompute
from measures.enums import Direction, Frequency, MeasureKind, Scope
from measures.models import Series
from tests.aggregation.conftest import Rows
from tests.factories import (
    DepartmentFactory,
    DivisionFactory,
    MeasureFactory,
    UnitFactory,
    UserFactory,
)

from .conftest import page_specs

pytestmark = pytest.mark.django_db

MONTHS = [date(2024 + m // 12, m % 12 + 1, 1) for m in range(15)]
WEEKS = [date(2024, 1, 1) + timedelta(weeks=w) for w in range(30)]


class World:
    """A division of its own: departments, units, measures, a person, computed series."""

    def __init__(self, units: int, measures: int):
        self.person = UserFactory(username=f"reader{units}x{measures}")
        # A division of its own: the worlds of one test must not see each other's units.
        division = DivisionFactory(code=f"q{units}x{measures}", name=f"Division {units}")
        departments = [
            DepartmentFactory(division=division, code=f"q{units}d{i}", name=f"Dept {i}")
            for i in range(1 if units == 1 else 2)
        ]
        self.division = departments[0].division
        self.units = [
            UnitFactory(
                department=departments[i % len(departments)],
                code=f"Q{units}U{i:02d}",
                name=f"Unit {i:02d}",
            )
            for i in range(units)
        ]
        self.department = departments[0]
        unit = self.units[0]
        kinds = [
            {"kind": MeasureKind.PROPORTION, "direction": Direction.UP, "target": 80},
            {"kind": MeasureKind.RATE, "direction": Direction.DOWN, "rate_per": 1000},
            {"kind": MeasureKind.MEAN, "direction": Direction.DOWN, "value_max": 48},
            {"kind": MeasureKind.COUNT, "direction": Direction.DOWN, "frequency": Frequency.WEEK},
            {
                "kind": MeasureKind.PROPORTION,
                "direction": Direction.UP,
                "scope": Scope.DEPARTMENT,
                "department": self.department,
            },
            {
                "kind": MeasureKind.COUNT,
                "direction": Direction.UP,
                "scope": Scope.UNIT,
                "unit": unit,
            },
        ]
        for kind in kinds:
            if kind["kind"] == MeasureKind.PROPORTION:
                kind["display_unit"] = "%"
        self.measures = [
            MeasureFactory(
                code=f"q{units}m{i}",
                name=f"Measure {i}",
                **{"frequency": Frequency.MONTH, "minimum_n": 5, **kinds[i]},
            )
            for i in range(measures)
        ]
        batch = Rows(self.person)
        for u, unit in enumerate(self.units):
            for measure in self.measures:
                if measure.scope == Scope.UNIT and measure.unit_id != unit.pk:
                    continue
                if measure.scope == Scope.DEPARTMENT and unit.department_id != self.department.pk:
                    continue
                days = WEEKS if measure.frequency == Frequency.WEEK else MONTHS
                for i, day in enumerate(days):
                    denominator = 60 + 7 * u + i
                    if measure.kind == MeasureKind.COUNT:
                        batch.aggregate(measure, unit, day, 10 + (i + u) % 5)
                    elif measure.kind == MeasureKind.RATE:
                        batch.aggregate(measure, unit, day, 10 + (i * 3 + u) % 7, 400 + 9 * i)
                    elif measure.kind == MeasureKind.MEAN:
                        batch.aggregate(
                            measure, unit, day, denominator * (12 + (i + u) % 4), denominator
                        )
                    else:
                        batch.aggregate(
                            measure, unit, day, round(denominator * 0.6) + i % 5, denominator
                        )
        batch.save()
        series_recompute(measure_ids=[m.pk for m in self.measures])

    def pages(self) -> dict[str, str]:
        unit, department, division = self.units[0], self.department, self.division
        return {
            "unit": reverse("dashboards:unit", args=[unit.code]),
            "unit, quarters, compared": reverse("dashboards:unit", args=[unit.code])
            + "?grain=quarter&compare=department",
            "unit, tables": reverse("dashboards:unit", args=[unit.code]) + "?view=table",
            "department": reverse("dashboards:department", args=[department.code]),
            "division": reverse("dashboards:division", args=[division.code]),
            "division, units": reverse("dashboards:division", args=[division.code]) + "?rows=units",
            "measure": reverse("dashboards:measure", args=[self.measures[0].code]),
            "funnel": reverse(
                "dashboards:funnel", args=["division", division.code, self.measures[0].code]
            ),
            "department CSV": reverse("dashboards:department-csv", args=[department.code]),
        }


def charts_url(content: bytes) -> str:
    """The URL of the chart specs a unit's page links."""
    [url] = re.findall(rb'data-charts="([^"]+)"', content)
    return html.unescape(url.decode())


def _count(client, url: str) -> tuple[int, list[str], bytes]:
    with CaptureQueriesContext(connection) as queries:
        response = client.get(url)
    assert response.status_code == 200, url
    return len(queries), [q["sql"] for q in queries.captured_queries], response.content


def _measure(client, units: int, measures: int) -> dict[str, tuple]:
    """Each page's (cold, warm) queries in an organisation of its own, rolled back after."""
    out = {}
    with transaction.atomic():
        world = World(units, measures)
        client.force_login(world.person)
        for name, url in world.pages().items():
            cache.clear()
            cold = _count(client, url)
            warm = _count(client, url)
            out[name] = (cold, warm)
        # The unit page's chart specs, at the URL the page links (its version in it).
        charts = charts_url(out["unit"][1][2])
        cache.clear()
        out["unit charts"] = (_count(client, charts), _count(client, charts))
        out["specs"] = page_specs(out["unit"][1][2], client)
        out["world"] = world
        transaction.set_rollback(True)
    return out


def test_the_queries_of_a_page_do_not_grow_with_units_and_measures(client, db):
    small = _measure(client, 1, 1)
    large = _measure(client, 8, 6)

    mismatches = {}
    for name in [*small["world"].pages(), "unit charts"]:
        (cold1, warm1), (cold8, warm8) = small[name], large[name]
        if cold1[0] != cold8[0] or warm1[0] != warm8[0]:
            mismatches[name] = {
                "cold": (cold1[0], cold8[0]),
                "warm": (warm1[0], warm8[0]),
                "large": [q[:120] for q in cold8[1]],
            }
        # A warm cache never costs more than a cold one.
        assert warm8[0] <= cold8[0], name
    assert not mismatches, mismatches
    # The large pages did show everything (a page that showed nothing would also be flat).
    world = large["world"]
    unit_page = large["unit"][0][2].decode()
    for measure in world.measures:
        if measure.scope != Scope.UNIT or measure.unit_id == world.units[0].pk:
            assert f'id="m-{measure.code}"' in unit_page
    assert len(large["specs"]) == 6
    assert json.loads(large["unit charts"][0][2]).keys() == large["specs"].keys()
    division_units = large["division, units"][0][2].decode()
    assert all(u.name in division_units for u in world.units)
    department = large["department"][0][2].decode()
    assert all(u.name in department for u in world.units if u.department == world.department)


@pytest.fixture
def worlds(db):
    return World(1, 1), World(8, 6)


def test_a_warm_unit_page_decodes_no_points(client, worlds):
    """With the charts and summaries cached, the series are read without their points."""
    _small, large = worlds
    client.force_login(large.person)
    url = large.pages()["unit"]
    client.get(url)

    _n, sql, _content = _count(client, url)

    reads = [q for q in sql if '"measures_series"' in q and "SELECT" in q]
    assert reads, sql
    assert all('"measures_series"."data"' not in q for q in reads), reads


# --------------------------------------------------------------------------------------------
# Cache correctness: a new import is visible at once
# --------------------------------------------------------------------------------------------


def _latest_text(content: str, code: str) -> str:
    """The "Latest (period)" figure of a panel, its label and value as plain text."""
    panel = content.split(f'id="m-{code}"', 1)[1].split("</dl>", 1)[0]
    latest = panel.split("<dt>", 1)[1].split("</dd>", 1)[0]
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", latest)).strip()


def test_a_recomputed_series_is_shown_at_once(client, db):
    world = World(2, 1)
    measure, unit = world.measures[0], world.units[0]
    client.force_login(world.person)
    pages = world.pages()
    before = {name: client.get(url).content for name, url in pages.items()}
    table = reverse("dashboards:unit-table", args=[unit.code, measure.code])
    table_before = client.get(table, headers={"HX-Request": "true"}).content
    series = Series.objects.get(measure=measure, node_key=f"unit:{unit.pk}", grain="month")
    stamp = series.computed_at
    assert "April 2025" not in before["unit"].decode()

    # A new month arrives: 97 of 100 patients with a care plan.
    Rows(world.person).aggregate(measure, unit, date(2025, 4, 1), 97, 100).save()
    series_recompute(measure_ids=[measure.pk])

    series.refresh_from_db()
    assert series.computed_at > stamp
    after = client.get(pages["unit"]).content.decode()
    assert "April 2025" in _latest_text(after, measure.code)
    assert "97.0 %" in _latest_text(after, measure.code)
    spec = page_specs(after.encode(), client)[f"spec-m-{measure.code}"]
    assert spec["data"][0]["x"][-1] == "2025-04-01" and spec["data"][0]["y"][-1] == 97.0
    table_after = client.get(table, headers={"HX-Request": "true"}).content.decode()
    assert "April 2025" in table_after and "April 2025" not in table_before.decode()
    matrix = client.get(pages["department"]).content.decode()
    assert ">97.0</span>" in matrix
    assert client.get(pages["department"]).content != before["department"]
    funnel = client.get(pages["funnel"]).content.decode()
    assert "April 2025" in funnel and "97.0 %" in funnel
    csv = client.get(pages["department CSV"]).content.decode("utf-8-sig")
    assert "2025-04-01" in csv and ",97," in csv


def test_a_corrected_period_replaces_the_cached_figures(client, db):
    """The same periods with another value (a re-import after a correction)."""
    world = World(2, 1)
    measure, unit = world.measures[0], world.units[0]
    client.force_login(world.person)
    url = world.pages()["unit"]
    first = client.get(url).content.decode()
    assert "%" in _latest_text(first, measure.code)

    from measures.models import Observation

    Observation.objects.filter(measure=measure, unit=unit, date=MONTHS[-1]).update(
        numerator=14, denominator=80
    )
    series_recompute(measure_ids=[measure.pk])

    second = client.get(url).content.decode()
    assert "17.5 %" in _latest_text(second, measure.code)
    spec = page_specs(second.encode(), client)[f"spec-m-{measure.code}"]
    assert spec["data"][0]["y"][-1] == 17.5


def test_a_new_target_is_drawn_at_once(client, db):
    world = World(1, 1)
    measure = world.measures[0]
    client.force_login(world.person)
    url = world.pages()["unit"]
    spec = page_specs(client.get(url).content, client)[f"spec-m-{measure.code}"]
    assert any(t["name"] == "Target: 80.0 %" for t in spec["data"])

    measure.target = 95
    measure.save()

    spec = page_specs(client.get(url).content, client)[f"spec-m-{measure.code}"]
    names = [t["name"] for t in spec["data"]]
    assert "Target: 95.0 %" in names and "Target: 80.0 %" not in names


def test_an_unchanged_recompute_still_shows_the_new_computed_at(client, db):
    """A run with the same inputs moves only computed_at: the caption follows it."""
    world = World(1, 1)
    measure, unit = world.measures[0], world.units[0]
    client.force_login(world.person)
    url = world.pages()["unit"]
    client.get(url)
    series = Series.objects.get(measure=measure, node_key=f"unit:{unit.pk}", grain="month")
    Series.objects.filter(pk=series.pk).update(computed_at=series.computed_at - timedelta(days=3))
    series.refresh_from_db()

    content = client.get(url).content.decode()

    from django.utils import timezone

    local = timezone.localtime(series.computed_at).strftime("%Y-%m-%d %H:%M")
    assert f"Computed at {local}" in content
