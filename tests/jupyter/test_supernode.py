"""The supernode against a real Jupyter Server and a real relay process."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
from datetime import UTC, datetime
from pathlib import Path

import pytest
from channels.db import database_sync_to_async
from django.test import override_settings
from pycrdt import Doc, Map
from rtc_client import DatastoreClient

from jupyter_sync.jupyter import JupyterClient
from jupyter_sync.supernode.server_state import expired_records
from tables.models import Datastore
from tests.support.supernode import (
    RunningSupernode,
    accounts,
    request_execution,
    supernode_and_watcher,
    table,
)

pytest_plugins = ["tests.support.liveserver", "tests.support.jupyter"]
pytestmark = pytest.mark.django_db(transaction=True)

WAIT = 30.0


async def test_tables_follow_the_jupyter_server_and_console_executions_run(
    start_server, jupyter_server
):
    service_token, editor_token = await accounts()
    relay = await asyncio.to_thread(start_server)
    async with (
        JupyterClient(jupyter_server.url, jupyter_server.token) as jupyter,
        DatastoreClient(relay.ws_url, "jupyter", token=editor_token) as watcher,
    ):
        running = RunningSupernode(jupyter, relay.ws_url, service_token)
        try:
            await watcher.wait_for(
                lambda: (
                    table(watcher, "status").get("server", {}).get("connected") is True
                    and "python3" in table(watcher, "kernelspecs")
                ),
                timeout=WAIT,
            )
            kernel = await jupyter.start_kernel("python3")
            await watcher.wait_for(lambda: kernel["id"] in table(watcher, "kernels"), timeout=WAIT)

            request_execution(
                watcher,
                "e1",
                kernel_id=kernel["id"],
                code="print('hi')\n1+1",
                status="requested",
            )
            await watcher.wait_for(
                lambda: table(watcher, "executions")["e1"].get("status") == "completed",
                timeout=WAIT,
            )
            done = table(watcher, "executions")["e1"]
            assert done["execution_count"] == 1
            assert done["outputs"][0] == {"output_type": "stream", "name": "stdout", "text": "hi\n"}
            assert done["outputs"][1]["data"]["text/plain"] == "2"
            # The kernel's status messages keep its execution_state live.
            assert table(watcher, "kernels")[kernel["id"]]["execution_state"] in ("idle", "busy")

            request_execution(watcher, "e2", kernel_id=kernel["id"], code="1/0", status="requested")
            await watcher.wait_for(
                lambda: table(watcher, "executions")["e2"].get("status") == "error",
                timeout=WAIT,
            )
            assert "ZeroDivisionError" in table(watcher, "executions")["e2"]["error"]

            # Someone using classic Jupyter side by side: the kernel goes away.
            await jupyter.shutdown_kernel(kernel["id"])
            await watcher.wait_for(
                lambda: kernel["id"] not in table(watcher, "kernels"), timeout=WAIT
            )
        finally:
            await running.close()
        await watcher.wait_for(
            lambda: table(watcher, "status")["server"]["connected"] is False, timeout=WAIT
        )


async def test_restart_and_kernel_death_end_executions_clearly(start_server, jupyter_server):
    service_token, editor_token = await accounts()
    relay = await asyncio.to_thread(start_server)
    async with (
        JupyterClient(jupyter_server.url, jupyter_server.token) as jupyter,
        DatastoreClient(relay.ws_url, "jupyter", token=editor_token) as watcher,
    ):
        # Left "running" by a supernode that died.
        request_execution(watcher, "old", kernel_id="gone", code="x", status="running")
        await watcher.wait_acked(timeout=WAIT)
        running = RunningSupernode(jupyter, relay.ws_url, service_token)
        try:
            await watcher.wait_for(
                lambda: table(watcher, "executions")["old"]["status"] == "error", timeout=WAIT
            )
            assert "supernode restarted" in table(watcher, "executions")["old"]["error"]

            kernel = await jupyter.start_kernel("python3")
            request_execution(
                watcher,
                "long",
                kernel_id=kernel["id"],
                code="import time\ntime.sleep(60)",
                status="requested",
            )
            await watcher.wait_for(
                lambda: table(watcher, "executions")["long"].get("status") == "running",
                timeout=WAIT,
            )
            await jupyter.shutdown_kernel(kernel["id"])
            await watcher.wait_for(
                lambda: table(watcher, "executions")["long"].get("status") == "error",
                timeout=WAIT,
            )
            assert table(watcher, "executions")["long"]["finished_at"]
        finally:
            await running.close()


async def test_an_execution_ends_when_its_kernel_goes_without_a_word(start_server, jupyter_server):
    """A kernel that says nothing as it goes (frozen, then killed by the server's shutdown; as
    when the shutdown comes while the supernode's websocket is being opened, before the server
    forwards the kernel's messages to it): the kernel's connection hears nothing, and the
    execution on it still ends, as soon as the server no longer lists the kernel."""
    async with supernode_and_watcher(start_server, jupyter_server) as (jupyter, watcher):
        kernel = await jupyter.start_kernel("python3")
        code = "import os, time\nprint(os.getpid(), flush=True)\ntime.sleep(60)"
        request_execution(watcher, "silent", kernel_id=kernel["id"], code=code, status="requested")
        await watcher.wait_for(
            lambda: table(watcher, "executions")["silent"].get("outputs"), timeout=WAIT
        )
        pid = int(table(watcher, "executions")["silent"]["outputs"][0]["text"])
        os.kill(pid, signal.SIGSTOP)  # no more messages: not the interrupt's, nor the shutdown's
        try:
            await jupyter.shutdown_kernel(kernel["id"])  # killed once the wait for it is over
        finally:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        await watcher.wait_for(
            lambda: table(watcher, "executions")["silent"].get("status") == "error", timeout=WAIT
        )
        ended = table(watcher, "executions")["silent"]
        assert "no longer runs" in ended["error"], ended
        assert ended["finished_at"]


def kernel_pid(kernel_id: str) -> int:
    """The process of a local kernel, found by its connection file in its command line."""
    for entry in Path("/proc").iterdir():
        with contextlib.suppress(OSError):
            if f"kernel-{kernel_id}.json".encode() in (entry / "cmdline").read_bytes():
                return int(entry.name)
    raise LookupError(f"no process for kernel {kernel_id}")


@pytest.mark.skipif(not Path("/proc").is_dir(), reason="finds the kernel's process in /proc")
async def test_an_execution_ends_when_its_kernel_goes_while_the_supernode_connects(
    start_server, jupyter_server
):
    """A kernel that never answers (frozen): the server holds the supernode's websocket
    handshake until the kernel replies, for a minute. Shut down meanwhile, the kernel's
    connection is given up as soon as the server no longer lists it, and the execution ends."""
    service_token, editor_token = await accounts()
    relay = await asyncio.to_thread(start_server)
    async with (
        JupyterClient(jupyter_server.url, jupyter_server.token) as jupyter,
        DatastoreClient(relay.ws_url, "jupyter", token=editor_token) as watcher,
    ):
        kernel = await jupyter.start_kernel("python3")
        pid = kernel_pid(kernel["id"])
        os.kill(pid, signal.SIGSTOP)
        try:
            request_execution(
                watcher, "stuck", kernel_id=kernel["id"], code="1", status="requested"
            )
            await watcher.wait_acked(timeout=WAIT)
            async with RunningSupernode(jupyter, relay.ws_url, service_token):
                await watcher.wait_for(
                    lambda: table(watcher, "executions")["stuck"].get("status") == "running",
                    timeout=WAIT,
                )
                await jupyter.shutdown_kernel(kernel["id"])
                await watcher.wait_for(
                    lambda: table(watcher, "executions")["stuck"].get("status") == "error",
                    timeout=WAIT,
                )
                ended = table(watcher, "executions")["stuck"]
                assert "no longer runs" in ended["error"], ended
        finally:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)


def set_fields(client: DatastoreClient, table: str, record_id: str, **fields) -> None:
    record = client.doc.get(table, type=Map)[record_id]
    with client.doc.transaction():
        for key, value in fields.items():
            record[key] = value


@database_sync_to_async
def last_serial(name: str) -> int:
    return Datastore.objects.get(name=name).last_serial


async def test_console_executions_batch_outputs_take_input_and_can_be_cancelled(
    start_server, jupyter_server
):
    async with supernode_and_watcher(start_server, jupyter_server) as (jupyter, watcher):
        kernel = await jupyter.start_kernel("python3")

        def executions() -> dict:
            return table(watcher, "executions")

        def run(execution_id: str, code: str, **fields) -> None:
            request_execution(watcher, execution_id, kernel_id=kernel["id"], code=code, **fields)

        # Outputs are written a batch at a time, not a stored transaction per line.
        before = await last_serial("jupyter")
        code = "for i in range(300):\n    print(i, flush=True)"
        run("loud", code, status="requested")
        await watcher.wait_for(
            lambda: executions()["loud"].get("status") == "completed", timeout=WAIT
        )
        printed = "".join(output["text"] for output in executions()["loud"]["outputs"])
        assert printed == "".join(f"{i}\n" for i in range(300))
        assert await last_serial("jupyter") - before < 100

        # stdin: the kernel's request appears in the record; an editor's reply reaches it.
        code = 'name = input("name? ")\nprint("hi", name)'
        run("ask", code, status="requested")
        await watcher.wait_for(lambda: executions()["ask"].get("input_request"), timeout=WAIT)
        assert executions()["ask"]["input_request"] == {"prompt": "name? ", "password": False}
        set_fields(watcher, "executions", "ask", input_reply="Ada")
        await watcher.wait_for(
            lambda: executions()["ask"].get("status") == "completed", timeout=WAIT
        )
        answered_input = executions()["ask"]
        assert answered_input["outputs"][-1]["text"] == "hi Ada\n"
        assert answered_input.get("input_request") is None

        # Cancelled while it runs: the kernel is interrupted, and lives on.
        code = "import time\nprint('started', flush=True)\ntime.sleep(120)"
        run("long", code, status="requested")
        await watcher.wait_for(lambda: executions()["long"].get("outputs"), timeout=WAIT)
        set_fields(watcher, "executions", "long", cancel=True)
        await watcher.wait_for(
            lambda: executions()["long"].get("status") == "cancelled", timeout=WAIT
        )
        assert "KeyboardInterrupt" in executions()["long"]["error"]
        run("after", "6*7", status="requested")
        await watcher.wait_for(
            lambda: executions()["after"].get("status") == "completed", timeout=WAIT
        )
        assert executions()["after"]["outputs"][0]["data"]["text/plain"] == "42"

        # Cancelled before it ran: it never starts.
        run("never", "1", status="requested", cancel=True)
        await watcher.wait_for(
            lambda: executions()["never"].get("status") == "cancelled", timeout=WAIT
        )
        assert not executions()["never"].get("started_at")
        await jupyter.shutdown_kernel(kernel["id"])


async def test_a_fast_printing_cell_keeps_every_line(start_server, jupyter_server):
    """Jupyter Server drops iopub messages past its rate limits (1000 a second, 1 MB a second)
    for every websocket; the supernode's must get them all, or the saved outputs lose lines."""
    async with supernode_and_watcher(start_server, jupyter_server) as (jupyter, watcher):
        kernel = await jupyter.start_kernel("python3")
        code = "for i in range(5000):\n    print(f'{i:>99}', flush=True)"
        request_execution(watcher, "fast", kernel_id=kernel["id"], code=code, status="requested")
        await watcher.wait_for(
            lambda: table(watcher, "executions")["fast"].get("status") == "completed",
            timeout=WAIT,
        )
        outputs = table(watcher, "executions")["fast"]["outputs"]
        assert [output["name"] for output in outputs] == ["stdout"], outputs[1:]
        assert outputs[0]["text"] == "".join(f"{i:>99}\n" for i in range(5000))
        await jupyter.shutdown_kernel(kernel["id"])


def test_expired_records_are_the_finished_ones_older_than_the_cutoff() -> None:
    table = Doc().get("requests", type=Map)
    table.update(
        {
            "old": Map({"status": "completed", "finished_at": "2026-01-01T10:00:00+00:00"}),
            "old-error": Map({"status": "error", "finished_at": "2026-01-01T10:00:00+00:00"}),
            "recent": Map({"status": "cancelled", "finished_at": "2026-01-01T12:00:00+00:00"}),
            "running": Map({"status": "running", "finished_at": "2026-01-01T10:00:00+00:00"}),
            "unparsable": Map({"status": "completed", "finished_at": "yesterday"}),
            "naive": Map({"status": "completed", "finished_at": "2026-01-01T10:00:00"}),
        }
    )
    cutoff = datetime(2026, 1, 1, 11, 0, tzinfo=UTC)
    assert sorted(expired_records(table, cutoff)) == ["old", "old-error"]


async def test_finished_records_are_removed_after_the_retention(start_server, jupyter_server):
    with override_settings(RTC_JUPYTER={"RECORD_RETENTION": 1.0}):
        async with supernode_and_watcher(start_server, jupyter_server) as (jupyter, watcher):
            kernel = await jupyter.start_kernel("python3")
            code = "import time\ntime.sleep(120)"
            request_execution(
                watcher, "long", kernel_id=kernel["id"], code=code, status="requested"
            )
            await watcher.wait_for(
                lambda: table(watcher, "executions")["long"].get("status") == "running",
                timeout=WAIT,
            )
            ask(watcher, "r1", "refresh")
            assert (await answered(watcher, "r1"))["status"] == "completed"
            await watcher.wait_for(lambda: "r1" not in table(watcher, "requests"), timeout=WAIT)
            # Unfinished: kept, however old.
            assert table(watcher, "executions")["long"]["status"] == "running"
            set_fields(watcher, "executions", "long", cancel=True)
            await watcher.wait_for(lambda: "long" not in table(watcher, "executions"), timeout=WAIT)
            await jupyter.shutdown_kernel(kernel["id"])


def ask(client: DatastoreClient, request_id: str, action: str, **params) -> None:
    with client.doc.transaction():
        client.doc.get("requests", type=Map)[request_id] = Map(
            {"action": action, "params": params, "status": "requested", "requested_by": "ed"}
        )


async def answered(client: DatastoreClient, request_id: str) -> dict:
    await client.wait_for(
        lambda: table(client, "requests")[request_id].get("status") in ("completed", "error"),
        timeout=WAIT,
    )
    return table(client, "requests")[request_id]


async def test_requests_act_on_kernels_sessions_terminals_and_folders(start_server, jupyter_server):
    folder = jupyter_server.root_dir / "project"
    folder.mkdir(exist_ok=True)
    (folder / "notes.txt").write_text("hello")
    async with supernode_and_watcher(start_server, jupyter_server) as (_jupyter, client):
        ask(client, "r1", "kernel.start", name="python3")
        started = await answered(client, "r1")
        assert started["status"] == "completed", started
        kernel_id = started["result"]["kernel"]["id"]
        await client.wait_for(lambda: kernel_id in table(client, "kernels"), timeout=WAIT)

        ask(client, "r2", "session.create", path="project/a.ipynb", kernel_id=kernel_id)
        session = (await answered(client, "r2"))["result"]["session"]
        await client.wait_for(
            lambda: table(client, "sessions").get(session["id"], {}).get("kernel_id") == kernel_id,
            timeout=WAIT,
        )

        ask(client, "r3", "terminal.create")
        terminal = (await answered(client, "r3"))["result"]["terminal"]["name"]
        await client.wait_for(lambda: terminal in table(client, "terminals"), timeout=WAIT)
        ask(client, "r4", "terminal.delete", name=terminal)
        assert (await answered(client, "r4"))["status"] == "completed"
        await client.wait_for(lambda: terminal not in table(client, "terminals"), timeout=WAIT)

        ask(client, "r5", "contents.list", path="project")
        assert (await answered(client, "r5"))["status"] == "completed"
        contents = table(client, "contents")
        assert contents["project"]["children"] == ["notes.txt"]
        assert contents["project/notes.txt"]["type"] == "file"
        # A watched folder stays current.
        (folder / "more.txt").write_text("x")
        await client.wait_for(lambda: "project/more.txt" in table(client, "contents"), timeout=WAIT)

        # An action the schema does not know is refused outright (nothing stored)...
        ask(client, "r6", "kernel.launch-missiles")
        await client.wait_for(
            lambda: client.rejections and "r6" not in table(client, "requests"),
            timeout=WAIT,
        )
        assert client.rejections[0].code == "schema-violation"
        # ...and one with bad params ends in error.
        ask(client, "r7", "kernel.shutdown")
        assert "params.kernel_id" in (await answered(client, "r7"))["error"]

        ask(client, "r8", "session.delete", session_id=session["id"])
        assert (await answered(client, "r8"))["status"] == "completed"
        await client.wait_for(
            lambda: (
                kernel_id not in table(client, "kernels")
                and session["id"] not in table(client, "sessions")
            ),
            timeout=WAIT,
        )
