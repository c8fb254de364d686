"""JupyterClient and KernelConnection against a real Jupyter Server and real ipykernels."""

from __future__ import annotations

import asyncio
import logging
import os
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from jupyter_sync.jupyter import (
    JupyterClient,
    JupyterError,
    JupyterUnavailable,
    KernelConnection,
    KernelDied,
)
from jupyter_sync.jupyter.kernel import _Request
from jupyter_sync.jupyter.launcher import LocalJupyterServer, free_port, terminals_available
from jupyter_sync.supernode.actions import failure
from tests.support.jupyter import start_local_server
from tests.support.sockets import kernel_socket_nodelay
from tests.support.waiting import aeventually

pytest_plugins = ["tests.support.jupyter"]

Json = dict[str, Any]


def process_gone(pid: int) -> bool:
    """No such process, or only its zombie (reaped by whoever adopted it, not us)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except FileNotFoundError:
        return True
    return "\nState:\tZ" in status


@pytest.fixture
async def api(jupyter_server: LocalJupyterServer) -> AsyncIterator[JupyterClient]:
    async with JupyterClient(jupyter_server.url, jupyter_server.token, timeout=30) as client:
        yield client


@pytest.fixture
async def kernel(api: JupyterClient) -> AsyncIterator[Json]:
    """A new python3 kernel, shut down afterwards."""
    model = await api.start_kernel("python3")
    yield model
    try:
        await api.shutdown_kernel(model["id"])
    except JupyterError as error:  # the test shut it down itself
        assert error.status == 404


@pytest.fixture
async def conn(api: JupyterClient, kernel: Json) -> AsyncIterator[KernelConnection]:
    async with await api.connect_kernel(kernel["id"]) as connection:
        yield connection


@pytest.fixture
def workdir(jupyter_server: LocalJupyterServer) -> str:
    """A directory of this test's own in the server's root, as an API path."""
    name = f"t-{uuid.uuid4().hex[:8]}"
    (jupyter_server.root_dir / name).mkdir()
    return name


def on_started(event: asyncio.Event) -> Callable[[Json], None]:
    """An on_output that sets ``event`` once the kernel began running the cell."""

    def on_output(message: Json) -> None:
        if message["msg_type"] == "execute_input":
            event.set()

    return on_output


def outputs_of(messages: list[Json]) -> list[tuple[str, Json]]:
    return [
        (m["msg_type"], m["content"])
        for m in messages
        if m["msg_type"] not in {"status", "execute_input"}
    ]


# --- Server ----------------------------------------------------------------------------------


async def test_status_and_kernelspecs(api: JupyterClient) -> None:
    status = await api.status()
    assert {"started", "last_activity", "kernels", "connections"} <= status.keys()
    specs = await api.kernelspecs()
    assert "python3" in specs["kernelspecs"]
    assert specs["kernelspecs"]["python3"]["spec"]["language"] == "python"


async def test_unreachable_server_raises_unavailable_without_its_address() -> None:
    port = free_port()
    async with JupyterClient(f"http://127.0.0.1:{port}", "x", timeout=5) as client:
        with pytest.raises(JupyterUnavailable) as http:
            await client.status()
        with pytest.raises(JupyterUnavailable) as websocket:
            await client.connect_kernel(str(uuid.uuid4()))
    for caught in (http.value, websocket.value):
        # The message reaches API clients (request records): the address is for the log.
        message = f"{caught} {failure(caught)}"
        assert "unreachable" in message and str(port) not in message and "127.0.0.1" not in message
        assert f"127.0.0.1:{port}" in caught.detail


async def test_http_errors_carry_status_and_jupyter_message(api: JupyterClient) -> None:
    missing = str(uuid.uuid4())
    with pytest.raises(JupyterError) as caught:
        await api.get_kernel(missing)
    assert caught.value.status == 404
    assert missing in caught.value.message
    assert caught.value.url.endswith(f"/api/kernels/{missing}")
    assert str(caught.value) == f"404 {caught.value.message}"  # no URL: only the log has it

    with pytest.raises(JupyterError) as caught:
        await api.get_contents("no/such/file.ipynb")
    assert caught.value.status == 404

    with pytest.raises(JupyterError) as caught:
        await api.connect_kernel(missing)
    assert caught.value.status == 404


async def test_wrong_token_is_refused(jupyter_server: LocalJupyterServer) -> None:
    async with JupyterClient(jupyter_server.url, "wrong", timeout=10) as client:
        with pytest.raises(JupyterError) as caught:
            await client.kernels()
    assert caught.value.status == 403


def test_the_token_is_not_on_the_launched_servers_command_line(
    jupyter_server: LocalJupyterServer,
) -> None:
    """Every user of the machine reads a command line (ps); the token goes by environment."""
    command_line = Path(f"/proc/{jupyter_server.pid}/cmdline").read_bytes()
    assert b"jupyter_server" in command_line  # the server's own process
    assert jupyter_server.token.encode() not in command_line
    with pytest.raises(urllib.error.HTTPError) as refused:  # the token it has still guards it
        urllib.request.urlopen(f"{jupyter_server.url}/api/kernels", timeout=10).close()
    refused.value.close()
    assert refused.value.code == 403
    with urllib.request.urlopen(
        urllib.request.Request(
            f"{jupyter_server.url}/api/kernels",
            headers={"Authorization": f"token {jupyter_server.token}"},
        ),
        timeout=10,
    ) as answer:
        assert answer.status == 200


# --- Kernels and execution -------------------------------------------------------------------


async def test_execute_routes_outputs_and_counts(
    api: JupyterClient, kernel: Json, conn: KernelConnection
) -> None:
    assert kernel["id"] in {k["id"] for k in await api.kernels()}
    assert (await api.get_kernel(kernel["id"]))["name"] == "python3"

    seen: list[Json] = []
    result = await conn.execute("print('hi'); 1+1", on_output=seen.append)

    assert result.ok and result.status == "ok"
    assert result.execution_count == 1
    assert outputs_of(seen) == [
        ("stream", {"name": "stdout", "text": "hi\n"}),
        ("execute_result", {"data": {"text/plain": "2"}, "metadata": {}, "execution_count": 1}),
    ]
    states = [m["content"]["execution_state"] for m in seen if m["msg_type"] == "status"]
    assert states == ["busy", "idle"]  # idle came before execute() returned
    assert conn.execution_state == "idle"

    async def record(message: Json) -> None:  # async callbacks are awaited
        seen.append(message)

    seen.clear()
    result = await conn.execute("print('again')", on_output=record)
    assert result.execution_count == 2
    assert outputs_of(seen) == [("stream", {"name": "stdout", "text": "again\n"})]


async def test_error_cell(conn: KernelConnection) -> None:
    seen: list[Json] = []
    result = await conn.execute("1/0", on_output=seen.append)
    assert result.status == "error" and not result.ok
    assert result.ename == "ZeroDivisionError"
    assert result.traceback and "ZeroDivisionError" in result.traceback[-1]
    [(kind, content)] = outputs_of(seen)
    assert kind == "error" and content["ename"] == "ZeroDivisionError"


async def test_kernel_info_and_messages_stream(conn: KernelConnection) -> None:
    info = await conn.kernel_info()
    assert info["language_info"]["name"] == "python"
    assert info["status"] == "ok"

    with conn.messages() as stream:
        result = await conn.execute("x = 41 + 1", on_output=None)
        seen: list[Json] = []
        async for message in stream:
            seen.append(message)
            mine = message["parent_header"].get("msg_id") == result.msg_id
            if mine and message["content"].get("execution_state") == "idle":
                break
    mine = [m for m in seen if m["parent_header"].get("msg_id") == result.msg_id]
    assert [m["msg_type"] for m in mine] == ["status", "execute_input", "status"]


async def test_input_request_and_reply(conn: KernelConnection) -> None:
    prompts: list[str] = []

    async def answer(message: Json) -> str | None:
        prompts.append(message["content"]["prompt"])
        if len(prompts) == 1:
            return "forty"  # returned: sent as the input_reply
        await conn.send_input("-two", message)  # or sent explicitly
        return None

    seen: list[Json] = []
    result = await conn.execute(
        "a = input('x?')\nb = input('y?')\nprint(a + b)",
        allow_stdin=True,
        on_input=answer,
        on_output=seen.append,
        timeout=30,
    )
    assert result.ok, result.reply
    assert prompts == ["x?", "y?"]
    assert ("stream", {"name": "stdout", "text": "forty-two\n"}) in outputs_of(seen)

    with pytest.raises(ValueError):
        await conn.execute("input()", allow_stdin=True)


async def test_interrupt_a_sleeping_cell(conn: KernelConnection) -> None:
    started = asyncio.Event()
    execution = asyncio.create_task(
        conn.execute("import time; time.sleep(30)", on_output=on_started(started), timeout=60)
    )
    await asyncio.wait_for(started.wait(), 15)
    began = time.monotonic()
    await conn.interrupt()
    result = await asyncio.wait_for(execution, 15)
    assert result.status == "error"
    assert result.ename == "KeyboardInterrupt"
    assert time.monotonic() - began < 10


async def test_execute_timeout_gives_up_waiting(conn: KernelConnection) -> None:
    with pytest.raises(TimeoutError):
        await conn.execute("import time; time.sleep(1.5); 'late'", timeout=0.2)
    # The kernel carries on with the cell; the next one runs after it, on the same connection.
    result = await conn.execute("'still here'", timeout=30)
    assert result.ok
    assert result.execution_count == 2


async def test_kernel_crash_fails_the_pending_execution_then_reaches_the_new_kernel(
    api: JupyterClient, kernel: Json, conn: KernelConnection
) -> None:
    # A second connection to the same kernel, as the supernode's watcher and a notebook have.
    async with await api.connect_kernel(kernel["id"]) as other:
        with other.messages() as other_messages:
            with pytest.raises(KernelDied, match="restarting"):
                await conn.execute("import os; os.kill(os.getpid(), 9)", timeout=60)
            # A request the other sends before it hears of the restart fails with it: wait.
            async with asyncio.timeout(30):
                async for message in other_messages:
                    if message["content"].get("execution_state") == "restarting":
                        break
        # The server restarted the kernel; each connection reaches the new one, its iopub too
        # (the outputs and the idle of each execution).
        for connection, code in ((other, "print('other')"), (conn, "print('back')")):
            outputs: list[Json] = []
            result = await connection.execute(code, on_output=outputs.append, timeout=60)
            assert result.ok
            texts = [m["content"]["text"] for m in outputs if m["header"]["msg_type"] == "stream"]
            assert texts == [code.split("'")[1] + "\n"]
        assert not conn.closed and not other.closed
        # Crashing again: the same.
        with pytest.raises(KernelDied, match="restarting"):
            await conn.execute("import os; os._exit(1)", timeout=60)
        assert (await conn.execute("'again'", timeout=60)).ok
        assert (await other.execute("'again'", timeout=60)).ok


async def test_an_execution_whose_idle_is_lost_ends_after_the_grace() -> None:
    """A reply whose iopub idle never comes: done once iopub has been quiet for the grace."""
    loop = asyncio.get_running_loop()
    request = _Request("m1", loop.create_future(), wait_idle=True, idle_grace=0.2)
    request.reply = {"content": {"status": "ok"}}
    request.maybe_finish()
    assert not request.future.done()
    began = loop.time()
    await asyncio.sleep(0.1)
    request.maybe_finish()  # an iopub message after the reply: the grace starts again
    assert await asyncio.wait_for(request.future, 5) == request.reply
    assert loop.time() - began >= 0.3
    # One that failed meanwhile is not finished by its timer.
    failed = _Request("m2", loop.create_future(), wait_idle=True, idle_grace=0.05)
    failed.reply = {"content": {}}
    failed.maybe_finish()
    failed.fail(KernelDied("gone"))
    with pytest.raises(KernelDied):
        await failed.future


async def test_kernel_shutdown_fails_the_pending_execution(
    api: JupyterClient, kernel: Json, conn: KernelConnection
) -> None:
    started = asyncio.Event()
    execution = asyncio.create_task(
        conn.execute("import time; time.sleep(30)", on_output=on_started(started), timeout=60)
    )
    await asyncio.wait_for(started.wait(), 15)
    await api.shutdown_kernel(kernel["id"])
    # Jupyter interrupts a kernel before it asks it to shut down: the cell ends failed with
    # KernelDied, or interrupted when the interrupt's reply outran the news of the shutdown.
    try:
        result = await asyncio.wait_for(execution, 15)
    except KernelDied as error:
        assert "shut down" in str(error)
    else:
        assert result.reply.get("ename") == "KeyboardInterrupt", result.reply
    await aeventually(lambda: conn.closed, 15.0, "the connection to close")
    with pytest.raises(KernelDied):
        await conn.execute("1")
    assert kernel["id"] not in {k["id"] for k in await api.kernels()}


async def test_restart_through_rest_fails_pending_then_works(
    api: JupyterClient, kernel: Json, conn: KernelConnection
) -> None:
    assert (await conn.execute("1")).execution_count == 1
    started = asyncio.Event()
    execution = asyncio.create_task(
        conn.execute("import time; time.sleep(30)", on_output=on_started(started), timeout=60)
    )
    await asyncio.wait_for(started.wait(), 15)
    await api.restart_kernel(kernel["id"])
    with pytest.raises(KernelDied):
        await asyncio.wait_for(execution, 15)
    assert not conn.closed
    assert (await conn.execute("2", timeout=60)).execution_count == 1


# --- Sessions, contents, terminals -----------------------------------------------------------


async def test_sessions(api: JupyterClient, workdir: str) -> None:
    path = f"{workdir}/a.ipynb"
    session = await api.create_session(path, name="a.ipynb", kernel_name="python3")
    try:
        assert session["path"] == path and session["type"] == "notebook"
        assert session["kernel"]["name"] == "python3"
        assert session["id"] in {s["id"] for s in await api.sessions()}
        assert (await api.get_session(session["id"]))["kernel"]["id"] == session["kernel"]["id"]

        moved = await api.update_session(session["id"], path=f"{workdir}/b.ipynb", name="b")
        assert moved["path"] == f"{workdir}/b.ipynb" and moved["name"] == "b"
        assert moved["kernel"]["id"] == session["kernel"]["id"]

        # A session on a kernel that runs already; deleting the session shuts the kernel down.
        kernel = await api.start_kernel()
        other = await api.create_session(f"{workdir}/c.py", type="file", kernel_id=kernel["id"])
        assert other["kernel"]["id"] == kernel["id"] and other["type"] == "file"
        await api.delete_session(other["id"])
        assert kernel["id"] not in {k["id"] for k in await api.kernels()}
    finally:
        await api.delete_session(session["id"])
    assert session["id"] not in {s["id"] for s in await api.sessions()}
    assert session["kernel"]["id"] not in {k["id"] for k in await api.kernels()}
    with pytest.raises(JupyterError) as caught:
        await api.get_session(session["id"])
    assert caught.value.status == 404


NOTEBOOK: Json = {
    "nbformat": 4,
    "nbformat_minor": 5,
    "metadata": {"kernelspec": {"name": "python3", "display_name": "Python 3"}},
    "cells": [
        {
            "id": "c1",
            "cell_type": "code",
            "source": "print('hi')",
            "metadata": {},
            "outputs": [],
            "execution_count": None,
        },
        {"id": "c2", "cell_type": "markdown", "source": "# Title", "metadata": {}},
    ],
}


async def test_contents(
    api: JupyterClient, workdir: str, jupyter_server: LocalJupyterServer
) -> None:
    path = f"{workdir}/nb.ipynb"
    saved = await api.save_contents(path, {"type": "notebook", "content": NOTEBOOK})
    assert saved["path"] == path and saved["type"] == "notebook"
    assert (jupyter_server.root_dir / path).is_file()

    model = await api.get_contents(path)
    assert model["format"] == "json"
    assert [c["source"] for c in model["content"]["cells"]] == ["print('hi')", "# Title"]
    assert (await api.get_contents(path, content=False))["content"] is None

    listing = await api.get_contents(workdir, type="directory")
    assert [entry["name"] for entry in listing["content"]] == ["nb.ipynb"]

    text = await api.save_contents(
        f"{workdir}/notes.txt", {"type": "file", "format": "text", "content": "hello\n"}
    )
    assert text["name"] == "notes.txt"
    assert (await api.get_contents(f"{workdir}/notes.txt", format="text"))["content"] == "hello\n"

    renamed = await api.rename_contents(path, f"{workdir}/renamed.ipynb")
    assert renamed["path"] == f"{workdir}/renamed.ipynb"
    with pytest.raises(JupyterError) as caught:
        await api.get_contents(path)
    assert caught.value.status == 404

    untitled = await api.new_untitled(workdir, "notebook")
    assert untitled["type"] == "notebook" and untitled["path"].startswith(f"{workdir}/Untitled")
    folder = await api.new_untitled(workdir, "directory")
    assert folder["type"] == "directory"

    for entry in (f"{workdir}/renamed.ipynb", f"{workdir}/notes.txt", untitled["path"]):
        await api.delete_contents(entry)
    await api.delete_contents(folder["path"])
    assert (await api.get_contents(workdir))["content"] == []


async def test_symlinks_out_of_the_root_are_not_followed(
    api: JupyterClient, workdir: str, jupyter_server: LocalJupyterServer, tmp_path: Path
) -> None:
    """Jupyter follows a symlink inside its root wherever it points; the launched server
    (the bridge's contents manager) answers 404 for one that leads out, for reads and writes,
    and still serves one that stays inside."""
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.txt").write_text("private")
    folder = jupyter_server.root_dir / workdir
    (folder / "inside.txt").write_text("shared")
    (folder / "file-out.txt").symlink_to(outside / "secret.txt")
    (folder / "dir-out").symlink_to(outside)
    (folder / "file-in.txt").symlink_to(folder / "inside.txt")

    text = {"type": "file", "format": "text", "content": "overwritten"}
    for path in ("file-out.txt", "dir-out", "dir-out/secret.txt", "dir-out/new.txt"):
        with pytest.raises(JupyterError) as caught:
            await api.get_contents(f"{workdir}/{path}")
        assert caught.value.status == 404, path
        with pytest.raises(JupyterError) as caught:
            await api.save_contents(f"{workdir}/{path}", text)
        assert caught.value.status == 404, path
    assert (outside / "secret.txt").read_text() == "private"
    assert sorted(path.name for path in outside.iterdir()) == ["secret.txt"]
    assert (await api.get_contents(f"{workdir}/file-in.txt"))["content"] == "shared"


async def test_terminals(api: JupyterClient) -> None:
    assert terminals_available(), "jupyter_server_terminals and terminado come with jupyter_server"
    terminal = await api.create_terminal()
    try:
        assert terminal["name"] in {t["name"] for t in await api.terminals()}
    finally:
        await api.delete_terminal(terminal["name"])
    assert terminal["name"] not in {t["name"] for t in await api.terminals()}


# --- The launcher ----------------------------------------------------------------------------


async def test_launcher_restart_and_stop(tmp_path: Path) -> None:
    server = await asyncio.to_thread(start_local_server, tmp_path)
    try:
        url, first_pid = server.url, server.pid
        assert first_pid is not None
        async with JupyterClient(server.url, server.token, timeout=30) as client:
            kernel = await client.start_kernel()
            async with await client.connect_kernel(kernel["id"]) as conn:
                kernel_pid = int(await _result_text(conn, "import os; os.getpid()") or 0)
                assert kernel_pid > 0

                await asyncio.to_thread(server.restart)
                # The websocket went with the old server.
                await aeventually(lambda: conn.closed, 15.0, "the kernel connection to close")
                with pytest.raises(KernelDied):
                    await conn.execute("1")

            assert server.url == url and server.pid not in (None, first_pid)
            assert process_gone(first_pid)
            await aeventually(lambda: process_gone(kernel_pid), 15.0, "the old kernel to exit")
            assert "started" in await client.status()  # the same client, a new connection
            assert await client.kernels() == []

            second_pid = server.pid
            assert second_pid is not None
            await asyncio.to_thread(server.stop)
            assert server.pid is None and not server.alive
            assert process_gone(second_pid)
            with pytest.raises(JupyterUnavailable):
                await client.status()
            await asyncio.to_thread(server.stop)  # idempotent
    finally:
        server.close()
    assert not server.log_path.exists()


async def _result_text(conn: KernelConnection, expression: str) -> str | None:
    """The text/plain of ``expression``'s execute_result."""
    results: list[str] = []

    def keep(message: Json) -> None:
        if message["msg_type"] == "execute_result":
            results.append(message["content"]["data"]["text/plain"])

    await conn.execute(expression, on_output=keep)
    return results[0] if results else None


FAST_PRINTS = "for i in range(5000):\n    print(f'{i:>99}', flush=True)"


async def test_the_launched_server_drops_no_output(conn: KernelConnection) -> None:
    """Jupyter's iopub rate limits (1000 messages, 1 MB a second) are off on the launched server:
    the supernode saves what it receives, so it must receive everything."""
    streams: list[Json] = []
    result = await conn.execute(
        FAST_PRINTS,
        on_output=lambda m: streams.append(m["content"]) if m["msg_type"] == "stream" else None,
        timeout=60,
    )
    assert result.ok
    assert {stream["name"] for stream in streams} == {"stdout"}
    assert "".join(stream["text"] for stream in streams) == "".join(
        f"{i:>99}\n" for i in range(5000)
    )


async def test_a_server_that_drops_output_is_logged(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A Jupyter Server run by someone else may keep its rate limits: the loss is told, with the
    setting that ends it."""
    server = await asyncio.to_thread(
        start_local_server,
        tmp_path,
        args=[
            "--ZMQChannelsWebsocketConnection.limit_rate=True",
            # Jupyter's default (1,000 a second over 3 s) is only passed while the machine lets
            # the kernel print fast enough; a tenth of it is passed whatever the load.
            "--ZMQChannelsWebsocketConnection.iopub_msg_rate_limit=100",
        ],
    )
    try:
        async with JupyterClient(server.url, server.token, timeout=30) as client:
            kernel = await client.start_kernel()
            async with await client.connect_kernel(kernel["id"]) as conn:
                with caplog.at_level(logging.WARNING, logger="jupyter_sync.jupyter"):
                    assert (await conn.execute(FAST_PRINTS, timeout=60)).ok
            await client.shutdown_kernel(kernel["id"])
    finally:
        await asyncio.to_thread(server.close)
    assert any("limit_rate=False" in record.getMessage() for record in caplog.records), (
        "no warning about the server's rate limit"
    )


async def test_the_launched_servers_kernel_sockets_send_at_once(
    jupyter_server: LocalJupyterServer, kernel: Json
) -> None:
    """TCP_NODELAY on the launched server's kernel sockets: with tornado's default each of a
    kernel's back-to-back messages to the supernode waits ~40 ms (read off the socket, not
    timed; tests/jupyter/test_bridge_setup.py shows the default is off)."""
    assert await asyncio.to_thread(kernel_socket_nodelay, jupyter_server, kernel["id"])


def test_launcher_isolates_jupyter_directories(tmp_path: Path) -> None:
    server = LocalJupyterServer(tmp_path)
    try:
        env = server.environment()
        for key in ("JUPYTER_CONFIG_DIR", "JUPYTER_DATA_DIR", "JUPYTER_RUNTIME_DIR", "IPYTHONDIR"):
            assert env[key].startswith(str(server.log_path.parent))
        assert env["JUPYTER_NO_CONFIG"] == "1"
        command = server.command()
        assert "--ServerApp.ip=127.0.0.1" in command
        # The token by environment: a command line is visible to every user of the machine.
        assert env["JUPYTER_TOKEN"] == server.token
        assert not any(server.token in word for word in command)
        assert server.root_dir == tmp_path.resolve()
        assert server.pid is None and not server.alive
    finally:
        server.close()
    assert not server.log_path.parent.exists()
