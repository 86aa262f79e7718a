"""Suppression of small numbers, primary and complementary (DESIGN.md §5)."""

from datetime import date, timedelta

import pandas as pd
import pytest

from measures.aggregation import Organisation, series_recompute, suppress
from measures.models import Series

from .conftest import point, series_of

pytestmark = pytest.mark.django_db

MONDAY = date(2024, 1, 1)


def _flags(measure, period="2024-01-01", grain="week") -> dict[str, bool]:
    return {
        s.node_key: point(s, period)["suppressed"]
        for s in Series.objects.filter(measure=measure, grain=grain)
    }


def test_a_small_period_is_suppressed_and_left_out_of_the_statistics(org, rows):
    honos = org.measures["honos"]  # minimum n 5
    batch = rows()
    for week in range(20):
        times = 2 if week == 10 else 6
        score = 47 if week == 10 else 10 + week % 3
        batch.value(honos, org.a1, MONDAY + timedelta(weeks=week), score, times=times)
    batch.save()
    series_recompute()
    weekly = series_of(honos, "unit", org.a1, "week")
    small = point(weekly, "2024-03-11")
    assert small["suppressed"] is True
    assert small["value"] is None and small["centre"] is None and small["upper"] is None
    assert small["n"] == 2  # kept on the server: the department is pooled from it
    # March is shown, and Σ weeks = Σ months from 1 January to 31 March (both Mondays' firsts
    # bound it): March's first whole week is suppressed with it (complementary).
    assert point(weekly, "2024-03-04")["suppressed"] is True
    # The outlier hidden in the suppressed week neither moves the centre nor signals.
    assert weekly.points["centre"][0] == pytest.approx(
        sum(10 + w % 3 for w in range(20) if w not in (9, 10)) / 18, abs=1e-6
    )
    assert all(not s for s in weekly.points["signals"])


def test_zero_is_not_suppressed(org, rows):
    coercion = org.measures["coercion"]  # n of a rate is its events
    rows().aggregate(coercion, org.a1, MONDAY, 0, 900).save()
    series_recompute()
    assert point(series_of(coercion, "unit", org.a1, "month"), "2024-01-01")["suppressed"] is False


def test_one_suppressed_unit_takes_its_smallest_sibling_along(org, rows):
    honos = org.measures["honos"]
    # Department A: a1 has 3 ratings (suppressed), a2 has 20. Showing a2 and the department
    # would give a1 away as department − a2, so a2 is suppressed too.
    rows().value(honos, org.a1, MONDAY, 10, times=3).value(
        honos, org.a2, MONDAY, 20, times=20
    ).value(honos, org.b1, MONDAY, 5, times=30).save()
    series_recompute()
    flags = _flags(honos)
    assert flags[f"unit:{org.a1.pk}"] is True
    assert flags[f"unit:{org.a2.pk}"] is True
    assert flags[f"department:{org.dept_a.pk}"] is False
    assert flags[f"unit:{org.b1.pk}"] is False
    assert flags[f"division:{org.division.pk}"] is False


def test_two_small_units_need_no_complement(org, rows):
    honos = org.measures["honos"]
    rows().value(honos, org.a1, MONDAY, 10, times=3).value(
        honos, org.a2, MONDAY, 20, times=4
    ).value(honos, org.b1, MONDAY, 5, times=30).save()
    series_recompute()
    flags = _flags(honos)
    assert flags[f"unit:{org.a1.pk}"] and flags[f"unit:{org.a2.pk}"]
    assert flags[f"department:{org.dept_a.pk}"] is False  # 7 ratings: shown
    assert flags[f"department:{org.dept_b.pk}"] is False


def test_a_suppressed_department_takes_another_department_and_one_of_its_units(org, rows):
    honos = org.measures["honos"]
    # Department A has 3 ratings in all (suppressed with a1); the division (33) is shown, so
    # department B must go too, and then one of B's units, or B = Σ its units.
    rows().value(honos, org.a1, MONDAY, 10, times=3).value(
        honos, org.b1, MONDAY, 5, times=30
    ).save()
    series_recompute()
    flags = _flags(honos)
    assert flags[f"department:{org.dept_a.pk}"] is True
    assert flags[f"department:{org.dept_b.pk}"] is True
    assert flags[f"unit:{org.b1.pk}"] is True
    assert flags[f"division:{org.division.pk}"] is False


def test_a_suppressed_month_takes_another_month_of_its_quarter(org, rows):
    careplan = org.measures["careplan"]  # monthly
    batch = rows()
    for month, count in ((1, 3), (2, 20), (3, 30)):
        batch.value(careplan, org.b1, date(2024, month, 5), 1, times=count)
    batch.save()
    series_recompute()
    monthly = series_of(careplan, "unit", org.b1, "month")
    assert monthly.points["suppressed"] == [True, True, False]  # Q1 − Mar would give Jan + Feb
    assert (
        point(series_of(careplan, "unit", org.b1, "quarter"), "2024-01-01")["suppressed"] is False
    )


def test_suppress_reaches_a_fixed_point_on_its_own():
    """Pure function: department = a1 + a2; division = A + B; B = b1."""
    org = Organisation(unit_department={1: 10, 2: 10, 3: 20}, department_division={10: 99, 20: 99})
    day = pd.Timestamp("2024-01-01")
    cells = pd.DataFrame(
        [
            (1, "unit", 1, "week", day, 3),
            (1, "unit", 2, "week", day, 8),
            (1, "unit", 3, "week", day, 50),
            (1, "department", 10, "week", day, 11),
            (1, "department", 20, "week", day, 50),
            (1, "division", 99, "week", day, 61),
        ],
        columns=["measure_id", "level", "node_id", "grain", "period", "n"],
    )
    hidden = suppress(cells, {1: 5}, org)
    # a1 primary; a2 its complement; the department (11) and the division stay shown.
    assert hidden.tolist() == [True, True, False, False, False, False]
