"""The embedded default broker: kombu's SQLAlchemy transport on a SQLite file of its own.

Kombu's file-system transport can hand a worker a message file that is still being written;
the worker then dies with ``JSONDecodeError`` (DESIGN.md §7). A message stored by SQLite is
written in one transaction, so a reader sees it whole or not at all.

The broker has its own file rather than sharing the app's database: an import holds SQLite's
single write lock for as long as it writes, and publishing (an upload, beat) would wait on it.
Kombu passes every transport option to ``create_engine``; this transport keeps the ones that
are kombu's own (the polling interval) out of it and gives SQLite a lock timeout and WAL, so
a publisher and the worker polling at once wait for each other instead of failing.
"""

from __future__ import annotations

from kombu.transport import sqlalchemy as kombu_sqlalchemy
from sqlalchemy import create_engine, event

#: Transport options that belong to kombu, not to SQLAlchemy's engine.
_KOMBU_OPTIONS = {
    "queue_tablename",
    "message_tablename",
    "callback",
    "errback",
    "max_retries",
    "interval_start",
    "interval_step",
    "interval_max",
    "retry_errors",
    "polling_interval",
    "visibility_timeout",
}


class Channel(kombu_sqlalchemy.Channel):
    def _engine_from_config(self):
        conninfo = self.connection.client
        options = {k: v for k, v in conninfo.transport_options.items() if k not in _KOMBU_OPTIONS}
        url = conninfo.hostname
        if url.startswith("sqlite"):
            options.setdefault("connect_args", {"timeout": 30})
        engine = create_engine(url, **options)
        if engine.dialect.name == "sqlite":

            @event.listens_for(engine, "connect")
            def _pragmas(dbapi_connection, _record):
                cursor = dbapi_connection.cursor()
                cursor.execute("PRAGMA journal_mode=WAL")
                cursor.execute("PRAGMA synchronous=NORMAL")
                cursor.close()

        return engine


class Transport(kombu_sqlalchemy.Transport):
    Channel = Channel
