"""Bulk writing of validated import rows, inside the caller's transaction.

Every row is first staged in a temporary table; nothing reaches the observations until the
whole file has been validated. On PostgreSQL the staging is one ``COPY`` kept open across
chunks and fed from a writer thread, so the server loads one chunk while Python validates the
next (DESIGN.md §7: ``COPY`` is the fastest load there is). The merge is then a single
``INSERT … SELECT``: plain when no stored row falls within the file's measures, units and
dates, else ``ON CONFLICT DO NOTHING`` so rows already present are skipped by the natural key.
Two imports racing for the same keys cannot both win: the second meets a unique violation,
rolls back whole and is retried, and then takes the ``ON CONFLICT`` path.

On SQLite (the embedded default) chunks are staged with ``executemany``.
"""

from __future__ import annotations

from contextlib import ExitStack

import pandas as pd
import psycopg
import pyarrow as pa
import pyarrow.compute as pc
from django.db import connection
from psycopg.copy import QueuedLibpqWriter
from pyarrow import csv as pa_csv

from .models import Measure, Observation

STAGING = "lhs_import_staging"
ROW_COLUMNS = (
    "measure_id",
    "unit_id",
    "date",
    "value",
    "numerator",
    "denominator",
    "subject_key",
    "row_hash",
)
STAGED_COLUMNS = ("file_row", *ROW_COLUMNS)
DIRECT_COLUMNS = (*ROW_COLUMNS, "batch_id")


class RowsAlreadyPresent(Exception):
    """A direct ``COPY`` met a row that is stored already; import through staging instead."""


STAGING_DDL = f"""CREATE TEMPORARY TABLE {STAGING} (
    file_row integer NOT NULL,
    measure_id bigint NOT NULL,
    unit_id bigint NOT NULL,
    date date NOT NULL,
    value double precision,
    numerator double precision,
    denominator double precision,
    subject_key varchar(32),
    row_hash bigint NOT NULL
)"""


def _is_postgres() -> bool:
    return connection.vendor == "postgresql"


def copy_text(frame: pd.DataFrame, columns: tuple[str, ...]) -> bytes:
    """Rows in ``COPY … (FORMAT text, NULL '')`` form, by Arrow's C++ CSV writer.

    pandas' ``to_csv`` took longer than the ``COPY`` itself. Values never hold tabs,
    newlines or backslashes (ids, ISO dates, numbers and hex digests), so nothing needs
    quoting or escaping, and an empty field is NULL.
    """
    arrow = pa.Table.from_pandas(frame[list(columns)], preserve_index=False)
    position = columns.index("date")
    arrow = arrow.set_column(position, "date", pc.cast(arrow.column("date"), pa.date32()))
    buffer = pa.BufferOutputStream()
    options = pa_csv.WriteOptions(include_header=False, delimiter="\t", quoting_style="none")
    pa_csv.write_csv(arrow, buffer, options)
    return buffer.getvalue().to_pybytes()


class ObservationWriter:
    """Writes one batch's rows: ``write`` each validated chunk, then ``finish``.

    ``direct`` (PostgreSQL, patient-level rows): ``COPY`` straight into the observations,
    optimistic that no row is present yet — the common case of a new extract. A row that is
    present makes the ``COPY`` fail with a unique violation (:class:`RowsAlreadyPresent`);
    the caller rolls back its savepoint and imports the file again through the staging path.
    """

    def __init__(self, batch_id: int, *, direct: bool = False) -> None:
        self.batch_id = batch_id
        self.direct = direct and _is_postgres()
        self.staged = 0
        self._resources = ExitStack()
        self._copy = None
        self._ready = False

    def __enter__(self) -> ObservationWriter:
        return self

    def __exit__(self, exc_type, exc, traceback) -> None:
        try:
            # With the exception, so that an open COPY is aborted rather than completed.
            self._resources.__exit__(exc_type, exc, traceback)
        finally:
            # After an error the caller's rollback removes the table with everything else.
            if self._ready and not self.direct and exc_type is None:
                with connection.cursor() as cursor:
                    cursor.execute(f"DROP TABLE IF EXISTS {STAGING}")

    def write(self, frame: pd.DataFrame) -> None:
        self._prepare()
        frame = frame.rename(columns={"row": "file_row"})
        self.staged += len(frame)
        if self.direct:
            try:
                self._copy.write(copy_text(frame.assign(batch_id=self.batch_id), DIRECT_COLUMNS))
            except psycopg.errors.UniqueViolation as exc:
                raise RowsAlreadyPresent from exc
            return
        if self._copy is not None:
            self._copy.write(copy_text(frame, STAGED_COLUMNS))
            return
        rows = frame[list(STAGED_COLUMNS)].assign(date=frame["date"].dt.strftime("%Y-%m-%d"))
        records = rows.astype(object).where(rows.notna(), None).itertuples(index=False)
        with connection.cursor() as cursor:
            cursor.executemany(
                f"INSERT INTO {STAGING} ({', '.join(STAGED_COLUMNS)}) "
                f"VALUES ({', '.join(['%s'] * len(STAGED_COLUMNS))})",
                list(records),
            )

    def conflicting_periods(self, limit: int) -> list[tuple]:
        """Staged pre-aggregated rows whose period is stored with other numbers.

        Returns (file row, numerator, denominator, batch id) of what is stored.
        """
        if self.direct or not self._end_copy():
            return []
        table = Observation._meta.db_table
        with connection.cursor() as cursor:
            cursor.execute(
                f"""SELECT s.file_row, o.numerator, o.denominator, o.batch_id
                FROM {STAGING} s JOIN {table} o
                  ON o.measure_id = s.measure_id AND o.unit_id = s.unit_id
                 AND o.date = s.date AND o.row_hash = 0
                WHERE s.row_hash = 0 AND (
                      COALESCE(o.numerator, -1) <> COALESCE(s.numerator, -1)
                   OR COALESCE(o.denominator, -1) <> COALESCE(s.denominator, -1))
                ORDER BY s.file_row LIMIT %s""",
                [limit],
            )
            return cursor.fetchall()

    def finish(self) -> int:
        """Move the staged rows into the observations; returns how many were new."""
        if self.direct:
            try:
                self._end_copy()
            except psycopg.errors.UniqueViolation as exc:
                raise RowsAlreadyPresent from exc
            return self.staged
        if not self._end_copy():
            return 0
        self._lock_references()
        table = Observation._meta.db_table
        columns = ", ".join(ROW_COLUMNS)
        conflict = "ON CONFLICT (measure_id, unit_id, date, row_hash) DO NOTHING"
        if _is_postgres() and not self._overlaps_stored_rows():
            conflict = ""
        with connection.cursor() as cursor:
            if _is_postgres():
                # The sort below must stay in memory (4 MB by default: it spilled to disk).
                cursor.execute("SET LOCAL work_mem = '256MB'")
            # In key order, so the index is filled page by page rather than at random.
            cursor.execute(
                f"""INSERT INTO {table} ({columns}, batch_id)
                SELECT {columns}, %s FROM {STAGING}
                WHERE true ORDER BY measure_id, unit_id, date, row_hash
                {conflict}""",
                [self.batch_id],
            )
            return cursor.rowcount

    # internals -----------------------------------------------------------------------------

    def _prepare(self) -> None:
        if self._ready:
            return
        if self.direct:
            self._ready = True
            self._lock_all_references()
            cursor = self._resources.enter_context(connection.cursor())
            table = Observation._meta.db_table
            sql = f"COPY {table} ({', '.join(DIRECT_COLUMNS)}) FROM STDIN (FORMAT text, NULL '')"
            self._copy = self._resources.enter_context(
                cursor.copy(sql, writer=QueuedLibpqWriter(cursor.cursor))
            )
            return
        with connection.cursor() as cursor:
            cursor.execute(f"DROP TABLE IF EXISTS {STAGING}")
            cursor.execute(STAGING_DDL)
        self._ready = True
        if _is_postgres():
            cursor = self._resources.enter_context(connection.cursor())
            sql = f"COPY {STAGING} ({', '.join(STAGED_COLUMNS)}) FROM STDIN (FORMAT text, NULL '')"
            self._copy = self._resources.enter_context(
                cursor.copy(sql, writer=QueuedLibpqWriter(cursor.cursor))
            )

    def _end_copy(self) -> bool:
        """Close the ``COPY`` so the connection takes queries again; False if nothing staged."""
        self._resources.close()
        self._copy = None
        return self._ready and self.staged > 0

    def _overlaps_stored_rows(self) -> bool:
        """Does any stored row fall within the staged (measure, unit, date range)s?"""
        table = Observation._meta.db_table
        with connection.cursor() as cursor:
            cursor.execute(
                f"""SELECT EXISTS (
                    SELECT 1 FROM (
                        SELECT measure_id, unit_id, min(date) AS low, max(date) AS high
                        FROM {STAGING} GROUP BY measure_id, unit_id
                    ) AS f
                    JOIN {table} o ON o.measure_id = f.measure_id AND o.unit_id = f.unit_id
                     AND o.date BETWEEN f.low AND f.high)"""
            )
            return cursor.fetchone()[0]

    def _lock_all_references(self) -> None:
        """Before a direct ``COPY`` (no queries while it runs): every measure and unit.

        A few hundred rows at most; ``FOR KEY SHARE`` blocks only their deletion.
        """
        from units.models import Unit

        with connection.cursor() as cursor:
            for model in (Measure, Unit):
                cursor.execute(f"SELECT id FROM {model._meta.db_table} FOR KEY SHARE")

    def _lock_references(self) -> None:
        """Lock the measures and units the rows refer to against deletion until commit.

        ``FOR KEY SHARE`` is what a foreign-key constraint's trigger takes for every row; here
        it is taken once per id, for the table has no such constraints (see Observation).
        """
        if not _is_postgres():
            return
        from units.models import Unit

        with connection.cursor() as cursor:
            for model, column in ((Measure, "measure_id"), (Unit, "unit_id")):
                cursor.execute(
                    f"""SELECT id FROM {model._meta.db_table}
                    WHERE id IN (SELECT DISTINCT {column} FROM {STAGING}) FOR KEY SHARE"""
                )
