"""The kernels the supernode talks to: one shared connection per kernel, and a watcher per
running kernel that keeps its ``execution_state`` live from the kernel's status messages."""

from __future__ import annotations

import asyncio
import logging
from collections import defaultdict
from collections.abc import Callable

from pycrdt import Map

from jupyter_sync.jupyter import JupyterClient, JupyterClientError, KernelConnection
from jupyter_sync.jupyter.frames import msg_type
from jupyter_sync.records import do_set_kernel_state
from jupyter_sync.supernode.live_records import LiveRecords

logger = logging.getLogger(__name__)


class Kernels:
    """Connections by kernel id (``connect``), watched while the server runs the kernel
    (``follow``); ``on_gone`` is called when a watched kernel's connection ends."""

    def __init__(self, jupyter: JupyterClient, records: LiveRecords, on_gone: Callable[[], None]):
        self.jupyter = jupyter
        self.records = records
        self.on_gone = on_gone
        self.connections: dict[str, KernelConnection] = {}
        self.watchers: dict[str, asyncio.Task[None]] = {}
        self._locks: defaultdict[str, asyncio.Lock] = defaultdict(asyncio.Lock)

    async def connect(self, kernel_id: str) -> KernelConnection:
        """The kernel's one connection: the watcher and an execution asking together share it."""
        async with self._locks[kernel_id]:
            connection = self.connections.get(kernel_id)
            if connection is None or connection.closed:
                connection = await self.jupyter.connect_kernel(kernel_id)
                self.connections[kernel_id] = connection
        return connection

    def follow(self, kernel_ids: set[str]) -> None:
        """Watch the kernels the server runs now; stop watching (and forget) the others."""
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
                if state and isinstance(self.records.table("kernels").get(kernel_id), Map):
                    do_set_kernel_state(self.records, kernel_id, state)
            reason = "its connection closed"
        except JupyterClientError as error:
            reason = error.detail  # logged only
        logger.info("kernel %s: %s", kernel_id, reason)
        do_set_kernel_state(self.records, kernel_id, "dead")
        self.on_gone()

    def watcher_tasks(self) -> list[asyncio.Task[None]]:
        return list(self.watchers.values())

    async def close(self) -> None:
        """Close every connection (the supernode stops)."""
        for connection in list(self.connections.values()):
            await connection.close()


__all__ = ["Kernels"]
