"""Entry points: the full recomputation, the refresh after an import or a revert, re-basing providers."""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, timedelta

import numpy as np
import pandas as pd
from django.db import connection, transaction
from django.utils import timezone

from ..enums import Frequency, Scope, SeriesLevel
from ..models import Measure, Observation, PeriodSums, Series
from ..packing import (
    periods_to_days,
    unpack_columns,
)
from .analysis import (
    RebaseDates,
    SeriesInputs,
    analyse_inputs,
    compute_series,
)
from .cells import (
    _EPOCH,
    GRAIN_DTYPE,
    LEVEL_DTYPE,
    SUM_COLUMNS,
    MeasureConfig,
    Organisation,
    _as_date,
    _codes,
    all_levels,
    canonical,
    node_key,
    suppress,
    unit_cells,
    unit_period_sums,
)
from .storage import (
    _stored_blobs,
    lock_measure,
    present_keys,
    read_period_sums,
    replace_series,
    stored_digests,
    write_period_sums,
)

logger = logging.getLogger(__name__)

#: Gives re-basing dates for the given measures (e.g. initiatives: adoption dates per unit).
RebaseProvider = Callable[[Sequence[int]], RebaseDates]

_rebase_providers: list[RebaseProvider] = []


def register_rebase_provider(provider: RebaseProvider) -> None:
    """Let another app supply re-basing dates (DESIGN.md §5 "Baseline and re-basing").

    ``initiatives`` imports ``measures``, not the reverse, so it registers here from its
    ``AppConfig.ready``: ``provider(measure_ids)`` returns ``{(measure_id, level, node_id):
    [date, …]}``, e.g. the date an initiative was adopted in a unit. Idempotent.
    """
    if provider not in _rebase_providers:
        _rebase_providers.append(provider)


def rebase_dates(measure_ids: Sequence[int]) -> dict[tuple[int, str, int], list[date]]:
    """Re-basing dates of every registered provider, merged and sorted."""
    merged: dict[tuple[int, str, int], set[date]] = {}
    for provider in _rebase_providers:
        for key, dates in provider(measure_ids).items():
            merged.setdefault(key, set()).update(dates)
    return {key: sorted(dates) for key, dates in merged.items()}


@dataclass
class RefreshResult:
    measures: int = 0
    series_written: int = 0
    series_deleted: int = 0
    series_unchanged: int = 0
    observations: int = 0
    timings: dict[str, float] = field(default_factory=dict)

    def add(self, other: RefreshResult) -> None:
        self.measures += other.measures
        self.series_written += other.series_written
        self.series_deleted += other.series_deleted
        self.series_unchanged += other.series_unchanged
        self.observations += other.observations
        for key, value in other.timings.items():
            self.timings[key] = self.timings.get(key, 0.0) + value


def _configs(measure_ids: Iterable[int] | None) -> list[MeasureConfig]:
    measures = (
        Measure.objects.all()
        if measure_ids is None
        else Measure.objects.filter(pk__in=list(measure_ids))
    )
    if measure_ids is None:
        measures = measures.filter(active=True)
    return [MeasureConfig.of(m) for m in measures.order_by("pk")]


def series_recompute(
    *,
    measure_ids: Iterable[int] | None = None,
    rebase: RebaseDates | None = None,
    force: bool = False,
) -> RefreshResult:
    """Recompute every series of the given measures (default: all active) from raw data.

    One GROUP BY for all of them, roll-ups, suppression and SPC outside any transaction; then
    one short transaction that takes the measures' locks (in id order) and replaces their
    series and period sums (a worker killed before the commit leaves the previous series as
    they were). Idempotent. ``rebase``: re-basing dates per series; default: those of the
    registered providers.

    A series whose inputs (sums, suppression, measure settings, re-basing dates and
    :data:`ENGINE_VERSION`) hash to its stored digest would come out identical: its SPC and
    writing are skipped and only its ``computed_at`` moves on, unless ``force``.
    """
    clock = time.perf_counter
    result = RefreshResult()
    configs = _configs(measure_ids)
    if not configs:
        return result
    computed_at = timezone.now()
    started = clock()
    sums = unit_period_sums(configs)
    result.timings["sql"] = clock() - started
    started = clock()
    org = Organisation.load()
    units = unit_cells(sums, configs)
    del sums
    cells = canonical(all_levels(units, configs, org))
    suppressed = suppress(cells, {m.id: m.minimum_n for m in configs}, org)
    result.timings["rollup"] = clock() - started
    started = clock()
    if rebase is None:
        rebase = rebase_dates([m.id for m in configs])
    by_id = {m.id: m for m in configs}
    skip = None if force else stored_digests(list(by_id))
    computed = compute_series(cells, suppressed, by_id, rebase=rebase, skip_digests=skip)
    result.timings["spc"] = clock() - started
    started = clock()
    present = present_keys(cells)
    ids = sorted(by_id)
    with transaction.atomic():
        if connection.vendor == "postgresql":
            # Derived data, rewritten by the next run if a crash loses it: the commit need
            # not wait for the ~60 MB of WAL to reach the disk.
            with connection.cursor() as cursor:
                cursor.execute("SET LOCAL synchronous_commit = off")
        for measure_id in ids:
            lock_measure(measure_id)
        written, deleted = replace_series(ids, computed, computed_at, present=present)
        # Unchanged series were checked against this very data: say so.
        Series.objects.filter(measure_id__in=ids, computed_at__lt=computed_at).update(
            computed_at=computed_at
        )
        write_period_sums(ids, units)
    result.series_written, result.series_deleted = written, deleted
    result.series_unchanged = sum(len(keys) for keys in present.values()) - len(computed)
    result.timings["write"] = clock() - started
    result.measures = len(configs)
    result.observations = _observations(cells, configs)
    return result


def _observations(cells: pd.DataFrame, measures: Sequence[MeasureConfig]) -> int:
    """Observations behind the unit cells (counted once, at each measure's own grain)."""
    if cells.empty:
        return 0
    own = {m.id: GRAIN_DTYPE.categories.get_loc(str(m.frequency)) for m in measures}
    mask = _codes(cells["grain"], GRAIN_DTYPE) == cells["measure_id"].map(own).to_numpy()
    if "level" in cells:
        mask &= _codes(cells["level"], LEVEL_DTYPE) == 0  # units
    return int(cells["rows"].to_numpy()[mask].sum())


def series_refresh_units(
    *, measure_id: int, unit_ids: Sequence[int], rebase: RebaseDates | None = None
) -> RefreshResult:
    """Refresh one measure after new data for some of its units: see :func:`series_refresh_pairs`."""
    return series_refresh_pairs(pairs={measure_id: unit_ids}, rebase=rebase)


#: (measure id, unit id) → first and last day whose rows changed; None: any day.
Windows = Mapping[tuple[int, int], tuple[date, date] | None]


def _quarter_bounds(lo: date, hi: date) -> tuple[date, date]:
    first = date(lo.year, lo.month - (lo.month - 1) % 3, 1)
    last_month = hi.month - (hi.month - 1) % 3 + 2
    last = date(hi.year + last_month // 13, (last_month - 1) % 12 + 1, 1)
    following = date(last.year + last.month // 12, last.month % 12 + 1, 1)
    return first, following - timedelta(days=1)


def series_refresh_pairs(
    *,
    pairs: Mapping[int, Sequence[int]] | None = None,
    windows: Windows | None = None,
    rebase: RebaseDates | None = None,
) -> RefreshResult:
    """Refresh measures after their rows changed for some units (an import, a revert).

    ``windows``: (measure, unit) → the first and last day whose rows changed (None: any day);
    or ``pairs``: measure id → unit ids, any day. Only the whole quarters around the changed
    days are looked at again (a quarter holds whole months; weeks are counted from the Monday
    on or before it):

    1. those (measure, unit) rows are aggregated again from the observations (primary-key
       range scans), and every other unit's cells in those periods come from the stored
       :class:`PeriodSums`, so departments and the division are pooled again from exact sums;
    2. suppression is redone for those periods — complementary suppression links cells only
       within a week, within a quarter and its months, or within a month and its weeks (a
       weekly measure's window takes one more quarter on each side, as a week across a
       quarter's end reaches into the next), so no other period can change — and compared
       with the suppression of the stored cells;
    3. every series with a changed cell (the units', their parents', a sibling whose
       complementary suppression moved) is spliced: its stored periods outside the window
       plus the new ones, and its SPC redone; series that lost every period are deleted.

    Everything happens inside one transaction holding the measures' locks (taken in id order,
    so two refreshes cannot deadlock). A measure without stored period sums (never
    aggregated, or without data until now) is recomputed whole.
    """
    clock = time.perf_counter
    if windows is None:
        windows = {(m, int(u)): None for m, units in (pairs or {}).items() for u in units}
    configs = _configs({m for m, _u in windows})
    result = RefreshResult(measures=len(configs))
    if not configs:
        return result
    by_id = {m.id: m for m in configs}
    windows = {key: value for key, value in windows.items() if key[0] in by_id}
    measure_window: dict[int, tuple[date, date] | None] = {}
    for (measure_id, _unit), window in windows.items():
        if window is None or measure_window.get(measure_id, ()) is None:
            measure_window[measure_id] = None
            continue
        lo, hi = _quarter_bounds(*window)
        if Frequency.WEEK in by_id[measure_id].grains:
            # A week across a quarter's end can move the suppression of the next (or the
            # previous) quarter's weeks, never further (cells.suppress): look at both too.
            lo = _quarter_bounds(lo - timedelta(days=1), lo - timedelta(days=1))[0]
            hi = _quarter_bounds(hi + timedelta(days=1), hi + timedelta(days=1))[1]
        if measure_id in measure_window:
            old_lo, old_hi = measure_window[measure_id]
            lo, hi = min(lo, old_lo), max(hi, old_hi)
        measure_window[measure_id] = (lo, hi)
    with transaction.atomic():
        for measure_id in sorted(by_id):
            lock_measure(measure_id)
        missing = _without_period_sums(list(by_id))
        if missing:
            # Recompute those whole; its own transaction nests in this one (same locks).
            result.add(series_recompute(measure_ids=missing, rebase=rebase, force=True))
            for measure_id in missing:
                by_id.pop(measure_id)
            if not by_id:
                return result
        computed_at = timezone.now()
        started = clock()
        configs = [by_id[m] for m in sorted(by_id)]
        # Week cells start on the Monday on or before the window; months within it.
        reads, week_window, month_window = [], {}, {}
        for measure_id in by_id:
            window = measure_window[measure_id]
            if window is None:
                week_window[measure_id] = month_window[measure_id] = None
                continue
            lo, hi = window
            monday_lo = lo - timedelta(days=lo.weekday())
            monday_hi = hi - timedelta(days=hi.weekday())
            week_window[measure_id] = (monday_lo, monday_hi)
            month_window[measure_id] = (lo, hi)
        for (measure_id, unit_id), _w in windows.items():
            if measure_id not in by_id:
                continue
            if week_window[measure_id] is None:
                reads.append((measure_id, unit_id, date(1, 1, 1), date(9999, 12, 31)))
            else:
                monday_lo, monday_hi = week_window[measure_id]
                reads.append((measure_id, unit_id, monday_lo, monday_hi + timedelta(days=6)))
        fresh = unit_cells(unit_period_sums(configs, windows=reads), configs)
        fresh = _within(fresh, week_window, month_window)
        stored_windows = {
            m: None if week_window[m] is None else (week_window[m][0], month_window[m][1])
            for m in by_id
        }
        old_units = _within(read_period_sums(stored_windows), week_window, month_window)
        touched = pd.MultiIndex.from_tuples(
            [(m, u) for m, u in windows if m in by_id], names=["measure_id", "unit_id"]
        )
        keep = ~pd.MultiIndex.from_arrays([old_units["measure_id"], old_units["unit_id"]]).isin(
            touched
        )
        new_units = pd.concat([old_units[keep], fresh], ignore_index=True)
        result.timings["read"] = clock() - started
        started = clock()
        org = Organisation.load()
        minimum_n = {m.id: m.minimum_n for m in configs}
        old_cells = canonical(all_levels(old_units, configs, org))
        new_cells = canonical(all_levels(new_units, configs, org))
        old_cells["suppressed"] = suppress(old_cells, minimum_n, org)
        new_cells["suppressed"] = suppress(new_cells, minimum_n, org)
        affected = _changed_series(old_cells, new_cells) | {
            (m, level, node, grain)
            for m, u in touched
            for level, node in [
                (SeriesLevel.UNIT, u),
                *_ancestors(by_id[m], u, org),
            ]
            for grain in by_id[m].grains
        }
        if rebase is None:
            rebase = rebase_dates(list(by_id))
        computed, gone = [], []
        wanted = {
            measure.id: sorted(k[1:] for k in affected if k[0] == measure.id) for measure in configs
        }
        stored = _stored_blobs({m: keys for m, keys in wanted.items() if keys})
        for measure in configs:
            if not wanted[measure.id]:
                continue
            inputs, empty = _spliced_inputs(
                measure,
                wanted[measure.id],
                stored,
                new_cells,
                week_window[measure.id],
                month_window[measure.id],
            )
            gone.extend((measure.id, node_key(level, node), grain) for level, node, grain in empty)
            computed.extend(analyse_inputs(inputs, rebase=rebase))
        result.timings["compute"] = clock() - started
        started = clock()
        written, _deleted = replace_series(sorted(by_id), computed, computed_at, present=None)
        deleted = 0
        for measure_id, key, grain in gone:
            deleted += Series.objects.filter(
                measure_id=measure_id, node_key=key, grain=grain, computed_at__lte=computed_at
            ).delete()[0]
        bounded = {m: stored_windows[m] for m in by_id if stored_windows[m] is not None}
        unbounded = [m for m in by_id if stored_windows[m] is None]
        if bounded:
            write_period_sums(
                list(bounded),
                new_units[new_units["measure_id"].isin(list(bounded))],
                window=bounded,
            )
        if unbounded:
            write_period_sums(unbounded, new_units[new_units["measure_id"].isin(unbounded)])
        result.series_written += written
        result.series_deleted += deleted
        result.timings["write"] = clock() - started
    result.observations += _observations(fresh.assign(level=SeriesLevel.UNIT), configs)
    return result


def _without_period_sums(measure_ids: Sequence[int]) -> list[int]:
    """Measures without any stored period sums: never aggregated since they existed (just
    upgraded from an engine without them), or without data until now. Either way a refresh
    could not pool their departments from stored sums, and a whole recompute is right (and
    cheap for a measure with no data)."""
    from django.db.models import Exists, OuterRef

    return list(
        Measure.objects.filter(pk__in=list(measure_ids))
        .exclude(Exists(PeriodSums.objects.filter(measure_id=OuterRef("pk"))))
        .order_by("pk")
        .values_list("pk", flat=True)
    )


def _within(
    cells: pd.DataFrame,
    week_window: Mapping[int, tuple[date, date] | None],
    month_window: Mapping[int, tuple[date, date] | None],
) -> pd.DataFrame:
    """Cells whose period lies in its measure's window (week cells: the week window)."""
    if cells.empty:
        return cells
    keep = np.ones(len(cells), dtype=bool)
    measure = cells["measure_id"].to_numpy()
    period = cells["period"].to_numpy().astype("datetime64[D]")
    weekly = (cells["grain"] == Frequency.WEEK).to_numpy()
    for measure_id in np.unique(measure).tolist():
        for grain_mask, window in (
            (weekly, week_window.get(measure_id)),
            (~weekly, month_window.get(measure_id)),
        ):
            if window is None:
                continue
            mask = (measure == measure_id) & grain_mask
            lo, hi = (np.datetime64(d, "D") for d in window)
            keep[mask] = (period[mask] >= lo) & (period[mask] <= hi)
    return cells[keep]


def _ancestors(measure: MeasureConfig, unit_id: int, org: Organisation) -> list[tuple[str, int]]:
    if measure.scope == Scope.UNIT:
        return []
    department = org.unit_department.get(unit_id)
    if department is None:
        return []
    out = [(SeriesLevel.DEPARTMENT, department)]
    if measure.scope == Scope.DIVISION:
        out.append((SeriesLevel.DIVISION, org.department_division[department]))
    return out


def _changed_series(old: pd.DataFrame, new: pd.DataFrame) -> set[tuple[int, str, int, str]]:
    """(measure, level, node, grain) of series with a cell added, removed or changed."""
    keys = ["measure_id", "level", "node_id", "grain", "period"]
    values = [*SUM_COLUMNS, "suppressed"]
    merged = old[keys + values].merge(
        new[keys + values], on=keys, how="outer", suffixes=("_old", "_new"), indicator=True
    )
    changed = (merged["_merge"] != "both").to_numpy().copy()
    for name in values:
        a, b = merged[f"{name}_old"].to_numpy(), merged[f"{name}_new"].to_numpy()
        changed |= ~((a == b) | (pd.isna(a) & pd.isna(b)))
    rows = merged.loc[changed, ["measure_id", "level", "node_id", "grain"]].drop_duplicates()
    return set(
        zip(
            rows["measure_id"].tolist(),
            rows["level"].tolist(),
            rows["node_id"].tolist(),
            rows["grain"].tolist(),
            strict=True,
        )
    )


def _spliced_inputs(
    measure: MeasureConfig,
    keys: Sequence[tuple[str, int, str]],
    stored: Mapping[tuple[int, str, int, str], bytes],
    new_cells: pd.DataFrame,
    week_window: tuple[date, date] | None,
    month_window: tuple[date, date] | None,
) -> tuple[SeriesInputs, list[tuple[str, int, str]]]:
    """The stored periods of these series outside the window, plus the new cells inside it.

    Returns the inputs of the series that still have periods, and the keys of those that
    have none left (to delete). Flat numpy throughout: a data frame per series cost ~10 ms.
    """
    levels, grains = list(LEVEL_DTYPE.categories), list(GRAIN_DTYPE.categories)

    def code(level_code, node, grain_code):
        return node * 100 + level_code * 10 + grain_code

    key_codes = np.array(
        [code(levels.index(lv), node, grains.index(gr)) for lv, node, gr in keys], dtype="int64"
    )
    names = ("rows", "n", "numerator", "denominator", "suppressed")
    parts: dict[str, list[np.ndarray]] = {name: [] for name in ("series", "days", *names)}
    for i, key in enumerate(keys):
        columns = unpack_columns(stored.get((measure.id, *key)))
        window = week_window if key[2] == Frequency.WEEK else month_window
        days = columns["period"].astype("int64")
        if window is None:
            outside = np.zeros(len(days), dtype=bool)
        else:
            lo, hi = ((np.datetime64(d, "D") - _EPOCH).astype("int64") for d in window)
            outside = (days < lo) | (days > hi)
        parts["series"].append(np.full(int(outside.sum()), i, dtype="int64"))
        parts["days"].append(days[outside])
        for name in names:
            parts[name].append(columns[name][outside])
    own = new_cells[new_cells["measure_id"] == measure.id]
    if len(own):
        own_codes = code(
            _codes(own["level"], LEVEL_DTYPE),
            own["node_id"].to_numpy(dtype="int64"),
            _codes(own["grain"], GRAIN_DTYPE),
        )
        order = np.argsort(key_codes)
        at = np.clip(np.searchsorted(key_codes[order], own_codes), 0, len(keys) - 1)
        match = key_codes[order][at] == own_codes
        parts["series"].append(order[at][match])
        parts["days"].append(periods_to_days(own["period"].to_numpy())[match])
        for name in names:
            parts[name].append(own[name].to_numpy()[match])
    flat = {name: np.concatenate(arrays) for name, arrays in parts.items()}
    order = np.lexsort((flat["days"], flat["series"]))
    flat = {name: values[order] for name, values in flat.items()}
    counts = np.bincount(flat["series"], minlength=len(keys))
    empty = [key for key, count in zip(keys, counts.tolist(), strict=True) if not count]
    return (
        SeriesInputs(
            measure=measure,
            keys=[key for key, count in zip(keys, counts.tolist(), strict=True) if count],
            starts=np.concatenate([[0], np.cumsum(counts[counts > 0])]).astype("int64"),
            days=flat["days"],
            rows=flat["rows"].astype("int64"),
            n=flat["n"].astype("float64"),
            numerator=flat["numerator"].astype("float64"),
            denominator=flat["denominator"].astype("float64"),
            suppressed=flat["suppressed"].astype(bool),
        ),
        empty,
    )


def batch_windows(batch_id: int) -> dict[tuple[int, int], tuple[date, date]]:
    """(measure id, unit id) → first and last day an import batch wrote rows for."""
    table = Observation._meta.db_table
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT measure_id, unit_id, min(date), max(date) FROM {table} "
            "WHERE batch_id = %s GROUP BY 1, 2",
            [batch_id],
        )
        return {
            (measure_id, unit_id): (_as_date(lo), _as_date(hi))
            for measure_id, unit_id, lo, hi in cursor.fetchall()
        }


def touched_pairs(batch_id: int) -> dict[int, list[int]]:
    """measure id → unit ids that an import batch wrote rows for (index on batch_id)."""
    pairs: dict[int, list[int]] = {}
    for measure_id, unit_id in batch_windows(batch_id):
        pairs.setdefault(measure_id, []).append(unit_id)
    return pairs


def series_refresh_for_batch(*, batch_id: int) -> RefreshResult:
    """Refresh exactly the series an import batch touched: its measures × units, and parents."""
    windows = batch_windows(batch_id)
    return series_refresh_pairs(windows=windows) if windows else RefreshResult()


def series_refresh(
    *,
    measure_ids: Iterable[int] | None = None,
    unit_ids: Sequence[int] | None = None,
    force: bool = False,
) -> RefreshResult:
    """Recompute series: all of some measures, or (with ``unit_ids``) those units' and parents'.

    ``force`` recomputes whole measures even where nothing changed (after an upgrade).
    """
    if unit_ids is None:
        return series_recompute(measure_ids=measure_ids, force=force)
    return series_refresh_pairs(pairs={m.id: unit_ids for m in _configs(measure_ids)})


def series_recompute_chunks(chunk_measures: int | None = None) -> list[list[int]]:
    """Active measures in chunks for full runs.

    One chunk by default: the GROUP BY then scans the observations once, in parallel on the
    database server; chunks each scan the whole table again (DESIGN.md §7).
    """
    from django.conf import settings

    size = chunk_measures or settings.LHS_AGGREGATION_CHUNK_MEASURES
    ids = list(Measure.objects.filter(active=True).order_by("pk").values_list("pk", flat=True))
    if not ids:
        return []
    count = max(1, math.ceil(len(ids) / max(1, size)))
    return [ids[i::count] for i in range(count)]
