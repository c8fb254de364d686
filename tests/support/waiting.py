"""Waiting on a condition under a deadline: the one way tests wait for what another process (or
task) does, never a sleep standing in for synchronisation.

``eventually`` polls from synchronous code (a database query, a file on disk, a browser's page);
``aeventually`` is its twin for coroutines: the condition may be sync or async, and with
``off_loop=True`` a sync condition runs in a worker thread, for database reads while something
the test waits on (a supernode, say) runs on the event loop.

Both return the condition's first truthy value, and fail with what was awaited, for how long,
and the last value seen (plus ``explain()``, when given, for more context).
"""

from __future__ import annotations

import asyncio
import inspect
import threading
import time
from collections.abc import Callable
from typing import Any

from channels.db import database_sync_to_async

POLL = 0.05  # seconds between checks


class Deadline:
    """A monotonic deadline, and the failure to raise when it passes."""

    def __init__(self, timeout: float, what: str, explain: Callable[[], str] | None = None):
        self.timeout = timeout
        self.what = what
        self.explain = explain
        self.at = time.monotonic() + timeout

    def remaining(self) -> float:
        return self.at - time.monotonic()

    def failure(self, last: Any) -> AssertionError:
        detail = f"; {self.explain()}" if self.explain else ""
        return AssertionError(
            f"{self.what} did not happen within {self.timeout}s (last: {last!r}){detail}"
        )


def eventually(
    condition: Callable[[], Any],
    timeout: float = 10.0,
    what: str = "the condition",
    *,
    explain: Callable[[], str] | None = None,
) -> Any:
    """Poll ``condition`` until it returns something truthy; return it."""
    deadline = Deadline(timeout, what, explain)
    pause = threading.Event()
    while True:
        result = condition()
        if result:
            return result
        remaining = deadline.remaining()
        if remaining <= 0:
            raise deadline.failure(result)
        pause.wait(min(POLL, remaining))


async def aeventually(
    condition: Callable[[], Any],
    timeout: float = 10.0,
    what: str = "the condition",
    *,
    off_loop: bool = False,
    explain: Callable[[], str] | None = None,
) -> Any:
    """``eventually`` for async tests: ``condition`` may return an awaitable; with ``off_loop``
    a sync condition runs in a thread (database reads while the loop runs the code under test)."""
    if off_loop:
        # database_sync_to_async closes the thread's connections after the call, so none keeps
        # the test database from being dropped.
        wait = database_sync_to_async(eventually, thread_sensitive=False)
        return await wait(condition, timeout, what, explain=explain)
    deadline = Deadline(timeout, what, explain)
    while True:
        result = condition()
        if inspect.isawaitable(result):
            result = await result
        if result:
            return result
        remaining = deadline.remaining()
        if remaining <= 0:
            raise deadline.failure(result)
        await asyncio.sleep(min(POLL, remaining))


async def until_set(
    changed: asyncio.Event,
    predicate: Callable[[], Any],
    timeout: float,
    explain: Callable[[], str],
) -> None:
    """Until ``predicate()`` holds, checked each time ``changed`` is set (by whatever receives
    what it depends on); an AssertionError saying ``explain()`` after ``timeout`` seconds."""
    try:
        async with asyncio.timeout(timeout):
            while not predicate():
                changed.clear()
                await changed.wait()
    except TimeoutError:
        raise AssertionError(f"not met in {timeout}s: {explain()}") from None
