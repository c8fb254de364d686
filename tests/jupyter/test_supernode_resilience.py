"""The supernode when what it depends on goes away: the Jupyter Server restarted, the relay
restarted under it, a kernel dying mid-execution, the supernode itself restarted mid-execution.
Real processes throughout: a Jupyter Server with ipykernel, daphne, the supernode in this loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import socket
import threading
import time
from pathlib import Path

import pytest
from channels.db import database_sync_to_async
from pycrdt import Doc, Map, TransactionEvent
from rtc_client import Backoff, DatastoreClient

from jupyter_sync.jupyter import JupyterClient
from jupyter_sync.supernode import account
from jupyter_sync.supernode.node import LAST_WRITES_WAIT
from tables.models import Datastore, Transaction
from tests.support.jupyter import start_local_server
from tests.support.liveserver import ServerProcess
from tests.support.supernode import (
    RunningSupernode,
    accounts,
    create,
    finished,
    request_execution,
    supernode_and_watcher,
    table,
)
from tests.support.supernode_process import SupernodeProcess
from tests.support.waiting import aeventually, eventually

pytest_plugins = ["tests.support.liveserver", "tests.support.jupyter"]
pytestmark = pytest.mark.django_db(transaction=True)

WAIT = 60.0  # a Jupyter Server (re)starting on a loaded 2-core machine takes a while
QUICK = Backoff(initial=0.05, maximum=0.5)


def connected(client: DatastoreClient) -> bool | None:
    return table(client, "status").get("server", {}).get("connected")


def execution(client: DatastoreClient, execution_id: str) -> dict:
    return table(client, "executions").get(execution_id, {})


async def test_a_restarted_jupyter_server_is_noticed_and_the_tables_resynchronised(
    start_server, tmp_path: Path
):
    # A server of its own (not the session's): this test stops it.
    root = tmp_path / "root"
    root.mkdir()
    server = await asyncio.to_thread(start_local_server, root)
    try:
        async with supernode_and_watcher(start_server, server) as (jupyter, watcher):
            old = (await jupyter.start_kernel("python3"))["id"]
            await watcher.wait_for(
                lambda: connected(watcher) is True and old in table(watcher, "kernels"),
                timeout=WAIT,
            )

            await asyncio.to_thread(server.stop)
            await watcher.wait_for(lambda: connected(watcher) is False, timeout=WAIT)
            # Its kernel connection closed with the server: the kernel is marked dead.
            await watcher.wait_for(
                lambda: table(watcher, "kernels")[old].get("execution_state") == "dead",
                timeout=WAIT,
            )
            # A request carried out meanwhile fails as unreachable, without naming where
            # Jupyter is: the record's error reaches API clients (REST answers it).
            create(
                watcher,
                "requests",
                "down",
                action="kernel.start",
                params={"name": "python3"},
                status="requested",
                requested_by="ed",
            )
            await watcher.wait_for(
                lambda: table(watcher, "requests")["down"].get("status") == "error",
                timeout=WAIT,
            )
            failed = str(table(watcher, "requests")["down"])
            assert "unreachable" in failed and "503" in failed, failed
            address = server.url.removeprefix("http://")
            assert address not in failed and str(server.port) not in failed, failed

            await asyncio.to_thread(server.restart)  # same port, same token
            await watcher.wait_for(lambda: connected(watcher) is True, timeout=WAIT)
            await watcher.wait_for(lambda: old not in table(watcher, "kernels"), timeout=WAIT)
            new = (await jupyter.start_kernel("python3"))["id"]
            await watcher.wait_for(lambda: new in table(watcher, "kernels"), timeout=WAIT)

            # Requests work again, on the new server's kernel.
            request_execution(
                watcher, "after", kernel_id=new, code="print(6 * 7)", status="requested"
            )
            done = await finished(watcher, "after", WAIT)
            assert done["status"] == "completed", done
            assert done["outputs"][0]["text"] == "42\n"
            await jupyter.shutdown_kernel(new)
    finally:
        await asyncio.to_thread(server.close)


@database_sync_to_async
def stored(datastore: str) -> dict[str, int]:
    """txid -> serial of every transaction stored for ``datastore``."""
    return dict(
        Transaction.objects.filter(datastore=Datastore.objects.get(name=datastore)).values_list(
            "txid", "serial"
        )
    )


async def test_the_relay_restarted_under_the_supernode_loses_nothing_and_repeats_nothing(
    start_server, jupyter_server
):
    service_token, editor_token = await accounts()
    relay = await asyncio.to_thread(start_server)
    async with (
        JupyterClient(jupyter_server.url, jupyter_server.token) as jupyter,
        DatastoreClient(relay.ws_url, "jupyter", token=editor_token, backoff=QUICK) as watcher,
    ):
        running = RunningSupernode(jupyter, relay.ws_url, service_token)
        kernel = (await jupyter.start_kernel("python3"))["id"]
        late_kernel = None
        try:
            await watcher.wait_for(lambda: kernel in table(watcher, "kernels"), timeout=WAIT)
            request_execution(
                watcher, "before", kernel_id=kernel, code="print('before')", status="requested"
            )
            await watcher.wait_for(
                lambda: execution(watcher, "before").get("status") == "completed", timeout=WAIT
            )
            client = running.supernode.client
            await client.wait_acked(timeout=WAIT)
            acked_before = dict(client.acked)
            doc_before, serial_before = client.doc, client.serial
            connections_before = client.connections

            await asyncio.to_thread(relay.stop)
            # While the relay is down the supernode goes on: a kernel started meanwhile is put in
            # its table, to be sent once the relay is back.
            late_kernel = (await jupyter.start_kernel("python3"))["id"]
            await client.wait_for(
                lambda: late_kernel in client.doc.get("kernels", type=Map), timeout=WAIT
            )
            assert client.pending  # not acknowledged: nobody to acknowledge it
            await asyncio.to_thread(relay.restart)  # same port

            await client.wait_for(
                lambda: client.connected and client.connections > connections_before, WAIT
            )
            await watcher.wait_for(lambda: late_kernel in table(watcher, "kernels"), timeout=WAIT)
            # A request written after the restart is carried out.
            request_execution(
                watcher, "after", kernel_id=kernel, code="print('after')", status="requested"
            )
            await watcher.wait_for(
                lambda: execution(watcher, "after").get("status") == "completed", timeout=WAIT
            )
            assert execution(watcher, "after")["outputs"][0]["text"] == "after\n"
            # "before" ran once: its outputs are as they were, and "after" is the kernel's second.
            assert execution(watcher, "before")["outputs"][0]["text"] == "before\n"
            assert execution(watcher, "before")["execution_count"] == 1
            assert execution(watcher, "after")["execution_count"] == 2

            # It resumed: the same document, carried on from its serial, not rebuilt.
            await client.wait_acked(timeout=WAIT)
            assert client.doc is doc_before
            assert client.serial > serial_before
            assert not client.rejections
            rows = await stored("jupyter")
            # Everything acknowledged is stored, under the serial it was acknowledged with...
            for txid, serial in {**acked_before, **client.acked, **watcher.acked}.items():
                assert serial is None or rows[txid] == serial, txid
            # ...and once: serials without gaps, one per transaction id (unique per datastore).
            assert sorted(rows.values()) == list(range(1, len(rows) + 1))
            # Both peers converge.
            await watcher.wait_for(
                lambda: table(watcher, "kernels") == client.doc.get("kernels", type=Map).to_py(),
                timeout=WAIT,
            )
        finally:
            await running.close()
            for kernel_id in (kernel, late_kernel):
                if kernel_id:
                    await jupyter.shutdown_kernel(kernel_id)


class KernelStates:
    """Every execution_state a kernel's row had, in the order the watcher saw them, one look per
    applied transaction (a state the supernode wrote and replaced soon after is still seen).

    The client's document cannot be read inside its own observer, so each update is applied to
    a shadow copy, which is read instead.
    """

    def __init__(self, client: DatastoreClient, kernel_id: str):
        self.client = client
        self.kernel_id = kernel_id
        self.shadow = Doc()
        self.shadow.apply_update(client.doc.get_update())
        self.seen: list[str | None] = []
        self.subscription = client.doc.observe(self._look)

    def _look(self, event: TransactionEvent) -> None:
        self.shadow.apply_update(event.update)
        row = self.shadow.get("kernels", type=Map).get(self.kernel_id)
        state = row.get("execution_state") if isinstance(row, Map) else None
        if not self.seen or self.seen[-1] != state:
            self.seen.append(state)

    def close(self) -> None:
        self.client.doc.unobserve(self.subscription)


async def test_a_kernel_dying_mid_execution_ends_it_in_error_and_the_kernel_dead(
    start_server, tmp_path: Path
):
    # A server that does not bring dead kernels back (restart_limit 0), and notices quickly.
    root = tmp_path / "root"
    root.mkdir()
    args = ("--KernelRestarter.restart_limit=0", "--KernelRestarter.time_to_dead=0.5")
    server = await asyncio.to_thread(start_local_server, root, args=args)
    try:
        async with supernode_and_watcher(start_server, server) as (jupyter, watcher):
            kernel = (await jupyter.start_kernel("python3"))["id"]
            await watcher.wait_for(lambda: kernel in table(watcher, "kernels"), WAIT)
            states = KernelStates(watcher, kernel)
            request_execution(
                watcher,
                "fatal",
                kernel_id=kernel,
                code="import os, sys\nprint('going', flush=True)\nos._exit(1)",
                status="requested",
            )
            done = await finished(watcher, "fatal", WAIT)
            assert done["status"] == "error", done
            assert "dead" in done["error"], done
            assert done["finished_at"]
            # The row said dead; then the refresh removed it (Jupyter forgets dead kernels).
            await watcher.wait_for(lambda: kernel not in table(watcher, "kernels"), WAIT)
            states.close()
            assert "dead" in states.seen, states.seen
            assert states.seen[-1] is None
    finally:
        await asyncio.to_thread(server.close)


async def test_a_kernel_restarted_by_jupyter_mid_execution_ends_it_and_comes_back(
    start_server, jupyter_server
):
    async with supernode_and_watcher(start_server, jupyter_server) as (jupyter, watcher):
        kernel = (await jupyter.start_kernel("python3"))["id"]
        try:
            await watcher.wait_for(lambda: kernel in table(watcher, "kernels"), WAIT)
            states = KernelStates(watcher, kernel)
            request_execution(
                watcher,
                "crash",
                kernel_id=kernel,
                code="import os\nos._exit(1)",
                status="requested",
            )
            await finished(watcher, "crash", WAIT)
            assert execution(watcher, "crash")["status"] == "error"
            assert "restarting" in execution(watcher, "crash")["error"]
            # Jupyter restarted it: the same kernel id runs code again, once the new process
            # answers (a kernel websocket opens only after the kernel replied to kernel_info).
            async with await jupyter.connect_kernel(kernel, timeout=WAIT) as probe:
                await probe.kernel_info(timeout=WAIT)
            request_execution(
                watcher, "again", kernel_id=kernel, code="print('back')", status="requested"
            )
            await finished(watcher, "again", WAIT)
            assert execution(watcher, "again")["status"] == "completed", execution(watcher, "again")
            assert execution(watcher, "again")["outputs"][0]["text"] == "back\n"
            states.close()
            assert "restarting" in states.seen, states.seen
            assert kernel in table(watcher, "kernels")
        finally:
            await jupyter.shutdown_kernel(kernel)


async def test_a_supernode_stopped_or_crashed_mid_execution_leaves_nothing_running(
    start_server, jupyter_server
):
    service_token, editor_token = await accounts()
    relay = await asyncio.to_thread(start_server)
    async with (
        JupyterClient(jupyter_server.url, jupyter_server.token) as jupyter,
        DatastoreClient(relay.ws_url, "jupyter", token=editor_token) as watcher,
    ):
        kernel = (await jupyter.start_kernel("python3"))["id"]
        try:
            # Stopped: what it was running ends at once.
            running = RunningSupernode(jupyter, relay.ws_url, service_token)
            request_execution(
                watcher,
                "long1",
                kernel_id=kernel,
                code="import time\ntime.sleep(60)",
                status="requested",
            )
            await watcher.wait_for(
                lambda: (
                    execution(watcher, "long1").get("status") == "running"
                    and table(watcher, "kernels").get(kernel, {}).get("execution_state") == "busy"
                ),
                WAIT,
            )
            await running.close()
            await watcher.wait_for(
                lambda: execution(watcher, "long1").get("status") == "error", WAIT
            )
            assert execution(watcher, "long1")["error"] == "interrupted: the supernode stopped"
            await jupyter.interrupt_kernel(kernel)

            async def kernel_idle() -> bool:
                return (await jupyter.get_kernel(kernel))["execution_state"] == "idle"

            # Interrupted and idle before the next request: a request queued behind the
            # interrupted one is aborted by the kernel, a different (true) ending.
            await aeventually(kernel_idle, WAIT, "the interrupted kernel idle")

            # Crashed (its task cancelled: nothing after the cancellation point runs, so the
            # record stays running): the next supernode ends it.
            running = RunningSupernode(jupyter, relay.ws_url, service_token)
            request_execution(
                watcher,
                "long2",
                kernel_id=kernel,
                code="import time\ntime.sleep(60)",
                status="requested",
            )
            await watcher.wait_for(
                lambda: execution(watcher, "long2").get("status") == "running", WAIT
            )
            running.task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await running.task
            assert execution(watcher, "long2")["status"] == "running"
            running = RunningSupernode(jupyter, relay.ws_url, service_token)
            try:
                await watcher.wait_for(
                    lambda: execution(watcher, "long2").get("status") == "error", WAIT
                )
                assert "supernode restarted" in execution(watcher, "long2")["error"]
                assert execution(watcher, "long2")["finished_at"]
            finally:
                await running.close()
        finally:
            await jupyter.shutdown_kernel(kernel)


async def test_a_supernode_whose_web_server_went_first_stops_at_once(start_server, jupyter_server):
    """A whole stack stopped at once (one signal to a process group): the web server is gone
    before the supernode's last writes reach it; nobody will answer them, so it stops now
    instead of waiting out its deadline for acknowledgements."""
    service_token, _editor_token = await accounts()
    relay = await asyncio.to_thread(start_server)
    async with JupyterClient(jupyter_server.url, jupyter_server.token) as jupyter:
        running = RunningSupernode(jupyter, relay.ws_url, service_token)
        supernode = running.supernode
        await aeventually(
            lambda: supernode.client is not None and supernode.client.synced,
            WAIT,
            "the supernode connected",
        )
        await asyncio.to_thread(relay.kill, signal.SIGTERM)
        await supernode.client.wait_for(lambda: not supernode.client.connected, timeout=WAIT)
        started = time.monotonic()
        running.stop.set()
        await asyncio.wait_for(running.task, WAIT)
        took = time.monotonic() - started
    assert took < LAST_WRITES_WAIT / 2, f"stopping took {took:.1f} s"


class RefusingServer:
    """A port that accepts connections and closes them unanswered (a server that is down, in
    a way that can be counted): how many times someone tried."""

    def __init__(self) -> None:
        self.socket = socket.create_server(("127.0.0.1", 0))
        self.socket.settimeout(0.2)
        self.port = self.socket.getsockname()[1]
        self.attempts = 0
        self.done = threading.Event()
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        while not self.done.is_set():
            try:
                connection, _ = self.socket.accept()
            except TimeoutError:
                continue
            connection.close()
            self.attempts += 1

    def close(self) -> None:
        self.done.set()
        self.thread.join(timeout=10)
        self.socket.close()


def warnings_in(log: str, text: str) -> list[str]:
    return [line for line in log.splitlines() if " WARNING " in line and text in line]


def test_an_unreachable_web_server_or_jupyter_server_is_retried_and_said_once(transactional_db):
    """``manage.py run_supernode`` started before its web server: one warning naming the URL
    (never a token), retried until the web server answers, then one line saying so. The same
    for a Jupyter Server that does not answer: one warning, however many refreshes fail."""
    service_token = account.ensure_service_account()
    relay = ServerProcess(name="late-server")  # not started yet: nothing listens on its port
    jupyter = RefusingServer()
    jupyter_token = "jupyter-token-never-logged"
    supernode = SupernodeProcess(relay, f"http://127.0.0.1:{jupyter.port}", jupyter_token)
    try:
        web_server = f"the web server at {relay.ws_url} unreachable"
        eventually(
            lambda: supernode.log.count("connection to 'jupyter' failed") >= 3,
            WAIT,
            "the supernode retrying the web server",
            explain=lambda: supernode.log,
        )
        assert supernode.process.poll() is None, supernode.log
        warned = warnings_in(supernode.log, web_server)
        assert len(warned) == 1, supernode.log
        assert "retrying until it answers" in warned[0]

        relay.start(timeout=WAIT)  # daphne starting on a loaded machine
        eventually(
            lambda: f"the web server at {relay.ws_url} reachable again" in supernode.log,
            WAIT,
            "the supernode connected once the web server answered",
            explain=lambda: supernode.log,
        )
        # Connected: the Jupyter Server's refreshes begin, and fail (four requests a round).
        eventually(
            lambda: jupyter.attempts >= 4 * 3,
            WAIT,
            "three refreshes of the Jupyter Server",
            explain=lambda: supernode.log,
        )
        log = supernode.log
        assert len(warnings_in(log, web_server)) == 1, log
        jupyter_warned = warnings_in(log, f"the Jupyter Server at http://127.0.0.1:{jupyter.port}")
        assert len(jupyter_warned) == 1, log
        assert "unreachable" in jupyter_warned[0] and "retrying every 0.5 s" in jupyter_warned[0]
        assert service_token not in log and jupyter_token not in log
        assert "Traceback" not in log, log
    finally:
        supernode.stop()
        relay.close()
        jupyter.close()
