"""Is a background worker alive? Heartbeats that Celery worker processes write to the cache.

Every process that runs tasks writes its own heartbeat and a shared "a worker was seen" time
every few seconds from a daemon thread, also while a long import keeps its main thread busy.
The import sweeper reads a batch's own worker's heartbeat to tell a dead worker from a slow
one; pages read the shared one to say when imports wait for a worker (no silent waiting).

The cache is Redis in production and a file cache in the embedded default; both are shared
by the web and worker processes. A cache that cannot be reached reads as "not seen": the
pages then warn, which is true, since imports do wait while Redis is away.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time

from django.core.cache import cache

logger = logging.getLogger(__name__)

#: How often a worker process writes its heartbeat.
HEARTBEAT_SECONDS = 5.0
#: A worker not heard of for this long is presumed gone (four missed heartbeats).
STALE_SECONDS = 20.0
#: Pages warn when no worker at all has been seen for this long.
MISSING_SECONDS = 60.0

_SEEN_KEY = "lhs:worker-seen"
_started_in_pid: int | None = None


def worker_id() -> str:
    """This process, as a batch records the worker that claimed it."""
    return f"{socket.gethostname()}:{os.getpid()}"


def _key(worker: str) -> str:
    return f"lhs:worker:{worker}"


def heartbeat() -> None:
    now = time.time()
    # A day: long enough to read "last seen 3 hours ago", short enough not to pile up.
    cache.set_many({_key(worker_id()): now, _SEEN_KEY: now}, timeout=24 * 3600)


def _beat_forever() -> None:
    while True:
        try:
            heartbeat()
        except Exception:  # the cache is away: try again next time, never die
            logger.warning("Worker heartbeat could not be written: the cache is unavailable")
        time.sleep(HEARTBEAT_SECONDS)


def start_heartbeat() -> None:
    """Start this process's heartbeat thread (once per process; a forked child starts its own)."""
    global _started_in_pid
    if _started_in_pid == os.getpid():
        return
    _started_in_pid = os.getpid()
    threading.Thread(target=_beat_forever, name="lhs-heartbeat", daemon=True).start()


def seconds_since_seen(worker: str | None = None) -> float | None:
    """Seconds since ``worker`` (default: any worker) was last heard of; None if never/unknown."""
    try:
        seen = cache.get(_key(worker) if worker else _SEEN_KEY)
    except Exception:
        logger.warning("Worker heartbeat could not be read: the cache is unavailable")
        return None
    return None if seen is None else max(0.0, time.time() - float(seen))


def worker_is_gone(worker: str) -> bool:
    """True when ``worker`` has not been heard of for :data:`STALE_SECONDS` (or ever)."""
    since = seconds_since_seen(worker) if worker else None
    return since is None or since > STALE_SECONDS


def workers_missing() -> bool:
    """True when no worker has been seen for :data:`MISSING_SECONDS`: imports would wait."""
    since = seconds_since_seen()
    return since is None or since > MISSING_SECONDS
