"""A refresh that redoes only the quarters an import or a revert touched must leave exactly
what a full recomputation from the raw rows leaves: every series' points, icons, counts and
input digest, with complementary suppression moving in sibling series."""

import random
from datetime import date, timedelta

import pytest

from measures.aggregation import (
    batch_windows,
    series_recompute,
    series_refresh_for_batch,
    series_refresh_pairs,
)
from measures.models import PeriodSums, Series
from tests.factories import UnitFactory

from .conftest import Rows

pytestmark = pytest.mark.django_db

MONDAY = date(2024, 1, 1)


def _state():
    return {
        (s.measure_id, s.node_key, s.grain): (
            s.points,
            s.variation_icon,
            s.assurance_icon,
            s.run_chart,
            s.observation_count,
            s.inputs_digest,
        )
        for s in Series.objects.all()
    }


def _sums():
    return {(p.measure_id, p.grain, p.period): bytes(p.data) for p in PeriodSums.objects.all()}


def _random_rows(org, rng: random.Random, units, weeks: range, measures) -> Rows:
    batch = Rows(org.people["support"])
    for measure in measures:
        for unit in units:
            for week in weeks:
                if rng.random() < 0.25:
                    continue  # gaps: some weeks have no rows at all
                day = MONDAY + timedelta(weeks=week, days=rng.randrange(7))
                # Few rows per week, so that many periods fall below the minimum n.
                for _ in range(rng.randrange(1, 8)):
                    batch.value(
                        measure,
                        unit,
                        day,
                        rng.randrange(0, 2 if measure.kind == "proportion" else 20),
                    )
    return batch


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_refresh_after_imports_and_reverts_equals_full_recomputation(org, seed):
    rng = random.Random(seed)
    a3 = UnitFactory(department=org.dept_a, code="AFF-03", name="Avdelning 3")
    b2 = UnitFactory(department=org.dept_b, code="PSY-02", name="Psykos 2")
    units = [org.a1, org.a2, a3, org.b1, b2]
    measures = [org.measures["honos"], org.measures["careplan"], org.measures["incidents"]]
    for measure in measures:
        measure.minimum_n = 5
        measure.save()
    _random_rows(org, rng, units, range(30), measures).save()
    series_recompute()
    suppressed_somewhere = False
    batches = []
    for round_ in range(4):
        unit = rng.choice(units)
        # A new week, sometimes with late rows for weeks already shown (other quarters).
        weeks = [30 + round_] + rng.sample(range(30), 2) * (round_ % 2)
        batch = _random_rows(org, rng, [unit], weeks, measures).save()
        batches.append(batch)
        series_refresh_for_batch(batch_id=batch.pk)
        refreshed, refreshed_sums = _state(), _sums()
        series_recompute(force=True)
        assert refreshed == _state(), f"after import {round_}"
        assert refreshed_sums == _sums()
        suppressed_somewhere |= any(
            any(points["suppressed"]) for points, *_rest in refreshed.values()
        )
    assert suppressed_somewhere  # else suppression was never exercised

    # A revert: its rows go, and the quarters they were in are redone.
    batch = batches[1]
    windows = batch_windows(batch.pk)
    batch.observations.all().delete()
    series_refresh_pairs(windows=windows)
    refreshed = _state()
    series_recompute(force=True)
    assert refreshed == _state()


@pytest.mark.parametrize("series_too", [False, True])
def test_a_refresh_reads_the_data_whole_when_period_sums_are_missing(org, rows, series_too):
    """Series written before period sums existed, or none at all (just after the upgrade's
    migration): the measure is recomputed whole, not pooled from the one refreshed unit."""
    honos = org.measures["honos"]
    rows().value(honos, org.a1, MONDAY, 10, times=6).value(
        honos, org.b1, MONDAY, 20, times=6
    ).save()
    series_recompute()
    PeriodSums.objects.all().delete()
    if series_too:
        Series.objects.all().delete()
    batch = rows().value(honos, org.a1, MONDAY + timedelta(weeks=1), 30, times=6).save()
    series_refresh_for_batch(batch_id=batch.pk)
    division = Series.objects.get(measure=honos, level="division", grain="week")
    assert division.points["value"] == [15.0, 30.0]
    assert PeriodSums.objects.filter(measure=honos).exists()


def test_months_are_exact_for_dates_long_ago(org, rows):
    """The GROUP BY splits weeks at month ends by a list of days for the usual years; rows
    outside those years are grouped again with a list for their own years."""
    honos = org.measures["honos"]
    # 1985-04-29 is a Monday: its week runs into May.
    rows().value(honos, org.a1, date(1985, 4, 30), 10, times=5).value(
        honos, org.a1, date(1985, 5, 2), 20, times=5
    ).save()
    series_recompute()
    monthly = Series.objects.get(measure=honos, node_key=f"unit:{org.a1.pk}", grain="month")
    assert monthly.points["period"] == ["1985-04-01", "1985-05-01"]
    assert monthly.points["value"] == [10.0, 20.0]
    weekly = Series.objects.get(measure=honos, node_key=f"unit:{org.a1.pk}", grain="week")
    assert weekly.points["period"] == ["1985-04-29"]
    assert weekly.points["value"] == [15.0]


def test_a_week_across_a_quarters_end_moves_the_next_quarters_suppression(org, rows):
    """2 rows on Monday 30 September 2024 (Q3) make the week to 6 October a suppressed week
    of October too: October's first whole week is suppressed with it (cells.suppress), in Q4,
    which an import into Q3 alone must still reach."""
    honos = org.measures["honos"]
    batch = rows()
    for day in (date(2024, 9, 2), date(2024, 9, 9), date(2024, 9, 16), date(2024, 9, 23)):
        batch.value(honos, org.a1, day, 10, times=6)
    for day in (date(2024, 10, 8), date(2024, 10, 15), date(2024, 10, 22)):
        batch.value(honos, org.a1, day, 10, times=6)
    batch.save()
    series_recompute()
    late = rows().value(honos, org.a1, date(2024, 9, 30), 30, times=2).save()
    series_refresh_for_batch(batch_id=late.pk)
    refreshed = _state()
    weekly = Series.objects.get(measure=honos, node_key=f"unit:{org.a1.pk}", grain="week")
    flags = dict(zip(weekly.points["period"], weekly.points["suppressed"], strict=True))
    assert flags["2024-09-30"] and flags["2024-10-07"]
    series_recompute(force=True)
    assert refreshed == _state()
