"""`make bench`: performance figures on PostgreSQL, printed as one JSON object.

Each figure is measured beside a baseline in the same run (the machines are shared and
noisy, so only ratios are comparable between runs):

- import: rows/s of a validated import of one CSV file (parse, validate, personnummer
  guard, HMAC of subject keys, stage, merge with the natural key) beside a raw psycopg
  ``COPY`` of the same rows into the same table. Target: ratio ≥ 0.5.

- aggregation (``python -m tests.bench aggregation [--scales 0.1,1]``): see
  ``tests/bench/aggregation.py``.

- dashboards (``python -m tests.bench dashboards [--scale 1]``): the pages under load with
  gunicorn and wrk, and first paint in Chromium; see ``tests/bench/dashboards.py``.

Usage: python -m tests.bench [--rows 1000000] [--database-url postgres://…]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import sys
import tempfile
import time
from datetime import date, timedelta
from pathlib import Path

DEFAULT_URL = "postgres://postgres@127.0.0.1:5432/lhs_bench"


def _prepare_database(url: str) -> None:
    """A fresh database for every run, so figures never depend on an earlier run's rows."""
    import psycopg

    name = url.rsplit("/", 1)[1].split("?")[0]
    admin_url = url.rsplit("/", 1)[0] + "/postgres"
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')


def _setup_django(url: str) -> None:
    os.environ["DATABASE_URL"] = url
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "lhs.settings")
    # Not eager: the import's follow-up (the series refresh) goes to the broker, as in
    # production, instead of running inside the timed import.
    os.environ["LHS_CELERY_EAGER"] = "0"
    os.environ.setdefault("LHS_VAR_DIR", tempfile.mkdtemp(prefix="lhs-bench-"))
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)


def _organisation(units: int, measures: int):
    from django.contrib.auth import get_user_model

    from measures.enums import Direction, Face, Frequency, MeasureKind, Scope
    from measures.models import Measure
    from units.models import Department, Division, Unit

    division = Division.objects.create(code="psy", name="Psykiatri")
    departments = [
        Department.objects.create(division=division, code=f"d{i}", name=f"Avdelning {i}")
        for i in range(5)
    ]
    Unit.objects.bulk_create(
        Unit(department=departments[i % 5], code=f"U{i:03d}", name=f"Enhet {i} – Å", kind="other")
        for i in range(units)
    )
    Measure.objects.bulk_create(
        Measure(
            code=f"m{i:02d}",
            name=f"Measure {i}",
            kind=MeasureKind.MEAN,
            direction=Direction.DOWN,
            frequency=Frequency.WEEK,
            scope=Scope.DIVISION,
            face=Face.ACCOUNTABILITY,
            value_min=0,
            value_max=48,
        )
        for i in range(measures)
    )
    user = get_user_model().objects.create(username="bench", is_superuser=True, is_staff=True)
    return user


def _write_file(path: Path, rows: int, units: int, measures: int) -> None:
    """A patient-level file like a real extract: ~5 years of dates, subject keys, scores."""
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(20261128)
    start = date.today() - timedelta(days=5 * 365)
    days = rng.integers(0, 5 * 365, rows)
    frame = pd.DataFrame(
        {
            "measure_code": np.char.add(
                "m", np.char.zfill(rng.integers(0, measures, rows).astype(str), 2)
            ),
            "unit_code": np.char.add(
                "U", np.char.zfill(rng.integers(0, units, rows).astype(str), 3)
            ),
            "date": (pd.Timestamp(start) + pd.to_timedelta(np.sort(days), unit="D")).strftime(
                "%Y-%m-%d"
            ),
            "value": rng.integers(0, 49, rows),
            "subject_key": np.char.add("P", rng.integers(0, 200_000, rows).astype(str)),
        }
    )
    frame.to_csv(path, index=False)


def _copy_baseline(path: Path, user) -> float:
    """Seconds for a raw psycopg ``COPY`` of the same rows into the observation table.

    The rows are exactly those the import stores (ids resolved, subject keys hashed, natural
    keys computed), prepared before the clock starts; the clock stops after the commit, and
    the table is emptied again so the import meets the same empty table.
    """
    from django.conf import settings
    from django.db import connection, transaction
    from django.utils import timezone

    from measures.bulk import ROW_COLUMNS, copy_text
    from measures.importing import ImportFile
    from measures.models import ImportBatch, Observation
    from measures.services import _measure_specs
    from units.models import Unit

    rows = ImportFile(
        path,
        measures=_measure_specs(),
        units=dict(Unit.objects.values_list("code", "id")),
        allowed_unit_ids=None,
        today=timezone.localdate(),
        subject_secret=settings.SUBJECT_KEY_SECRET.encode(),
    )
    batch = ImportBatch.objects.create(
        uploaded_by=user, source="command", original_name="baseline", checksum="-"
    )
    columns = (*ROW_COLUMNS, "batch_id")
    data = [copy_text(chunk.assign(batch_id=batch.pk), columns) for chunk in rows.chunks()]
    table = Observation._meta.db_table
    sql = f"COPY {table} ({', '.join(columns)}) FROM STDIN (FORMAT text, NULL '')"
    started = time.perf_counter()
    with transaction.atomic(), connection.cursor() as cursor, cursor.copy(sql) as copy:
        for block in data:
            copy.write(block)
    # The commit is part of it: that is when a load becomes durable.
    elapsed = time.perf_counter() - started
    del data
    with connection.cursor() as cursor:
        cursor.execute(f"TRUNCATE {table}")
    ImportBatch.objects.filter(pk=batch.pk).delete()
    return elapsed


def _empty_observations() -> None:
    from django.db import connection

    from measures.models import ImportBatch, Observation

    with connection.cursor() as cursor:
        cursor.execute(f"TRUNCATE {Observation._meta.db_table}")
    ImportBatch.objects.all().delete()


def _validated_import(path: Path, user, name: str | None = None) -> tuple[float, object]:
    from django.core.files import File

    from measures.enums import ImportSource
    from measures.services import import_batch_create, import_batch_process

    with path.open("rb") as fh:
        batch = import_batch_create(
            user=user,
            upload=File(fh, name=name or path.name),
            source=ImportSource.COMMAND,
            enqueue=False,
        )
    started = time.perf_counter()
    batch = import_batch_process(batch_id=batch.pk)
    return time.perf_counter() - started, batch


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["aggregation"]:
        # Issue 3's benchmark: full recomputation, freshness, worker memory.
        from tests.bench.aggregation import main as aggregation

        return aggregation(argv[1:])
    if argv[:1] == ["dashboards"]:
        # Issue 8's benchmark: the dashboards with 20 concurrent clients, first paint.
        from tests.bench.dashboards import main as dashboards

        return dashboards(argv[1:])
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=3, help="rounds; medians are reported")
    parser.add_argument("--units", type=int, default=60)
    parser.add_argument("--measures", type=int, default=40)
    parser.add_argument(
        "--database-url", default=os.environ.get("LHS_BENCH_DATABASE_URL", DEFAULT_URL)
    )
    args = parser.parse_args(argv)
    if not args.database_url.startswith("postgres"):
        parser.error("the benchmark measures PostgreSQL: give a postgres:// URL")
    _prepare_database(args.database_url)
    _setup_django(args.database_url)
    user = _organisation(args.units, args.measures)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "bench.csv"
        _write_file(path, args.rows, args.units, args.measures)
        file_bytes = path.stat().st_size
        # Alternate baseline and import, each on an empty table, and keep the medians: the
        # machine is shared, and one run of each said more about the neighbours than us.
        copies, imports = [], []
        for round_ in range(args.repeat):
            if round_:
                _empty_observations()
            copies.append(_copy_baseline(path, user))
            seconds, batch = _validated_import(path, user, name=f"bench-{round_}.csv")
            imports.append(seconds)
        copy_seconds, import_seconds = statistics.median(copies), statistics.median(imports)
        reimport_seconds, again = _validated_import_again(path, user, batch)
    if batch.status != "succeeded":
        print(json.dumps({"error": batch.message, "errors": batch.errors[:5]}), file=sys.stderr)
        return 1
    result = {
        "rows": args.rows,
        "file_mb": round(file_bytes / 2**20, 1),
        "copy_baseline_s": round(copy_seconds, 2),
        "copy_baseline_rows_per_s": round(args.rows / copy_seconds),
        "import_s": round(import_seconds, 2),
        "import_rows_per_s": round(args.rows / import_seconds),
        "import_vs_copy_ratio": round(copy_seconds / import_seconds, 2),
        "import_target_ratio": 0.5,
        "rounds": args.repeat,
        "copy_baseline_rounds_s": [round(x, 2) for x in copies],
        "import_rounds_s": [round(x, 2) for x in imports],
        "rows_new": batch.rows_new,
        "reimport_existing_rows_s": round(reimport_seconds, 2),
        "reimport_rows_new": again.rows_new,
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
    }
    print(json.dumps(result, indent=2))
    return 0


def _validated_import_again(path: Path, user, first) -> tuple[float, object]:
    """The same rows again under another file name (one extra line changes the checksum)."""
    extra = path.with_name("again.csv")
    extra.write_bytes(path.read_bytes())
    with extra.open("a") as fh:
        fh.write("m00,U000,2024-01-01,3,PX\n")
    return _validated_import(extra, user)


if __name__ == "__main__":
    sys.exit(main())
