"""Aggregation engine: observations → series per (measure, org node, grain) with SPC.

The flow of a full recomputation (DESIGN.md §3, §5, §7), module by module:

1. **Unit-level period sums from the database** (``cells``). One ``GROUP BY`` over the
   observations of all measures, at the lowest level only, which PostgreSQL runs in parallel
   workers with the memory to hash every group at once. The groups are (measure, unit,
   ISO week, part), where ``part`` marks the days of a week that lie in the month after the
   one its Monday is in: summing the groups by week or by month is then exact. Per group: the
   number of rows, ``n`` (below), Σ numerator and Σ denominator, where a patient-level row
   counts as numerator = its value and denominator = 1, and a pre-aggregated row brings its
   own numerator and denominator.
2. **Roll-ups in pandas** (``cells``) on that small result: quarter = Σ months; department =
   Σ its units; division = Σ departments. Pooling is by sums, never a mean of unit figures
   (DESIGN.md §5 "Pooling up the hierarchy"): a proportion is Σ numerators / Σ denominators,
   a rate Σ events / Σ exposure, a mean Σ values / Σ ratings (the n-weighted mean of every
   rating), a count Σ events.
3. **Suppression** (``cells``, DESIGN.md §5): a period with 0 < n < the measure's minimum n is
   suppressed, and *complementary* cells are suppressed too, so that no suppressed figure can
   be recovered by subtraction (see :func:`suppress`).
4. **SPC** (``analysis``) of all of a measure's series in one call of
   :func:`measures.spc_batch.analyse_many`, which gives what :func:`measures.spc.analyse` gives
   series by series (chart by kind, direction, target, baseline, re-basing, Laney); suppressed
   periods go in as missing, so that neither the centre line nor the limits carry them. Each
   series' points are packed into columns (:mod:`measures.packing`).
5. **Writing** (``storage``): one short transaction takes the measures' locks and replaces
   their series, and the unit-level sums of each period (:class:`~measures.models.PeriodSums`).

After an import or a revert, ``jobs.series_refresh_pairs`` redoes only the whole quarters
around the changed days (for a weekly measure one more on each side): those units' rows are
aggregated again, every other unit's cells of those periods come from ``PeriodSums``,
suppression is redone for those periods (it links cells only within a week, within a quarter
and its months, or within a month and the weeks that overlap it), and every series with a
changed cell is spliced and analysed again. It leaves exactly what a full run would.

``n``, the number a period is suppressed on: for patient-level rows, the number of rows (one
rating, one patient's 0/1, one event record each); for pre-aggregated rows, the number of
people or ratings behind them, which is the denominator of a proportion or a mean, and the
numerator (the number of events) of a count or a rate.

Works on PostgreSQL and on SQLite (the embedded default: the same grouping with SQLite date
functions, and plain inserts).
"""

# The steps live in modules, in order: cells (1-3), analysis (4), storage (5), and jobs (the
# entry points); these are the names other code uses.
from .analysis import (
    ENGINE_VERSION,
    ComputedSeries,
    RebaseDates,
    compute_series,
    series_digest,
)
from .cells import (
    GRAINS,
    MeasureConfig,
    Organisation,
    all_levels,
    canonical,
    node_key,
    suppress,
    unit_cells,
    unit_period_sums,
)
from .jobs import (
    RefreshResult,
    Windows,
    batch_windows,
    rebase_dates,
    register_rebase_provider,
    series_recompute,
    series_recompute_chunks,
    series_refresh,
    series_refresh_for_batch,
    series_refresh_pairs,
    series_refresh_units,
    touched_pairs,
)
from .storage import (
    lock_measure,
    read_period_sums,
    replace_series,
    write_period_sums,
)

__all__ = [
    "ENGINE_VERSION",
    "GRAINS",
    "ComputedSeries",
    "MeasureConfig",
    "Organisation",
    "RebaseDates",
    "RefreshResult",
    "Windows",
    "all_levels",
    "batch_windows",
    "canonical",
    "compute_series",
    "lock_measure",
    "node_key",
    "read_period_sums",
    "rebase_dates",
    "register_rebase_provider",
    "replace_series",
    "series_digest",
    "series_recompute",
    "series_recompute_chunks",
    "series_refresh",
    "series_refresh_for_batch",
    "series_refresh_pairs",
    "series_refresh_units",
    "suppress",
    "touched_pairs",
    "unit_cells",
    "unit_period_sums",
    "write_period_sums",
]
