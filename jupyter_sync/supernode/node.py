"""The supernode: a server-side peer that keeps the jupyter tables equal to a Jupyter Server and
carries out the actions clients ask for in them.

It reaches the datastore through the relay like any client (``rtc_client.DatastoreClient``), so
it works in every deployment and may run on another machine. Every background task belongs to one
task group and is cancelled when the supernode stops. Only the holder of the database lease acts;
another supernode started meanwhile waits as a standby.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from typing import Any

import anyio
from channels.db import database_sync_to_async
from django.db import DatabaseError
from pycrdt import Array, Map
from rtc_client import DatastoreClient

from jupyter_sync.conf import jupyter_settings
from jupyter_sync.jupyter import (
    JupyterClient,
    JupyterClientError,
    JupyterError,
    JupyterUnavailable,
)
from jupyter_sync.jupyter.frames import msg_type
from jupyter_sync.records import (
    do_end_execution,
    do_fail_execution,
    do_fail_request,
    do_finish_request,
    do_start_request,
)
from jupyter_sync.schema import (
    EXECUTION_DONE,
    JUPYTER,
    JUPYTER_DATASTORE,
    content_key,
    parent_key,
    timestamp,
)
from jupyter_sync.supernode import account
from jupyter_sync.supernode.actions import (
    ACTIONS,
    BadParams,
    directory_records,
    failure,
    folders_touched,
)
from jupyter_sync.supernode.documents.manager import DocumentManager
from jupyter_sync.supernode.executing import OutputWriter, final_status, run_execution
from jupyter_sync.supernode.live_records import LiveRecords
from jupyter_sync.supernode.reconcile import reconcile_table
from tables import pruning
from tables.models import Datastore

logger = logging.getLogger(__name__)

TABLES = JUPYTER.tables
# Seconds between two prunings of the jupyter datastore's history (SERVER_STATE_HISTORY).
PRUNE_EVERY = 600.0


def expired_records(table: Map, cutoff: datetime) -> list[str]:
    """Ids of the finished records of ``table`` that finished before ``cutoff``."""
    expired = []
    for record_id, record in table.items():
        if not isinstance(record, Map) or record.get("status") not in EXECUTION_DONE:
            continue
        try:
            finished_at = datetime.fromisoformat(str(record.get("finished_at")))
        except ValueError:
            continue  # not written by the supernode: left alone
        if finished_at.tzinfo is not None and finished_at < cutoff:
            expired.append(record_id)
    return expired


def server_state(
    status: dict, kernelspecs: dict, kernels: list, sessions: list, terminals: list | None
) -> dict[str, dict[str, dict[str, Any]]]:
    """The Jupyter Server's answers, shaped as the jupyter tables' records."""
    specs = kernelspecs.get("kernelspecs", {})
    return {
        "status": {
            "server": {
                "started": status.get("started"),
                "last_activity": status.get("last_activity"),
                "connections": status.get("connections"),
                "kernels": status.get("kernels"),
                "connected": True,
                "default_kernelspec": kernelspecs.get("default"),
            }
        },
        "kernelspecs": {
            name: {
                "name": name,
                "display_name": entry.get("spec", {}).get("display_name"),
                "language": entry.get("spec", {}).get("language"),
                "spec": entry.get("spec", {}),
                "resources": entry.get("resources", {}),
            }
            for name, entry in specs.items()
        },
        "kernels": {
            kernel["id"]: {
                "name": kernel.get("name"),
                "last_activity": kernel.get("last_activity"),
                "execution_state": kernel.get("execution_state"),
                "connections": kernel.get("connections"),
            }
            for kernel in kernels
        },
        "sessions": {
            session["id"]: {
                "path": session.get("path"),
                "name": session.get("name"),
                "type": session.get("type"),
                "kernel_id": (session.get("kernel") or {}).get("id"),
                "kernel_name": (session.get("kernel") or {}).get("name"),
            }
            for session in sessions
        },
        "terminals": {
            terminal["name"]: {
                "name": terminal["name"],
                "last_activity": terminal.get("last_activity"),
            }
            for terminal in (terminals or [])
        },
    }


class Supernode:
    def __init__(
        self,
        *,
        jupyter: JupyterClient,
        server_url: str,
        token: str,
        refresh_interval: float = 5.0,
        lease_seconds: float = 15.0,
        holder: str | None = None,
    ):
        self.jupyter = jupyter
        self.server_url = server_url
        self.token = token
        self.refresh_interval = refresh_interval
        self.lease_seconds = lease_seconds
        self.holder = holder or f"supernode-{uuid.uuid4().hex[:8]}"
        self.client: DatastoreClient | None = None
        self.refresh_requested = asyncio.Event()
        self.changed = asyncio.Event()
        self.requests_changed = asyncio.Event()
        # The jupyter datastore as this node holds it; its changes wake running executions.
        self.records = LiveRecords(lambda: self.client.doc)
        self.running: dict[str, asyncio.Task] = {}
        self.kernel_watchers: dict[str, asyncio.Task] = {}
        self.kernel_connections: dict[str, Any] = {}
        self._kernel_locks: defaultdict[str, asyncio.Lock] = defaultdict(asyncio.Lock)
        self.documents = DocumentManager(self)  # documents, and executions by cell id
        self._next_prune = 0.0  # time.monotonic() of the next history pruning

    # --- lifecycle --------------------------------------------------------------------------

    async def run(self, stop: asyncio.Event) -> None:
        """Run until ``stop`` is set; the lease decides whether this instance acts."""
        await self._wait_for_lease(stop)
        if stop.is_set():
            return
        logger.info("%s holds the lease; connecting to %s", self.holder, self.server_url)
        try:
            async with DatastoreClient(
                self.server_url, JUPYTER_DATASTORE, token=self.token
            ) as client:
                self.client = client
                await client.wait_synced(timeout=30)
                client.doc.observe(lambda event: self._wake())
                self._end_unfinished("interrupted: the supernode restarted")
                async with anyio.create_task_group() as group:
                    group.start_soon(self._renew_lease, stop)
                    group.start_soon(self._refresh_loop)
                    group.start_soon(self._executions_loop)
                    group.start_soon(self._requests_loop)
                    group.start_soon(self.documents.run)
                    await stop.wait()
                    group.cancel_scope.cancel()
                await self._cancel_tasks()
                self._end_unfinished("interrupted: the supernode stopped")
                await self._mark_disconnected()
                await client.wait_acked(timeout=10)
        finally:
            await self._cancel_tasks()
            for connection in list(self.kernel_connections.values()):
                await connection.close()
            await database_sync_to_async(account.release_lease)(JUPYTER_DATASTORE, self.holder)
            logger.info("%s stopped", self.holder)

    async def _cancel_tasks(self) -> None:
        """Kernel watchers and executions run outside the task group: they must not outlive
        the client they edit."""
        tasks = [*self.kernel_watchers.values(), *self.running.values()]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def _wait_for_lease(self, stop: asyncio.Event) -> None:
        acquire = database_sync_to_async(account.acquire_lease)
        while not stop.is_set():
            if await acquire(JUPYTER_DATASTORE, self.holder, self.lease_seconds):
                return
            logger.info("another supernode holds the lease; waiting")
            with anyio.move_on_after(self.lease_seconds / 3):
                await stop.wait()

    async def _renew_lease(self, stop: asyncio.Event) -> None:
        acquire = database_sync_to_async(account.acquire_lease)
        while True:
            await anyio.sleep(self.lease_seconds / 3)
            if not await acquire(JUPYTER_DATASTORE, self.holder, self.lease_seconds):
                logger.error("lost the lease to another supernode; stopping")
                stop.set()
                return

    def _wake(self) -> None:
        """The document changed: every loop waiting for work looks again."""
        self.changed.set()
        self.requests_changed.set()
        self.records.changed.notify()

    # --- tables -----------------------------------------------------------------------------

    # --- what the documents side uses (documents.link.SupernodeLink) ----------------------

    def request_refresh(self) -> None:
        self.refresh_requested.set()

    def datastore_client(self, name: str) -> DatastoreClient:
        return DatastoreClient(self.server_url, name, token=self.token)

    # --- tables -----------------------------------------------------------------------------

    async def refresh(self) -> None:
        """Make the server-state tables equal to what the Jupyter Server says now."""
        j = self.jupyter
        status, kernelspecs, kernels, sessions = await asyncio.gather(
            j.status(), j.kernelspecs(), j.kernels(), j.sessions()
        )
        try:
            terminals = await j.terminals()
        except JupyterError as error:
            if error.status != 404:
                raise
            terminals = None  # no terminals API on this server
        state = server_state(status, kernelspecs, kernels, sessions, terminals)

        def apply() -> None:
            for name, records in state.items():
                reconcile_table(self.records.table(name), TABLES[name], records)

        self.records.edit(apply)
        await self._watch_kernels(set(state["kernels"]))
        for record in list(self.records.table("contents").values()):
            if isinstance(record, Map) and record.get("type") == "directory":
                await self.sync_directory(record.get("path") or "")

    async def sync_directory(self, path: str) -> None:
        """Keep a folder someone asked for (and its entries) in the contents table."""
        contents = self.records.table("contents")
        try:
            model = await self.jupyter.get_contents(path, content=True)
        except JupyterError as error:
            if error.status != 404:
                raise
            self.records.edit(lambda: contents.pop(content_key(path), None))
            return
        records = directory_records(model)
        gone = [
            key
            for key, record in contents.items()
            if key not in records
            and isinstance(record, Map)
            and parent_key(record.get("path") or "") == content_key(path)
            and key != content_key(path)
        ]

        def apply() -> None:
            reconcile_table(contents, TABLES["contents"], records, prune=False)
            for key in gone:
                del contents[key]

        self.records.edit(apply)

    async def _refresh_loop(self) -> None:
        while True:
            try:
                await self.refresh()
            except JupyterUnavailable as error:
                logger.warning("Jupyter Server unreachable: %s", error)
                await self._mark_disconnected()
            except JupyterError as error:  # it answered, wrongly: try again at the next round
                logger.warning("refresh failed: %s", error)
            self.prune_finished()
            if time.monotonic() >= self._next_prune:
                self._next_prune = time.monotonic() + PRUNE_EVERY
                await self.prune_history()
            with anyio.move_on_after(self.refresh_interval):
                await self.refresh_requested.wait()
            self.refresh_requested.clear()

    async def _mark_disconnected(self) -> None:
        status = self.records.table("status")
        record = status.get("server")
        if isinstance(record, Map) and record.get("connected") is not False:
            self.records.edit(lambda: record.__setitem__("connected", False))

    def prune_finished(self) -> int:
        """Drop finished requests and executions older than ``RECORD_RETENTION``.

        Every REST action and execution leaves a record; without this the jupyter datastore,
        which every client loads, would only grow. The history keeps their patches.
        """
        retention = jupyter_settings.RECORD_RETENTION
        if not retention:
            return 0
        cutoff = datetime.now(UTC) - timedelta(seconds=retention)
        expired = {
            name: expired_records(self.records.table(name), cutoff)
            for name in ("requests", "executions")
        }
        count = sum(len(ids) for ids in expired.values())
        if count:

            def apply() -> None:
                for name, ids in expired.items():
                    table = self.records.table(name)
                    for record_id in ids:
                        del table[record_id]

            self.records.edit(apply)
            logger.info("removed %d finished records older than %ss", count, retention)
        return count

    async def prune_history(self) -> pruning.Pruned | None:
        """Prune the jupyter datastore's patches older than ``SERVER_STATE_HISTORY``.

        Server state changes all day (every execution flips a kernel's status twice), so its
        history would grow without bound; nobody travels weeks back in it. Documents keep theirs.
        """
        retention = jupyter_settings.SERVER_STATE_HISTORY
        if not retention:
            return None
        cutoff = datetime.now(UTC) - timedelta(seconds=retention)

        def prune() -> pruning.Pruned:
            datastore = Datastore.objects.get(name=JUPYTER_DATASTORE)
            return pruning.prune_history(datastore, older_than=cutoff, keep=pruning.DEFAULT_KEEP)

        try:
            pruned = await database_sync_to_async(prune)()
        except DatabaseError as error:
            logger.warning("could not prune the jupyter datastore's history: %s", error)
            return None
        if pruned.transactions:
            logger.info(
                "pruned %d patches (%d bytes) older than %ss; history starts at serial %d",
                pruned.transactions,
                pruned.bytes,
                retention,
                pruned.history_start,
            )
        return pruned

    # --- kernel status ----------------------------------------------------------------------

    async def _watch_kernels(self, kernel_ids: set[str]) -> None:
        for kernel_id in kernel_ids - set(self.kernel_watchers):
            task = asyncio.ensure_future(self._watch_kernel(kernel_id))
            self.kernel_watchers[kernel_id] = task
            task.add_done_callback(lambda _t, k=kernel_id: self.kernel_watchers.pop(k, None))
        for kernel_id in set(self.kernel_watchers) - kernel_ids:
            self.kernel_watchers[kernel_id].cancel()
        for kernel_id in set(self.kernel_connections) - kernel_ids:
            if self.kernel_connections[kernel_id].closed:  # a kernel gone: forget it
                del self.kernel_connections[kernel_id]
                self._kernel_locks.pop(kernel_id, None)

    async def kernel(self, kernel_id: str):
        # One connection per kernel: the watcher and an execution asking together share it.
        async with self._kernel_locks[kernel_id]:
            connection = self.kernel_connections.get(kernel_id)
            if connection is None or connection.closed:
                connection = await self.jupyter.connect_kernel(kernel_id)
                self.kernel_connections[kernel_id] = connection
        return connection

    async def _watch_kernel(self, kernel_id: str) -> None:
        """Keep kernels[id].execution_state live from the kernel's status messages.

        When the connection ends (the kernel was shut down or died, the server went away) the
        kernel is marked dead and a refresh asked for: it removes the kernel, or, if it still
        runs, restores its state and watches it again.
        """
        try:
            connection = await self.kernel(kernel_id)
            async for message in connection.messages():
                if msg_type(message) != "status":
                    continue
                state = message.get("content", {}).get("execution_state")
                record = self.records.table("kernels").get(kernel_id)
                if isinstance(record, Map) and state and record.get("execution_state") != state:
                    self.records.edit(
                        lambda state=state, record=record: record.__setitem__(
                            "execution_state", state
                        )
                    )
            reason = "its connection closed"
        except JupyterClientError as error:
            reason = str(error)
        logger.info("kernel %s: %s", kernel_id, reason)
        record = self.records.table("kernels").get(kernel_id)
        if isinstance(record, Map) and record.get("execution_state") != "dead":
            self.records.edit(lambda: record.__setitem__("execution_state", "dead"))
        self.refresh_requested.set()

    # --- executions -------------------------------------------------------------------------

    def _end_unfinished(self, reason: str) -> None:
        """Executions left queued or running (by a previous run that crashed, or by this one
        stopping) end in a clear state, never 'running'."""
        executions = self.records.table("executions")

        def apply() -> None:
            for record in executions.values():
                if isinstance(record, Map) and record.get("status") in ("queued", "running"):
                    record["status"] = "error"
                    record["error"] = reason
                    record["finished_at"] = timestamp()

        self.records.edit(apply)

    async def _executions_loop(self) -> None:
        while True:
            self.changed.clear()  # before looking: a change while we look wakes us again
            for execution_id, record in list(self.records.table("executions").items()):
                if (
                    isinstance(record, Map)
                    and record.get("status") == "requested"
                    and execution_id not in self.running
                ):
                    # By cell id (document_id): the document manager; otherwise console code.
                    run = self.documents.execute if record.get("document_id") else self._execute
                    task = asyncio.ensure_future(run(execution_id))
                    self.running[execution_id] = task
                    task.add_done_callback(lambda _t, e=execution_id: self.running.pop(e, None))
            self.changed.clear()
            await self.changed.wait()

    async def _requests_loop(self) -> None:
        """Carry out ``requests`` records (kernels, sessions, terminals, folders)."""
        while True:
            self.requests_changed.clear()
            for request_id, record in list(self.records.table("requests").items()):
                if isinstance(record, Map) and record.get("status") == "requested":
                    await self._carry_out(request_id, record)
            await self.requests_changed.wait()

    async def _carry_out(self, request_id: str, record: Map) -> None:
        action = ACTIONS.get(record.get("action"))
        params = record.get("params") or {}
        do_start_request(self.records, request_id)
        try:
            if action is None:
                raise BadParams(f"unknown action {record.get('action')!r}")
            params = params if isinstance(params, dict) else {}
            result = await action(self.jupyter, params)
            await self._sync_folders(record.get("action"), params, result)
        except (JupyterClientError, BadParams, TimeoutError) as error:
            do_fail_request(
                self.records, request_id, str(error) or type(error).__name__, failure(error)
            )
        else:
            do_finish_request(self.records, request_id, result)
        self.refresh_requested.set()

    async def _sync_folders(self, action: str, params: dict, result: dict) -> None:
        """The folders an action touched, re-read if watched (a listing watches its folder)."""
        for folder in folders_touched(action, params, result):
            watched = isinstance(self.records.table("contents").get(content_key(folder)), Map)
            if watched or action in ("contents.list", "contents.get"):
                await self.sync_directory(folder)

    async def _execute(self, execution_id: str) -> None:
        """A console execution: ``code`` on ``kernel_id``, its outputs kept in the record."""

        def update(**fields: Any) -> None:
            self.records.update("executions", execution_id, **fields)

        try:
            record = self.records.record("executions", execution_id)
            if record is None:
                return
            if record.get("cancel"):
                update(status="cancelled", finished_at=timestamp())
                return
            code = record.get("code")
            kernel_id = record.get("kernel_id")
            if not kernel_id or code is None:
                raise ValueError("an execution needs kernel_id and code")

            def start() -> None:
                record["status"] = "running"
                record["started_at"] = timestamp()
                if not isinstance(record.get("outputs"), Array):
                    record["outputs"] = Array()

            self.records.edit(start)
            connection = await self.kernel(kernel_id)
            # As a notebook cell holds them: a stream grows its text, so a write costs what it
            # appends, not what was printed before it.
            writer = OutputWriter(
                self.client.doc, lambda: self.records.record("executions", execution_id)
            )
            try:
                outcome = await run_execution(
                    connection,
                    str(code),
                    record=lambda: self.records.record("executions", execution_id),
                    update=update,
                    interrupt=lambda: self.jupyter.interrupt_kernel(kernel_id),
                    notifier=self.records.changed,
                    on_output=writer.add,
                )
            finally:
                writer.flush()
            result = outcome.result
            current = self.records.record("executions", execution_id)
            cancelled = outcome.interrupted or bool(current is not None and current.get("cancel"))
            status, error = final_status(result, cancelled)
            count = result.execution_count
            count = count if count is not None else writer.execution_count
            do_end_execution(self.records, execution_id, status, error, count)
        except (JupyterClientError, TimeoutError, ValueError) as error:
            do_fail_execution(self.records, execution_id, str(error) or type(error).__name__)


__all__ = ["Supernode", "expired_records", "server_state"]
