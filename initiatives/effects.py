"""Effect evaluation of a spreading initiative: the reads (DESIGN.md §4).

For each measure the initiative links and each unit that adopted it: the unit's series
before and after the adoption date at the measure's own frequency, the special-cause points
after it, and the units that did not adopt over the same periods. The arithmetic is
``effects_maths`` (pure); this module only reads.

It reads precomputed series only (``Series`` rows the aggregation engine wrote, DESIGN.md §3),
never observations, and only their *shown* periods: every point comes through
``measures.series.public_columns``, and a suppressed period is dropped before the maths sees
it, so it adds no value and no count to any figure here (DESIGN.md §5 "Suppression").

The non-adopters: the plan's units that did not adopt it (planned, started, declined); when
every target unit adopted, the rest of the division's active units. Three queries in all.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date

from django.db.models import Q
from django.utils.translation import gettext_lazy as _

from measures.enums import SeriesLevel
from measures.models import Measure, Series
from measures.series import public_columns
from units.models import Unit

from .effects_maths import Overall, Point, UnitEffect, overall, unit_effect
from .enums import AdoptionState
from .models import Adoption, Initiative

#: Who the adopters are compared with.
PLAN_NON_ADOPTERS = "plan"
REST_OF_DIVISION = "division"
COMPARED_WITH = {
    PLAN_NON_ADOPTERS: _("the plan's units that have not adopted it"),
    REST_OF_DIVISION: _("the other units of the division"),
}


@dataclass(frozen=True)
class UnitRow:
    unit: Unit
    adopted_on: date
    effect: UnitEffect | None  # None: the unit has no series of this measure


@dataclass
class MeasureEffect:
    measure: Measure
    rows: list[UnitRow] = field(default_factory=list)
    overall: Overall = field(default_factory=Overall)
    compared_with: str = PLAN_NON_ADOPTERS

    @property
    def compared_with_label(self) -> str:
        return str(COMPARED_WITH[self.compared_with])


def shown_points(series: Series) -> list[Point]:
    """The series' shown periods (suppressed ones and empty values left out)."""
    columns = public_columns(series)
    return [
        Point(
            period=date.fromisoformat(period),
            value=float(value),
            point_class=point_class,
            signals=tuple(signals or ()),
        )
        for period, hidden, value, point_class, signals in zip(
            columns["period"],
            columns["suppressed"],
            columns["value"],
            columns["point_class"],
            columns["signals"],
            strict=True,
        )
        if not hidden and value is not None
    ]


def effect_evaluation(
    initiative: Initiative, *, adoptions: Sequence[Adoption] | None = None
) -> list[MeasureEffect]:
    """Per linked measure, the before/after of each adopting unit (empty without a linked
    measure or an adoption). ``adoptions``: the initiative's, if the caller has them."""
    measures = list(initiative.measures.order_by("name"))
    if adoptions is None:
        adoptions = list(
            Adoption.objects.filter(initiative_id=initiative.pk).select_related("unit")
        )
    adopters = [a for a in adoptions if a.state == AdoptionState.ADOPTED and a.adopted_on]
    if not measures or not adopters:
        return []
    adopter_ids = {a.unit_id for a in adopters}
    others = {a.unit_id for a in adoptions if a.unit_id not in adopter_ids}
    compared_with = PLAN_NON_ADOPTERS
    if not others:
        compared_with = REST_OF_DIVISION
        others = set(
            Unit.objects.active()
            .filter(department__division_id=initiative.forum.division_id)
            .exclude(pk__in=adopter_ids)
            .values_list("pk", flat=True)
        )
    which = Q(pk__in=[])
    for measure in measures:
        which |= Q(measure_id=measure.pk, grain=measure.frequency)
    points: dict[tuple[int, int], list[Point]] = {}
    for series in Series.objects.filter(
        which, level=SeriesLevel.UNIT, unit_id__in=adopter_ids | others
    ):
        points[(series.measure_id, series.unit_id)] = shown_points(series)
    out = []
    for measure in measures:
        groups = [points[(measure.pk, u)] for u in sorted(others) if (measure.pk, u) in points]
        rows = []
        for adoption in sorted(adopters, key=lambda a: (a.adopted_on, a.unit.name)):
            mine = points.get((measure.pk, adoption.unit_id))
            effect = (
                unit_effect(
                    mine,
                    adopted_on=adoption.adopted_on,
                    frequency=measure.frequency,
                    direction=measure.direction,
                    others=groups,
                )
                if mine is not None
                else None
            )
            rows.append(UnitRow(unit=adoption.unit, adopted_on=adoption.adopted_on, effect=effect))
        out.append(
            MeasureEffect(
                measure=measure,
                rows=rows,
                overall=overall(r.effect for r in rows if r.effect is not None),
                compared_with=compared_with,
            )
        )
    return out
