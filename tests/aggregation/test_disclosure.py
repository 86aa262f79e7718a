"""An attacker who reads every published series tries to work out a suppressed n exactly.

What a user can read (the API, and the pages and exports built on the same selectors): every
series of a measure at every level and grain, each period either shown (n, numerator,
denominator, value, limits) or only flagged as suppressed, a period that is absent meaning
no data, and each series' published totals. The attacker also knows the organisation chart
and the calendar, so every figure is a sum of others in known ways:

* totals: a series' published total against its periods (a total above the sum of the shown
  periods is the sum of every period);
* hierarchy: a department is the sum of its units, the division of its departments;
* quarter − months: a quarter is the sum of its three months;
* weeks − months: over a span that both whole weeks and whole months cover (a month that
  begins on a Monday and whose weeks all end in it, or the whole series), Σ weeks = Σ months.

The attack is a linear programme per suppressed cell: the least and the greatest n it can
have given every equation above, and that a suppressed n is a whole number ≥ 1. When both
bounds leave a single whole number, the cell is recovered (this covers direct reads, "total
minus shown", "parent minus siblings", and combinations of them, e.g. 2 split between two
suppressed units can only be 1 + 1).
"""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import date, timedelta
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from rest_framework.test import APIClient
from scipy.optimize import linprog

from measures.aggregation import (
    Organisation,
    all_levels,
    canonical,
    series_recompute,
    suppress,
    unit_cells,
)
from measures.series import published_totals

from .conftest import MEASURE, Rows

START = date(2024, 1, 1)  # a Monday; so is 2024-04-01: Q1 2024 is whole weeks and months

Key = tuple[str, int, str, str]  # level, node, grain, period start (ISO)


@dataclass
class Published:
    """Everything the attacker reads: shown n per cell, suppressed cells, series totals."""

    shown: dict[Key, float] = field(default_factory=dict)
    suppressed: set[Key] = field(default_factory=set)
    #: (level, node, grain) → the published total n over the series' periods
    totals: dict[tuple[str, int, str], float] = field(default_factory=dict)


def _week_days(period: str) -> tuple[date, date]:
    first = date.fromisoformat(period)
    return first, first + timedelta(days=6)


def _month_days(period: str) -> tuple[date, date]:
    first = date.fromisoformat(period)
    following = date(first.year + first.month // 12, first.month % 12 + 1, 1)
    return first, following - timedelta(days=1)


def _equations(published: Published, org: Organisation, routes: set[str]):
    """Linear equations Σ coefficient · cell = 0 over cells, with known cells as constants."""
    cells = set(published.shown) | published.suppressed
    by_series: dict[tuple[str, int, str], list[Key]] = defaultdict(list)
    for key in cells:
        by_series[key[:3]].append(key)
    equations: list[dict[Key, float]] = []
    if "totals" in routes:
        for series, keys in by_series.items():
            shown = sum(published.shown.get(key, 0.0) for key in keys)
            # A total equal to Σ shown says nothing more; any other total counted the
            # suppressed periods too (what the API's observation_count did).
            if series in published.totals and published.totals[series] != shown:
                eq = dict.fromkeys(keys, 1.0)
                eq[("total", 0, series[2], series[0] + str(series[1]))] = -1.0
                equations.append(eq)
    if "hierarchy" in routes:
        children: dict[tuple[str, int], list[tuple[str, int]]] = defaultdict(list)
        for unit, department in org.unit_department.items():
            children[("department", department)].append(("unit", unit))
        for department, division in org.department_division.items():
            children[("division", division)].append(("department", department))
        for key in cells:
            level, node, grain, period = key
            if (level, node) in children:
                eq = {key: -1.0}
                for child_level, child in children[(level, node)]:
                    eq[(child_level, child, grain, period)] = 1.0
                equations.append(eq)
    if "quarter" in routes:
        for key in cells:
            level, node, grain, period = key
            if grain == "quarter":
                first = date.fromisoformat(period)
                eq = {key: -1.0}
                for i in range(3):
                    month = date(first.year, first.month + i, 1).isoformat()
                    eq[(level, node, "month", month)] = 1.0
                equations.append(eq)
    if "weeks-months" in routes:
        # Per node: weeks and months linked where their days overlap; each connected set of
        # them covers the same days both ways, so its weeks and its months have equal sums.
        for (level, node, grain), keys in list(by_series.items()):
            if grain != "week" or (level, node, "month") not in by_series:
                continue
            weeks = sorted(keys, key=lambda k: k[3])
            months = sorted(by_series[(level, node, "month")], key=lambda k: k[3])
            parent = {k: k for k in weeks + months}

            def find(k, parent=parent):
                while parent[k] != k:
                    parent[k] = parent[parent[k]]
                    k = parent[k]
                return k

            for w in weeks:
                w_lo, w_hi = _week_days(w[3])
                for m in months:
                    m_lo, m_hi = _month_days(m[3])
                    if w_lo <= m_hi and m_lo <= w_hi:
                        parent[find(w)] = find(m)
            groups: dict[Key, dict[Key, float]] = defaultdict(dict)
            for k in weeks:
                groups[find(k)][k] = 1.0
            for k in months:
                groups[find(k)][k] = -1.0
            equations.extend(groups.values())
    return equations


def recovered(
    published: Published, org: Organisation, routes: set[str], *, bounds: bool = False
) -> dict[Key, float]:
    """Suppressed cells whose n the equations pin down, with that n.

    Without ``bounds``: by linear algebra alone (a cell is determined when its unit vector lies
    in the row space of the equations over the unknowns). With ``bounds``: also using that a
    suppressed n is a whole number ≥ 1 (one linear programme per bound and cell).
    """
    unknowns = sorted(published.suppressed)
    if not unknowns:
        return {}
    index = {key: i for i, key in enumerate(unknowns)}
    known = dict(published.shown)
    for (level, node, grain), total in published.totals.items():
        known[("total", 0, grain, level + str(node))] = total
    rows, rhs = [], []
    for eq in _equations(published, org, routes):
        row = np.zeros(len(unknowns))
        constant = 0.0
        for key, coefficient in eq.items():
            if key in index:
                row[index[key]] += coefficient
            else:
                constant -= coefficient * known.get(key, 0.0)  # absent: no data, 0
        if row.any():
            rows.append(row)
            rhs.append(constant)
    if not rows:
        return {}
    a_eq, b_eq = np.array(rows), np.array(rhs)
    if not bounds:
        # Determined cells: zero in every vector of the null space.
        _u, singular, vt = np.linalg.svd(a_eq)
        rank = int((singular > 1e-9).sum())
        null = vt[rank:]
        solution = np.linalg.lstsq(a_eq, b_eq, rcond=None)[0]
        return {
            key: round(float(solution[i]), 6)
            for key, i in index.items()
            if not len(null) or np.abs(null[:, i]).max() < 1e-9
        }
    out = {}
    limits = [(1, None)] * len(unknowns)
    for key, i in index.items():
        c = np.zeros(len(unknowns))
        c[i] = 1.0
        low = linprog(c, A_eq=a_eq, b_eq=b_eq, bounds=limits, method="highs")
        assert low.status == 0, "the published figures must be consistent"
        high = linprog(-c, A_eq=a_eq, b_eq=b_eq, bounds=limits, method="highs")
        if high.status != 0:  # unbounded above
            continue
        least, greatest = math.ceil(low.fun - 1e-6), math.floor(-high.fun + 1e-6)
        if least == greatest:
            out[key] = least
    return out


# --- the engine on small random organisations -------------------------------------------


@st.composite
def organisations(draw):
    sizes = draw(st.lists(st.integers(1, 3), min_size=1, max_size=3))
    unit_department, unit = {}, 1
    for d, size in enumerate(sizes):
        for _ in range(size):
            unit_department[unit] = 10 * (d + 1)
            unit += 1
    return Organisation(
        unit_department=unit_department,
        department_division={10 * (d + 1): 1 for d in range(len(sizes))},
    )


@st.composite
def scenarios(draw, days: int = 120):
    org = draw(organisations())
    rows = draw(
        st.lists(
            st.tuples(
                st.sampled_from(sorted(org.unit_department)),
                st.integers(0, days),
                # Small counts, so that many periods fall below the minimum n of 5.
                st.integers(1, 6),
            ),
            min_size=1,
            max_size=50,
        )
    )
    return org, rows


def _sums(rows) -> pd.DataFrame:
    """What unit_period_sums returns for patient-level rows of a proportion."""
    frame = pd.DataFrame(rows, columns=["unit_id", "day", "count"])
    days = np.datetime64(START.isoformat()) + frame["day"].to_numpy().astype("timedelta64[D]")
    weekday = (days.astype("datetime64[D]").view("int64") - 4) % 7  # 1970-01-05 was a Monday
    return pd.DataFrame(
        {
            "measure_id": MEASURE.id,
            "unit_id": frame["unit_id"],
            "week": (days - weekday.astype("timedelta64[D]")).astype("datetime64[s]"),
            "month": days.astype("datetime64[M]").astype("datetime64[s]"),
            "rows": frame["count"],
            "n": frame["count"].astype(float),
            "numerator": (frame["count"] // 2).astype(float),
            "denominator": frame["count"].astype(float),
        }
    )


def engine_published(org: Organisation, rows) -> tuple[Published, dict[Key, float]]:
    """Run the engine's cells and suppression; what is published, and the secrets."""
    cells = canonical(all_levels(unit_cells(_sums(rows), [MEASURE]), [MEASURE], org))
    flags = suppress(cells, {MEASURE.id: MEASURE.minimum_n}, org)
    published, secret = Published(), {}
    series_points: dict[tuple[str, int, str], dict[str, list]] = defaultdict(
        lambda: {"period": [], "n": [], "rows": [], "suppressed": []}
    )
    for cell, hidden in zip(cells.itertuples(index=False), flags, strict=True):
        key = (str(cell.level), int(cell.node_id), str(cell.grain), str(cell.period)[:10])
        if hidden:
            published.suppressed.add(key)
            secret[key] = float(cell.n)
        else:
            published.shown[key] = float(cell.n)
        points = series_points[key[:3]]
        points["period"].append(key[3])
        points["n"].append(float(cell.n))
        points["rows"].append(int(cell.rows))
        points["suppressed"].append(bool(hidden))
    for series, points in series_points.items():
        # The same selector as the API's: a series-like object with its packed points.
        published.totals[series] = published_totals(SimpleNamespace(points=points)).n
    return published, secret


SAFE_ROUTES = {"totals", "hierarchy", "quarter"}

ALL_ROUTES = SAFE_ROUTES | {"weeks-months"}


@pytest.mark.parametrize(
    ("routes", "bounds"),
    [
        pytest.param({"totals"}, False, id="totals-minus-shown"),
        pytest.param({"totals", "hierarchy"}, False, id="parent-minus-siblings"),
        pytest.param({"totals", "quarter"}, False, id="quarter-minus-months"),
        pytest.param({"totals", "weeks-months"}, False, id="month-minus-weeks"),
        pytest.param(SAFE_ROUTES, False, id="parents-and-quarters"),
        pytest.param(ALL_ROUTES, False, id="every-route"),
    ],
)
@given(scenario=scenarios())
@settings(max_examples=150, deadline=None)
def test_no_suppressed_n_can_be_worked_out(routes, bounds, scenario):
    org, rows = scenario
    published, secret = engine_published(org, rows)
    found = recovered(published, org, routes, bounds=bounds)
    assert not found, f"recovered {found} (true {[secret[k] for k in found]}) from {rows}"


_ONE = (
    Organisation(unit_department={1: 10, 2: 20, 3: 30}, department_division={10: 1, 20: 1, 30: 1}),
    Organisation(
        unit_department={1: 10, 2: 20, 3: 30, 4: 30}, department_division={10: 1, 20: 1, 30: 1}
    ),
    Organisation(unit_department={1: 10}, department_division={10: 1}),
)


@pytest.mark.parametrize(
    ("org", "rows", "routes", "bounds"),
    [
        # A department quarter is the sum of its units' quarters and of its months: counted as
        # one sum, a suppressed month hid that every unit quarter was shown (unit 1's quarter
        # was published and equal to its one suppressed month).
        pytest.param(
            Organisation(unit_department={1: 10, 2: 20}, department_division={10: 1, 20: 1}),
            [(1, 0, 5), (2, 0, 1)],
            SAFE_ROUTES,
            False,
            id="a-parent-in-two-sums",
        ),
        # A department quarter = division (Feb + Mar) when the division's Feb and Mar are
        # its only non-zero children (a 2-D table: the exact audit of each quarter).
        pytest.param(
            _ONE[0],
            [(1, 0, 1), (2, 31, 1), (2, 60, 2), (3, 0, 4)],
            SAFE_ROUTES,
            False,
            id="parents-and-quarters",
        ),
        pytest.param(
            _ONE[0],
            [(1, 0, 1), (1, 0, 1), (1, 31, 1), (2, 60, 1), (3, 60, 4)],
            SAFE_ROUTES,
            False,
            id="parents-and-quarters-two-steps",
        ),
        # April 2024 is whole weeks: the month less its shown weeks was the suppressed one.
        pytest.param(
            _ONE[2],
            [(1, 91 + d, 6) for d in (0, 7, 14)] + [(1, 112, 3)],
            {"weeks-months"},
            False,
            id="month-minus-weeks",
        ),
        # Division 8 = unit 5 + department (1) + department (1 + 1): every small cell.
        # A week across 29 January to 4 February = (January + February, known from the
        # quarter less an empty March) − the other week (weeks, months and the quarter).
        pytest.param(
            _ONE[2],
            [(1, 28, 1), (1, 56, 5)],
            ALL_ROUTES,
            False,
            id="weeks-months-and-quarters",
        ),
        pytest.param(
            _ONE[1],
            [(1, 0, 5), (2, 0, 1), (3, 0, 1), (4, 0, 1)],
            {"hierarchy"},
            True,
            id="parents-and-least-n",
        ),
        # Division 7 = unit 5 + two suppressed units holding 2: each holds 1.
        pytest.param(
            _ONE[0],
            [(1, 0, 5), (2, 0, 1), (3, 0, 1)],
            {"hierarchy"},
            True,
            id="suppressed-ones",
        ),
    ],
)
def test_leaks_the_engine_closes(org, rows, routes, bounds):
    published, secret = engine_published(org, rows)
    found = recovered(published, org, routes, bounds=bounds)
    assert not found, f"recovered {found} (true {[secret[k] for k in found]}) from {rows}"


@given(scenario=scenarios())
@settings(max_examples=40, deadline=None)
def test_no_suppressed_n_follows_from_parents_and_the_least_n_a_cell_holds(scenario):
    """Parent minus siblings with bounds: each suppressed n is a whole number ≥ 1."""
    org, rows = scenario
    published, secret = engine_published(org, rows)
    found = recovered(published, org, {"totals", "hierarchy"}, bounds=True)
    assert not found, f"recovered {found} (true {[secret[k] for k in found]}) from {rows}"


def test_the_attacker_finds_what_an_unprotected_table_gives_away():
    """The attack works: without complementary suppression a lone suppressed unit is found."""
    org = Organisation(unit_department={1: 10, 2: 10}, department_division={10: 1})
    published = Published(
        shown={
            ("unit", 2, "month", "2024-01-01"): 9.0,
            ("department", 10, "month", "2024-01-01"): 12.0,
        },
        suppressed={("unit", 1, "month", "2024-01-01")},
    )
    assert recovered(published, org, {"hierarchy"}) == {("unit", 1, "month", "2024-01-01"): 3}
    assert recovered(published, org, {"hierarchy"}, bounds=True) == {
        ("unit", 1, "month", "2024-01-01"): 3
    }
    # Two suppressed units holding 2 between them: each holds 1 (bounds only).
    published.shown[("department", 10, "month", "2024-01-01")] = 2.0
    published.suppressed.add(("unit", 2, "month", "2024-01-01"))
    del published.shown[("unit", 2, "month", "2024-01-01")]
    assert not recovered(published, org, {"hierarchy"})
    assert len(recovered(published, org, {"hierarchy"}, bounds=True)) == 2
    # A total over every period, suppressed ones included, gives a lone suppressed period away
    # (what the API's observation_count did).
    published = Published(
        shown={("unit", 1, "week", "2024-01-01"): 9.0},
        suppressed={("unit", 1, "week", "2024-01-08")},
        totals={("unit", 1, "week"): 12.0},
    )
    assert recovered(published, org, {"totals"}) == {("unit", 1, "week", "2024-01-08"): 3}
    # A month that is whole weeks (April 2024) less its shown weeks.
    published = Published(
        shown={("unit", 1, "month", "2024-04-01"): 20.0}
        | {("unit", 1, "week", f"2024-04-{d:02}"): 5.0 for d in (1, 8, 15)},
        suppressed={("unit", 1, "week", "2024-04-22")},
    )
    assert recovered(published, org, {"weeks-months"}) == {("unit", 1, "week", "2024-04-22"): 5}


# --- through the API, as a user reads it ------------------------------------------------


def api_published(client: APIClient, measure_code: str, org_model) -> Published:
    """Everything the API answers about one measure, as the attacker's equations need it."""
    ids = (
        {("unit", u.code): u.pk for u in (org_model.a1, org_model.a2, org_model.b1)}
        | {("department", d.code): d.pk for d in (org_model.dept_a, org_model.dept_b)}
        | {("division", org_model.dept_a.division.code): org_model.dept_a.division.pk}
    )
    published = Published()
    url = "/api/series/"
    params = {"measure": measure_code, "page_size": 1000}
    while url:
        body = client.get(url, params).json()
        for series in body["results"]:
            node = ids[(series["level"], series["node"])]
            n_total = 0.0
            for point in series["points"]:
                key = (series["level"], node, series["grain"], point["period_start"])
                if point["suppressed"]:
                    assert set(point) == {"period_start", "suppressed"}
                    published.suppressed.add(key)
                else:
                    published.shown[key] = float(point["n"])
                    n_total += point["n"]
            # For patient-level rows the published count of observations is Σ n.
            published.totals[(series["level"], node, series["grain"])] = float(
                series["observation_count"]
            )
        url, params = body.get("next"), None
    return published


@pytest.mark.django_db
@given(
    data=st.lists(
        st.tuples(st.sampled_from(["a1", "a2", "b1"]), st.integers(0, 90), st.integers(1, 6)),
        min_size=1,
        max_size=25,
    )
)
@settings(
    max_examples=10, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
def test_nothing_the_api_answers_gives_a_suppressed_n_away(org, data):
    from measures.models import Observation, Series

    Observation.objects.all().delete()
    Series.objects.all().delete()
    honos = org.measures["honos"]  # weekly: weeks, months and quarters
    batch = Rows(org.people["support"])
    for unit, day, count in data:
        batch.value(honos, getattr(org, unit), START + timedelta(days=day), 10, times=count)
    batch.save()
    series_recompute(measure_ids=[honos.pk])
    client = APIClient()
    client.force_authenticate(org.people["clinician"])
    published = api_published(client, honos.code, org)
    engine_org = Organisation.load()
    assert not recovered(published, engine_org, {"totals", "hierarchy"})
    assert not recovered(published, engine_org, {"totals", "quarter"})
    assert not recovered(published, engine_org, {"totals", "weeks-months"})
