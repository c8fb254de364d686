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
from urllib.parse import urlsplit, urlunsplit

import anyio
from channels.db import database_sync_to_async
from pycrdt import Map
from rtc_client import DatastoreClient
from rtc_client.errors import ConnectionLost, RTCError

from jupyter_sync.jupyter import (
    JupyterClient,
    JupyterClientError,
    JupyterError,
    JupyterUnavailable,
    KernelConnection,
)
from jupyter_sync.records import (
    do_abandon_execution,
    do_fail_request,
    do_finish_request,
    do_start_request,
)
from jupyter_sync.schema import JUPYTER_DATASTORE
from jupyter_sync.supernode import account
from jupyter_sync.supernode.actions import ACTIONS, BadParams, failure
from jupyter_sync.supernode.console import ConsoleExecutions
from jupyter_sync.supernode.documents.manager import DocumentManager
from jupyter_sync.supernode.kernels import Kernels
from jupyter_sync.supernode.live_records import LiveRecords
from jupyter_sync.supernode.server_state import ServerState, prune_server_state_history
from jupyter_sync.trace import mark
from tables.schema import jsonable

logger = logging.getLogger(__name__)

# Seconds between two prunings of the jupyter datastore's history (SERVER_STATE_HISTORY).
PRUNE_EVERY = 600.0
# Seconds a stopping supernode waits for the web server to take its last writes.
LAST_WRITES_WAIT = 10.0


def shown_url(url: str) -> str:
    """A URL as it may be logged: scheme, host and path (a query may hold a token)."""
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc.rpartition("@")[2], parts.path, "", ""))


class Outage:
    """One warning when a server stops answering, one line when it answers again: a server
    that is down for an hour is retried all along, and said so once, not at every retry."""

    def __init__(self, what: str, retrying: str):
        self.what = what
        self.retrying = retrying
        self.down = False

    def failed(self, reason: object) -> None:
        if not self.down:
            self.down = True
            logger.warning("%s unreachable: %s; %s", self.what, reason, self.retrying)

    def answered(self) -> None:
        if self.down:
            self.down = False
            logger.info("%s reachable again", self.what)


class Supernode:
    """The lease, the connection to the relay, and the loops that schedule work; the work is
    done by its parts: ``server`` (the server-state tables), ``kernels``, ``console`` (console
    executions), ``documents`` (documents and cells run by id)."""

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
        self.kernels = Kernels(jupyter, self.records, on_gone=self.request_refresh)
        self.server = ServerState(jupyter, self.records, on_kernels=self.kernels.follow)
        self.console = ConsoleExecutions(jupyter, self.records, self.kernels.connect)
        self.documents = DocumentManager(self)  # documents, and executions by cell id
        self._next_prune = 0.0  # time.monotonic() of the next history pruning
        self.web_server = Outage(
            f"the web server at {shown_url(server_url)}", "retrying until it answers"
        )
        self.jupyter_server = Outage(
            f"the Jupyter Server at {shown_url(jupyter.url)}",
            f"retrying every {refresh_interval:g} s",
        )

    # --- lifecycle --------------------------------------------------------------------------

    async def run(self, stop: asyncio.Event) -> None:
        """Run until ``stop`` is set; the lease decides whether this instance acts."""
        await self._wait_for_lease(stop)
        if stop.is_set():
            return
        logger.info("%s holds the lease; connecting to %s", self.holder, self.server_url)
        client = DatastoreClient(self.server_url, JUPYTER_DATASTORE, token=self.token)
        try:
            async with anyio.create_task_group() as group:
                group.start_soon(self._renew_lease, stop)  # also while the web server is down
                await client.start(wait=False)
                if await self._connected(client, stop):
                    self.client = client
                    client.doc.observe(lambda event: self._wake())
                    self._end_unfinished("interrupted: the supernode restarted")
                    group.start_soon(self._follow_web_server, client)
                    group.start_soon(self._refresh_loop)
                    group.start_soon(self._executions_loop)
                    group.start_soon(self._requests_loop)
                    group.start_soon(self.documents.run)
                    await stop.wait()
                group.cancel_scope.cancel()
            if self.client is not None:
                await self._cancel_tasks()
                self._end_unfinished("interrupted: the supernode stopped")
                self.server.mark_unreachable()
                try:
                    await client.wait_acked(timeout=LAST_WRITES_WAIT, while_connected=True)
                except (TimeoutError, ConnectionLost):
                    # The web server went first (a whole stack stopping at once): nobody will
                    # answer, so stop now. What it did not take, the next supernode finds
                    # unfinished and ends the same way.
                    logger.warning("the web server did not take the last writes before stopping")
        finally:
            await client.aclose()
            await self._cancel_tasks()
            await self.kernels.close()
            await database_sync_to_async(account.release_lease)(JUPYTER_DATASTORE, self.holder)
            logger.info("%s stopped", self.holder)

    async def _connected(self, client: DatastoreClient, stop: asyncio.Event) -> bool:
        """Wait until ``client`` is synced, however long the web server takes to come up
        (said once, with why); False if ``stop`` came first. A refusal (bad token) raises."""
        stopped = asyncio.ensure_future(stop.wait())
        try:
            while True:
                failed = asyncio.ensure_future(
                    client.wait_for(lambda: client.synced or client.last_error is not None)
                )
                await asyncio.wait({stopped, failed}, return_when=asyncio.FIRST_COMPLETED)
                if not failed.done():
                    failed.cancel()
                    return False
                failed.result()  # a permanent refusal, as the client decided
                if client.synced:
                    self.web_server.answered()
                    return True
                self.web_server.failed(self._reason(client.last_error))
                synced = asyncio.ensure_future(client.wait_synced())
                await asyncio.wait({stopped, synced}, return_when=asyncio.FIRST_COMPLETED)
                if not synced.done():
                    synced.cancel()
                    return False
                synced.result()
        finally:
            stopped.cancel()

    async def _follow_web_server(self, client: DatastoreClient) -> None:
        """Say once when the web server stops answering the reconnections, once when it is
        back (the client reconnects by itself)."""
        while True:
            await client.wait_for(lambda: not client.synced and client.last_error is not None)
            self.web_server.failed(self._reason(client.last_error))
            await client.wait_for(lambda: client.synced)
            self.web_server.answered()

    def _reason(self, error: BaseException | None) -> str:
        """Why a connection failed, readable, never with the token (an error may quote the URL
        it was given, query and all)."""
        if isinstance(error, RTCError):
            text = str(error)
        elif isinstance(error, OSError) and error.strerror:
            text = error.strerror
        else:
            text = str(error) or type(error).__name__
        return text.replace(self.token, "…") if self.token else text

    async def _cancel_tasks(self) -> None:
        """Kernel watchers and executions run outside the task group: they must not outlive
        the client they edit."""
        tasks = [*self.kernels.watcher_tasks(), *self.running.values()]
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

    # --- what the documents side uses (documents.link.SupernodeLink) ----------------------

    async def kernel(self, kernel_id: str) -> KernelConnection:
        return await self.kernels.connect(kernel_id)

    def kernel_open(self, kernel_id: str) -> bool:
        connection = self.kernels.connections.get(kernel_id)
        return connection is not None and not connection.closed

    def request_refresh(self) -> None:
        self.refresh_requested.set()

    def datastore_client(self, name: str) -> DatastoreClient:
        return DatastoreClient(self.server_url, name, token=self.token)

    # --- scheduling -------------------------------------------------------------------------

    async def _refresh_loop(self) -> None:
        while True:
            try:
                await self.server.refresh()
            except JupyterUnavailable as error:
                self.jupyter_server.failed(error.detail)
                self.server.mark_unreachable()
            except JupyterError as error:  # it answered, wrongly: try again at the next round
                self.jupyter_server.answered()
                logger.warning("refresh failed: %s", error.detail)
            else:
                self.jupyter_server.answered()
            self.server.prune_finished()
            if time.monotonic() >= self._next_prune:
                self._next_prune = time.monotonic() + PRUNE_EVERY
                await prune_server_state_history()
            with anyio.move_on_after(self.refresh_interval):
                await self.refresh_requested.wait()
            self.refresh_requested.clear()

    def _end_unfinished(self, reason: str) -> None:
        """Executions left queued or running (by a previous run that crashed, or by this one
        stopping) end in a clear state, never 'running'."""
        executions = self.records.table("executions")

        def apply() -> None:
            for execution_id, record in list(executions.items()):
                if isinstance(record, Map) and record.get("status") in ("queued", "running"):
                    do_abandon_execution(self.records, execution_id, reason)

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
                    mark(execution_id, "seen")
                    # By cell id (document_id): the document manager; otherwise console code.
                    if record.get("document_id"):
                        run = self.documents.execute
                    else:
                        run = self.console.execute
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
        params = jsonable(record.get("params")) or {}
        do_start_request(self.records, request_id)
        try:
            if action is None:
                raise BadParams(f"unknown action {record.get('action')!r}")
            params = params if isinstance(params, dict) else {}
            result = await action(self.jupyter, params)
            await self.server.sync_folders(record.get("action"), params, result)
        except (JupyterClientError, BadParams, TimeoutError) as error:
            if isinstance(error, JupyterClientError):  # the URL for the log, not the record
                logger.info("request %s failed: %s", request_id, error.detail)
            do_fail_request(
                self.records, request_id, str(error) or type(error).__name__, failure(error)
            )
        except Exception as error:  # an answer nobody expected: fail this request, keep running
            action_name = record.get("action")
            logger.exception("request %s (%r) failed unexpectedly", request_id, action_name)
            do_fail_request(self.records, request_id, f"unexpected: {error!r}", failure(error))
        else:
            do_finish_request(self.records, request_id, result)
        self.refresh_requested.set()


__all__ = ["Supernode"]
