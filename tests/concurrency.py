"""Running calls at the same moment in real threads (each with its own database connection).

For the tests of what two people (or workers) pressing at once must not break. They need
PostgreSQL for real row locks; on SQLite the callers skip.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence

from django.db import connection


def run_in_threads(
    calls: Sequence[Callable[[], object]],
    *,
    timeout: float = 60,
    barrier: threading.Barrier | None = None,
) -> list[object]:
    """Each call in a thread of its own (waiting on ``barrier`` first, if given); the results,
    or the exception each raised, in the calls' order. Fails if a call hangs."""
    results: list[object] = [None] * len(calls)

    def run(i: int, call: Callable[[], object]) -> None:
        try:
            if barrier is not None:
                barrier.wait()
            results[i] = call()
        except BaseException as exc:  # reported to the test, whatever it is
            results[i] = exc
        finally:
            connection.close()

    threads = [threading.Thread(target=run, args=(i, c)) for i, c in enumerate(calls)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout)
    assert not any(thread.is_alive() for thread in threads), "a call hung"
    return results


def together(calls: Sequence[Callable[[], object]], *, timeout: float = 60) -> list[object]:
    """Run the calls released at once."""
    return run_in_threads(
        calls, timeout=timeout, barrier=threading.Barrier(len(calls), timeout=timeout)
    )


def race_past(
    monkeypatch, module, name: str, calls: Sequence[Callable[[], object]], *, timeout: float = 30
) -> list[object]:
    """Run the calls so that every one has passed ``module.name`` (a guard, a permission
    check) before any goes on to write: the window in which a check-then-write races."""
    barrier = threading.Barrier(len(calls), timeout=timeout)
    real = getattr(module, name)

    def check_then_wait(*args, **kwargs):
        answer = real(*args, **kwargs)
        barrier.wait()
        return answer

    monkeypatch.setattr(module, name, check_then_wait)
    return run_in_threads(calls, timeout=timeout * 2)
