"""Aggregation benchmark (issue 3): full recomputation, freshness, worker memory.

Run as ``python -m tests.bench aggregation [--scales 0.1,1] [--database-url …]``. At each
scale (1 = DESIGN.md §6: 60 units, 40 measures, 5 years of daily rows, ≈10 M observations;
the scale multiplies the number of observations; the organisation — 60 units, 40 measures, 5
years — stays the same, so what changes between scales is the data size alone) it loads the observations with ``COPY`` (generated
with numpy, not through the importer) and measures on PostgreSQL:

- ``lower_bound_s``: one plain ``SELECT … GROUP BY measure, unit, week`` over the same table,
  counted on the server (``SELECT count(*) FROM (…)``); ``lower_bound_fetch_s`` the same query
  with every group fetched by the client;
- ``full_recompute_s``: every series (unit, department, division × each grain) of every
  measure, aggregation + suppression + SPC + writing, as the nightly job runs it (one task:
  one GROUP BY that PostgreSQL runs in parallel workers), first into an empty table and then
  replacing what is there (forced: every series recomputed and rewritten); target ≤ 2 × the
  lower bound. ``full_recompute_2_chunks_s``: the same split in two tasks run side by side
  (each scans the table);
- ``worker_peak_rss_mb``: the largest resident set of a worker process during the full run;
  target ≤ 1 GiB;
- ``freshness_s``: a real ``celery worker`` (prefork, 2 processes) on Redis; from the
  ``POST /api/imports/`` of a small CSV (one new week for one unit, every patient-level
  measure) to the new week being readable in every touched series through ``GET
  /api/series/``; target ≤ 5 s and independent of the data size (compare the scales);
- ``refresh_only_s``: the recomputation alone (the batch's series refresh, in this process);
  target ≤ 1 s.

Prints one JSON object with the figures and the ratios.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import resource
import signal
import subprocess
import sys
import tempfile
import time
from datetime import date, timedelta
from pathlib import Path

DEFAULT_URL = "postgres://postgres@127.0.0.1:5432/lhs_bench_agg"
REDIS_URL = "redis://127.0.0.1:6379/7"
YEARS = 5
MEASURES = 40
UNITS = 60
OBSERVATIONS = 10_000_000

# (kind, frequency, scope) of the 40 reference measures; rates come as pre-aggregated rows.
PLAN = (
    [("mean", "week", "division")] * 10
    + [("proportion", "week", "division")] * 10
    + [("count", "week", "division")] * 6
    + [("proportion", "month", "division")] * 6
    + [("mean", "week", "department")] * 2
    + [("proportion", "week", "unit")] * 2
    + [("rate", "month", "division")] * 4
)


def _env(url: str, var_dir: Path) -> dict[str, str]:
    env = dict(os.environ)
    env.pop("LHS_CELERY_EAGER", None)
    env.update(
        DATABASE_URL=url,
        REDIS_URL=REDIS_URL,
        DJANGO_SETTINGS_MODULE="lhs.settings",
        LHS_VAR_DIR=str(var_dir),
        DJANGO_MEDIA_ROOT=str(var_dir / "media"),
        DJANGO_ALLOWED_HOSTS="localhost,testserver",
        LHS_LOG_LEVEL="WARNING",
        PYTHONUNBUFFERED="1",
        PYTHONPATH=os.pathsep.join(
            filter(None, [str(Path(__file__).resolve().parents[2]), os.environ.get("PYTHONPATH")])
        ),
    )
    return env


def _end_date() -> date:
    """Data ends two weeks before this week's Monday: room for the freshness weeks."""
    today = date.today()
    return today - timedelta(days=today.weekday() + 15)


# --- set-up ---------------------------------------------------------------------------------


def _organisation(units: int) -> dict:
    from django.contrib.auth import get_user_model

    from measures.models import Measure
    from units.models import Department, Division, Unit

    division = Division.objects.create(code="psy", name="Psykiatri")
    departments = [
        Department.objects.create(division=division, code=f"d{i}", name=f"Avdelning {i}")
        for i in range(5)
    ]
    unit_objs = Unit.objects.bulk_create(
        Unit(department=departments[i % 5], code=f"U{i:03d}", name=f"Enhet {i}", kind="other")
        for i in range(units)
    )
    measures = []
    for i, (kind, frequency, scope) in enumerate(PLAN):
        measure = Measure(
            code=f"m{i:02d}",
            name=f"Measure {i}",
            kind=kind,
            direction="down" if kind in ("mean", "count", "rate") else "up",
            frequency=frequency,
            scope=scope,
            face="accountability",
            department=departments[i % 5] if scope == "department" else None,
            unit=unit_objs[i % units] if scope == "unit" else None,
            value_min=0 if kind == "mean" else None,
            value_max=48 if kind == "mean" else None,
            rate_per=1000 if kind == "rate" else None,
            target=None,
        )
        measure.full_clean()
        measures.append(measure)
    Measure.objects.bulk_create(measures)
    user = get_user_model().objects.create(username="bench", is_superuser=True, is_staff=True)
    return {"user": user, "units": unit_objs, "measures": list(Measure.objects.order_by("pk"))}


def _load(org: dict, scale: float, end: date) -> int:
    """COPY ≈ 10 M × scale rows, in key order as the importer writes them."""
    import numpy as np
    import pandas as pd
    from django.db import connection

    from measures.bulk import copy_text
    from measures.models import ImportBatch, Observation

    batch = ImportBatch.objects.create(
        uploaded_by=org["user"],
        source="command",
        original_name="bench",
        checksum="-",
        status="succeeded",
    )
    rng = np.random.default_rng(20261128)
    days = YEARS * 365 + 1
    start = np.datetime64(end) - np.timedelta64(days - 1, "D")
    units = org["units"]
    patient = [m for m in org["measures"] if m.kind != "rate"]
    pairs = sum(
        1 if m.scope == "unit" else (len(units) // 5 if m.scope == "department" else len(units))
        for m in patient
    )
    per_pair_day = OBSERVATIONS * scale / (pairs * days) if pairs else 0
    table = Observation._meta.db_table
    columns = (
        "measure_id",
        "unit_id",
        "date",
        "row_hash",
        "value",
        "numerator",
        "denominator",
        "batch_id",
    )
    sql = f"COPY {table} ({', '.join(columns)}) FROM STDIN (FORMAT text, NULL '')"
    total = 0
    with connection.cursor() as cursor:
        cursor.execute(f"ALTER TABLE {table} SET (autovacuum_enabled = false)")
    for measure in org["measures"]:
        if measure.scope == "unit":
            unit_ids = [measure.unit_id]
        elif measure.scope == "department":
            unit_ids = [u.pk for u in units if u.department_id == measure.department_id]
        else:
            unit_ids = [u.pk for u in units]
        if measure.kind == "rate":
            months = np.arange(start.astype("datetime64[M]") + 1, np.datetime64(end, "M") + 1)
            grid = len(unit_ids) * len(months)
            exposure = rng.integers(600, 1000, grid).astype(float)
            frame = pd.DataFrame(
                {
                    "measure_id": measure.pk,
                    "unit_id": np.repeat(unit_ids, len(months)),
                    "date": np.tile(months.astype("datetime64[D]"), len(unit_ids)),
                    "row_hash": 0,
                    "value": np.nan,
                    "numerator": rng.poisson(exposure * 0.01).astype(float),
                    "denominator": exposure,
                }
            )
        else:
            counts = rng.poisson(per_pair_day, (len(unit_ids), days))
            n = int(counts.sum())
            pair = np.repeat(np.arange(len(unit_ids) * days), counts.ravel())
            unit_index, day_index = np.divmod(pair, days)
            if measure.kind == "mean":
                value = np.clip(rng.normal(14 + unit_index % 7, 6), 0, 48).round()
            elif measure.kind == "proportion":
                value = (rng.random(n) < 0.6 + (unit_index % 5) * 0.05).astype(float)
            else:
                value = rng.poisson(1.5, n).astype(float)
            frame = pd.DataFrame(
                {
                    "measure_id": measure.pk,
                    "unit_id": np.asarray(unit_ids)[unit_index],
                    "date": start + day_index.astype("timedelta64[D]"),
                    "row_hash": np.arange(n, dtype=np.int64) + 1,
                    "value": value,
                    "numerator": np.nan,
                    "denominator": np.nan,
                }
            )
        frame["batch_id"] = batch.pk
        frame["date"] = pd.to_datetime(frame["date"])
        with connection.cursor() as cursor, cursor.copy(sql) as copy:
            copy.write(copy_text(frame, columns))
        total += len(frame)
    with connection.cursor() as cursor:
        cursor.execute(f"ALTER TABLE {table} RESET (autovacuum_enabled)")
    connection.close()
    # VACUUM cannot run in a transaction; as autovacuum would have after a load.
    import psycopg

    with psycopg.connect(os.environ["DATABASE_URL"], autocommit=True) as conn:
        conn.execute(f"VACUUM ANALYZE {table}")
    return total


# --- measurements ---------------------------------------------------------------------------


def _lower_bound() -> tuple[float, float]:
    from django.db import connection

    from measures.models import Observation

    table = Observation._meta.db_table
    query = f"""SELECT measure_id, unit_id, date_trunc('week', date::timestamp) AS week,
        count(*), sum(COALESCE(numerator, value)), sum(COALESCE(denominator, 1))
        FROM {table} GROUP BY 1, 2, 3"""
    server, fetch = math.inf, math.inf
    with connection.cursor() as cursor:
        for _ in range(2):
            started = time.perf_counter()
            cursor.execute(f"SELECT count(*) FROM ({query}) AS g")
            cursor.fetchone()
            server = min(server, time.perf_counter() - started)
            started = time.perf_counter()
            cursor.execute(query)
            cursor.fetchall()
            fetch = min(fetch, time.perf_counter() - started)
    return server, fetch


def _child_full(processes: int, force: bool) -> None:
    """In a child process: the nightly run's chunks in ``processes`` worker processes."""
    import multiprocessing

    import django

    django.setup()
    from django.db import connections

    from measures.aggregation import series_recompute_chunks

    chunks = series_recompute_chunks(math.ceil(MEASURES / processes))
    connections.close_all()  # never share a connection across fork
    started = time.perf_counter()
    with multiprocessing.get_context("fork").Pool(processes, maxtasksperchild=1) as pool:
        results = pool.map(_run_chunk, [(chunk, force) for chunk in chunks])
    wall = time.perf_counter() - started
    timings: dict[str, float] = {}
    for result in results:
        for key, value in result["timings"].items():
            timings[key] = round(timings.get(key, 0) + value, 2)
    print(
        json.dumps(
            {
                "seconds": wall,
                "series": sum(r["written"] for r in results),
                "peak_rss_mb": max(r["rss_mb"] for r in results),
                "cpu_seconds_by_step": timings,
            }
        )
    )


def _run_chunk(args: tuple[list[int], bool]) -> dict:
    from django.db import connection

    from measures.aggregation import series_recompute

    measure_ids, force = args
    result = series_recompute(measure_ids=measure_ids, force=force)
    connection.close()
    return {
        "written": result.series_written,
        "timings": result.timings,
        "rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
    }


def _full_recompute(env: dict, processes: int, *, force: bool = True) -> dict:
    command = [sys.executable, "-m", "tests.bench.aggregation", "--child-full", str(processes)]
    output = subprocess.run(
        [*command, "--force"] if force else command,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(output.stdout.strip().splitlines()[-1])


class _Worker:
    def __init__(self, env: dict, var_dir: Path):
        self.log = var_dir / "worker.log"
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "celery",
                "-A",
                "lhs",
                "worker",
                "--concurrency=2",
                "--loglevel=INFO",
                "--without-mingle",
                "--without-gossip",
                "--purge",
                f"--hostname=bench-{os.getpid()}@%h",
            ],
            env=env,
            cwd=var_dir,
            stdout=self.log.open("wb"),
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + 60
        while " ready." not in self.log.read_text(errors="replace"):
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("worker did not start:\n" + self.log.read_text()[-3000:])
            time.sleep(0.1)

    def stop(self) -> None:
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(30)
        except subprocess.TimeoutExpired:
            self.process.kill()


def _freshness(org: dict, unit, week_start: date) -> dict:
    """Upload one week for one unit through the API; poll the series API until it shows."""
    import numpy as np
    from rest_framework.test import APIClient

    from measures.aggregation import series_refresh_for_batch
    from measures.models import ImportBatch
    from units.services import api_token_create

    rng = np.random.default_rng(week_start.toordinal())
    lines = ["measure_code,unit_code,date,value,subject_key"]
    codes = []
    for measure in org["measures"]:
        if measure.kind == "rate" or (measure.scope == "unit" and measure.unit_id != unit.pk):
            continue
        if measure.scope == "department" and measure.department_id != unit.department_id:
            continue
        codes.append(measure.code)
        for day in range(7):
            for _ in range(3):
                value = {"mean": rng.integers(0, 49), "proportion": rng.integers(0, 2)}.get(
                    measure.kind, rng.integers(0, 4)
                )
                when = week_start + timedelta(days=day)
                lines.append(f"{measure.code},{unit.code},{when},{value},P{rng.integers(1e6)}")
    body = ("\n".join(lines) + "\n").encode()
    _token, key = api_token_create(user=org["user"], name=f"bench {week_start}")
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {key}")
    from django.core.files.uploadedfile import SimpleUploadedFile

    upload = SimpleUploadedFile(f"week-{week_start}.csv", body, content_type="text/csv")
    from django.utils import timezone
    from django.utils.dateparse import parse_datetime

    uploaded_at = timezone.now()
    started = time.perf_counter()
    response = client.post("/api/imports/", {"file": upload}, format="multipart", secure=True)
    assert response.status_code == 201, response.content
    batch_id = response.json()["id"]
    # Every measure has a quarterly series, written in the same transaction as its others.
    params = {"unit": unit.code, "grain": "quarter", "measure": ",".join(codes)}
    deadline = time.monotonic() + 120
    imported_at = None
    while True:
        page = client.get("/api/series/", params, secure=True).json()
        fresh = {
            s["measure"] for s in page["results"] if parse_datetime(s["computed_at"]) >= uploaded_at
        }
        if (
            imported_at is None
            and ImportBatch.objects.filter(pk=batch_id, status="succeeded").exists()
        ):
            imported_at = time.perf_counter()
        if fresh >= set(codes):
            break
        if time.monotonic() > deadline:
            raise RuntimeError(f"series not fresh after 120 s: {sorted(set(codes) - fresh)}")
        time.sleep(0.05)
    freshness = time.perf_counter() - started
    again = time.perf_counter()
    result = series_refresh_for_batch(batch_id=batch_id)  # the recomputation alone, again
    refresh = time.perf_counter() - again
    return {
        "rows": len(lines) - 1,
        "measures": len(codes),
        "freshness_s": round(freshness, 2),
        "import_done_after_s": None if imported_at is None else round(imported_at - started, 2),
        "refresh_only_s": round(refresh, 3),
        "refresh_series_written": result.series_written,
        "refresh_seconds_by_step": {k: round(v, 3) for k, v in result.timings.items()},
    }


def run_scale(scale: float, url: str, var_dir: Path) -> dict:
    from tests.bench.__main__ import _prepare_database

    env = _env(url, var_dir)
    os.environ.update(env)
    _prepare_database(url)
    import django
    from django.core.management import call_command

    django.setup()
    call_command("migrate", verbosity=0)
    import redis

    redis.Redis.from_url(REDIS_URL).flushdb()
    end = _end_date()
    units = UNITS
    org = _organisation(units)
    started = time.perf_counter()
    rows = _load(org, scale, end)
    load_s = time.perf_counter() - started
    lower, lower_fetch = _lower_bound()
    first = _full_recompute(env, 1)  # every series, into an empty table
    nightly = _full_recompute(env, 1)  # every series recomputed and replaced (forced)
    two = _full_recompute(env, 2)
    unchanged = _full_recompute(env, 1, force=False)  # the nightly job over unchanged data
    from measures.models import Series

    series = Series.objects.count()
    worker = _Worker(env, var_dir)
    try:
        monday = end + timedelta(days=1)
        fresh = [_freshness(org, org["units"][i], monday + timedelta(weeks=i)) for i in range(2)]
    finally:
        worker.stop()
    from django.db import connections

    connections.close_all()
    return {
        "scale": scale,
        "units": units,
        "measures": len(org["measures"]),
        "observations": rows,
        "series": series,
        "load_copy_s": round(load_s, 1),
        "lower_bound_s": round(lower, 2),
        "lower_bound_fetch_s": round(lower_fetch, 2),
        "full_recompute_empty_s": round(first["seconds"], 2),
        "full_recompute_s": round(nightly["seconds"], 2),
        "full_recompute_2_chunks_s": round(two["seconds"], 2),
        "full_vs_lower_bound_ratio": round(nightly["seconds"] / lower, 2),
        "full_vs_lower_bound_fetch_ratio": round(nightly["seconds"] / lower_fetch, 2),
        "full_recompute_unchanged_s": round(unchanged["seconds"], 2),
        "full_unchanged_vs_lower_bound_ratio": round(unchanged["seconds"] / lower, 2),
        "full_target_ratio": 2.0,
        "full_cpu_seconds_by_step": nightly["cpu_seconds_by_step"],
        "worker_peak_rss_mb": max(first["peak_rss_mb"], nightly["peak_rss_mb"]),
        "worker_peak_rss_mb_2_chunks": two["peak_rss_mb"],
        "worker_target_mb": 1024,
        "freshness": fresh,
        "freshness_s": min(f["freshness_s"] for f in fresh),
        "freshness_target_s": 5.0,
        "refresh_only_s": min(f["refresh_only_s"] for f in fresh),
        "refresh_only_target_s": 1.0,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scales", default="0.1,1", help="comma-separated, 1 = DESIGN.md §6")
    parser.add_argument("--scale", type=float, help="one scale only")
    parser.add_argument(
        "--database-url", default=os.environ.get("LHS_BENCH_DATABASE_URL", DEFAULT_URL)
    )
    parser.add_argument("--child-full", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--force", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child_full:
        _child_full(args.child_full, args.force)
        return 0
    if not args.database_url.startswith("postgres"):
        parser.error("the benchmark measures PostgreSQL: give a postgres:// URL")
    scales = [args.scale] if args.scale else [float(s) for s in args.scales.split(",")]
    results = []
    with tempfile.TemporaryDirectory(prefix="lhs-bench-agg-") as tmp:
        for scale in scales:
            # Each scale in its own process: Django is set up once per process.
            output = subprocess.run(
                [
                    sys.executable,
                    "-m",
                    "tests.bench.aggregation",
                    "--scale-child",
                    str(scale),
                    "--database-url",
                    args.database_url,
                    "--var-dir",
                    tmp,
                ],
                capture_output=True,
                text=True,
            )
            if output.returncode:
                print(output.stdout[-3000:], output.stderr[-6000:], file=sys.stderr)
                return output.returncode
            results.append(json.loads(output.stdout.strip().splitlines()[-1]))
    report: dict = {"aggregation": results}
    if len(results) > 1:
        small, large = results[0], results[-1]
        report["freshness_large_vs_small_ratio"] = round(
            large["freshness_s"] / small["freshness_s"], 2
        )
        report["observations_large_vs_small_ratio"] = round(
            large["observations"] / small["observations"], 1
        )
    print(json.dumps(report, indent=2))
    return 0


def _scale_child(argv: list[str]) -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--scale-child", type=float, required=True)
    parser.add_argument("--database-url", required=True)
    parser.add_argument("--var-dir", type=Path, required=True)
    args = parser.parse_args(argv)
    var_dir = args.var_dir / f"scale-{args.scale_child}"
    (var_dir / "media").mkdir(parents=True, exist_ok=True)
    print(json.dumps(run_scale(args.scale_child, args.database_url, var_dir)))
    return 0


if __name__ == "__main__":
    if "--scale-child" in sys.argv:
        sys.exit(_scale_child(sys.argv[1:]))
    sys.exit(main())
