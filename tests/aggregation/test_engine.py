"""The aggregation engine: pooling by kind, periods, grains, scope, SPC, idempotency."""

from datetime import date, timedelta

import pytest

from measures.aggregation import series_recompute
from measures.enums import Direction, Frequency, MeasureKind, Scope, SeriesLevel
from measures.models import Series
from tests.factories import MeasureFactory

from .conftest import point, series_of

pytestmark = pytest.mark.django_db

MONDAY = date(2024, 1, 1)  # ISO week 1 of 2024 starts on this Monday


def test_department_proportion_pools_sums_not_unit_proportions(org, rows):
    careplan = org.measures["careplan"]
    # a1: 1 of 10 (10 %); a2: 90 of 100 (90 %). Mean of units: 50 %; pooled: 91/110.
    rows().value(careplan, org.a1, MONDAY, 1, times=1).value(
        careplan, org.a1, MONDAY, 0, times=9
    ).value(careplan, org.a2, MONDAY, 1, times=90).value(
        careplan, org.a2, MONDAY, 0, times=10
    ).save()
    series_recompute()
    department = point(series_of(careplan, "department", org.dept_a, "month"), "2024-01-01")
    assert department["numerator"] == 91
    assert department["denominator"] == 110
    assert department["value"] == pytest.approx(100 * 91 / 110, abs=1e-6)
    assert department["n"] == 110
    unit = point(series_of(careplan, "unit", org.a1, "month"), "2024-01-01")
    assert unit["value"] == pytest.approx(10.0)


def test_mean_is_weighted_by_the_number_of_ratings(org, rows):
    honos = org.measures["honos"]
    # a1: two ratings of 10; a2: eight of 20. Mean of unit means 15; of all ratings 18.
    rows().value(honos, org.a1, MONDAY, 10, times=2).value(
        honos, org.a2, MONDAY, 20, times=8
    ).save()
    series_recompute()
    department = point(series_of(honos, "department", org.dept_a, "week"), "2024-01-01")
    assert department["value"] == pytest.approx(18.0)
    assert department["n"] == 10
    division = point(series_of(honos, "division", org.division, "week"), "2024-01-01")
    assert division["value"] == pytest.approx(18.0)


def test_mean_pools_pre_aggregated_rows_by_their_denominators(org, rows):
    honos = org.measures["honos"]
    # a1 reports a mean of 10 over 5 ratings (sum 50); a2 a mean of 30 over 15 (sum 450).
    rows().aggregate(honos, org.a1, MONDAY, 50, 5).aggregate(honos, org.a2, MONDAY, 450, 15).save()
    series_recompute()
    department = point(series_of(honos, "department", org.dept_a, "week"), "2024-01-01")
    assert department["value"] == pytest.approx(500 / 20)
    assert department["n"] == 20


def test_rate_pools_events_over_exposure_per_rate_base(org, rows):
    coercion = org.measures["coercion"]  # per 1,000 bed days
    rows().aggregate(coercion, org.a1, MONDAY, 6, 1000).aggregate(
        coercion, org.a2, MONDAY, 2, 3000
    ).save()
    series_recompute()
    department = point(series_of(coercion, "department", org.dept_a, "month"), "2024-01-01")
    assert department["numerator"] == 8
    assert department["denominator"] == 4000
    assert department["value"] == pytest.approx(8 / 4000 * 1000)  # 2.0, not (6 + 0.667) / 2
    assert department["n"] == 8  # events
    assert series_of(coercion, "unit", org.a1, "month").chart == "u"


def test_count_sums_events_per_period(org, rows):
    incidents = org.measures["incidents"]
    # Patient-level event rows (a row may hold several events): n is the number of rows.
    rows().value(incidents, org.a1, MONDAY, 1, times=3).value(
        incidents, org.a1, MONDAY + timedelta(days=2), 2, times=2
    ).value(incidents, org.b1, MONDAY, 1, times=5).save()
    series_recompute()
    assert point(series_of(incidents, "unit", org.a1, "week"), "2024-01-01")["value"] == 7
    assert (
        point(series_of(incidents, "division", org.division, "week"), "2024-01-01")["value"] == 12
    )
    assert point(series_of(incidents, "unit", org.a1, "week"), "2024-01-01")["n"] == 5
    assert series_of(incidents, "unit", org.a1, "week").chart == "xmr"


def test_iso_weeks_start_on_monday(org, rows):
    honos = org.measures["honos"]
    sunday, monday = date(2024, 1, 7), date(2024, 1, 8)
    rows().value(honos, org.a1, sunday, 10, times=5).value(
        honos, org.a1, monday, 20, times=5
    ).save()
    series_recompute()
    weekly = series_of(honos, "unit", org.a1, "week")
    assert weekly.points["period"] == ["2024-01-01", "2024-01-08"]
    assert weekly.points["value"] == [10.0, 20.0]


def test_a_week_across_two_months_splits_by_month(org, rows):
    honos = org.measures["honos"]
    # Week of Monday 29 January 2024: 29-31 January and 1-4 February.
    rows().value(honos, org.a1, date(2024, 1, 31), 10, times=5).value(
        honos, org.a1, date(2024, 2, 1), 20, times=5
    ).save()
    series_recompute()
    weekly = series_of(honos, "unit", org.a1, "week")
    assert weekly.points["period"] == ["2024-01-29"]
    assert weekly.points["value"] == [15.0]
    monthly = series_of(honos, "unit", org.a1, "month")
    assert monthly.points["period"] == ["2024-01-01", "2024-02-01"]
    assert monthly.points["value"] == [10.0, 20.0]


def test_months_roll_up_to_quarters_and_grains_follow_the_frequency(org, rows):
    careplan = org.measures["careplan"]  # monthly: month and quarter, no week
    batch = rows()
    for month, (yes, no) in zip((1, 2, 3, 4), ((5, 5), (8, 2), (2, 8), (6, 4)), strict=True):
        batch.value(careplan, org.a1, date(2024, month, 10), 1, times=yes)
        batch.value(careplan, org.a1, date(2024, month, 10), 0, times=no)
    batch.save()
    series_recompute()
    grains = set(
        Series.objects.filter(measure=careplan, node_key=f"unit:{org.a1.pk}").values_list(
            "grain", flat=True
        )
    )
    assert grains == {Frequency.MONTH, Frequency.QUARTER}
    quarterly = series_of(careplan, "unit", org.a1, "quarter")
    assert quarterly.points["period"] == ["2024-01-01", "2024-04-01"]
    assert quarterly.points["numerator"] == [15, 6]
    assert quarterly.points["denominator"] == [30, 10]
    honos = org.measures["honos"]  # weekly: week, month and quarter
    rows().value(honos, org.a1, MONDAY, 3, times=5).save()
    series_recompute()
    assert set(
        Series.objects.filter(measure=honos, level=SeriesLevel.UNIT).values_list("grain", flat=True)
    ) == {Frequency.WEEK, Frequency.MONTH, Frequency.QUARTER}


def test_unit_scoped_measure_aggregates_only_in_its_unit(org, rows):
    local = org.measures["local"]  # owned by a1
    rows().value(local, org.a1, MONDAY, 2, times=5).value(local, org.a2, MONDAY, 9, times=5).save()
    series_recompute()
    keys = set(Series.objects.filter(measure=local).values_list("node_key", flat=True))
    assert keys == {f"unit:{org.a1.pk}"}
    assert point(series_of(local, "unit", org.a1, "week"), "2024-01-01")["value"] == 10


def test_department_scoped_measure_pools_its_department_only(org, rows):
    measure = MeasureFactory(
        code="dept-local",
        kind=MeasureKind.MEAN,
        scope=Scope.DEPARTMENT,
        department=org.dept_a,
        frequency=Frequency.WEEK,
    )
    rows().value(measure, org.a1, MONDAY, 1, times=5).value(
        measure, org.a2, MONDAY, 3, times=5
    ).value(measure, org.b1, MONDAY, 100, times=5).save()
    series_recompute()
    keys = set(Series.objects.filter(measure=measure).values_list("node_key", flat=True))
    assert keys == {f"unit:{org.a1.pk}", f"unit:{org.a2.pk}", f"department:{org.dept_a.pk}"}
    assert point(series_of(measure, "department", org.dept_a, "week"), "2024-01-01")[
        "value"
    ] == pytest.approx(2.0)


def test_series_records_when_and_from_how_many_observations(org, rows):
    honos = org.measures["honos"]
    rows().value(honos, org.a1, MONDAY, 3, times=7).value(honos, org.b1, MONDAY, 3, times=5).save()
    series_recompute()
    assert series_of(honos, "unit", org.a1, "week").observation_count == 7
    division = series_of(honos, "division", org.division, "week")
    assert division.observation_count == 12
    assert division.computed_at is not None


def test_recomputing_twice_gives_the_same_rows(org, rows):
    honos = org.measures["honos"]
    batch = rows()
    for week in range(20):
        batch.value(honos, org.a1, MONDAY + timedelta(weeks=week), week % 5, times=6)
    batch.save()
    series_recompute()
    first = {
        s.pk: (s.node_key, s.grain, s.points, s.variation_icon)
        for s in Series.objects.order_by("pk")
    }
    series_recompute()
    second = {
        s.pk: (s.node_key, s.grain, s.points, s.variation_icon)
        for s in Series.objects.order_by("pk")
    }
    assert first == second
    assert Series.objects.count() == len(first) == 9  # a1, dept A, division × 3 grains


def test_a_second_full_run_skips_unchanged_series_unless_forced(org, rows):
    honos = org.measures["honos"]
    batch = rows()
    for week in range(20):
        batch.value(honos, org.a1, MONDAY + timedelta(weeks=week), week % 5, times=6)
    batch.save()
    first = series_recompute()
    stamps = dict(Series.objects.values_list("pk", "computed_at"))

    again = series_recompute()

    assert first.series_written == 9
    assert (again.series_written, again.series_unchanged) == (0, 9)
    # Checked against the current data, so their computed_at moves on all the same.
    assert all(s.computed_at > stamps[s.pk] for s in Series.objects.all())
    assert series_recompute(force=True).series_written == 9
    # New data for the unit changes its series and its parents' — and only those.
    rows().value(honos, org.a1, MONDAY + timedelta(weeks=20), 4, times=6).save()
    assert series_recompute().series_written == 9  # a1, dept A, division × 3 grains
    rows().value(org.measures["careplan"], org.b1, MONDAY, 1, times=6).save()
    changed = series_recompute()
    assert changed.series_unchanged == 9  # honos as it was


def test_series_of_data_that_is_gone_are_deleted(org, rows):
    honos = org.measures["honos"]
    batch = rows().value(honos, org.a1, MONDAY, 3, times=5).save()
    series_recompute()
    assert Series.objects.filter(measure=honos).exists()
    batch.observations.all().delete()
    series_recompute()
    assert not Series.objects.filter(measure=honos).exists()


def test_spc_flags_an_outlier_and_sets_icons(org, rows):
    honos = org.measures["honos"]  # lower is better
    honos.target = 5
    honos.save()
    batch = rows()
    for week in range(20):
        score = 40 if week == 19 else 10 + (week % 3)
        batch.value(honos, org.a1, MONDAY + timedelta(weeks=week), score, times=5)
    batch.save()
    series_recompute()
    weekly = series_of(honos, "unit", org.a1, "week")
    assert weekly.chart == "xmr"
    last = point(weekly, weekly.points["period"][-1])
    assert "astronomical_high" in last["signals"]
    assert last["point_class"] == "concern"
    assert weekly.variation_icon == "concern_high"
    assert weekly.assurance_icon in {"consistent_fail", "hit_and_miss"}
    assert last["upper"] is not None and last["centre"] is not None
    assert weekly.run_chart["n_useful"] > 0


def test_proportion_target_in_percent_decides_assurance(org, rows):
    careplan = org.measures["careplan"]  # higher is better
    careplan.target = 95  # %, far above a process around 50 %
    careplan.save()
    batch = rows()
    for month in range(15):
        day = date(2023, 1, 1) + timedelta(days=31 * month)
        batch.value(careplan, org.a1, day, 1, times=50 + month % 3)
        batch.value(careplan, org.a1, day, 0, times=50)
    batch.save()
    series_recompute()
    monthly = series_of(careplan, "unit", org.a1, "month")
    assert monthly.chart == "p"
    assert 45 < monthly.points["centre"][-1] < 55  # in %
    assert monthly.assurance_icon == "consistent_fail"


def test_fewer_than_13_points_show_no_limits(org, rows):
    honos = org.measures["honos"]
    batch = rows()
    for week in range(12):
        batch.value(honos, org.a1, MONDAY + timedelta(weeks=week), week, times=5)
    batch.save()
    series_recompute()
    weekly = series_of(honos, "unit", org.a1, "week")
    assert weekly.points["upper"] == [None] * 12
    assert weekly.points["centre"][0] is not None
    assert weekly.variation_icon == ""


def test_baseline_and_rebasing(org, rows):
    honos = org.measures["honos"]
    honos.baseline_points = 12
    honos.save()
    batch = rows()
    for week in range(30):
        batch.value(honos, org.a1, MONDAY + timedelta(weeks=week), 10 if week < 15 else 20, times=5)
    batch.save()
    series_recompute()
    weekly = series_of(honos, "unit", org.a1, "week")
    assert set(weekly.points["segment"]) == {0}
    assert weekly.points["centre"][-1] == pytest.approx(10.0)  # from the first 12 points
    unit_key = (honos.pk, "unit", org.a1.pk)
    series_recompute(rebase={unit_key: [MONDAY + timedelta(weeks=15)]})
    weekly.refresh_from_db()
    assert weekly.points["segment"][14:16] == [0, 1]
    assert weekly.points["centre"][-1] == pytest.approx(20.0)


def test_rebase_provider_hook(org, rows):
    from measures import aggregation
    from measures.aggregation import jobs

    honos = org.measures["honos"]
    batch = rows()
    for week in range(30):
        batch.value(honos, org.a1, MONDAY + timedelta(weeks=week), week // 15, times=5)
    batch.save()

    def adoption_dates(measure_ids):
        return {(honos.pk, "unit", org.a1.pk): [MONDAY + timedelta(weeks=15)]}

    aggregation.register_rebase_provider(adoption_dates)
    try:
        series_recompute()
    finally:
        jobs._rebase_providers.remove(adoption_dates)
    assert series_of(honos, "unit", org.a1, "week").points["segment"][-1] == 1
    assert series_of(honos, "department", org.dept_a, "week").points["segment"][-1] == 0


def test_measure_spc_settings_are_validated(org):
    from django.core.exceptions import ValidationError

    honos = org.measures["honos"]
    honos.laney = True
    honos.baseline_points = 5
    with pytest.raises(ValidationError) as caught:
        honos.full_clean()
    assert {"laney", "baseline_points"} <= set(caught.value.message_dict)


def test_direction_neither_gives_no_assurance(org, rows):
    measure = MeasureFactory(
        code="neutral", kind=MeasureKind.MEAN, direction=Direction.NEITHER, frequency="week"
    )
    batch = rows()
    for week in range(15):
        batch.value(measure, org.a1, MONDAY + timedelta(weeks=week), week % 4, times=5)
    batch.save()
    series_recompute()
    assert series_of(measure, "unit", org.a1, "week").assurance_icon == ""
