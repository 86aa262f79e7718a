"""Property tests (hypothesis): pooling is invariant to row order; parents are sums."""

from datetime import date, timedelta

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from measures.aggregation import (
    Organisation,
    all_levels,
    series_recompute,
    unit_cells,
)
from measures.enums import SeriesLevel
from measures.models import Observation, Series

from .conftest import MEASURE, Rows

UNITS = {1: 10, 2: 10, 3: 10, 4: 20, 5: 20}  # unit → department
ORG = Organisation(unit_department=UNITS, department_division={10: 1, 20: 1})

rows_strategy = st.lists(
    st.tuples(
        st.sampled_from(sorted(UNITS)),
        st.integers(0, 120),  # day offset: several weeks, months and a quarter boundary
        st.integers(0, 40),  # numerator
        st.integers(1, 40),  # denominator (the numerator is clipped to it)
    ),
    min_size=1,
    max_size=60,
)


def _sums(rows: list[tuple]) -> pd.DataFrame:
    """What unit_period_sums returns for pre-aggregated rows (one group per row here)."""
    frame = pd.DataFrame(rows, columns=["unit_id", "day", "numerator", "denominator"])
    days = np.datetime64("2024-01-01") + frame["day"].to_numpy().astype("timedelta64[D]")
    weekday = (days.astype("datetime64[D]").view("int64") - 4) % 7  # 1970-01-05 was a Monday
    return pd.DataFrame(
        {
            "measure_id": MEASURE.id,
            "unit_id": frame["unit_id"],
            "week": (days - weekday.astype("timedelta64[D]")).astype("datetime64[s]"),
            "month": days.astype("datetime64[M]").astype("datetime64[s]"),
            "rows": 1,
            "n": frame["denominator"].astype(float),
            "numerator": np.minimum(frame["numerator"], frame["denominator"]).astype(float),
            "denominator": frame["denominator"].astype(float),
        }
    )


def _canonical(cells: pd.DataFrame) -> pd.DataFrame:
    return cells.sort_values(["level", "node_id", "grain", "period"]).reset_index(drop=True)


@given(rows=rows_strategy, seed=st.integers(0, 2**32 - 1))
@settings(max_examples=150, deadline=None)
def test_pooling_is_invariant_to_row_order(rows, seed):
    sums = _sums(rows)
    shuffled = sums.sample(frac=1, random_state=np.random.RandomState(seed))
    a = _canonical(all_levels(unit_cells(sums, [MEASURE]), [MEASURE], ORG))
    b = _canonical(all_levels(unit_cells(shuffled, [MEASURE]), [MEASURE], ORG))
    # Integers: sums are exact whatever the order.
    pd.testing.assert_frame_equal(a, b)


@given(rows=rows_strategy)
@settings(max_examples=150, deadline=None)
def test_parents_are_the_sums_of_their_children(rows):
    cells = all_levels(unit_cells(_sums(rows), [MEASURE]), [MEASURE], ORG)
    units = cells[cells["level"] == SeriesLevel.UNIT]
    departments = cells[cells["level"] == SeriesLevel.DEPARTMENT]
    division = cells[cells["level"] == SeriesLevel.DIVISION]
    columns = ["numerator", "denominator", "n", "rows"]
    by_department = (
        units.assign(node_id=units["node_id"].map(UNITS))
        .groupby(["node_id", "grain", "period"])[columns]
        .sum()
    )
    pd.testing.assert_frame_equal(
        departments.set_index(["node_id", "grain", "period"])[columns].sort_index(),
        by_department.sort_index(),
    )
    pd.testing.assert_frame_equal(
        division.set_index(["grain", "period"])[columns].sort_index(),
        units.groupby(["grain", "period"])[columns].sum().sort_index(),
    )
    # Quarter = Σ months at every node.
    months = cells[cells["grain"] == "month"]
    quarters = cells[cells["grain"] == "quarter"].set_index(["level", "node_id", "period"])
    rolled = (
        months.assign(
            period=months["period"].dt.to_period("Q").dt.start_time.astype("datetime64[s]")
        )
        .groupby(["level", "node_id", "period"])[columns]
        .sum()
    )
    pd.testing.assert_frame_equal(quarters[columns].sort_index(), rolled.sort_index())


@pytest.mark.django_db
@given(
    data=st.lists(
        st.tuples(st.sampled_from(["a1", "a2", "b1"]), st.integers(0, 60), st.integers(0, 1)),
        min_size=1,
        max_size=40,
    ),
    seed=st.integers(0, 2**32 - 1),
)
@settings(
    max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
def test_database_pooling_is_invariant_to_insert_order_and_sums_units(org, data, seed):
    careplan = org.measures["careplan"]

    def run(order):
        Observation.objects.all().delete()
        Series.objects.all().delete()
        batch = Rows(org.people["support"])
        for unit, day, value in order:
            batch.value(careplan, getattr(org, unit), date(2024, 1, 1) + timedelta(days=day), value)
        batch.save()
        series_recompute(measure_ids=[careplan.pk])
        return {
            (s.node_key, s.grain): (
                s.points["period"],
                s.points["numerator"],
                s.points["denominator"],
            )
            for s in Series.objects.filter(measure=careplan)
        }

    first = run(data)
    shuffled = list(data)
    np.random.default_rng(seed).shuffle(shuffled)
    assert run(shuffled) == first
    for grain in ("month", "quarter"):
        department = first.get((f"department:{org.dept_a.pk}", grain), ([], [], []))
        units = [first.get((f"unit:{u.pk}", grain)) for u in (org.a1, org.a2)]
        totals: dict[str, list[float]] = {}
        for unit in filter(None, units):
            for period, num, den in zip(*unit, strict=True):
                total = totals.setdefault(period, [0.0, 0.0])
                total[0] += num
                total[1] += den
        assert {p: [n, d] for p, n, d in zip(*department, strict=True)} == totals
