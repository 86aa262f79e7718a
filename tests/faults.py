"""Fault figures with real processes: ``make faults`` (or ``python -m tests.faults``).

Runs the fault tests (tests/e2e/test_faults.py: a worker SIGKILLed mid-import, Redis restarted
mid-import; tests/e2e/test_soak.py: the embedded default under a trickle of imports) on the
production stack, and prints one JSON object with what each measured: recovery seconds, rows
lost, failed batches, 5xx answers. PostgreSQL and Redis default to the ones on 127.0.0.1
(``DATABASE_URL``, ``REDIS_URL`` override); the Redis that the test restarts is always one of
its own, on a free port.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys


def main(argv: list[str]) -> int:
    env = dict(os.environ)
    env.setdefault("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/lhs_faults")
    env.setdefault("REDIS_URL", "redis://127.0.0.1:6379/7")
    command = [
        sys.executable,
        "-m",
        "pytest",
        "-q",
        "-s",
        "-p",
        "no:cacheprovider",
        "tests/e2e/test_faults.py",
        "tests/e2e/test_soak.py",
        *argv,
    ]
    run = subprocess.run(command, env=env, capture_output=True, text=True)
    figures = [
        json.loads(line.split("FAULT-FIGURES ", 1)[1])
        for line in run.stdout.splitlines()
        if "FAULT-FIGURES " in line
    ]
    print(json.dumps({"passed": run.returncode == 0, "scenarios": figures}, indent=2))
    if run.returncode:
        print(run.stdout[-6000:], run.stderr[-3000:], sep="\n", file=sys.stderr)
    return run.returncode


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
