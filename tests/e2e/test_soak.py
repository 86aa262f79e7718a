"""The embedded default under a steady trickle of imports, for minutes, with real processes.

What `make run` starts (SQLite, the SQLite broker of lhs/broker.py, a file cache, a worker with
beat) runs in a private folder; `tests/soak.py` stores a batch every two seconds as an upload
does. Every batch must finish and the worker must still be alive at the end: the file-system
broker this replaced killed its worker after about nine minutes of light use.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.conf import settings

pytestmark = pytest.mark.worker

MINUTES = float(os.environ.get("LHS_SOAK_MINUTES", "3"))


def embedded_environment(var_dir: Path) -> dict[str, str]:
    env = {
        key: value
        for key, value in os.environ.items()
        if key not in {"DATABASE_URL", "REDIS_URL", "LHS_CELERY_EAGER", "DJANGO_SETTINGS_MODULE"}
    }
    env.update(
        DJANGO_SETTINGS_MODULE="lhs.settings",
        LHS_VAR_DIR=str(var_dir),
        DJANGO_MEDIA_ROOT=str(var_dir / "media"),
        PYTHONUNBUFFERED="1",
        PYTHONPATH=str(settings.BASE_DIR),
    )
    return env


def test_the_embedded_worker_takes_a_steady_trickle_of_imports_for_minutes(tmp_path):
    var_dir = tmp_path / "var"
    var_dir.mkdir()
    env = embedded_environment(var_dir)
    subprocess.run(
        [sys.executable, "manage.py", "migrate", "--noinput", "-v", "0"],
        cwd=settings.BASE_DIR,
        env=env,
        check=True,
    )
    log_path = tmp_path / "worker.log"
    with open(log_path, "wb") as log:
        worker = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "celery",
                "-A",
                "lhs",
                "worker",
                "--beat",
                "--pool=solo",
                "--loglevel=INFO",
                f"--schedule={var_dir / 'celerybeat-schedule'}",
                "--without-mingle",
                "--without-gossip",
            ],
            cwd=var_dir,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:
        driver = subprocess.run(
            [sys.executable, "-m", "tests.soak", "--minutes", str(MINUTES), "--every", "2"],
            cwd=settings.BASE_DIR,
            env=env,
            capture_output=True,
            text=True,
            timeout=MINUTES * 60 + 300,
        )
        worker_alive = worker.poll() is None
    finally:
        worker.terminate()
        worker.wait(30)
    log = log_path.read_text(errors="replace")
    assert driver.returncode == 0, f"{driver.stdout}\n{driver.stderr}\n{log[-4000:]}"
    result = json.loads(driver.stdout.strip().splitlines()[-1])
    print(f"FAULT-FIGURES {json.dumps({'scenario': 'embedded soak', **result})}")
    assert result["batches"] >= MINUTES * 60 / 3
    assert result["statuses"] == {"succeeded": result["batches"]}
    assert worker_alive, log[-4000:]
    assert "Unrecoverable error" not in log
