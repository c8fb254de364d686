"""The kernels the supernode talks to: one shared connection per kernel, and a watcher per
running kernel that keeps its ``execution_state`` live from the kernel's status messages. A
kernel the server no longer runs has its connection ended, so nothing waits on it for ever.

A busy spell shorter than ``BUSY_SHOWN_AFTER`` is not written: a ``print(1)`` makes the kernel
busy for a few milliseconds, and writing busy then idle would be two commits and two broadcasts
to every client of the jupyter datastore, made just as the execution's first output is on its
way (the relay commits one transaction at a time, so the output would wait behind them), for a
state nobody could see. Any other state, and idle after a busy that was written, is written at
once."""

from __future__ import annotations

import asyncio
import logging
from collections import defaultdict
from collections.abc import Callable

from pycrdt import Map

from jupyter_sync.jupyter import JupyterClient, JupyterClientError, KernelConnection, KernelDied
from jupyter_sync.jupyter.frames import msg_type
from jupyter_sync.records import do_set_kernel_state
from jupyter_sync.supernode.live_records import LiveRecords

logger = logging.getLogger(__name__)

BUSY_SHOWN_AFTER = 0.05
"""Seconds a kernel is busy before its ``execution_state`` says so (see the module's text)."""


class Kernels:
    """Connections by kernel id (``connect``), watched while the server runs the kernel
    (``follow``); ``on_gone`` is called when a watched kernel's connection ends.

    A kernel can go without a word on its websocket (shut down while the websocket was being
    opened, or killed before its last messages went out), and an execution would then wait for
    its reply for ever. So when the server's list of kernels, asked for after a connection
    began to open, lacks its kernel (kernel ids are never reused), the connection is ended, or
    its opening given up, with KernelDied.
    """

    def __init__(
        self,
        jupyter: JupyterClient,
        records: LiveRecords,
        on_gone: Callable[[], None],
        busy_shown_after: float = BUSY_SHOWN_AFTER,
    ):
        self.jupyter = jupyter
        self.records = records
        self.on_gone = on_gone
        self.busy_shown_after = busy_shown_after
        # A busy waiting to be written, by kernel id (its spell has not lasted long enough).
        self._busy_soon: dict[str, asyncio.TimerHandle] = {}
        self.connections: dict[str, KernelConnection] = {}
        self.watchers: dict[str, asyncio.Task[None]] = {}
        self._locks: defaultdict[str, asyncio.Lock] = defaultdict(asyncio.Lock)
        # The event loop's time each kernel's connection began to open.
        self._since: dict[str, float] = {}
        self._opening: dict[str, asyncio.Task[KernelConnection]] = {}
        self._gone: dict[str, KernelDied] = {}  # why an opening was given up
        self._ending: set[asyncio.Task[None]] = set()

    async def connect(self, kernel_id: str) -> KernelConnection:
        """The kernel's one connection: the watcher and an execution asking together share it.
        Raises KernelDied when the server stops running the kernel while it opens."""
        async with self._locks[kernel_id]:
            connection = self.connections.get(kernel_id)
            if connection is None or connection.closed:
                connection = await self._open(kernel_id)
                self.connections[kernel_id] = connection
        return connection

    async def _open(self, kernel_id: str) -> KernelConnection:
        self._since[kernel_id] = asyncio.get_running_loop().time()
        self._gone.pop(kernel_id, None)
        opening = asyncio.ensure_future(self.jupyter.connect_kernel(kernel_id))
        self._opening[kernel_id] = opening
        try:
            return await opening
        except asyncio.CancelledError:
            gone = self._gone.pop(kernel_id, None)
            current = asyncio.current_task()
            if gone is None or (current is not None and current.cancelling()):
                raise
            raise gone from None
        finally:
            self._opening.pop(kernel_id, None)

    def follow(self, kernel_ids: set[str], asked: float) -> None:
        """Watch the kernels the server runs now (its list, asked for at loop time ``asked``);
        stop watching (and forget) the others, ending connections to them that began to open
        before the list was asked for."""
        for kernel_id in (set(self.connections) | set(self._opening)) - kernel_ids:
            if self._since.get(kernel_id, asked) < asked:
                self._end(kernel_id)
        for kernel_id in kernel_ids - set(self.watchers):
            task = asyncio.ensure_future(self._watch(kernel_id))
            self.watchers[kernel_id] = task
            task.add_done_callback(lambda _t, k=kernel_id: self.watchers.pop(k, None))
        for kernel_id in set(self.watchers) - kernel_ids:
            self.watchers[kernel_id].cancel()
        for kernel_id in set(self.connections) - kernel_ids:
            if self.connections[kernel_id].closed:  # a kernel gone: forget it
                del self.connections[kernel_id]
                self._locks.pop(kernel_id, None)
                self._since.pop(kernel_id, None)

    def _end(self, kernel_id: str) -> None:
        """The server no longer runs the kernel: what waits on its connection fails."""
        error = KernelDied(f"kernel {kernel_id}: the Jupyter Server no longer runs it")
        opening = self._opening.get(kernel_id)
        if opening is not None and not opening.done():
            self._gone[kernel_id] = error
            opening.cancel()
        connection = self.connections.get(kernel_id)
        if connection is not None and not connection.closed:
            logger.info("kernel %s: the server no longer runs it; ending its connection", kernel_id)
            task = asyncio.ensure_future(connection.end(error))
            self._ending.add(task)
            task.add_done_callback(self._ending.discard)

    async def _watch(self, kernel_id: str) -> None:
        """Keep kernels[id].execution_state live from the kernel's status messages.

        When the connection ends (the kernel was shut down or died, the server went away) the
        kernel is marked dead and ``on_gone`` called: the refresh it asks for removes the
        kernel, or, if it still runs, restores its state and watches it again.
        """
        try:
            connection = await self.connect(kernel_id)
            async for message in connection.messages():
                if msg_type(message) != "status":
                    continue
                state = message.get("content", {}).get("execution_state")
                if state:
                    self.status(kernel_id, state)
            reason = "its connection closed"
        except JupyterClientError as error:
            reason = error.detail  # logged only
        finally:
            self._cancel_busy(kernel_id)
        logger.info("kernel %s: %s", kernel_id, reason)
        do_set_kernel_state(self.records, kernel_id, "dead")
        self.on_gone()

    def status(self, kernel_id: str, state: str) -> None:
        """The kernel said ``state``: write it into its record, a busy once it has lasted
        ``busy_shown_after`` (an idle before then cancels it, and is written only if the
        record does not say idle already)."""
        if state == "busy":
            if kernel_id not in self._busy_soon:
                loop = asyncio.get_running_loop()
                self._busy_soon[kernel_id] = loop.call_later(
                    self.busy_shown_after, self._busy_lasted, kernel_id
                )
            return
        self._cancel_busy(kernel_id)
        self._write_state(kernel_id, state)

    def _busy_lasted(self, kernel_id: str) -> None:
        self._busy_soon.pop(kernel_id, None)
        self._write_state(kernel_id, "busy")

    def _cancel_busy(self, kernel_id: str) -> None:
        pending = self._busy_soon.pop(kernel_id, None)
        if pending is not None:
            pending.cancel()

    def _write_state(self, kernel_id: str, state: str) -> None:
        if isinstance(self.records.table("kernels").get(kernel_id), Map):
            do_set_kernel_state(self.records, kernel_id, state)  # a state it has is not written

    def watcher_tasks(self) -> list[asyncio.Task[None]]:
        return list(self.watchers.values())

    async def close(self) -> None:
        """Close every connection (the supernode stops)."""
        for connection in list(self.connections.values()):
            await connection.close()
        await asyncio.gather(*self._ending, return_exceptions=True)


__all__ = ["Kernels"]
