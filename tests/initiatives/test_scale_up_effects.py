"""Effect evaluation: the arithmetic on hand-made series, and the reads (suppression kept)."""

from __future__ import annotations

from datetime import date

import numpy as np
import pytest
from django.utils import timezone

from initiatives.effects import (
    PLAN_NON_ADOPTERS,
    REST_OF_DIVISION,
    effect_evaluation,
    shown_points,
)
from initiatives.effects_maths import (
    BETTER,
    SAME,
    WORSE,
    Point,
    mean,
    period_start,
    shift,
    unit_effect,
    verdict,
    windows,
)
from initiatives.enums import AdoptionState
from initiatives.models import Adoption
from measures.enums import SeriesLevel
from measures.models import Series
from measures.packing import pack_columns, periods_to_days
from measures.spc import PointClass, Signal

from .scale_up_helpers import approved, plan

NAN = float("nan")
W = date(2024, 2, 12)  # a Monday


def weeks(first: date, count: int) -> list[date]:
    return [shift(first, "week", i) for i in range(count)]


def make_series(measure, unit, periods, values, *, suppressed=(), classes=None, signals=None):
    """A unit series as the engine stores it; suppressed periods keep their true figures
    (as the engine's do), which must never come out."""
    count = len(periods)
    classes = classes or [PointClass.COMMON] * count
    signal_list = list(Signal)
    bits = [
        sum(1 << signal_list.index(s) for s in (signals or {}).get(i, ())) for i in range(count)
    ]
    columns = {
        "period": periods_to_days(np.array(periods, dtype="datetime64[D]")),
        "rows": np.array([3 if i in suppressed else 40 for i in range(count)]),
        "n": np.array([3.0 if i in suppressed else 40.0 for i in range(count)]),
        "numerator": np.full(count, NAN),
        "denominator": np.full(count, NAN),
        "suppressed": np.array([i in suppressed for i in range(count)]),
        "value": np.array(values, dtype=float),
        "centre": np.full(count, NAN),
        "upper": np.full(count, NAN),
        "lower": np.full(count, NAN),
        "upper_2s": np.full(count, NAN),
        "lower_2s": np.full(count, NAN),
        "segment": np.zeros(count),
        "signals": np.array(bits),
        "point_class": np.array([list(PointClass).index(c) for c in classes]),
    }
    return Series.objects.create(
        measure=measure,
        level=SeriesLevel.UNIT,
        grain=measure.frequency,
        unit=unit,
        node_key=f"unit:{unit.pk}",
        computed_at=timezone.now(),
        chart="xmr",
        data=pack_columns(columns),
    )


# --- The arithmetic ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("day", "frequency", "start"),
    [
        (date(2024, 3, 13), "week", date(2024, 3, 11)),
        (date(2024, 3, 11), "week", date(2024, 3, 11)),
        (date(2024, 3, 17), "week", date(2024, 3, 11)),  # a Sunday
        (date(2024, 3, 31), "month", date(2024, 3, 1)),
        (date(2024, 12, 31), "quarter", date(2024, 10, 1)),
        (date(2024, 4, 1), "quarter", date(2024, 4, 1)),
    ],
)
def test_the_period_a_day_falls_in(day, frequency, start):
    assert period_start(day, frequency) == start


def test_periods_move_across_years():
    assert shift(date(2024, 11, 1), "month", 3) == date(2025, 2, 1)
    assert shift(date(2024, 1, 1), "month", -1) == date(2023, 12, 1)
    assert shift(date(2024, 1, 1), "quarter", -1) == date(2023, 10, 1)
    assert shift(date(2024, 1, 1), "week", -1) == date(2023, 12, 25)


def test_the_adoptions_own_period_is_in_neither_window():
    span = windows(date(2024, 3, 13), "month")
    assert (span.before_from, span.before_to) == (date(2023, 3, 1), date(2024, 3, 1))
    assert (span.after_from, span.after_to) == (date(2024, 4, 1), date(2025, 4, 1))
    span = windows(date(2024, 3, 13), "week", periods=2)
    assert (span.before_from, span.before_to, span.after_from, span.after_to) == (
        date(2024, 2, 26),
        date(2024, 3, 11),
        date(2024, 3, 18),
        date(2024, 4, 1),
    )


def test_a_mean_needs_three_periods():
    assert mean([1.0, 2.0]) is None
    assert mean([1.0, 2.0, 6.0]) == 3.0


@pytest.mark.parametrize(
    ("change", "direction", "expected"),
    [
        (-2.0, "down", BETTER),
        (-2.0, "up", WORSE),
        (2.0, "up", BETTER),
        (0.0, "up", SAME),
        (2.0, "neither", None),
        (None, "up", None),
    ],
)
def test_better_or_worse_follows_the_direction(change, direction, expected):
    assert verdict(change, direction) == expected


def test_a_unit_effect_against_the_non_adopters():
    before = [Point(d, v) for d, v in zip(weeks(W, 4), [10, 12, 14, 16], strict=True)]
    own_week = [Point(date(2024, 3, 11), 99)]  # the adoption's week: in neither side
    after = [
        Point(date(2024, 3, 18), 8, "improvement", ("shift_low",)),
        Point(date(2024, 3, 25), 6, "improvement", ("astronomical_low", "shift_low")),
        Point(date(2024, 4, 1), 7, "concern", ("two_of_three_high",)),
    ]
    others = [
        [Point(d, 20) for d in weeks(W, 4)] + [Point(d, 19) for d in weeks(date(2024, 3, 18), 3)],
        [Point(d, 30) for d in weeks(W, 2)],  # too few periods: left out
    ]
    effect = unit_effect(
        before + own_week + after,
        adopted_on=date(2024, 3, 13),
        frequency="week",
        direction="down",
        others=others,
    )
    assert (effect.before.mean, effect.before.periods) == (13.0, 4)
    assert (effect.after.mean, effect.after.periods) == (7.0, 3)
    assert effect.change == -6.0 and effect.verdict == BETTER
    assert (effect.signals.improvement, effect.signals.concern) == (2, 1)
    assert effect.signals.rules == ("astronomical_low", "shift_low", "two_of_three_high")
    assert (effect.comparison.change, effect.comparison.units) == (-1.0, 1)
    assert effect.difference == -5.0


# --- The reads --------------------------------------------------------------------------------


def _adopt(wf, idea, unit, day):
    adoption = Adoption.objects.get(initiative=idea, unit=unit)
    Adoption.objects.filter(pk=adoption.pk).update(
        state=AdoptionState.ADOPTED, adopted_on=day, adaptation="Our way."
    )


@pytest.fixture
def evaluated(wf):
    """HoNOS (weekly, lower is better): a1 adopted on 13 March 2024; a2 (planned) and b1
    (declined) did not. a1's third week is suppressed with a huge true value."""
    honos = wf.measures["honos"]
    idea = approved(wf, measures=[honos, wf.measures["careplan"]])
    plan(wf, idea)
    _adopt(wf, idea, wf.a1, date(2024, 3, 13))
    Adoption.objects.filter(initiative=idea, unit=wf.b1).update(
        state=AdoptionState.DECLINED, adaptation="No."
    )
    make_series(
        honos,
        wf.a1,
        [*weeks(W, 4), date(2024, 3, 11), *weeks(date(2024, 3, 18), 4)],
        [10, 12, 987.5, 14, 50, 8, 6, 7, 4321.5],
        suppressed={2, 8},
        classes=[PointClass.COMMON] * 5
        + [PointClass.IMPROVEMENT, PointClass.IMPROVEMENT, PointClass.COMMON, PointClass.CONCERN],
        signals={5: ["shift_low"], 6: ["shift_low"], 8: ["astronomical_high"]},
    )
    make_series(honos, wf.a2, [*weeks(W, 4), *weeks(date(2024, 3, 18), 3)], [20] * 4 + [19] * 3)
    # b1: three shown periods before, one suppressed after; too few after to compare.
    make_series(
        honos,
        wf.b1,
        [*weeks(W, 3), *weeks(date(2024, 3, 18), 3)],
        [30, 30, 30, 25, 555.5, 25],
        suppressed={4},
    )
    return idea


def test_the_evaluation_reads_only_the_shown_periods(wf, evaluated, django_assert_num_queries):
    with django_assert_num_queries(3):
        result = effect_evaluation(evaluated)
    honos = result[1] if result[0].measure.code == "care-plan" else result[0]
    careplan = result[0] if honos is result[1] else result[1]
    assert honos.compared_with == PLAN_NON_ADOPTERS
    (row,) = honos.rows
    assert row.unit == wf.a1 and row.adopted_on == date(2024, 3, 13)
    effect = row.effect
    # (10 + 12 + 14) / 3: the suppressed 987.5 is not in the mean, nor in the count.
    assert (effect.before.mean, effect.before.periods) == (12.0, 3)
    # 8, 6, 7: the suppressed last week (and its concern signal) is not there either.
    assert (effect.after.mean, effect.after.periods) == (7.0, 3)
    assert effect.change == -5.0 and effect.verdict == "better"
    assert (effect.signals.improvement, effect.signals.concern) == (2, 0)
    assert effect.signals.rules == ("shift_low",)
    # a2 only: b1 has two shown periods after the adoption.
    assert (effect.comparison.before, effect.comparison.after, effect.comparison.units) == (
        20.0,
        19.0,
        1,
    )
    assert effect.difference == -4.0
    assert (honos.overall.change, honos.overall.difference, honos.overall.units) == (-5.0, -4.0, 1)
    # No care-plan series for a1: a row without figures.
    assert [r.effect for r in careplan.rows] == [None]


def test_shown_points_drop_suppressed_periods(wf, evaluated):
    series = Series.objects.get(measure=wf.measures["honos"], unit=wf.b1)
    points = shown_points(series)
    assert [p.value for p in points] == [30, 30, 30, 25, 25]
    assert 555.5 not in [p.value for p in points]


def test_when_every_unit_adopted_the_rest_of_the_division_is_the_comparison(wf):
    honos = wf.measures["honos"]
    idea = approved(wf, measures=[honos])
    plan(wf, idea, units=[wf.a1])
    _adopt(wf, idea, wf.a1, date(2024, 3, 13))
    make_series(honos, wf.a1, [*weeks(W, 4), *weeks(date(2024, 3, 18), 3)], [10] * 4 + [8] * 3)
    make_series(honos, wf.b1, [*weeks(W, 4), *weeks(date(2024, 3, 18), 3)], [30] * 4 + [33] * 3)
    (result,) = effect_evaluation(idea)
    assert result.compared_with == REST_OF_DIVISION
    assert result.rows[0].effect.comparison.units == 1  # b1 (a2 has no series)
    assert result.rows[0].effect.difference == -5.0


def test_nothing_to_evaluate_without_a_linked_measure_or_an_adopter(wf):
    idea = approved(wf)
    plan(wf, idea)
    _adopt(wf, idea, wf.a1, date(2024, 3, 13))
    assert effect_evaluation(idea) == []
    linked = approved(wf, measures=[wf.measures["honos"]])
    plan(wf, linked)
    assert effect_evaluation(linked) == []
