"""Benchmark: the relay's fan-out over y-websocket, against real server processes.

    .venv/bin/python bench/fanout.py                                  # everything (a, b, peer)
    .venv/bin/python bench/fanout.py --readers 1,10,100 --rate 50 --seconds 15 --repeat 3
    .venv/bin/python bench/fanout.py --skip-peer --skip-redis         # (a) only
    .venv/bin/python bench/fanout.py --profile --readers 100          # (a) under cProfile
    .venv/bin/python bench/fanout.py --profile --profiler yappi       # every thread (yappi)

One writer sends ``--rate`` updates a second (each a small insert into the Text ``t`` of its
pycrdt Doc, carrying a sequence number ``#0000042#``) to a room that ``--readers`` y-websocket
clients joined; every reader records when each update arrives. Latency = receive time - send time
(both ``time.perf_counter`` in this process). Configurations, side by side in the same run:

* (a) one daphne process, SQLite, the in-memory channel layer;
* (u) the same under uvicorn with uvloop and httptools (``--servers daphne,uvicorn``; uvicorn run
  by ``--uvicorn-python``, whose environment must hold the project's requirements too);
* (s) the same daphne without the fast send path of ``relay/daphne_send.py`` (``daphne-stock``):
  every frame through ``websocket.send``, the generic path any other ASGI server takes;
* (b) two daphne processes, PostgreSQL and Redis (``REDIS_URL``); the writer on worker 1, the
  readers split between the workers (worker 2 first, so one reader is a cross-worker reader);
* (peer) pycrdt-websocket's ``ASGIServer(WebsocketServer())`` under Hypercorn
  (``bench/fanout_peer_server.py``, run with a separate virtualenv, ``--peer-python``).

Then: memory per idle connection (VmRSS of the server process before and after opening
``--idle`` connections that completed the handshake) and join time (connect + handshake until
sync step 2 arrives) for a datastore with ``--history`` transactions, against a small one; and
the server's memory before and after ``--churn`` connections connect, sync and close (ours read
inside the process after ``gc.collect()``, ``bench/memprobe.py``; ``--tracemalloc`` adds Python's
live allocations).

Everything runs on throwaway state: ``DATA_DIR`` is a temporary directory (SQLite in it), the
PostgreSQL database (``--postgres-url``, default ``rtc_fanout``) is dropped and recreated, Redis is
used on its own database number (``--redis-url``, default ``/5``). See bench/FANOUT.md.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import random
import re
import shutil
import signal
import socket
import sqlite3
import statistics
import struct
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
NODE_SERVER = ROOT / "bench/node/node_modules/@y/websocket-server/src/server.js"
PEERS = ("node", "peer")  # reference servers: the room is the URL path, nothing stored
PEER_NAMES = {"node": "Node y-websocket", "peer": "pycrdt-websocket"}
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from rtc_client.wire import yjs_protocol  # noqa: E402  (pure: no Django)

from bench import memprobe  # noqa: E402  (no Django)
from bench.common import percentile, postgres_drop, postgres_recreate  # noqa: E402  (no Django)

APPLICATION = "rtc_project.asgi:application"
USERNAME = "fanout-bench"
MARK = re.compile(rb"#(\d{7})#")
MARK_TEXT = re.compile(r"#(\d{7})#")
FANOUT_DATABASE_PREFIXES = ("rtc_fanout", "rtc_bench", "bench")
CLK_TCK = os.sysconf("SC_CLK_TCK")
SYNC_UPDATE_PREFIX = bytes([yjs_protocol.MessageType.SYNC, yjs_protocol.SyncType.UPDATE])
TARGET_READERS, TARGET_RATE, TARGET_P99_MS = 100, 50, 25.0
SERVER_KEYS = {"daphne": "a", "uvicorn": "u", "daphne-stock": "s"}  # one worker on SQLite each
PROJECT_OF = {"u": "a", "s": "a"}  # (a)'s database: the same site under another server


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


# --- Processes ------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def proc_cpu_seconds(pid: int) -> float:
    """utime + stime of a process, every thread included."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def thread_cpu_seconds(pid: int) -> dict[int, float]:
    out = {}
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            with open(f"/proc/{pid}/task/{tid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        out[int(tid)] = (int(fields[11]) + int(fields[12])) / CLK_TCK
    return out


class Server:
    """One server process on 127.0.0.1:<port>, its output in a log file."""

    def __init__(
        self, name: str, command: list[str], env: dict[str, str], port: int, log_dir: Path
    ):
        self.name = name
        self.command = command
        self.env = env
        self.port = port
        self.log_path = log_dir / f"{name}.log"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> Server:
        with self.log_path.open("ab") as out:
            self.process = subprocess.Popen(
                self.command,
                cwd=ROOT,
                env=self.env,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        return self

    def wait_ready(self, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while True:
            if self.process is None or self.process.poll() is not None:
                raise RuntimeError(f"{self.name} exited; output:\n{self.log}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1):
                    return
            except OSError:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"{self.name} not listening; output:\n{self.log}") from None
                time.sleep(0.1)

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    @property
    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-5000:]
        except FileNotFoundError:
            return ""

    def check(self) -> None:
        if self.process is None or self.process.poll() is not None:
            raise RuntimeError(f"{self.name} died; output:\n{self.log}")

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 30.0) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(sig)
        try:
            self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=10)


def daphne_script() -> str:
    sibling = Path(sys.executable).with_name("daphne")
    if not sibling.exists():
        raise SystemExit(f"daphne not found next to {sys.executable}")
    return str(sibling)


# --- Databases ------------------------------------------------------------------------------


@dataclass
class Database:
    url: str

    @property
    def is_postgres(self) -> bool:
        return self.url.startswith(("postgres://", "postgresql://"))

    def query_one(self, sql: str, params: Sequence[Any] = ()) -> tuple:
        if self.is_postgres:
            import psycopg

            with psycopg.connect(self.url, autocommit=True) as conn:
                return conn.execute(sql.replace("?", "%s"), params).fetchone()
        conn = sqlite3.connect(self.url.removeprefix("sqlite:///"), timeout=30)
        try:
            return conn.execute(sql, params).fetchone()
        finally:
            conn.close()

    def stored(self, name: str) -> tuple[int, int]:
        """(count of transactions, last_serial) of a datastore."""
        row = self.query_one(
            "SELECT d.last_serial, (SELECT count(*) FROM tables_transaction t "
            "WHERE t.datastore_id = d.id) FROM tables_datastore d WHERE d.name = ?",
            (name,),
        )
        return int(row[1]), int(row[0])


class Project:
    """The project's environment for one database: manage.py, daphne, history writes."""

    def __init__(self, database: Database, data_dir: Path, extra: dict[str, str]):
        self.database = database
        self.env = dict(os.environ)
        self.env.update(
            DJANGO_SETTINGS_MODULE="rtc_project.settings",
            DATABASE_URL=database.url,
            DATA_DIR=str(data_dir),
            LOG_LEVEL="WARNING",
            PYTHONUNBUFFERED="1",
        )
        self.env.pop("REDIS_URL", None)
        self.env.update(extra)
        self.token = ""

    def python(self, what: str, *args: str) -> str:
        """``python <args>`` in this site's environment: its output, or RuntimeError."""
        done = subprocess.run(
            [sys.executable, *args], cwd=ROOT, env=self.env, capture_output=True, text=True
        )
        if done.returncode != 0:
            raise RuntimeError(f"{what} failed:\n{done.stdout}{done.stderr}")
        return done.stdout.strip()

    def manage(self, *args: str) -> str:
        return self.python(f"manage.py {' '.join(args)}", "manage.py", *args)

    def provision(self, datastores: Iterable[str]) -> None:
        self.manage("migrate", "--verbosity", "0")
        if self.database.is_postgres:
            # Channel-layer group names carry the datastore's primary key and Redis pub/sub
            # ignores the database number: start far from the small keys test suites use.
            self.database.query_one("SELECT setval('tables_datastore_id_seq', 900000)")
        self.token = self.manage("create_token", USERNAME, "--create-user").splitlines()[-1]
        for name in datastores:
            self.manage("create_datastore", name, "--schema", "freeform", "--owner", USERNAME)

    def write_history(self, name: str, updates_file: Path) -> str:
        return self.python("writing history", __file__, "--write-history", name, str(updates_file))

    def uvicorn(self, name: str, log_dir: Path, python: str, ws: str) -> Server:
        """One uvicorn process (uvloop, httptools, ``ws`` for WebSockets), set up as daphne is
        by scripts/run: messages up to ``RTC_MAX_MESSAGE_BYTES``, no compression (daphne offers
        none; uvicorn's default would deflate every frame), no access log."""
        port = free_port()
        limit = self.env.get("RTC_MAX_MESSAGE_BYTES", str(16 * 1024 * 1024))
        command = [
            python, "-m", "uvicorn", "--host", "127.0.0.1", "--port", str(port),
            "--loop", "uvloop", "--http", "httptools", "--ws", ws,
            "--ws-max-size", limit, "--ws-per-message-deflate", "false",
            "--lifespan", "off", "--no-access-log", "--log-level", "warning", APPLICATION,
        ]  # fmt: skip
        return Server(name, command, dict(self.env), port, log_dir)

    def daphne(
        self,
        name: str,
        log_dir: Path,
        redis_url: str | None = None,
        profile: tuple[str, Path, str] | None = None,
        stock: bool = False,
        probe: Path | None = None,
        traced: bool = False,
    ) -> Server:
        """A daphne process; with ``profile`` (profiler, output, yappi's path) under a profiler
        that SIGUSR1 starts and SIGUSR2 stops (see ``run_daphne_profiled``); with ``probe``,
        answering SIGUSR1 with its memory figures in that file (``bench.memprobe``), under
        tracemalloc if ``traced``."""
        port = free_port()
        env = dict(self.env)
        if redis_url:
            env["REDIS_URL"] = redis_url
            # Channel names of its own on a Redis that others may share (pub/sub ignores the
            # database number).
            env["REDIS_PREFIX"] = f"rtc-fanout-{os.getpid()}"
        daphne_args = ["-b", "127.0.0.1", "-p", str(port), APPLICATION]
        command = [daphne_script(), *daphne_args]
        if profile is not None:
            profiler, output, yappi_path = profile
            command = [sys.executable, __file__, PROFILED, profiler, str(output), *daphne_args]
            if profiler == "yappi":
                env["PYTHONPATH"] = yappi_path
        elif stock:
            command = [sys.executable, __file__, STOCK, *daphne_args]
        elif probe is not None:
            command = [sys.executable, __file__, PROBED, *daphne_args]
            env[memprobe.PROBE_ENV] = str(probe)
            if traced:
                env["PYTHONTRACEMALLOC"] = "1"
        return Server(name, command, env, port, log_dir)


PROFILED = "--run-daphne-profiled"
STOCK = "--run-daphne-stock"
PROBED = "--run-daphne-probed"


def run_daphne_stock(daphne_args: list[str]) -> None:
    """Child process: daphne without ``relay.daphne_send`` (every frame through
    ``websocket.send``, as under any other ASGI server): what the fast path saves."""
    from daphne.cli import CommandLineInterface

    from relay import daphne_send

    daphne_send.install = lambda: False
    CommandLineInterface().run(daphne_args)


def run_daphne_profiled(profiler: str, output: str, daphne_args: list[str]) -> None:
    """Child process: daphne in this process, profiled between SIGUSR1 and SIGUSR2.

    cProfile sees the main thread only (Twisted's reactor and the asyncio loop); yappi sees every
    thread, including the one ``database_sync_to_async`` runs the write path on (CPU clock).
    """
    from daphne.cli import CommandLineInterface

    if profiler == "yappi":
        import yappi

        yappi.set_clock_type("cpu")
        start = lambda: (yappi.clear_stats(), yappi.start(builtins=True))  # noqa: E731
        stop = yappi.stop

        def dump() -> None:
            columns = {0: ("name", 110), 1: ("ncall", 10), 2: ("tsub", 8), 3: ("ttot", 8)}
            with open(output, "w") as out:
                out.write("Threads (CPU seconds while profiling):\n")
                yappi.get_thread_stats().print_all(out=out)
                for order in ("tsub", "ttot"):
                    out.write(f"\nFunctions, every thread, by {order}:\n")
                    stats = yappi.get_func_stats().sort(order)
                    stats._as_list = stats._as_list[:PROFILE_TOP]
                    stats.print_all(out=out, columns=columns)

    else:
        import cProfile

        prof = cProfile.Profile()
        start, stop = prof.enable, prof.disable

        def dump() -> None:
            prof.dump_stats(output)

    signal.signal(signal.SIGUSR1, lambda *_: start())
    signal.signal(signal.SIGUSR2, lambda *_: stop())
    try:
        CommandLineInterface().run(daphne_args)
    finally:
        stop()
        dump()


def write_history_main(name: str, updates_file: str) -> None:
    """Child process: write the updates in ``updates_file`` through the write path."""
    import django

    django.setup()
    from tables import service
    from tables.service import Proposal, Status

    updates = read_updates(Path(updates_file))
    datastore = service.get_datastore(name)
    batch_size = 250
    started = time.perf_counter()
    for start in range(0, len(updates), batch_size):
        chunk = updates[start : start + batch_size]
        outcomes = service.write(
            datastore,
            [
                (Proposal(update, txid=f"h-{start + i}", store_id="history"), None)
                for i, update in enumerate(chunk)
            ],
        )
        bad = [o for o in outcomes if o.status is not Status.STORED]
        if bad:
            raise SystemExit(f"history write refused: {bad[0]}")
    datastore.refresh_from_db()
    print(
        f"{len(updates)} transactions in {time.perf_counter() - started:.1f}s, "
        f"last_serial {datastore.last_serial}, checkpoint at {datastore.checkpoint_serial}"
    )


# --- History (the same updates for our server and the peer) --------------------------------


def make_history(count: int, seed: int = 1) -> tuple[list[bytes], str]:
    """``count`` keystrokes on one Text: typing at a cursor, backspaces, cursor jumps."""
    from pycrdt import Doc, Text

    rng = random.Random(seed)
    doc = Doc()
    text = doc.get("t", type=Text)
    updates: list[bytes] = []
    subscription = doc.observe(lambda event: updates.append(event.update))
    cursor = 0
    letters = "abcdefghijklmnopqrstuvwxyz     \n"
    for _ in range(count):
        length = len(text)
        roll = rng.random()
        if roll < 0.05 and length > 0:
            cursor = rng.randrange(length + 1)
        if roll > 0.93 and cursor > 0:
            del text[cursor - 1 : cursor]
            cursor -= 1
        else:
            text.insert(cursor, rng.choice(letters))
            cursor += 1
    doc.unobserve(subscription)
    return updates, str(text)


def save_updates(updates: list[bytes], path: Path) -> None:
    with path.open("wb") as f:
        for update in updates:
            f.write(struct.pack(">I", len(update)))
            f.write(update)


def read_updates(path: Path) -> list[bytes]:
    data = path.read_bytes()
    updates, pos = [], 0
    while pos < len(data):
        (length,) = struct.unpack_from(">I", data, pos)
        pos += 4
        updates.append(data[pos : pos + length])
        pos += length
    return updates


# --- Clients --------------------------------------------------------------------------------


EMPTY_STATE_VECTOR = b"\x00"
EMPTY_UPDATE = b"\x00\x00"


class Refused(Exception):
    pass


async def open_client(url: str, doc: Any = None, timeout: float = 30.0) -> tuple[Any, bytes]:
    """Connect and do the y-websocket handshake as the stock provider does: send sync step 1 on
    open, answer the server's step 1 with step 2, wait for the server's step 2 (returned)."""
    from websockets.asyncio.client import connect

    async with asyncio.timeout(timeout):
        ws = await connect(
            url, compression=None, max_size=None, ping_interval=None, close_timeout=2
        )
        try:
            state = doc.get_state() if doc is not None else EMPTY_STATE_VECTOR
            await ws.send(yjs_protocol.sync_step1(state))
            while True:
                message = yjs_protocol.parse(await ws.recv())
                if message.type is yjs_protocol.MessageType.SYNC:
                    if message.sync_type is yjs_protocol.SyncType.STEP1:
                        diff = doc.get_update(message.payload) if doc is not None else EMPTY_UPDATE
                        await ws.send(yjs_protocol.sync_step2(diff))
                    elif message.sync_type is yjs_protocol.SyncType.STEP2:
                        return ws, message.payload
                elif message.type is yjs_protocol.MessageType.AUTH:
                    raise Refused(message.reason)
        except BaseException:
            await ws.close()
            raise


async def open_many(urls: Sequence[str], concurrency: int = 20) -> list[Any]:
    semaphore = asyncio.Semaphore(concurrency)

    async def one(url: str) -> Any:
        async with semaphore:
            ws, _ = await open_client(url)
            return ws

    results = await asyncio.gather(*(one(url) for url in urls), return_exceptions=True)
    failures = [r for r in results if isinstance(r, BaseException)]
    if failures:
        log(f"  {len(failures)} of {len(urls)} connections failed, e.g. {failures[0]!r}")
    return [r for r in results if not isinstance(r, BaseException)]


async def close_all(sockets: Iterable[Any]) -> None:
    await asyncio.gather(*(ws.close() for ws in sockets), return_exceptions=True)


class Reader:
    def __init__(self, url: str, worker: str):
        self.url = url
        self.worker = worker
        self.received: dict[int, float] = {}
        self.frames = 0
        self.denied = 0
        self.closed: str | None = None
        self.ws: Any = None
        self.task: asyncio.Task | None = None

    async def join(self) -> None:
        self.ws, _ = await open_client(self.url)

    def start(self) -> None:
        self.task = asyncio.get_running_loop().create_task(self._run())

    async def _run(self) -> None:
        from websockets.exceptions import ConnectionClosed

        received = self.received
        try:
            async for frame in self.ws:
                now = time.perf_counter()
                if frame[:2] == SYNC_UPDATE_PREFIX:
                    self.frames += 1
                    for match in MARK.finditer(frame):
                        received.setdefault(int(match.group(1)), now)
                elif frame[:1] == b"\x02":
                    self.denied += 1
        except ConnectionClosed as closed:
            self.closed = f"{closed.rcvd.code if closed.rcvd else '?'}"

    async def stop(self) -> None:
        if self.ws is not None:
            with contextlib.suppress(Exception):
                await self.ws.close()
        if self.task is not None:
            self.task.cancel()
            with contextlib.suppress(BaseException):
                await self.task


async def count_in_doc(url: str) -> int:
    """Join with a fresh Doc and count the distinct sequence numbers in its Text ``t``."""
    from pycrdt import Doc, Text

    ws, step2 = await open_client(url)
    await ws.close()
    doc = Doc()
    doc.apply_update(step2)
    return len(set(MARK_TEXT.findall(str(doc.get("t", type=Text)))))


# --- One fan-out run --------------------------------------------------------------------------


@dataclass
class Target:
    """Where a configuration's writer and readers connect."""

    key: str
    label: str
    servers: list[Server]
    database: Database | None
    token: str = ""

    def url(self, server: Server, name: str) -> str:
        if self.key in PEERS:
            return f"ws://127.0.0.1:{server.port}/{name}"
        return f"ws://127.0.0.1:{server.port}/ws/yjs/{name}?token={self.token}"

    def writer_url(self, name: str) -> str:
        return self.url(self.servers[0], name)

    def reader_urls(self, name: str, count: int) -> list[tuple[str, str]]:
        if len(self.servers) == 1:
            return [(self.url(self.servers[0], name), "w1")] * count
        # Worker 2 first: a single reader is a cross-worker reader.
        return [
            (self.url(self.servers[1], name), "w2")
            if i % 2 == 0
            else (self.url(self.servers[0], name), "w1")
            for i in range(count)
        ]


@dataclass
class RunResult:
    key: str
    readers: int
    connected: int
    sent: int
    send_rate: float
    stored: str
    stored_ok: bool
    catch_up: float  # seconds after the run until everything was stored (ours)
    in_doc: int
    delivered: float  # fraction of (reader, update) pairs
    deliveries_per_s: float
    p50: float
    p99: float
    p_max: float
    server_cpu: float  # percent of one core, all server processes
    cpu_per_delivery: float  # server CPU microseconds per (update, reader) pair received
    bench_cpu: float
    by_worker: dict[str, tuple[float, float, float]] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)


async def run_fanout(
    target: Target,
    name: str,
    readers_count: int,
    rate: float,
    seconds: float,
    warmup: float,
    hooks: tuple[Any, Any] | None = None,
) -> RunResult:
    from pycrdt import Doc, Text

    for server in target.servers:
        server.check()
    readers = [Reader(url, worker) for url, worker in target.reader_urls(name, readers_count)]
    semaphore = asyncio.Semaphore(20)

    async def join(reader: Reader) -> None:
        async with semaphore:
            await reader.join()

    # The first reader alone (it creates the room), then the others 20 at a time. Concurrent
    # first joiners of a new pycrdt-websocket room can wait forever (see bench/FANOUT.md).
    results: list[Any] = await asyncio.gather(join(readers[0]), return_exceptions=True)
    results += await asyncio.gather(*(join(r) for r in readers[1:]), return_exceptions=True)
    problems = []
    failed = [r for r in results if isinstance(r, BaseException)]
    if failed:
        problems.append(f"{len(failed)} readers failed to join within 30 s ({failed[0]!r})")
    readers = [r for r, res in zip(readers, results, strict=True) if not isinstance(res, Exception)]
    for reader in readers:
        reader.start()

    doc = Doc()
    text = doc.get("t", type=Text)
    writer, step2 = await open_client(target.writer_url(name), doc)
    doc.apply_update(step2)
    updates: list[bytes] = []
    subscription = doc.observe(lambda event: updates.append(event.update))
    writer_denied: list[str] = []

    async def drain_writer() -> None:
        with contextlib.suppress(Exception):
            async for frame in writer:
                if frame[:1] == b"\x02":
                    writer_denied.append(yjs_protocol.parse(frame).reason)

    drain = asyncio.get_running_loop().create_task(drain_writer())
    await asyncio.sleep(0.5)

    total = max(1, round(rate * seconds))
    sends: list[float] = [0.0] * total
    cpu_before = sum(proc_cpu_seconds(s.pid) for s in target.servers)
    bench_before = time.process_time()
    if hooks:
        hooks[0]()
    wall_before = time.perf_counter()
    start = time.perf_counter() + 0.01
    for seq in range(total):
        delay = start + seq / rate - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        updates.clear()
        text += f"#{seq:07d}#"
        frame = yjs_protocol.sync_update(updates[0])
        sends[seq] = time.perf_counter()
        await writer.send(frame)
    send_seconds = sends[-1] - sends[0] if total > 1 else 0.0
    # Drain: until every reader has everything, or nothing arrived for 3 s (at most 15 s).
    deadline = time.perf_counter() + 15
    last_progress, last_count = time.perf_counter(), -1
    while time.perf_counter() < deadline:
        count = sum(len(r.received) for r in readers)
        if count >= total * len(readers):
            break
        if count != last_count:
            last_progress, last_count = time.perf_counter(), count
        elif time.perf_counter() - last_progress > 3:
            break
        await asyncio.sleep(0.05)
    wall = time.perf_counter() - wall_before
    if hooks:
        hooks[1]()
    server_seconds = sum(proc_cpu_seconds(s.pid) for s in target.servers) - cpu_before
    server_cpu = server_seconds / wall * 100
    bench_cpu = (time.process_time() - bench_before) / wall * 100
    doc.unobserve(subscription)

    skip = min(total - 1, int(warmup * rate))
    latencies: list[float] = []
    per_worker: dict[str, list[float]] = {}
    worker_delivered: dict[str, list[int]] = {}  # worker: [delivered, expected]
    delivered = 0
    for reader in readers:
        got = sum(1 for seq in reader.received if 0 <= seq < total)
        delivered += got
        counts = worker_delivered.setdefault(reader.worker, [0, 0])
        counts[0] += got
        counts[1] += total
        mine = [
            (t - sends[seq]) * 1000 for seq, t in reader.received.items() if skip <= seq < total
        ]
        latencies += mine
        per_worker.setdefault(reader.worker, []).extend(mine)
        if reader.denied:
            problems.append(f"a reader got {reader.denied} permission-denied messages")
        if reader.closed:
            problems.append(f"a reader was closed ({reader.closed})")
    if writer_denied:
        problems.append(f"writer denied {len(writer_denied)}x: {writer_denied[0]}")

    async def late_joiner() -> int:
        """Distinct updates in a late joiner's document."""
        try:
            return await count_in_doc(target.writer_url(name))
        except Exception as error:
            problems.append(f"the late joiner failed: {error!r}")
            return -1

    catch_up = 0.0
    if target.database is None:
        # While the writer still holds the room: pycrdt-websocket drops a room's document when
        # its last client leaves.
        in_doc = await late_joiner()
        stored, stored_ok = f"{in_doc}/{total} (doc)", in_doc == total
    else:
        stored_end, _ = target.database.stored(name)
    await close_all([writer])
    drain.cancel()
    await asyncio.gather(*(r.stop() for r in readers), return_exceptions=True)
    if target.database is not None:
        # A server that fell behind goes on storing what it had queued: wait for it, so that
        # the next run does not share the machine with this run's backlog.
        count, waited, last_change = stored_end, time.perf_counter(), time.perf_counter()
        while count < total and time.perf_counter() - last_change < 20:
            await asyncio.sleep(0.2)
            new, _ = target.database.stored(name)
            if new != count:
                count, last_change = new, time.perf_counter()
        catch_up = time.perf_counter() - waited if stored_end < total else 0.0
        count, last_serial = target.database.stored(name)
        in_doc = await late_joiner()
        stored = f"{stored_end}/{total}"
        stored_ok = count == total == last_serial and in_doc == total
        if count != total:
            problems.append(f"only {count} of {total} updates were ever stored")
        if last_serial != count:
            problems.append(f"last_serial {last_serial} != transactions {count}")
    if in_doc != total:
        problems.append(f"a late joiner's document has {in_doc} of {total} updates")

    return RunResult(
        key=target.key,
        readers=readers_count,
        connected=len(readers),
        sent=total,
        send_rate=(total - 1) / send_seconds if send_seconds else float("nan"),
        stored=stored,
        stored_ok=stored_ok,
        catch_up=catch_up,
        in_doc=in_doc,
        delivered=delivered / (total * len(readers)) if readers else float("nan"),
        deliveries_per_s=delivered / send_seconds if send_seconds else float("nan"),
        p50=percentile(latencies, 50),
        p99=percentile(latencies, 99),
        p_max=max(latencies) if latencies else float("nan"),
        server_cpu=server_cpu,
        cpu_per_delivery=server_seconds / delivered * 1e6 if delivered else float("nan"),
        bench_cpu=bench_cpu,
        by_worker={
            worker: (
                percentile(values, 50),
                percentile(values, 99),
                worker_delivered[worker][0] / worker_delivered[worker][1],
            )
            for worker, values in sorted(per_worker.items())
        }
        if len(target.servers) > 1
        else {},
        problems=problems,
    )


# --- Memory per idle connection and join time -----------------------------------------------


async def measure_memory(
    target: Target, name: str, idle: int, probe_path: Path | None = None
) -> dict[str, Any]:
    """RSS per idle connection; with ``probe_path`` (ours), also Python's live allocations per
    connection after ``gc.collect()`` if the server runs under tracemalloc."""
    server = target.servers[0]
    url = target.url(server, name)
    first, _ = await open_client(url)  # the room and its document are loaded
    await asyncio.sleep(1.0)
    probed = probe_path is not None
    start = await memprobe.probe(server.pid, probe_path) if probed else {}
    before = memprobe.rss_bytes(server.pid)
    sockets = await open_many([url] * idle)
    await asyncio.sleep(2.0)
    after = memprobe.rss_bytes(server.pid)
    end = await memprobe.probe(server.pid, probe_path) if probed else {}
    await close_all([*sockets, first])
    opened = max(1, len(sockets))
    traced = (end["traced"] - start["traced"]) / opened if "traced" in end else None
    return {
        "label": target.label,
        "opened": len(sockets),
        "before": before,
        "after": after,
        "per": (after - before) / opened,
        "traced_per": traced,
    }


async def measure_churn(
    target: Target, name: str, count: int, probe_path: Path | None
) -> dict[str, Any]:
    """The server's memory before and after ``count`` connections connect, sync, and all
    disconnect. Ours (``probe_path``) is read inside the process after ``gc.collect()``, once
    daphne has forgotten the closed connections; a reference server's is its RSS once that has
    stopped changing for a second (or after 15 s)."""
    server = target.servers[0]
    url = target.url(server, name)
    ws, _ = await open_client(url)  # first-connection costs (imports, caches) paid before
    await ws.close()

    async def settled() -> dict[str, Any]:
        if probe_path is not None:
            return await memprobe.probe_until(server.pid, probe_path, 0)
        deadline, last, since = time.monotonic() + 15, -1, time.monotonic()
        while time.monotonic() < deadline and time.monotonic() - since < 1.0:
            rss = memprobe.rss_bytes(server.pid)
            if rss != last:
                last, since = rss, time.monotonic()
            await asyncio.sleep(0.1)
        return {"rss": last}

    before = await settled()
    sockets = await open_many([url] * count)
    held = (
        await memprobe.probe(server.pid, probe_path)
        if probe_path is not None
        else {"rss": memprobe.rss_bytes(server.pid)}
    )
    await close_all(sockets)
    after = await settled()
    return {
        "label": target.label,
        "opened": len(sockets),
        "before": before,
        "held": held,
        "after": after,
    }


async def timed_join(url: str) -> tuple[float, int]:
    started = time.perf_counter()
    ws, step2 = await open_client(url)
    seconds = time.perf_counter() - started
    await ws.close()
    return seconds, len(step2)


async def measure_joins(
    target: Target, name: str, history: list[bytes] | None, expected_text: str, joins: int
) -> dict[str, Any]:
    """Join ``joins`` times while a holder keeps the room open; for the peer, the holder first
    feeds the room the history (pycrdt-websocket keeps no store)."""
    from pycrdt import Doc, Text

    url = target.url(target.servers[0], name)
    started = time.perf_counter()
    holder, _ = await open_client(url)
    cold = time.perf_counter() - started if target.key not in PEERS else float("nan")
    if history is not None:
        got_step2 = asyncio.Event()

        async def drain() -> None:
            async for frame in holder:
                if frame[:2] == b"\x00\x01":
                    got_step2.set()

        task = asyncio.get_running_loop().create_task(drain())
        for update in history:
            await holder.send(yjs_protocol.sync_update(update))
        await holder.send(yjs_protocol.sync_step1(EMPTY_STATE_VECTOR))
        await asyncio.wait_for(got_step2.wait(), 300)
    times, size = [], 0
    for _ in range(joins):
        seconds, size = await timed_join(url)
        times.append(seconds * 1000)
    # Check the joined document is the whole history.
    ws, step2 = await open_client(url)
    await ws.close()
    doc = Doc()
    doc.apply_update(step2)
    same = str(doc.get("t", type=Text)) == expected_text
    await holder.close()
    if history is not None:
        task.cancel()
    return {
        "label": target.label,
        "cold": cold * 1000,
        "median": statistics.median(times),
        "min": min(times),
        "max": max(times),
        "bytes": size,
        "same": same,
    }


# --- Output ---------------------------------------------------------------------------------


def print_churn(args: argparse.Namespace, churn: list[dict[str, Any]]) -> None:
    def mib(figures: dict[str, Any], key: str) -> str:
        return f"{figures[key] / 1048576:.2f} MiB" if key in figures else "-"

    def delta(c: dict[str, Any], key: str) -> str:
        if key not in c["after"]:
            return "-"
        return f"{(c['after'][key] - c['before'][key]) / 1024:+,.0f} KiB"

    print_table(
        [
            "server",
            "connections",
            "RSS before",
            "RSS held",
            "RSS after",
            "RSS after - before",
            "trimmed after - before",
            "traced before",
            "traced after",
            "traced after - before",
            "left open",
        ],
        [
            [
                c["label"],
                c["opened"],
                mib(c["before"], "rss"),
                mib(c["held"], "rss"),
                mib(c["after"], "rss"),
                delta(c, "rss"),
                delta(c, "rss_trimmed"),
                mib(c["before"], "traced"),
                mib(c["after"], "traced"),
                delta(c, "traced"),
                " ".join(
                    f"{key} {c['after'][key]}"
                    for key in ("connections", "rooms", "members", "reported")
                    if key in c["after"]
                )
                or "-",
            ]
            for c in churn
        ],
        title=f"Memory after {args.churn} connections connect, sync and all disconnect "
        "(ours: read inside the process after gc.collect, once daphne has let go of them; "
        "trimmed = RSS after glibc's malloc_trim; "
        "traced = tracemalloc's live allocations, with --tracemalloc; reference servers: "
        "RSS once it stopped changing)",
    )


def print_table(headers: Sequence[str], rows: Sequence[Sequence[Any]], title: str = "") -> None:
    cells = [[str(h) for h in headers]] + [[str(c) for c in row] for row in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    if title:
        print(f"\n{title}")
    for index, row in enumerate(cells):
        print(
            "  ".join(
                cell.ljust(w) if i == 0 else cell.rjust(w)
                for i, (cell, w) in enumerate(zip(row, widths, strict=True))
            ).rstrip()
        )
        if index == 0:
            print("  ".join("-" * w for w in widths))
    sys.stdout.flush()


def med(values: Iterable[float]) -> float:
    values = [v for v in values if v == v]
    return statistics.median(values) if values else float("nan")


def fmt(value: float, digits: int = 1) -> str:
    return "-" if value != value else f"{value:,.{digits}f}"


def ratio(ours: float, peer: float) -> str:
    if ours != ours or peer != peer or peer == 0:
        return "-"
    return f"{ours / peer:.2f}"


def summarize(runs: list[RunResult]) -> dict[str, Any]:
    """Median of each figure over the repeats of one (configuration, readers)."""
    return {
        "connected": min(r.connected for r in runs),
        "send_rate": med(r.send_rate for r in runs),
        "stored": ", ".join(sorted({r.stored for r in runs})),
        "stored_ok": all(r.stored_ok for r in runs),
        "catch_up": med(r.catch_up for r in runs),
        "delivered": med(r.delivered for r in runs),
        "delivered_min": min(r.delivered for r in runs),
        "deliveries_per_s": med(r.deliveries_per_s for r in runs),
        "p50": med(r.p50 for r in runs),
        "p99": med(r.p99 for r in runs),
        "max": med(r.p_max for r in runs),
        "server_cpu": med(r.server_cpu for r in runs),
        "cpu_per_delivery": med(r.cpu_per_delivery for r in runs),
        "bench_cpu": med(r.bench_cpu for r in runs),
        "p99_range": (min(r.p99 for r in runs), max(r.p99 for r in runs)),
        "by_worker": {
            worker: tuple(med(r.by_worker[worker][i] for r in runs) for i in range(3))
            for worker in runs[0].by_worker
        },
        "problems": sorted({p for r in runs for p in r.problems}),
    }


# --- Profile --------------------------------------------------------------------------------


PROFILE_TOP = 30


def print_profile(profiler: str, path: Path, threads: dict[str, float], top: int) -> None:
    import io
    import pstats

    print("\nCPU seconds per thread of the daphne process while profiling (from /proc):")
    for label, seconds in threads.items():
        print(f"  {label}: {seconds:.2f}")
    if not path.exists():
        print(f"(no profile written at {path})")
        return
    if profiler == "yappi":
        print(f"\nyappi (CPU clock, builtins included), top {top}:")
        print(path.read_text())
        return
    for order in ("tottime", "cumulative"):
        out = io.StringIO()
        stats = pstats.Stats(str(path), stream=out)
        stats.strip_dirs().sort_stats(order).print_stats(top)
        print(f"\ncProfile of daphne's main thread (event loop), top {top} by {order}:")
        text = out.getvalue()
        print(text[text.find("   ncalls") :] if "   ncalls" in text else text)


# --- Main -----------------------------------------------------------------------------------


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Fan-out latency, delivery, memory per connection and join time over "
        "y-websocket: this project's relay (one worker; two workers with Redis) and "
        "pycrdt-websocket.",
    )
    parser.add_argument("--readers", default="1,10,100", help="comma-separated reader counts")
    parser.add_argument("--rate", type=float, default=50.0, help="writer updates per second")
    parser.add_argument("--seconds", type=float, default=15.0, help="sending time per run")
    parser.add_argument(
        "--warmup", type=float, default=1.0, help="seconds of updates left out of latencies"
    )
    parser.add_argument("--repeat", type=int, default=1, help="runs per configuration (median)")
    parser.add_argument("--skip-peer", action="store_true", help="leave out pycrdt-websocket")
    parser.add_argument(
        "--skip-node", action="store_true", help="leave out the Node y-websocket server"
    )
    parser.add_argument(
        "--node-server",
        default=str(NODE_SERVER),
        help="the Node reference server's script (npm ci --prefix bench/node)",
    )
    parser.add_argument(
        "--servers",
        default="daphne",
        help="comma-separated ASGI servers for one worker on SQLite, side by side: daphne (a), "
        "uvicorn (u), daphne-stock (s: daphne without relay/daphne_send.py)",
    )
    parser.add_argument(
        "--uvicorn-python",
        default=sys.executable,
        help="the Python that runs uvicorn (with uvloop, httptools and the requirements)",
    )
    parser.add_argument(
        "--uvicorn-ws",
        choices=["websockets", "websockets-sansio", "wsproto"],
        default="websockets",
        help="uvicorn's WebSocket implementation",
    )
    parser.add_argument("--skip-redis", action="store_true", help="leave out (b)")
    parser.add_argument("--skip-memory", action="store_true")
    parser.add_argument("--skip-join", action="store_true")
    parser.add_argument("--idle", type=int, default=200, help="idle connections (memory)")
    parser.add_argument(
        "--churn", type=int, default=500, help="connections that come and go (memory; 0: none)"
    )
    parser.add_argument(
        "--tracemalloc",
        action="store_true",
        help="(a) under tracemalloc: Python's live allocations in the memory figures (its RSS "
        "then includes tracemalloc's own overhead)",
    )
    parser.add_argument(
        "--skip-fanout", action="store_true", help="no fan-out runs (memory and joins only)"
    )
    parser.add_argument("--history", type=int, default=20000, help="transactions (join)")
    parser.add_argument("--small", type=int, default=20, help="transactions of the small one")
    parser.add_argument("--joins", type=int, default=15, help="joins per datastore (median)")
    parser.add_argument("--peer-python", default="/tmp/peer-venv/bin/python")
    parser.add_argument(
        "--postgres-url",
        default="postgres://postgres@127.0.0.1:5432/rtc_fanout",
        help="dropped and recreated, then dropped at the end",
    )
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/5")
    parser.add_argument(
        "--conn-max-age",
        type=int,
        default=None,
        help="DATABASE_CONN_MAX_AGE for the servers (default: the project's, 60)",
    )
    parser.add_argument(
        "--profile",
        action="store_true",
        help="run (a) only, daphne profiled during the sending, with the largest --readers; "
        "print hot spots",
    )
    parser.add_argument("--profiler", choices=["cprofile", "yappi"], default="cprofile")
    parser.add_argument(
        "--yappi-path",
        default="/tmp/yappi-venv/lib/python3.11/site-packages",
        help="site-packages holding yappi (python3 -m venv /tmp/yappi-venv && "
        "/tmp/yappi-venv/bin/pip install yappi); added to daphne's PYTHONPATH",
    )
    parser.add_argument("--profile-top", type=int, default=PROFILE_TOP)
    parser.add_argument("--keep", action="store_true", help="keep the temporary directory")
    parser.add_argument("--write-history", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    args.reader_counts = [int(x) for x in args.readers.split(",") if x.strip()]
    args.servers = [x.strip() for x in args.servers.split(",") if x.strip()]
    unknown = set(args.servers) - set(SERVER_KEYS)
    if unknown or not args.servers:
        parser.error(f"--servers: choose among {', '.join(SERVER_KEYS)}")
    if args.skip_fanout:
        args.reader_counts = []
    if args.profile:
        args.servers = ["daphne"]
        args.skip_peer = args.skip_node = args.skip_redis = args.skip_memory = True
        args.skip_join = True
        args.reader_counts = [max(args.reader_counts)]
        args.repeat = 1
    return args


async def main_async(args: argparse.Namespace, tmp: Path) -> None:
    extra = {}
    if args.conn_max_age is not None:
        extra["DATABASE_CONN_MAX_AGE"] = str(args.conn_max_age)
    keys = [SERVER_KEYS[server] for server in args.servers]
    keys += ([] if args.skip_redis else ["b"]) + ([] if args.skip_node else ["node"])
    keys += [] if args.skip_peer else ["peer"]
    runs = [(rep, n) for rep in range(args.repeat) for n in args.reader_counts]
    fan_names = {(key, rep, n): f"fan-{key}-{n}-{rep}" for key in keys for rep, n in runs}

    history, history_text = ([], "")
    small, small_text = ([], "")
    history_file = tmp / "history.bin"
    small_file = tmp / "small.bin"
    if not args.skip_join:
        log(f"generating a history of {args.history} keystrokes")
        history, history_text = make_history(args.history, seed=1)
        small, small_text = make_history(args.small, seed=2)
        save_updates(history, history_file)
        save_updates(small, small_file)

    projects: dict[str, Project] = {}
    sqlite_db = Database(f"sqlite:///{tmp / 'fanout.sqlite3'}")
    projects["a"] = Project(sqlite_db, tmp / "data", extra)
    if "b" in keys:
        postgres_recreate(args.postgres_url, FANOUT_DATABASE_PREFIXES)
        projects["b"] = Project(Database(args.postgres_url), tmp / "data", extra)
    for key, project in projects.items():
        names = [name for (k, _, _), name in fan_names.items() if PROJECT_OF.get(k, k) == key]
        names += ["mem", "churn", "join-long", "join-small"]
        log(f"({key}) migrate, token, {len(names)} datastores on {project.database.url}")
        project.provision(names)
        if not args.skip_join:
            log(f"({key}) writing {args.history} transactions through tables.service.write")
            log(f"  {project.write_history('join-long', history_file)}")
            project.write_history("join-small", small_file)

    servers: list[Server] = []
    targets: dict[str, Target] = {}
    profile_path = tmp / f"daphne.{args.profiler}"
    profile = (args.profiler, profile_path, args.yappi_path) if args.profile else None
    projects["a"].env["FANOUT_PROFILE_TOP"] = str(args.profile_top)
    probe_path = None if args.profile else tmp / "a-probe.json"
    a = projects["a"].daphne(
        "a-daphne", tmp, profile=profile, probe=probe_path, traced=args.tracemalloc
    )
    if "a" in keys:
        servers.append(a)
        targets["a"] = Target("a", "(a) 1 daphne, SQLite, in-memory layer", [a], sqlite_db)
    if "u" in keys:
        u = projects["a"].uvicorn("u-uvicorn", tmp, args.uvicorn_python, args.uvicorn_ws)
        servers.append(u)
        targets["u"] = Target("u", "(u) 1 uvicorn, SQLite, in-memory layer", [u], sqlite_db)
    if "s" in keys:
        stock = projects["a"].daphne("s-daphne-stock", tmp, stock=True)
        servers.append(stock)
        label = "(s) 1 daphne without its fast send path, SQLite, in-memory layer"
        targets["s"] = Target("s", label, [stock], sqlite_db)
    if "b" in keys:
        b1 = projects["b"].daphne("b-daphne-1", tmp, redis_url=args.redis_url)
        b2 = projects["b"].daphne("b-daphne-2", tmp, redis_url=args.redis_url)
        servers += [b1, b2]
        targets["b"] = Target(
            "b", "(b) 2 daphne, PostgreSQL, Redis", [b1, b2], projects["b"].database
        )
    if "peer" in keys:
        if not Path(args.peer_python).exists():
            raise SystemExit(
                f"{args.peer_python} not found: python3 -m venv /tmp/peer-venv && "
                "/tmp/peer-venv/bin/pip install pycrdt-websocket hypercorn (or --skip-peer)"
            )
        port = free_port()
        peer = Server(
            "peer",
            [args.peer_python, str(ROOT / "bench" / "fanout_peer_server.py"), "--port", str(port)],
            dict(os.environ, PYTHONUNBUFFERED="1"),
            port,
            tmp,
        )
        servers.append(peer)
        targets["peer"] = Target("peer", "(peer) pycrdt-websocket + Hypercorn", [peer], None)
    if "node" in keys:
        if not Path(args.node_server).exists():
            raise SystemExit(f"{args.node_server} not found: npm ci --prefix bench/node")
        port = free_port()
        node = Server(
            "node",
            ["node", args.node_server],
            dict(os.environ, HOST="127.0.0.1", PORT=str(port)),
            port,
            tmp,
        )
        servers.append(node)
        targets["node"] = Target("node", "(node) Node y-websocket server", [node], None)
    for key, target in targets.items():
        if PROJECT_OF.get(key, key) in projects:
            target.token = projects[PROJECT_OF.get(key, key)].token
    try:
        for server in servers:
            server.start()
        for server in servers:
            server.wait_ready()
        log("servers: " + ", ".join(f"{s.name} :{s.port} pid {s.pid}" for s in servers))
        # One throwaway join per server: imports and first-connection costs paid up front.
        for target in targets.values():
            for server in target.servers:
                ws, _ = await open_client(target.url(server, "mem"))
                await ws.close()
        await asyncio.sleep(1)
        # Memory first, on servers that have not held more connections before (freed memory
        # would be reused and hide the cost).
        memory, churn = [], []
        if not args.skip_memory:
            for key in keys:
                log(f"memory: {args.idle} idle connections to {targets[key].label}")
                probed = probe_path if key == "a" else None
                memory.append(await measure_memory(targets[key], "mem", args.idle, probed))
                await asyncio.sleep(1)
            for key in keys if args.churn else []:
                log(f"memory: {args.churn} connections come and go, {targets[key].label}")
                probed = probe_path if key == "a" else None
                churn.append(await measure_churn(targets[key], "churn", args.churn, probed))

        results: dict[tuple[str, int], list[RunResult]] = {}
        thread_cpu: dict[str, dict[int, float]] = {}

        def profile_start() -> None:
            thread_cpu["before"] = thread_cpu_seconds(a.pid)
            os.kill(a.pid, signal.SIGUSR1)

        def profile_stop() -> None:
            os.kill(a.pid, signal.SIGUSR2)
            thread_cpu["after"] = thread_cpu_seconds(a.pid)

        hooks = (profile_start, profile_stop) if args.profile else None
        for rep, n in runs:
            for key in keys:
                name = fan_names[(key, rep, n)]
                log(f"run {rep + 1}/{args.repeat}: {targets[key].label}, {n} readers")
                result = await run_fanout(
                    targets[key], name, n, args.rate, args.seconds, args.warmup, hooks
                )
                log(
                    f"  delivered {result.delivered:.1%}, p50 {fmt(result.p50, 2)} ms, "
                    f"p99 {fmt(result.p99, 2)} ms, stored {result.stored}, server CPU "
                    f"{result.server_cpu:.0f}% ({fmt(result.cpu_per_delivery, 1)} us/delivery), "
                    f"bench CPU {result.bench_cpu:.0f}%"
                    + (f"; {'; '.join(result.problems)}" if result.problems else "")
                )
                results.setdefault((key, n), []).append(result)
                await asyncio.sleep(1.5)

        joins = []
        if not args.skip_join:
            for key in keys:
                for label, name, updates, expected in (
                    ("long", "join-long", history, history_text),
                    ("small", "join-small", small, small_text),
                ):
                    log(f"join: {targets[key].label}, {label} datastore")
                    feed = updates if key in PEERS else None
                    result = await measure_joins(targets[key], name, feed, expected, args.joins)
                    joins.append({**result, "key": key, "which": label, "tx": len(updates)})
        for server in servers:
            server.check()
    finally:
        for server in servers:
            server.stop()

    report(args, keys, targets, results, memory, joins, churn)
    if args.profile:
        threads = {}
        for tid, seconds in sorted(thread_cpu.get("after", {}).items()):
            used = seconds - thread_cpu.get("before", {}).get(tid, 0.0)
            if used > 0.005:
                label = "main thread (reactor + asyncio loop)" if tid == a.pid else f"thread {tid}"
                threads[label] = used
        print_profile(args.profiler, profile_path, threads, args.profile_top)


def report(
    args: argparse.Namespace,
    keys: list[str],
    targets: dict[str, Target],
    results: dict[tuple[str, int], list[RunResult]],
    memory: list[dict[str, Any]],
    joins: list[dict[str, Any]],
    churn: list[dict[str, Any]],
) -> None:
    load = " / ".join(f"{x:.2f}" for x in os.getloadavg())
    print(
        f"\nLoad average (1/5/15 min) at the start: {args.load_at_start}, at the end: {load}; "
        f"{os.cpu_count()} CPUs."
    )
    print(
        ""
        if not results
        else f"\nFan-out over y-websocket: 1 writer at {args.rate:g} updates/s for "
        f"{args.seconds:g} s "
        f"per run ({args.warmup:g} s warm-up left out of the latencies), {args.repeat} run(s) "
        "per row (medians over runs); latency = reader receive - writer send; delivered = share "
        "of (update, joined reader) pairs received."
    )
    summaries = {k: summarize(v) for k, v in results.items()}
    for key in keys:
        rows = []
        for n in args.reader_counts:
            s = summaries[(key, n)]
            rows.append(
                [
                    n,
                    s["connected"],
                    fmt(s["send_rate"]),
                    s["stored"] + ("" if s["stored_ok"] else " !"),
                    fmt(s["catch_up"], 1) if key not in PEERS else "-",
                    f"{s['delivered']:.2%}",
                    fmt(s["deliveries_per_s"], 0),
                    fmt(s["p50"], 2),
                    fmt(s["p99"], 2),
                    fmt(s["max"], 1),
                    f"{s['server_cpu']:.0f}%",
                    fmt(s["cpu_per_delivery"], 1),
                    f"{s['bench_cpu']:.0f}%",
                ]
            )
            for worker, (p50, p99, share) in s["by_worker"].items():
                label, blank = f"  readers on {worker}", ["", "", ""]
                delivered = f"{share:.2%}"
                latency = [fmt(p50, 2), fmt(p99, 2)]
                rows.append([label, *blank, "", delivered, "", *latency, *blank, ""])
        print_table(
            [
                "readers",
                "joined",
                "sent/s",
                "stored",
                "backlog s",
                "delivered",
                "deliveries/s",
                "p50 ms",
                "p99 ms",
                "max ms",
                "server CPU",
                "CPU us/delivery",
                "bench CPU",
            ],
            rows,
            title=targets[key].label,
        )
        for n in args.reader_counts:
            for problem in summaries[(key, n)]["problems"]:
                print(f"  ! {n} readers: {problem}")

    for peer_key in [k for k in PEERS if k in keys]:
        rows = []
        for n in args.reader_counts:
            peer = summaries[(peer_key, n)]
            for key in [k for k in keys if k not in PEERS]:
                ours = summaries[(key, n)]
                rows.append(
                    [
                        n,
                        f"({key})/{peer_key}",
                        ratio(ours["p50"], peer["p50"]),
                        ratio(ours["p99"], peer["p99"]),
                        ratio(ours["send_rate"], peer["send_rate"]),
                        ratio(ours["deliveries_per_s"], peer["deliveries_per_s"]),
                        ratio(ours["delivered"], peer["delivered"]),
                        ratio(ours["cpu_per_delivery"], peer["cpu_per_delivery"]),
                    ]
                )
        print_table(
            [
                "readers",
                "ratio",
                "p50",
                "p99",
                "sent/s",
                "deliveries/s",
                "delivered",
                "CPU/delivery",
            ],
            rows,
            title=f"Ours / {PEER_NAMES[peer_key]} (latency and CPU: below 1 is better; "
            "throughput and delivered: above 1 is more)",
        )

    if TARGET_READERS in args.reader_counts:
        ours = SERVER_KEYS[args.servers[0]]
        s = summaries[(ours, TARGET_READERS)]
        passed = (
            s["connected"] == TARGET_READERS
            and s["delivered_min"] >= 1.0
            and s["p99"] < TARGET_P99_MS
            and s["stored_ok"]
        )
        at = "" if args.rate == TARGET_RATE else f" (measured at {args.rate:g}/s, not 50/s)"
        print(
            f"\nTarget (issue): {TARGET_READERS} readers in one room at {TARGET_RATE} updates/s, "
            f"every update delivered, p99 < {TARGET_P99_MS:g} ms, one worker, durable acks."
            f"\n  ({ours}) measured{at}: {s['connected']} joined, delivered {s['delivered']:.2%} "
            "(lowest run "
            f"{s['delivered_min']:.2%}), p99 {fmt(s['p99'], 2)} ms (runs "
            f"{fmt(s['p99_range'][0], 2)}-{fmt(s['p99_range'][1], 2)}), all stored: "
            f"{'yes' if s['stored_ok'] else 'NO'} -> {'PASS' if passed else 'FAIL'}"
        )
        if "node" in keys:
            node = summaries[("node", TARGET_READERS)]
            print(
                f"  (node) in the same run{at}: delivered {node['delivered']:.2%}, p99 "
                f"{fmt(node['p99'], 2)} ms"
            )

    if memory:
        print_table(
            ["server", "connections", "RSS before", "RSS after", "per connection"],
            [
                [
                    m["label"],
                    m["opened"],
                    f"{m['before'] / 1048576:.1f} MiB",
                    f"{m['after'] / 1048576:.1f} MiB",
                    f"{m['per'] / 1024:.1f} KiB",
                ]
                for m in memory
            ],
            title=f"Memory per idle connection (VmRSS of the process the connections went to; "
            f"{args.idle} connections after the handshake, one already open before)",
        )
        for m in memory:
            if m["traced_per"] is not None:
                print(
                    f"  {m['label']}: Python's live allocations (tracemalloc, after "
                    f"gc.collect) {m['traced_per'] / 1024:.1f} KiB per connection"
                )
    if churn:
        print_churn(args, churn)
    if joins:
        rows = []
        by = {(j["key"], j["which"]): j for j in joins}
        for key in keys:
            for which in ("long", "small"):
                j = by[(key, which)]
                rows.append(
                    [
                        targets[key].label if which == "long" else "",
                        f"{which} ({j['tx']} tx)",
                        f"{j['bytes'] / 1024:.1f} KiB",
                        fmt(j["cold"], 1),
                        fmt(j["median"], 2),
                        f"{j['min']:.2f}-{j['max']:.2f}",
                        "yes" if j["same"] else "NO",
                    ]
                )
            rows.append(
                [
                    "",
                    "long / small",
                    "",
                    ratio(by[(key, "long")]["cold"], by[(key, "small")]["cold"]),
                    ratio(by[(key, "long")]["median"], by[(key, "small")]["median"]),
                    "",
                    "",
                ]
            )
        print_table(
            [
                "server",
                "datastore",
                "step 2",
                "first join ms",
                f"join ms (median of {args.joins})",
                "range ms",
                "doc equal",
            ],
            rows,
            title="Join time: connect + handshake until sync step 2 arrives (another client "
            "keeps the room open; 'first join' = the document not yet loaded by the server)",
        )


def main() -> None:
    if sys.argv[1:2] == [STOCK]:
        run_daphne_stock(sys.argv[2:])
        return
    if sys.argv[1:2] == [PROFILED]:
        global PROFILE_TOP
        PROFILE_TOP = int(os.environ.get("FANOUT_PROFILE_TOP", PROFILE_TOP))
        run_daphne_profiled(sys.argv[2], sys.argv[3], sys.argv[4:])
        return
    if sys.argv[1:2] == [PROBED]:
        memprobe.run_daphne(sys.argv[2:])
        return
    args = parse_args()
    if args.write_history:
        write_history_main(*args.write_history)
        return
    tmp = Path(tempfile.mkdtemp(prefix="rtc-fanout-"))
    args.load_at_start = " / ".join(f"{x:.2f}" for x in os.getloadavg())
    try:
        asyncio.run(main_async(args, tmp))
    finally:
        if not args.skip_redis and not args.profile:
            with contextlib.suppress(Exception):
                postgres_drop(args.postgres_url, FANOUT_DATABASE_PREFIXES)
        if args.keep:
            print(f"\n(kept {tmp})")
        else:
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
