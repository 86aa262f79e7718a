"""A real Celery worker process for end-to-end tests, sharing this test run's database.

The worker is started once per test session (``celery_worker``) with an environment that
points it at what pytest-django set up and what this process uses:

- the database: the *test* database (its name is only known after ``django_db_setup``),
  passed as ``DATABASE_URL`` (SQLite: the test database file; PostgreSQL: the test database
  on the same server, with the same credentials);
- the broker: with ``REDIS_URL`` the worker inherits it and so uses the same Redis database
  (or a Redis of the test's own, for the fault tests); without it both sides use the embedded
  SQLite broker (lhs/broker.py) in a private folder of this session (``LHS_VAR_DIR`` for the
  worker; this process's Celery app is pointed at the same file), so neither stale messages in
  ``var/`` nor a ``make run`` worker can interfere;
- the uploaded files (``DJANGO_MEDIA_ROOT``), the cache (Redis, or a file cache in the same
  private folder) and the secrets (``DJANGO_SECRET_KEY``, ``LHS_SUBJECT_KEY_SECRET``).

Tests that use the worker must commit their data: ``@pytest.mark.django_db(transaction=True)``
(or ``live_server``), and request ``worker_settings`` so that uploads land where the worker
reads them.

The fixtures are defined here once and re-exported by ``tests/e2e/conftest.py`` and
``tests/browser/conftest.py``. Pytest then holds one fixture definition per directory; a
reference count makes sure a session still starts a single worker.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote, urlencode

import pytest
from django.conf import settings as django_settings
from django.db import connection

from lhs.celery import app as celery_app
from measures.models import ImportBatch

READY_TIMEOUT = 60.0
STOP_TIMEOUT = 20.0
#: How long a test waits for the worker to finish one small import.
IMPORT_TIMEOUT = 60.0
_READY = re.compile(r"@\S+ ready\.")
#: Celery's INFO lines for a task received and for one that ended (or will be retried).
_RECEIVED = re.compile(r"Task \S+\[([0-9a-f-]+)\] received")
_ENDED = re.compile(r"Task \S+\[([0-9a-f-]+)\] (?:succeeded|raised|retry|failed)")


def worker_database_url() -> str:
    """A DATABASE_URL for the test database pytest-django created (call after setup)."""
    params = connection.settings_dict
    name = str(params["NAME"])
    if connection.vendor == "sqlite":
        if connection.is_in_memory_db():
            pytest.fail(
                "The SQLite test database is in memory; a worker process cannot see it. "
                "lhs/settings.py must keep DATABASES['default']['TEST']['NAME'] a file."
            )
        return f"sqlite:///{Path(name).resolve()}"
    if connection.vendor == "postgresql":
        user, password = params.get("USER") or "", params.get("PASSWORD") or ""
        auth = quote(user, safe="") + (f":{quote(password, safe='')}" if password else "")
        host = params.get("HOST") or ""
        # A socket directory is percent-encoded; an IPv6 address goes in brackets.
        host = f"[{host}]" if ":" in host else quote(host, safe="")
        port = f":{params['PORT']}" if params.get("PORT") else ""
        options = {
            key: value
            for key, value in (params.get("OPTIONS") or {}).items()
            if isinstance(value, str | int)
        }
        query = f"?{urlencode(options)}" if options else ""
        return f"postgres://{auth}{'@' if auth else ''}{host}{port}/{quote(name)}{query}"
    pytest.fail(f"No worker set-up for the {connection.vendor} database backend.")


def _reset_broker_pools() -> None:
    """Make this process's Celery app open new broker connections with the current settings.

    The app keeps its connection and producer pools once it has published; they are keyed by
    the transport options, so dropping the app's references is enough.
    """
    celery_app._pool = None
    amqp = celery_app.__dict__.get("amqp")
    if amqp is not None:
        amqp._producer_pool = None


class Worker:
    """One ``celery worker`` subprocess and the folder it shares with this process."""

    def __init__(self, base: Path, *, redis_url: str | None = None, beat: bool = False):
        self.base = base
        self.var_dir = base / "var"
        self.media_root = base / "media"
        self.log_path = base / "worker.log"
        self.redis_url = django_settings.REDIS_URL if redis_url is None else redis_url
        self.database_url = worker_database_url()
        self.process: subprocess.Popen | None = None
        self.beat_process: subprocess.Popen | None = None
        self.beat = beat
        self._saved_broker_url: str | None = None
        if self.redis_url:
            self.caches = {
                "default": {
                    "BACKEND": "django.core.cache.backends.redis.RedisCache",
                    "LOCATION": self.redis_url,
                }
            }
        else:
            # lhs/settings.py puts the worker's file cache here when LHS_VAR_DIR is var_dir.
            self.caches = {
                "default": {
                    "BACKEND": "django.core.cache.backends.filebased.FileBasedCache",
                    "LOCATION": str(self.var_dir / "cache"),
                }
            }

    # set-up --------------------------------------------------------------------------------

    def environment(self) -> dict[str, str]:
        env = dict(os.environ)
        # The worker must really be a worker: never run its tasks eagerly.
        env.pop("LHS_CELERY_EAGER", None)
        env.update(
            DJANGO_SETTINGS_MODULE="lhs.settings",
            DATABASE_URL=self.database_url,
            REDIS_URL=self.redis_url,
            # Only the broker folder and the file cache are derived from this: the database
            # is given explicitly above, the media root and the secrets below.
            LHS_VAR_DIR=str(self.var_dir),
            DJANGO_MEDIA_ROOT=str(self.media_root),
            DJANGO_SECRET_KEY=django_settings.SECRET_KEY,
            LHS_SUBJECT_KEY_SECRET=django_settings.SUBJECT_KEY_SECRET,
            LHS_LOG_LEVEL="INFO",
            PYTHONUNBUFFERED="1",
            PYTHONPATH=os.pathsep.join(
                filter(None, [str(django_settings.BASE_DIR), os.environ.get("PYTHONPATH")])
            ),
        )
        return env

    @property
    def broker_url(self) -> str:
        # lhs/settings.py puts the embedded broker here when LHS_VAR_DIR is var_dir.
        return self.redis_url or f"lhs-sqlite+sqlite:///{self.var_dir / 'broker.sqlite3'}"

    def use_here(self) -> None:
        """Publish from this process to the worker's broker (until :meth:`release_here`)."""
        if self._saved_broker_url is None:
            self._saved_broker_url = celery_app.conf.broker_url
        celery_app.conf.broker_url = self.broker_url
        _reset_broker_pools()

    def release_here(self) -> None:
        """Publish where this process did before (the unit tests' in-memory broker)."""
        if self._saved_broker_url is not None:
            celery_app.conf.broker_url = self._saved_broker_url
            self._saved_broker_url = None
            _reset_broker_pools()

    def start(self, *, purge: bool = True) -> None:
        """Start the worker (and beat, if asked); ``purge=False`` for a restart, which must
        find the queue as the last worker left it."""
        self.media_root.mkdir(parents=True, exist_ok=True)
        self.var_dir.mkdir(parents=True, exist_ok=True)
        # If pytest itself is killed, the worker must not live on and take the next run's
        # messages (util-linux's setpriv sets the parent-death signal, then execs).
        setpriv = shutil.which("setpriv") if sys.platform == "linux" else None
        command = [
            *([setpriv, "--pdeathsig", "TERM"] if setpriv else []),
            sys.executable,
            "-m",
            "celery",
            "-A",
            "lhs",
            "worker",
            "--pool=solo",
            "--concurrency=1",
            "--without-mingle",
            "--without-gossip",
            "--loglevel=INFO",
            f"--hostname=e2e-{os.getpid()}@%h",
            # Messages left in the queue by an earlier, interrupted run name batches that do
            # not exist (or are other batches) in this run's fresh database.
            *(["--purge"] if purge else []),
        ]
        if self.beat and self.beat_process is None:
            beat = [
                *([setpriv, "--pdeathsig", "TERM"] if setpriv else []),
                sys.executable,
                "-m",
                "celery",
                "-A",
                "lhs",
                "beat",
                "--loglevel=INFO",
                f"--schedule={self.var_dir / 'celerybeat-schedule'}",
            ]
            with open(self.base / "beat.log", "ab") as log:
                self.beat_process = subprocess.Popen(
                    beat,
                    cwd=self.var_dir,
                    env=self.environment(),
                    stdout=log,
                    stderr=subprocess.STDOUT,
                )
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(
                command,
                # Not the repository: kombu's file-system transport writes relative paths.
                cwd=self.var_dir,
                env=self.environment(),
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        self._wait_until_ready()

    def _wait_until_ready(self) -> None:
        deadline = time.monotonic() + READY_TIMEOUT
        already = len(_READY.findall(self.log()))  # a restarted worker's log goes on
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                self.stop()
                pytest.fail(
                    f"The Celery worker exited with {self.process.returncode} before it was "
                    f"ready:\n{self.log_tail()}"
                )
            if len(_READY.findall(self.log())) > already:
                return
            time.sleep(0.1)
        self.stop()
        pytest.fail(f"The Celery worker was not ready in {READY_TIMEOUT:.0f} s:\n{self.log_tail()}")

    def stop(self) -> None:
        """Warm shutdown (finish the current task), then kill if it hangs."""
        for process in (self.process, self.beat_process):
            if process is not None and process.poll() is None:
                process.send_signal(signal.SIGTERM)
                try:
                    process.wait(STOP_TIMEOUT)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait()
        self.beat_process = None
        self.release_here()

    def kill(self) -> None:
        """SIGKILL, as the kernel's OOM killer or a pulled plug ends a worker: no clean-up."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait()

    # reading -------------------------------------------------------------------------------

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def log_tail(self, lines: int = 40) -> str:
        return "\n".join(self.log().splitlines()[-lines:])

    def assert_alive(self) -> None:
        if self.process is None or self.process.poll() is not None:
            pytest.fail(f"The Celery worker is not running:\n{self.log_tail()}")

    def wait_until_idle(self, timeout: float = IMPORT_TIMEOUT, settle: float = 0.5) -> None:
        """Wait until every task the worker received has ended, and nothing new came for
        ``settle`` seconds (a task queued by the one that just ended arrives a moment later)."""
        deadline = time.monotonic() + timeout
        idle_since = None
        while time.monotonic() < deadline:
            log = self.log()
            received = set(_RECEIVED.findall(log))
            ended = set(_ENDED.findall(log))
            if received <= ended:
                idle_since = idle_since or time.monotonic()
                if time.monotonic() - idle_since >= settle:
                    return
            else:
                idle_since = None
            if self.process is None or self.process.poll() is not None:
                return
            time.sleep(0.1)
        pytest.fail(f"The worker was still busy after {timeout:.0f} s:\n{self.log_tail()}")

    def wait_for_batch(self, batch_id: int, timeout: float = IMPORT_TIMEOUT) -> ImportBatch:
        """Poll the database until the worker has finished the batch; fail after ``timeout``."""
        deadline = time.monotonic() + timeout
        while True:
            batch = ImportBatch.objects.get(pk=batch_id)
            if batch.is_finished:
                return batch
            self.assert_alive()
            if time.monotonic() > deadline:
                pytest.fail(
                    f"Batch #{batch_id} is still {batch.status} (attempts {batch.attempts}) "
                    f"after {timeout:.0f} s. Worker log:\n{self.log_tail()}"
                )
            time.sleep(0.2)


# One worker per session although the fixture is defined in two conftest files.
_shared: dict[str, object] = {"worker": None, "users": 0}


@pytest.fixture(scope="session")
def celery_worker(django_db_setup, tmp_path_factory) -> Iterator[Worker]:
    """A running worker on this session's test database and broker (see the module docs)."""
    if _shared["worker"] is None:
        worker = Worker(tmp_path_factory.mktemp("celery-worker"))
        worker.start()
        _shared["worker"] = worker
    _shared["users"] += 1
    try:
        yield _shared["worker"]
    finally:
        _shared["users"] -= 1
        if not _shared["users"]:
            _shared["worker"].stop()
            _shared["worker"] = None


@pytest.fixture
def worker_settings(celery_worker: Worker, settings) -> Iterator[Worker]:
    """Send tasks to the worker, store uploads where it reads them and share its cache.

    Requested by a test (not autouse), so it runs after the root conftest's autouse fixture
    that gives every unit test its own media folder and a local-memory cache.
    """
    celery_worker.assert_alive()
    settings.CELERY_TASK_ALWAYS_EAGER = False  # even if LHS_CELERY_EAGER is set for the run
    celery_worker.use_here()
    settings.MEDIA_ROOT = celery_worker.media_root
    settings.CACHES = celery_worker.caches
    yield celery_worker
    # An import queues a series refresh when it commits; the test may end before the worker
    # has run it, and flushing the database under it deadlocks with its locks.
    celery_worker.wait_until_idle()
    celery_worker.release_here()


__all__ = ["IMPORT_TIMEOUT", "Worker", "celery_worker", "worker_settings"]
