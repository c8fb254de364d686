"""HTTP requests' synchronous work on threads kept from one request to the next.

Django's ASGI handler gives every request a thread of its own: a new single-thread executor,
started for the request and joined after it by yet another new thread. Two threads made and
ended per request, and the connection each opened, cost more than the rest of a small API
request (``bench/rest.py``; the figures are in ``bench/README.md``). Here a request borrows
one of ``RTC_REQUEST_THREADS`` long-lived threads for its whole life instead, so Django's
guarantee holds (a request's synchronous code runs on one thread, which runs nobody else's
meanwhile). When every kept thread is lent out (requests waiting on something, a burst), a
request gets a thread of its own as Django would give it, ended after it: more requests never
wait for fewer threads.

A kept thread keeps its database connection from one request to the next, as a WSGI server's
threads do (``DATABASE_CONN_MAX_AGE``, checked at each request's start and end); with a thread
per request, every request opened a connection (on PostgreSQL a new server session, ~5 ms).
"""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from asgiref.sync import ThreadSensitiveContext, sync_to_async
from django.core.handlers.asgi import ASGIHandler
from django.db import connections

from tables.conf import rtc_settings


class RequestThreads:
    """Single-thread executors lent to one request at a time."""

    def __init__(self, size: int | None = None) -> None:
        self._size = size
        self._lock = threading.Lock()
        self._idle: list[ThreadPoolExecutor] = []
        self._kept = 0

    @property
    def size(self) -> int:
        return rtc_settings.REQUEST_THREADS if self._size is None else self._size

    def borrow(self) -> tuple[ThreadPoolExecutor, bool]:
        """An executor for one request, and whether it goes back to the pool afterwards."""
        with self._lock:
            if self._idle:
                return self._idle.pop(), True
            if self._kept < self.size:
                self._kept += 1
                return ThreadPoolExecutor(1, thread_name_prefix="rtc-request"), True
        return ThreadPoolExecutor(1, thread_name_prefix="rtc-request-extra"), False

    def give_back(self, executor: ThreadPoolExecutor, kept: bool) -> None:
        if kept:
            with self._lock:
                self._idle.append(executor)
        else:
            # Not joined: its thread may still be finishing a call of a request whose client
            # went away (a thread cannot be cancelled); it ends when that call returns.
            executor.shutdown(wait=False)

    @property
    def idle(self) -> int:
        with self._lock:
            return len(self._idle)


class PooledThreadsASGIHandler(ASGIHandler):
    """Django's ASGI handler, each request's synchronous work on a borrowed thread."""

    def __init__(self, threads: RequestThreads | None = None) -> None:
        super().__init__()
        self.threads = threads or RequestThreads()

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            raise ValueError(f"Django can only handle ASGI/HTTP connections, not {scope['type']}.")
        executor, kept = self.threads.borrow()
        try:
            async with ThreadSensitiveContext(executor=executor):
                try:
                    await self.handle(scope, receive, send)
                finally:
                    if not kept:  # its thread ends: so do its connections, now
                        await sync_to_async(connections.close_all)()
        finally:
            self.threads.give_back(executor, kept)
