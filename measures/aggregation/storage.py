"""Writing series and period sums under the per-measure lock, and reading them back (step 5)."""

from __future__ import annotations

import itertools
import json
from collections.abc import Callable, Mapping, Sequence
from datetime import date, datetime, timedelta
from typing import Any

import numpy as np
import pandas as pd
from django.db import connection

from ..enums import SeriesLevel
from ..models import PeriodSums, Series
from ..packing import (
    UNIT_SUMS_COLUMNS,
    blob_of,
    encode_columns,
    periods_to_days,
    unpack_columns,
)
from .analysis import (
    ComputedSeries,
)
from .cells import (
    _EPOCH_DATE,
    GRAIN_DTYPE,
    SUM_COLUMNS,
    _as_date,
    _codes,
    _empty_cells,
    _in_list,
    _sort_order,
    node_key,
)

#: Namespace of the per-measure advisory lock (pg_advisory_xact_lock(namespace, measure id)).
LOCK_NAMESPACE = 0x5E1E5


def lock_measure(measure_id: int) -> None:
    """Serialise writers of one measure's series until the transaction ends.

    PostgreSQL: a transaction-level advisory lock, released by commit or rollback, also when
    the worker dies (its connection closes). SQLite: transactions are ``BEGIN IMMEDIATE``
    (lhs/settings.py), which already serialises all writers.
    """
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_xact_lock(%s, %s)", [LOCK_NAMESPACE, measure_id])


def replace_series(
    measure_ids: Sequence[int],
    computed: Sequence[ComputedSeries],
    computed_at: datetime,
    *,
    present: Mapping[int, set[tuple[str, str]]] | None,
) -> tuple[int, int]:
    """Write computed series; call inside a transaction holding the measures' locks.

    A series stored from newer data (a later ``computed_at``) is left alone, so a slow full
    run cannot overwrite what a refresh after a later import wrote. With ``present`` (measure
    id → every (node key, grain) the data still makes), stored series of those measures not
    in it have lost their observations and are deleted. Returns (written, deleted).
    """
    rows = Series.objects.filter(measure_id__in=list(measure_ids))
    if present is None:
        # Only these series are looked at: not the measures' thousands of others.
        rows = rows.filter(node_key__in=sorted({s.node_key for s in computed}))
    stored = {
        (measure_id, key, grain): (pk, at)
        for pk, measure_id, key, grain, at in rows.values_list(
            "pk", "measure_id", "node_key", "grain", "computed_at"
        )
    }
    newer = {key for key, (_pk, at) in stored.items() if at > computed_at}
    rows = [s for s in computed if (s.measure_id, s.node_key, s.grain) not in newer]
    if rows:
        _upsert(rows, computed_at, {key: pk for key, (pk, _at) in stored.items()})
    deleted = 0
    if present is not None:
        gone = [
            pk
            for (measure_id, key, grain), (pk, at) in stored.items()
            if (key, grain) not in present.get(measure_id, ()) and at <= computed_at
        ]
        deleted = Series.objects.filter(pk__in=gone).delete()[0] if gone else 0
    return len(rows), deleted


_SERIES_COLUMNS = (
    "measure_id",
    "level",
    "grain",
    "unit_id",
    "department_id",
    "division_id",
    "node_key",
    "computed_at",
    "observation_count",
    "chart",
    "variation_icon",
    "assurance_icon",
    "run_chart",
    "data",
    "inputs_digest",
)


def _series_row(s: ComputedSeries, computed_at: Any, run_chart: Callable = json.dumps) -> tuple:
    return (
        s.measure_id,
        s.level,
        s.grain,
        s.node_id if s.level == SeriesLevel.UNIT else None,
        s.node_id if s.level == SeriesLevel.DEPARTMENT else None,
        s.node_id if s.level == SeriesLevel.DIVISION else None,
        s.node_key,
        computed_at,
        s.observation_count,
        s.chart,
        s.variation_icon,
        s.assurance_icon,
        None if s.run_chart is None else run_chart(s.run_chart),
        s.data,
        s.digest,
    )


_SERIES_COPY_TYPES = (
    "int8",
    "varchar",
    "varchar",
    "int8",
    "int8",
    "int8",
    "varchar",
    "timestamptz",
    "int8",
    "varchar",
    "varchar",
    "varchar",
    "jsonb",
    "bytea",
    "varchar",
)


def _upsert(
    rows: Sequence[ComputedSeries],
    computed_at: datetime,
    stored_ids: Mapping[tuple[int, str, str], int],
) -> None:
    """Write whole series, keeping the id of a series that is stored already.

    PostgreSQL: the stored rows are deleted and all rows go in by one binary ``COPY`` with
    their ids (new ones drawn from the sequence): no statement per series and the blobs are
    written once (through a temporary table and ``INSERT … ON CONFLICT`` they were written
    twice, which took a third of a full run's writing). Safe because every writer of a
    measure's series holds its lock. SQLite: ``INSERT … ON CONFLICT DO UPDATE``.
    """
    table = Series._meta.db_table
    names = ", ".join(_SERIES_COLUMNS)
    if connection.vendor == "postgresql":
        from psycopg.types.json import Jsonb

        keys = [(s.measure_id, s.node_key, s.grain) for s in rows]
        existing = [stored_ids[key] for key in keys if key in stored_ids]
        with connection.cursor() as cursor:
            if existing:
                cursor.execute(f"DELETE FROM {table} WHERE id = ANY(%s)", [existing])
            fresh: list[int] = []
            if len(existing) < len(rows):
                cursor.execute(
                    f"SELECT nextval(pg_get_serial_sequence('{table}', 'id')) "
                    "FROM generate_series(1, %s)",
                    [len(rows) - len(existing)],
                )
                fresh = [row[0] for row in cursor.fetchall()]
            new_ids = iter(fresh)
            with cursor.copy(f"COPY {table} (id, {names}) FROM STDIN (FORMAT BINARY)") as copy:
                copy.set_types(["int8", *_SERIES_COPY_TYPES])
                for key, s in zip(keys, rows, strict=True):
                    pk = stored_ids.get(key) or next(new_ids)
                    copy.write_row((pk, *_series_row(s, computed_at, Jsonb)))
        return
    update = ", ".join(
        f"{name} = EXCLUDED.{name}"
        for name in _SERIES_COLUMNS
        if name not in ("measure_id", "node_key", "grain")
    )
    adapt = connection.ops.adapt_datetimefield_value
    sql = (
        f"INSERT INTO {table} ({names}) VALUES ({', '.join(['%s'] * len(_SERIES_COLUMNS))}) "
        f"ON CONFLICT (measure_id, node_key, grain) DO UPDATE SET {update}"
    )
    with connection.cursor() as cursor:
        cursor.executemany(sql, [_series_row(s, adapt(computed_at)) for s in rows])


def present_keys(cells: pd.DataFrame) -> dict[int, set[tuple[str, str]]]:
    """measure id → (node key, grain) of every series the cells make."""
    if cells.empty:
        return {}
    series = cells[["measure_id", "level", "node_id", "grain"]].drop_duplicates()
    out: dict[int, set[tuple[str, str]]] = {}
    for measure_id, level, node, grain in zip(
        series["measure_id"].tolist(),
        series["level"].tolist(),
        series["node_id"].tolist(),
        series["grain"].tolist(),
        strict=True,
    ):
        out.setdefault(measure_id, set()).add((node_key(level, node), grain))
    return out


def write_period_sums(
    measure_ids: Sequence[int],
    units: pd.DataFrame,
    *,
    window: Mapping[int, tuple[date, date]] | None = None,
) -> int:
    """Replace the stored unit-level cells of measures (all, or within each measure's window).

    ``units``: unit-level cells (measure_id, unit_id, grain, period, sums). ``window``:
    measure id → (first, last) period start replaced; absent: every period of the measures,
    and then only rows whose content changed are written (a nightly run over unchanged data
    writes none: reading them back costs a third of rewriting them). Returns rows written.
    """
    table = PeriodSums._meta.db_table
    rows = _period_sums_rows(units)
    if window is not None:
        with connection.cursor() as cursor:
            where, params = _windows_where({m: window[m] for m in measure_ids})
            cursor.execute(f"DELETE FROM {table} WHERE {where}", params)
    else:
        stored = _stored_period_sums(measure_ids)
        fresh = {row[:3]: row[3] for row in rows}
        gone = [pk for key, (pk, blob) in stored.items() if fresh.get(key) != blob]
        rows = [row for row in rows if stored.get(row[:3], (None, None))[1] != row[3]]
        if gone:
            with connection.cursor() as cursor:
                cursor.execute(f"DELETE FROM {table} WHERE id IN ({_in_list(gone)})")
    if not rows:
        return 0
    if connection.vendor == "postgresql":
        with (
            connection.cursor() as cursor,
            cursor.copy(
                f"COPY {table} (measure_id, grain, period, data) FROM STDIN (FORMAT BINARY)"
            ) as copy,
        ):
            copy.set_types(["int8", "varchar", "date", "bytea"])
            for row in rows:
                copy.write_row(row)
    else:
        with connection.cursor() as cursor:
            cursor.executemany(
                f"INSERT INTO {table} (measure_id, grain, period, data) VALUES (%s, %s, %s, %s)",
                rows,
            )
    return len(rows)


def _period_sums_rows(units: pd.DataFrame) -> list[tuple[int, str, date, bytes]]:
    """(measure id, grain, period, packed unit sums) per period of unit-level cells."""
    if units.empty:
        return []
    frame = units.take(
        _sort_order(
            units["measure_id"].to_numpy(),
            _codes(units["grain"], GRAIN_DTYPE),
            periods_to_days(units["period"].to_numpy()),
            units["unit_id"].to_numpy(),
        )
    )
    measure = frame["measure_id"].to_numpy()
    grain = _codes(frame["grain"], GRAIN_DTYPE)
    days = periods_to_days(frame["period"].to_numpy())
    change = np.ones(len(frame), dtype=bool)
    change[1:] = (measure[1:] != measure[:-1]) | (grain[1:] != grain[:-1]) | (days[1:] != days[:-1])
    starts = np.append(np.flatnonzero(change), len(frame)).tolist()
    grains = list(GRAIN_DTYPE.categories)
    encoded = encode_columns(
        {name: frame[name].to_numpy() for name, _d in UNIT_SUMS_COLUMNS}, UNIT_SUMS_COLUMNS
    )
    return [
        (
            int(measure[a]),
            grains[grain[a]],
            _EPOCH_DATE + timedelta(days=int(days[a])),
            blob_of(encoded, a, b),
        )
        for a, b in itertools.pairwise(starts)
    ]


def _stored_period_sums(
    measure_ids: Sequence[int],
) -> dict[tuple[int, str, date], tuple[int, bytes]]:
    """(measure id, grain, period) → (id, packed sums) as stored."""
    sql = (
        f"SELECT id, measure_id, grain, period, data FROM {PeriodSums._meta.db_table} "
        f"WHERE measure_id IN ({_in_list(measure_ids)})"
    )
    if connection.vendor == "postgresql":
        import psycopg

        connection.ensure_connection()
        # Binary results: bytea as text would be hex, twice the bytes to send and decode.
        # (Django's cursors bind client-side, which has no binary results.)
        with psycopg.Cursor(connection.connection) as cursor:
            cursor.execute(sql, binary=True)
            found = cursor.fetchall()
    else:
        with connection.cursor() as cursor:
            cursor.execute(sql)
            found = cursor.fetchall()
    return {
        (measure_id, grain, _as_date(period)): (pk, bytes(blob))
        for pk, measure_id, grain, period, blob in found
    }


def _windows_where(windows: Mapping[int, tuple[date, date] | None]) -> tuple[str, list[Any]]:
    """One WHERE clause for the period sums of measures, each within its window (or all)."""
    parts, params = [], []
    for measure_id, window in windows.items():
        if window is None:
            parts.append("measure_id = %s")
            params.append(measure_id)
        else:
            parts.append("(measure_id = %s AND period BETWEEN %s AND %s)")
            params += [measure_id, *window]
    return " OR ".join(parts), params


def read_period_sums(windows: Mapping[int, tuple[date, date] | None]) -> pd.DataFrame:
    """Stored unit-level cells of measures: measure id → (first, last) period start, or None."""
    table = PeriodSums._meta.db_table
    parts: dict[str, list[np.ndarray]] = {
        name: [] for name in ("measure_id", "grain", "period", *(n for n, _d in UNIT_SUMS_COLUMNS))
    }
    if not windows:
        return _empty_cells("unit_id")
    where, params = _windows_where(windows)
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT measure_id, grain, period, data FROM {table} WHERE {where}", params)
        for measure_id, grain, period, blob in cursor.fetchall():
            columns = unpack_columns(blob, UNIT_SUMS_COLUMNS)
            size = len(columns["unit_id"])
            for name, values in columns.items():
                parts[name].append(values)
            parts["measure_id"].append(np.full(size, measure_id, dtype="int64"))
            parts["grain"].append(np.full(size, grain, dtype=object))
            parts["period"].append(np.full(size, np.datetime64(period, "s")))
    if not parts["measure_id"]:
        return _empty_cells("unit_id")
    frame = pd.DataFrame({name: np.concatenate(arrays) for name, arrays in parts.items()})
    frame["period"] = frame["period"].astype("datetime64[s]")
    frame = frame.astype({"rows": "int64", "unit_id": "int64", "grain": GRAIN_DTYPE})
    return frame[["measure_id", "unit_id", "grain", "period", *SUM_COLUMNS]]


def stored_digests(measure_ids: Sequence[int]) -> dict[tuple[int, str, str], str]:
    """(measure id, node key, grain) → the input digest stored with each series."""
    return {
        (measure_id, key, grain): digest
        for measure_id, key, grain, digest in Series.objects.filter(
            measure_id__in=list(measure_ids)
        ).values_list("measure_id", "node_key", "grain", "inputs_digest")
    }


def _stored_blobs(
    wanted: Mapping[int, Sequence[tuple[str, int, str]]],
) -> dict[tuple[int, str, int, str], bytes]:
    """(measure id, level, node id, grain) → stored points of these series, in one query."""
    by_key = {
        (measure_id, node_key(level, node), grain): (measure_id, level, node, grain)
        for measure_id, keys in wanted.items()
        for level, node, grain in keys
    }
    rows = Series.objects.filter(
        measure_id__in=list(wanted), node_key__in=sorted({key for _m, key, _g in by_key})
    ).values_list("measure_id", "node_key", "grain", "data")
    return {
        by_key[(measure_id, key, grain)]: bytes(blob)
        for measure_id, key, grain, blob in rows
        if (measure_id, key, grain) in by_key
    }
