"""Effect evaluation, the arithmetic (pure: numbers and dates in, numbers out; no Django).

For one measure and one unit that adopted an initiative on a date (DESIGN.md §4 "Effect
evaluation"):

- the periods at the measure's own frequency are split at the adoption: *before* is up to a
  year of periods ending with the one before the period the adoption falls in, *after* up to
  a year starting with the period after it; the adoption's own period is part one and part
  the other, so it is in neither;
- each side's figure is the mean of the unit's shown period values in it (a suppressed
  period never reaches this module: the reader leaves it out, so it adds neither a value nor
  a count), and only with at least :data:`MIN_PERIODS` shown periods;
- the special-cause points after the adoption, by the series' own classification
  (improvement / concern follow the measure's direction; "neither" for no direction);
- the comparison: the units that did not adopt, over the same calendar periods, each unit's
  mean taken alone (a unit with many shown periods does not outweigh one with few), and
  their average change; the adopter's change minus that is the difference the adoption may
  have made (a difference in differences).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date, timedelta

#: Fewer shown periods than this on a side: no figure for that side.
MIN_PERIODS = 3
#: Periods each side of the adoption: a year at each frequency.
WINDOW = {"week": 52, "month": 12, "quarter": 4}

BETTER, WORSE, SAME = "better", "worse", "same"


@dataclass(frozen=True)
class Point:
    """One shown period of a unit's series."""

    period: date  # the period's first day
    value: float
    point_class: str | None = None  # common / improvement / concern / neither
    signals: tuple[str, ...] = ()


def period_start(day: date, frequency: str) -> date:
    """The first day of the period ``day`` falls in (weeks start on Monday)."""
    if frequency == "week":
        return day - timedelta(days=day.weekday())
    if frequency == "month":
        return day.replace(day=1)
    if frequency == "quarter":
        return date(day.year, (day.month - 1) // 3 * 3 + 1, 1)
    raise ValueError(f"unknown frequency {frequency!r}")


def shift(start: date, frequency: str, periods: int) -> date:
    """The first day of the period ``periods`` away from the one starting on ``start``."""
    if frequency == "week":
        return start + timedelta(weeks=periods)
    months = {"month": 1, "quarter": 3}[frequency] * periods
    index = start.year * 12 + start.month - 1 + months
    return date(index // 12, index % 12 + 1, 1)


@dataclass(frozen=True)
class Windows:
    """The periods before and after an adoption: ``[from, to)`` by their first days."""

    before_from: date
    before_to: date
    after_from: date
    after_to: date

    def before(self, points: Iterable[Point]) -> list[Point]:
        return [p for p in points if self.before_from <= p.period < self.before_to]

    def after(self, points: Iterable[Point]) -> list[Point]:
        return [p for p in points if self.after_from <= p.period < self.after_to]


def windows(adopted_on: date, frequency: str, periods: int | None = None) -> Windows:
    periods = periods or WINDOW[frequency]
    adoption = period_start(adopted_on, frequency)
    after = shift(adoption, frequency, 1)
    return Windows(
        before_from=shift(adoption, frequency, -periods),
        before_to=adoption,
        after_from=after,
        after_to=shift(after, frequency, periods),
    )


def mean(values: Sequence[float]) -> float | None:
    """The mean, or None with fewer than :data:`MIN_PERIODS` values."""
    return sum(values) / len(values) if len(values) >= MIN_PERIODS else None


@dataclass(frozen=True)
class Side:
    mean: float | None
    periods: int  # shown periods on this side


def side(points: Sequence[Point]) -> Side:
    return Side(mean=mean([p.value for p in points]), periods=len(points))


@dataclass(frozen=True)
class Signals:
    """Special-cause points after the adoption (points, not rules: one point may fire two)."""

    improvement: int = 0
    concern: int = 0
    neither: int = 0
    rules: tuple[str, ...] = ()  # the rules that fired, sorted

    @property
    def any(self) -> bool:
        return bool(self.improvement or self.concern or self.neither)


def signals_in(points: Iterable[Point]) -> Signals:
    counts = {"improvement": 0, "concern": 0, "neither": 0}
    rules: set[str] = set()
    for point in points:
        if point.point_class in counts:
            counts[point.point_class] += 1
            rules.update(point.signals)
    return Signals(**counts, rules=tuple(sorted(rules)))


def verdict(change: float | None, direction: str) -> str | None:
    """better / worse / same by the measure's direction (up, down); None without one."""
    if change is None or direction not in ("up", "down"):
        return None
    if change == 0:
        return SAME
    return BETTER if (change > 0) == (direction == "up") else WORSE


def _change(before: float | None, after: float | None) -> float | None:
    return after - before if before is not None and after is not None else None


@dataclass(frozen=True)
class Comparison:
    """The units that did not adopt, over the adopter's periods."""

    before: float | None = None
    after: float | None = None
    change: float | None = None
    units: int = 0  # units with enough shown periods on both sides


def comparison(groups: Iterable[Sequence[Point]], span: Windows) -> Comparison:
    befores, afters = [], []
    for points in groups:
        b, a = side(span.before(points)).mean, side(span.after(points)).mean
        if b is not None and a is not None:
            befores.append(b)
            afters.append(a)
    if not befores:
        return Comparison()
    before, after = sum(befores) / len(befores), sum(afters) / len(afters)
    return Comparison(before=before, after=after, change=after - before, units=len(befores))


@dataclass(frozen=True)
class UnitEffect:
    adopted_on: date
    windows: Windows
    before: Side
    after: Side
    change: float | None
    verdict: str | None
    signals: Signals
    comparison: Comparison = field(default_factory=Comparison)

    @property
    def difference(self) -> float | None:
        """The adopter's change minus the non-adopters' over the same periods."""
        return _change(self.comparison.change, self.change)


def unit_effect(
    points: Sequence[Point],
    *,
    adopted_on: date,
    frequency: str,
    direction: str,
    others: Iterable[Sequence[Point]] = (),
    periods: int | None = None,
) -> UnitEffect:
    """Before and after ``adopted_on`` for one unit, against ``others`` (non-adopters)."""
    span = windows(adopted_on, frequency, periods)
    before, after = side(span.before(points)), side(span.after(points))
    change = _change(before.mean, after.mean)
    return UnitEffect(
        adopted_on=adopted_on,
        windows=span,
        before=before,
        after=after,
        change=change,
        verdict=verdict(change, direction),
        signals=signals_in(span.after(points)),
        comparison=comparison(others, span),
    )


@dataclass(frozen=True)
class Overall:
    """Across the adopters with a figure on both sides."""

    change: float | None = None
    comparison_change: float | None = None
    difference: float | None = None
    units: int = 0


def overall(effects: Iterable[UnitEffect]) -> Overall:
    effects = list(effects)
    changes = [e.change for e in effects if e.change is not None]
    if not changes:
        return Overall()
    mine = [e for e in effects if e.change is not None]
    compared = [e.comparison.change for e in mine if e.comparison.change is not None]
    change = sum(changes) / len(changes)
    comparison_change = sum(compared) / len(compared) if compared else None
    return Overall(
        change=change,
        comparison_change=comparison_change,
        difference=_change(comparison_change, change),
        units=len(changes),
    )
