"""The supernode: what running code through the relay adds, and what a long output costs.

Real processes: one daphne (the relay), one Jupyter Server with ipykernel, and the supernode as
``manage.py run_supernode`` (its own process, as deployed). Two clients of the relay use an
editor's token: one writes ``executions`` records, the other watches.

(a) **Latency to the first output.** ``print('x')`` on one kernel, three ways, interleaved, each
    repeated ``--repeat`` times:

    * ``jupyter_client``: an ``AsyncKernelClient`` on the kernel's connection file (ZMQ, no
      server in between): from ``execute()`` to the first ``stream`` message;
    * ``kernel websocket``: the Jupyter Server's channels websocket, the supernode's own path to
      the kernel (``jupyter_sync.jupyter.KernelConnection``);
    * ``supernode``: from writing the ``executions`` record (one client) to the first output
      appearing in the record at the other client;
    * ``supernode, still running``: the same for ``print('x', flush=True)`` followed by
      ``--sleep`` seconds of work, so the first output comes while the execution runs (with
      ``print('x')`` alone the execution often ends, and every output is written, before an
      output batch's interval has passed).

    * ``cell record``: a notebook cell run by id over the JSON protocol (an ``executions``
      record with ``document_id``/``cell_id``), to its first output in the cell as an
      already-connected client of the notebook's own datastore sees it;
    * ``cell REST``: the same cell run by ``POST /api/executions`` (``document_id``,
      ``cell_id``), to the same watcher.

    ``--pace 0.3`` starts one run every 0.3 s (a human pace, as in JupyterLab) instead of one
    right after the other. ``--trace`` has the supernode log wall-clock marks of each cell
    run's hops (``jupyter_sync.trace``) and prints their medians.

(b) **A cell printing ``--lines`` lines** (``for i in range(n): print(i)``), through the
    supernode and with jupyter_client: time to completion; the messages the kernel sent; the
    output items the record holds; the stored transactions and their bytes; and how much the
    encoded document grew.

Run: ``.venv/bin/python bench/supernode.py [--repeat 20] [--lines 100000] [--flush] [--postgres]
[--pace 0.3] [--trace]``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from queue import Empty

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import (
    ROOT,
    add_common_arguments,
    kib,
    load_average,
    median,
    print_table,
    setup_django,
    vendor,
)

WAIT = 120.0


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_common_arguments(parser)
    parser.add_argument("--repeat", type=int, default=20, help="runs of (a) per path")
    parser.add_argument("--lines", type=int, default=100_000, help="lines printed in (b)")
    parser.add_argument(
        "--flush",
        action="store_true",
        help="(b) prints with flush=True: a kernel message per line, as a progress bar sends",
    )
    parser.add_argument("--long-repeat", type=int, default=3, help="runs of (b) per path")
    parser.add_argument(
        "--nagle",
        action="store_true",
        help="leave Nagle's algorithm on for the Jupyter Server's kernel sockets (Jupyter "
        "Server's own connection class: tornado's default, as on a server without the bridge)",
    )
    parser.add_argument(
        "--sleep", type=float, default=0.3, help="(a) seconds 'still running' works after printing"
    )
    parser.add_argument(
        "--pace",
        type=float,
        default=0.0,
        help="(a) seconds between the starts of two runs (0.3: a human pace); 0: back to back",
    )
    parser.add_argument(
        "--trace",
        action="store_true",
        help="(a) the supernode logs each cell run's hops; print their medians",
    )
    return parser.parse_args()


async def interleaved(
    args: argparse.Namespace, kc, connection, writer, watcher, kernel_id, notebook, http
) -> tuple[dict[str, list[float]], dict[str, list[tuple[float, str, float]]]]:
    """(a): every path once per round, in turn; with ``--pace``, runs start a pace apart."""
    firsts: dict[str, list[float]] = {
        "jupyter_client": [],
        "websocket": [],
        "supernode": [],
        "supernode, still running": [],
        "cell record": [],
        "cell REST": [],
    }
    cell_runs: dict[str, list[tuple[float, str, float]]] = {"cell record": [], "cell REST": []}
    working = f"print('x', flush=True)\nimport time\ntime.sleep({args.sleep})"
    next_start = time.monotonic()

    async def paced() -> None:
        nonlocal next_start
        if args.pace:  # a human's pace, not a condition: nothing to wait for but the clock
            await asyncio.sleep(max(0.0, next_start - time.monotonic()))
            next_start = time.monotonic() + args.pace

    for _ in range(args.repeat):
        await paced()
        firsts["jupyter_client"].append((await via_zmq(kc, "print('x')"))[0])
        await paced()
        firsts["websocket"].append((await via_websocket(connection, "print('x')"))[0])
        await paced()
        firsts["supernode"].append(
            (await via_supernode(writer, watcher, kernel_id, "print('x')"))[0]
        )
        await paced()
        firsts["supernode, still running"].append(
            (await via_supernode(writer, watcher, kernel_id, working))[0]
        )
        for name, rest in (("cell record", False), ("cell REST", True)):
            await paced()
            run = await via_cell(notebook, http, rest=rest)
            firsts[name].append(run[0])
            cell_runs[name].append(run)
    return firsts, cell_runs


def ms(seconds: float) -> str:
    return f"{seconds * 1000:,.1f}"


class Processes:
    """daphne, a Jupyter Server and ``manage.py run_supernode``; all stopped at exit."""

    def __init__(self, url: str, data_dir: str, *, nagle: bool = False, trace: bool = False):
        from jupyter_sync.jupyter.launcher import LocalJupyterServer, free_port

        self.env = dict(os.environ, DATABASE_URL=url, DATA_DIR=data_dir, PYTHONUNBUFFERED="1")
        if trace:
            self.env["TRACE_LOG"] = "1"
        self.port = free_port()
        self.root = Path(tempfile.mkdtemp(prefix="rtc-bench-jupyter-"))
        stock = "jupyter_server.services.kernels.connection.channels.ZMQChannelsWebsocketConnection"
        self.jupyter = LocalJupyterServer(
            self.root,
            args=[f"--ServerApp.kernel_websocket_connection_class={stock}"] if nagle else [],
        )
        self.logs = Path(tempfile.mkdtemp(prefix="rtc-bench-logs-"))
        self.children: list[subprocess.Popen[bytes]] = []

    def spawn(self, name: str, command: list[str]) -> subprocess.Popen[bytes]:
        with (self.logs / f"{name}.log").open("wb") as log:
            child = subprocess.Popen(command, cwd=ROOT, env=self.env, stdout=log, stderr=log)
        self.children.append(child)
        return child

    async def start(self, service_token: str) -> None:
        import http.client

        await asyncio.to_thread(self.jupyter.start)
        daphne = str(Path(sys.executable).with_name("daphne"))
        self.spawn(
            "daphne",
            [daphne, "-b", "127.0.0.1", "-p", str(self.port), "rtc_project.asgi:application"],
        )
        deadline = time.monotonic() + 60
        while True:
            try:
                conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=2)
                conn.request("GET", "/admin/login/")
                conn.getresponse().read()
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise SystemExit(f"daphne did not start; see {self.logs}") from None
                await asyncio.sleep(0.1)  # polling a process that tells us nothing
        self.spawn(
            "supernode",
            [
                sys.executable,
                "manage.py",
                "run_supernode",
                "--jupyter-url",
                self.jupyter.url,
                "--jupyter-token",
                self.jupyter.token,
                "--server-url",
                self.ws_url,
                "--refresh",
                "5",
            ],
        )

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}"

    @property
    def http_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def marks(self) -> dict[str, dict[str, float]]:
        """The supernode's trace marks so far: execution id -> hop -> wall-clock time."""
        found: dict[str, dict[str, float]] = {}
        lines = [
            line
            for name in ("daphne.log", "supernode.log")
            for line in (self.logs / name).read_text(errors="replace").splitlines()
        ]
        for line in lines:
            _before, sep, rest = line.partition(" jupyter_sync.trace: trace ")
            if sep:
                execution_id, hop, when = rest.split()
                found.setdefault(execution_id, {}).setdefault(hop, float(when))
        return found

    def stop(self) -> None:
        for child in reversed(self.children):
            if child.poll() is None:
                child.send_signal(signal.SIGTERM)
                try:
                    child.wait(timeout=20)
                except subprocess.TimeoutExpired:
                    child.kill()
        self.jupyter.close()


def accounts() -> tuple[str, str]:
    from django.contrib.auth.models import User

    from jupyter_sync.supernode import account
    from relay.models import ApiToken
    from tables.permissions import grant

    service_token = account.ensure_service_account()
    datastore = account.ensure_jupyter_datastore()
    editor = User.objects.create_user(f"bench-{uuid.uuid4().hex[:6]}")
    grant(datastore, editor, "editor")
    return service_token, ApiToken.objects.create(user=editor).key


def stored_since(serial: int) -> tuple[int, int]:
    """Transactions of the jupyter datastore after ``serial``: how many, and their bytes."""
    from django.db.models import Sum
    from django.db.models.functions import Length

    from tables.models import Transaction

    rows = Transaction.objects.filter(datastore__name="jupyter", serial__gt=serial)
    total = rows.aggregate(bytes=Sum(Length("update")))["bytes"] or 0
    return rows.count(), total


def request(client, execution_id: str, kernel_id: str, code: str) -> None:
    from pycrdt import Map, Text

    with client.doc.transaction():
        client.doc.get("executions", type=Map)[execution_id] = Map(
            {"kernel_id": kernel_id, "code": Text(code), "status": "requested"}
        )


def record(client, execution_id: str) -> dict:
    from pycrdt import Map

    found = client.doc.get("executions", type=Map).get(execution_id)
    return found.to_py() if isinstance(found, Map) else {}


async def via_supernode(writer, watcher, kernel_id: str, code: str) -> tuple[float, float]:
    """Seconds from writing the record to its first output at the watcher, and to completion."""
    execution_id = f"x-{uuid.uuid4().hex[:8]}"
    start = time.perf_counter()
    request(writer, execution_id, kernel_id, code)
    await watcher.wait_for(lambda: bool(record(watcher, execution_id).get("outputs")), WAIT)
    first = time.perf_counter() - start
    await watcher.wait_for(
        lambda: record(watcher, execution_id).get("status") in ("completed", "error"), WAIT
    )
    done = time.perf_counter() - start
    if record(watcher, execution_id)["status"] != "completed":
        raise SystemExit(f"execution failed: {record(watcher, execution_id)}")
    return first, done


class Notebook:
    """One open notebook of one code cell ``c1``, a writer of its source and a watcher of its
    datastore (both connected before any run)."""

    CELL = "c1"

    def __init__(self, writer, doc, document_id: str):
        self.writer = writer  # a client of the jupyter datastore
        self.doc = doc  # a client of the notebook's datastore
        self.document_id = document_id

    @staticmethod
    def write_file(root: Path, path: str) -> None:
        import json

        cell = {
            "id": Notebook.CELL,
            "cell_type": "code",
            "source": "",
            "metadata": {},
            "outputs": [],
            "execution_count": None,
        }
        content = {
            "cells": [cell],
            "metadata": {"kernelspec": {"name": "python3", "display_name": "Python 3"}},
            "nbformat": 4,
            "nbformat_minor": 5,
        }
        (root / path).write_text(json.dumps(content))

    @staticmethod
    async def open(writer, document_id: str, path: str) -> None:
        from pycrdt import Map

        with writer.doc.transaction():
            writer.doc.get("documents", type=Map)[document_id] = Map(
                {"path": path, "request": "open", "requested_by": "bench"}
            )

        def opened() -> bool:
            found = record_in(writer, "documents", document_id)
            return found.get("status") == "open" and not found.get("request")

        await writer.wait_for(opened, WAIT)

    def cell(self):
        from pycrdt import Array

        return next(c for c in self.doc.doc.get("cells", type=Array) if c.get("id") == self.CELL)

    async def set_source(self, source: str) -> None:
        text = self.cell()["source"]
        with self.doc.doc.transaction():
            text.clear()
            text += source
        await self.doc.wait_acked(WAIT)

    def shows(self, token: str) -> bool:
        outputs = self.cell().get("outputs")
        return outputs is not None and any(token in str(o.get("text", "")) for o in outputs)


def record_in(client, table: str, record_id: str) -> dict:
    from pycrdt import Map

    found = client.doc.get(table, type=Map).get(record_id)
    return found.to_py() if isinstance(found, Map) else {}


async def via_cell(notebook: Notebook, http, *, rest: bool) -> tuple[float, str, float]:
    """Seconds from asking for the cell's run (a record, or POST /api/executions) to its first
    output at the notebook's watcher; the execution id; the wall-clock start."""
    from pycrdt import Map

    token = uuid.uuid4().hex[:8]
    await notebook.set_source(f"print('{token}')")
    execution_id = f"c-{token}"
    wall = time.time()
    start = time.perf_counter()
    posted = None
    if rest:
        posted = asyncio.ensure_future(
            http.post(
                "/api/executions",
                json={"document_id": notebook.document_id, "cell_id": Notebook.CELL},
            )
        )
    else:
        with notebook.writer.doc.transaction():
            notebook.writer.doc.get("executions", type=Map)[execution_id] = Map(
                {
                    "document_id": notebook.document_id,
                    "cell_id": Notebook.CELL,
                    "status": "requested",
                }
            )
    await notebook.doc.wait_for(lambda: notebook.shows(token), WAIT)
    first = time.perf_counter() - start
    if posted is not None:
        response = await posted
        response.raise_for_status()
        execution_id = response.json()["id"]
    await notebook.writer.wait_for(
        lambda: (
            record_in(notebook.writer, "executions", execution_id).get("status")
            in ("completed", "error")
        ),
        WAIT,
    )
    return first, execution_id, wall


HOPS = ("seen", "turn", "session", "request", "iopub", "written")
REST_HOPS = ("api", "checked", "committed", *HOPS)


def hop_rows(
    runs: list[tuple[float, str, float]],
    marks: dict[str, dict[str, float]],
    label: str,
    hops: tuple[str, ...] = HOPS,
) -> list[list[str]]:
    """Median ms of each hop of ``runs`` (start -> seen -> ... -> written -> watcher)."""
    steps: dict[str, list[float]] = {}
    for first, execution_id, wall in runs:
        found = marks.get(execution_id, {})
        if not all(hop in found for hop in hops):
            continue
        before = wall
        for hop in hops:
            steps.setdefault(hop, []).append(found[hop] - before)
            before = found[hop]
        steps.setdefault("watcher", []).append(wall + first - before)
    return [
        [label, f"-> {hop}", ms(median(values)), str(len(values))] for hop, values in steps.items()
    ]


async def via_zmq(kc, code: str) -> tuple[float, float, int]:
    """jupyter_client: seconds to the first stream message and to idle; messages received.

    A subscriber that falls behind loses messages past ZMQ's high-water mark (1000), idle
    among them: after the shell reply, one second of iopub silence also ends the run.
    """
    start = time.perf_counter()
    msg_id = kc.execute(code)
    first = None
    messages = 0
    replied = False
    while True:
        try:
            message = await kc.get_iopub_msg(timeout=1.0)
        except Empty:
            if replied:
                print("jupyter_client: idle lost (ZMQ high-water mark); ended on the reply")
                return first or float("nan"), time.perf_counter() - start - 1.0, messages
            if time.perf_counter() - start > WAIT:
                raise
            with contextlib.suppress(Empty):
                await kc.get_shell_msg(timeout=0.01)
                replied = True
            continue
        if message["parent_header"].get("msg_id") != msg_id:
            continue
        kind = message["msg_type"]
        if kind == "stream":
            messages += 1
            if first is None:
                first = time.perf_counter() - start
        elif kind == "status" and message["content"]["execution_state"] == "idle":
            break
    if not replied:
        await kc.get_shell_msg(timeout=WAIT)
    return first or float("nan"), time.perf_counter() - start, messages


async def via_websocket(connection, code: str) -> tuple[float, float]:
    start = time.perf_counter()
    first: list[float] = []

    def on_output(message) -> None:
        if not first and message.get("msg_type") == "stream":
            first.append(time.perf_counter() - start)

    await connection.execute(code, on_output=on_output)
    return first[0], time.perf_counter() - start


async def main(args: argparse.Namespace) -> None:
    import httpx
    from channels.db import database_sync_to_async
    from jupyter_client.asynchronous import AsyncKernelClient
    from rtc_client import DatastoreClient

    from jupyter_sync.jupyter import JupyterClient

    nagle = "Nagle on (tornado's default)" if args.nagle else "TCP_NODELAY (the launcher's)"
    print(f"supernode benchmark on {vendor()}; kernel sockets: {nagle}; {load_average()}")
    service_token, editor_token = await database_sync_to_async(accounts)()
    processes = Processes(
        os.environ["DATABASE_URL"], os.environ["DATA_DIR"], nagle=args.nagle, trace=args.trace
    )
    Notebook.write_file(processes.root, "first.ipynb")
    await processes.start(service_token)
    try:
        async with (
            JupyterClient(processes.jupyter.url, processes.jupyter.token) as jupyter,
            DatastoreClient(processes.ws_url, "jupyter", token=editor_token) as writer,
            DatastoreClient(processes.ws_url, "jupyter", token=editor_token) as watcher,
            httpx.AsyncClient(
                base_url=processes.http_url,
                headers={"Authorization": f"Token {editor_token}"},
                timeout=WAIT,
            ) as http,
        ):
            await Notebook.open(writer, "first", "first.ipynb")
            kernel_id = (await jupyter.start_kernel("python3"))["id"]
            kc = AsyncKernelClient()
            kc.load_connection_file(processes.jupyter.runtime_dir / f"kernel-{kernel_id}.json")
            kc.start_channels()
            await kc.wait_for_ready(timeout=WAIT)
            connection = await jupyter.connect_kernel(kernel_id)
            # Warm up every path (imports, the supernode's kernel connection).
            await via_zmq(kc, "print('warm')")
            await via_websocket(connection, "print('warm')")
            await via_supernode(writer, watcher, kernel_id, "print('warm')")
            async with DatastoreClient(
                processes.ws_url, "doc-first", token=editor_token
            ) as doc_client:
                notebook = Notebook(writer, doc_client, "first")
                await via_cell(notebook, http, rest=False)  # the notebook's kernel starts
                await via_cell(notebook, http, rest=True)
                firsts, cell_runs = await interleaved(
                    args, kc, connection, writer, watcher, kernel_id, notebook, http
                )
            base = median(firsts["websocket"])
            print_table(
                ["path", "first output ms (median)", "min", "max", "added ms", "ratio vs ws"],
                [
                    [
                        name,
                        ms(median(values)),
                        ms(min(values)),
                        ms(max(values)),
                        ms(median(values) - base),
                        f"{median(values) / base:.1f}x",
                    ]
                    for name, values in firsts.items()
                ],
                title=f"(a) print('x'): execute to first output, {args.repeat} runs each"
                + (f", one run every {args.pace:g} s" if args.pace else ""),
            )
            print(
                f"jupyter_client / websocket: "
                f"{median(firsts['jupyter_client']) / base:.2f}x; {load_average()}"
            )
            if args.trace:
                marks = processes.marks()
                print_table(
                    ["path", "hop", "ms (median)", "runs"],
                    [
                        *hop_rows(cell_runs["cell record"], marks, "cell record"),
                        *hop_rows(cell_runs["cell REST"], marks, "cell REST", REST_HOPS),
                    ],
                    title="(a) per hop, cell runs: start -> (REST: the view called -> the cell "
                    "checked -> the record committed) -> the supernode sees the record -> its "
                    "turn -> session found -> execute_request -> first output message -> "
                    "written -> the watcher sees it",
                )

            flush = ", flush=True" if args.flush else ""
            code = f"for i in range({args.lines}):\n    print(i{flush})"
            rows = []
            for _ in range(args.long_repeat):
                _first, zmq_done, messages = await via_zmq(kc, code)
                serial = watcher.serial
                size_before = len(watcher.doc.get_update())
                execution_id = f"long-{uuid.uuid4().hex[:6]}"
                start = time.perf_counter()
                request(writer, execution_id, kernel_id, code)
                await watcher.wait_for(
                    lambda execution_id=execution_id: (
                        record(watcher, execution_id).get("status") in ("completed", "error")
                    ),
                    WAIT,
                )
                done = time.perf_counter() - start
                await writer.wait_acked(WAIT)
                outputs = record(watcher, execution_id)["outputs"]
                count, patch_bytes = await database_sync_to_async(stored_since)(serial)
                rows.append(
                    (
                        zmq_done,
                        done,
                        messages,
                        len(outputs),
                        len(outputs[0]["text"]) if outputs else 0,
                        count,
                        patch_bytes,
                        len(watcher.doc.get_update()) - size_before,
                    )
                )
            zmq_done = median(r[0] for r in rows)
            done = median(r[1] for r in rows)
            print_table(
                [
                    "path",
                    "completion s (median)",
                    "ratio",
                    "stream messages",
                    "output items",
                    "text chars",
                    "transactions stored",
                    "patch bytes",
                    "document grew",
                ],
                [
                    [
                        "jupyter_client",
                        f"{zmq_done:.2f}",
                        "1.0x",
                        str(int(median(r[2] for r in rows))),
                        "-",
                        "-",
                        "-",
                        "-",
                        "-",
                    ],
                    [
                        "supernode",
                        f"{done:.2f}",
                        f"{done / zmq_done:.1f}x",
                        "-",
                        str(int(median(r[3] for r in rows))),
                        f"{int(median(r[4] for r in rows)):,}",
                        str(int(median(r[5] for r in rows))),
                        kib(median(r[6] for r in rows)),
                        kib(median(r[7] for r in rows)),
                    ],
                ],
                title=f"(b) printing {args.lines:,} lines{' (flush=True)' if args.flush else ''}, "
                f"{args.long_repeat} runs each",
            )
            kc.stop_channels()
            await connection.close()
            await jupyter.shutdown_kernel(kernel_id)
    finally:
        await asyncio.to_thread(processes.stop)
        print(f"\n{load_average()}")


if __name__ == "__main__":
    arguments = parse_args()
    setup_django(arguments)
    asyncio.run(main(arguments))
