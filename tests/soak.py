"""A steady trickle of imports into the embedded default, for the soak test.

Run in a process of its own with the embedded settings (no DATABASE_URL, no REDIS_URL, a
private LHS_VAR_DIR), beside a ``celery worker --beat`` with the same environment::

    python -m tests.soak --minutes 3 --every 2

It builds a small organisation (once), then every ``--every`` seconds stores an import batch
through the service and sends it to the broker, exactly as an upload does. At the end it
waits for every batch to finish and prints one JSON line: batches, how each ended, and the
longest wait from upload to finish.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from datetime import date, timedelta


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--minutes", type=float, default=3.0)
    parser.add_argument("--every", type=float, default=2.0)
    parser.add_argument("--finish-timeout", type=float, default=120.0)
    args = parser.parse_args(argv)

    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "lhs.settings")
    import django

    django.setup()
    from django.core.files.uploadedfile import SimpleUploadedFile
    from django.core.management import call_command

    from measures.models import ImportBatch
    from measures.services import import_batch_create

    call_command("migrate", verbosity=0)
    user = _organisation()

    ids: list[int] = []
    start = time.monotonic()
    day = date(2015, 1, 5)
    while time.monotonic() - start < args.minutes * 60:
        rows = 50 + (len(ids) % 7) * 150  # small and not so small files, as people send
        lines = ["measure_code,unit_code,date,value"]
        for i in range(rows):
            lines.append(
                f"soak-score,SOAK-01,{(day + timedelta(days=i // 20)).isoformat()},{i % 10}"
            )
        day += timedelta(days=rows // 20 + 1)
        body = ("\n".join(lines) + "\n").encode()
        batch = import_batch_create(
            user=user, upload=SimpleUploadedFile(f"soak-{len(ids)}.csv", body)
        )
        ids.append(batch.pk)
        time.sleep(args.every)

    deadline = time.monotonic() + args.finish_timeout
    while time.monotonic() < deadline:
        if not ImportBatch.objects.filter(pk__in=ids, status__in=["queued", "running"]).exists():
            break
        time.sleep(0.5)
    batches = list(ImportBatch.objects.filter(pk__in=ids))
    statuses: dict[str, int] = {}
    for batch in batches:
        statuses[batch.status] = statuses.get(batch.status, 0) + 1
    waits = [(b.finished_at - b.created_at).total_seconds() for b in batches if b.finished_at]
    print(
        json.dumps(
            {
                "batches": len(ids),
                "statuses": statuses,
                "longest_wait_s": round(max(waits, default=0.0), 2),
                "minutes": args.minutes,
            }
        )
    )
    return 0 if statuses == {"succeeded": len(ids)} else 1


def _organisation():
    from django.contrib.auth import get_user_model

    from forums.enums import ForumKind
    from forums.models import Forum, Membership
    from measures.enums import Direction, Face, Frequency, MeasureKind, Scope
    from measures.models import Measure
    from units.models import Department, Division, Unit

    division, _ = Division.objects.get_or_create(code="soak", defaults={"name": "Soak"})
    department, _ = Department.objects.get_or_create(
        code="soak", division=division, defaults={"name": "Soak"}
    )
    Unit.objects.get_or_create(code="SOAK-01", department=department, defaults={"name": "Soak"})
    Measure.objects.get_or_create(
        code="soak-score",
        defaults={
            "name": "Soak score",
            "kind": MeasureKind.MEAN,
            "direction": Direction.DOWN,
            "frequency": Frequency.WEEK,
            "scope": Scope.DIVISION,
            "face": Face.IMPROVEMENT,
            "value_min": 0,
            "value_max": 10,
        },
    )
    user, _ = get_user_model().objects.get_or_create(username="soak", defaults={"email": ""})
    support, _ = Forum.objects.get_or_create(
        kind=ForumKind.SUPPORT_UNIT, division=division, defaults={"name": "Support"}
    )
    Membership.objects.get_or_create(forum=support, user=user)
    return user


if __name__ == "__main__":
    sys.exit(main())
