"""JupyterLab's path to a notebook: this server (through the bridge) against jupyter-collaboration.

Both sides are reached as JupyterLab reaches them, through a Jupyter Server's origin: ``PUT
/api/collaboration/session/<path>`` for a ``fileId`` and a ``sessionId``, then a y-websocket
provider on ``/api/collaboration/room/json:notebook:<fileId>?sessionId=&token=``. The room
clients are stock Yjs/y-websocket clients (tests/node's packages) in one Node process,
``bench/lab_clients.mjs``.

* **theirs**: a Jupyter Server with jupyter-collaboration 5 (``jupyter-collaboration==5.0.4``,
  whose server extension is ``jupyter_server_ydoc``, with ``jupyter_server_fileid``), defaults
  everywhere, installed by this script in a virtualenv of its own (``--theirs-venv``, default
  ``bench/.venvs/jupyter-collaboration``, git-ignored; never the project's);
* **ours**: this server as deployed (daphne, SQLite in a temporary DATA_DIR, migrated), a Jupyter
  Server with the bridge (``jupyter_rtc_bridge``) pointing at it with a token allowed to act for
  Jupyter users, and ``manage.py run_supernode`` against that Jupyter Server;
* **ours, direct** (``--direct``): the same processes, the clients talking to daphne itself (its
  own token) instead of through the bridge: what the bridge adds.

Measured, each side in turn on identical notebooks (fresh processes per side):

(a) **open**: a never-opened ``--cells``-cell notebook (about 1 MB), from the session PUT until a
    client is synced and its document holds every cell; ``--repeat`` notebooks, one after the
    other, each kept open.
(b) **keystrokes**: two more clients join the first notebook; one types ``--keystrokes``
    characters into a cell's source (one at a time, ``--gap-ms`` apart), the other observes;
    p50/p99 of the latency per round, ``--repeat`` rounds.
(c) **memory**: RSS of the side's server processes (with their children) with the ``--repeat``
    notebooks of (a) open, minus RSS before the first one opened, per notebook. Ours counts
    daphne + the supernode + the Jupyter Server with the bridge; theirs the Jupyter Server.

Also printed: each server process's CPU time per open (from the PUT until the servers are idle
again) and per keystroke, and how often a room was closed with a code y-websocket retries on
(the client rejoins, as JupyterLab's does; 1003 and 4xxx end the open as a failure).

Daphne starts as scripts/run starts it unless ``--daphne-arg`` adds options; with its default
1 MiB WebSocket message limit a 1 MB notebook does not open (see bench/README.md).

Before measuring, each side opens a small notebook with two clients and types into it (not
reported). Between steps the script waits until the servers are idle (CPU below 10% over half a
second, at most ``--settle`` seconds).

Run: ``.venv/bin/python bench/lab.py [--repeat 3] [--cells 1000] [--keystrokes 100] [--direct]
[--daphne-arg=--websocket-max-message-size=16777216 ...]``.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import (
    ROOT,
    add_common_arguments,
    load_average,
    median,
    mib,
    percentile,
    print_table,
    setup_django,
)

THEIRS_REQUIREMENT = "jupyter-collaboration==5.0.4"
THEIRS_VENV = ROOT / "bench" / ".venvs" / "jupyter-collaboration"
THEIRS_EXTENSIONS = ("jupyter_server_fileid", "jupyter_server_ydoc")
NODE_SCRIPT = ROOT / "bench" / "lab_clients.mjs"
NODE_MODULES = ROOT / "tests" / "node" / "node_modules"
WARMUP_CELLS = 20
DAPHNE_LIMIT_HINT = (
    "daphne, started as scripts/run starts it, refuses WebSocket messages over 1 MiB "
    "(--websocket-max-message-size, default 1048576): the supernode writes an opened "
    "notebook's whole document as one message (base64 in JSON), and reconnects and retries "
    "for ever. To measure past it: --daphne-arg=--websocket-max-message-size=16777216 "
    "--daphne-arg=--websocket-max-frame-size=16777216"
)
TYPED_CELL = 0.5  # where in the notebook the typed cell is (its index / the cell count)


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_common_arguments(parser)
    parser.add_argument(
        "--repeat", type=int, default=3, help="notebooks opened (and kept open), keystroke rounds"
    )
    parser.add_argument("--cells", type=int, default=1000, help="cells per notebook")
    parser.add_argument(
        "--cell-chars", type=int, default=720, help="source characters per cell (~1 MB in all)"
    )
    parser.add_argument("--keystrokes", type=int, default=100, help="keystrokes per round")
    parser.add_argument("--gap-ms", type=float, default=30.0, help="pause between keystrokes")
    parser.add_argument("--settle", type=float, default=20.0, help="most seconds to wait idle")
    parser.add_argument(
        "--open-timeout", type=float, default=60.0, help="seconds an open may take (then failed)"
    )
    parser.add_argument(
        "--direct", action="store_true", help="also measure ours with clients on daphne itself"
    )
    parser.add_argument("--skip-theirs", action="store_true")
    parser.add_argument("--skip-ours", action="store_true")
    parser.add_argument(
        "--theirs-venv",
        type=Path,
        default=THEIRS_VENV,
        help=f"virtualenv with {THEIRS_REQUIREMENT} (created and installed when missing)",
    )
    parser.add_argument(
        "--daphne-arg",
        action="append",
        default=[],
        help="extra daphne option (repeatable), e.g. --daphne-arg=--websocket-max-message-size"
        "=16777216; by default daphne starts as scripts/run starts it",
    )
    return parser.parse_args()


# --- Notebooks ------------------------------------------------------------------------------


def make_notebook(cells: int, chars: int, seed: int = 7) -> dict[str, Any]:
    """A notebook of ``cells`` cells (two code cells with a short output, then a markdown one),
    each with about ``chars`` characters of source; the same for a given seed."""
    rng = random.Random(seed)
    words = [
        "data",
        "frame",
        "value",
        "index",
        "total",
        "count",
        "result",
        "model",
        "train",
        "test",
        "plot",
        "mean",
    ]

    def line(kind: str) -> str:
        picked = " ".join(rng.choice(words) for _ in range(rng.randint(3, 8)))
        if kind == "markdown":
            return f"Some notes on the {picked}.\n"
        name = "_".join(picked.split()[:2])
        return f"{name} = compute({rng.randint(0, 9999)}, '{picked}')\n"

    content = []
    for index in range(cells):
        kind = "markdown" if index % 3 == 2 else "code"
        source = ""
        while len(source) < chars:
            source += line(kind)
        cell: dict[str, Any] = {
            "id": f"cell-{index:05d}",
            "cell_type": kind,
            "metadata": {},
            "source": source.splitlines(keepends=True),
        }
        if kind == "code":
            cell["execution_count"] = index
            cell["outputs"] = [
                {"name": "stdout", "output_type": "stream", "text": [f"result {index}\n"]}
            ]
        content.append(cell)
    return notebook_of(content)


def notebook_of(cells: list[dict[str, Any]]) -> dict[str, Any]:
    """An nbformat 4.5 notebook of ``cells``, with a Python kernelspec."""
    return {
        "cells": cells,
        "metadata": {
            "kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"},
            "language_info": {"name": "python"},
        },
        "nbformat": 4,
        "nbformat_minor": 5,
    }


def write_notebooks(root: Path, args: argparse.Namespace) -> int:
    """The warm-up notebook and ``big-<i>.ipynb`` for every repeat; the big file's size."""
    root.mkdir(parents=True, exist_ok=True)
    text = json.dumps(make_notebook(WARMUP_CELLS, 80), indent=1)
    (root / "warmup.ipynb").write_text(text)
    text = json.dumps(make_notebook(args.cells, args.cell_chars), indent=1)
    for index in range(args.repeat):
        (root / f"big-{index + 1}.ipynb").write_text(text)
    return len(text.encode())


# --- Processes ------------------------------------------------------------------------------


def tree_pids(pids: Sequence[int]) -> list[int]:
    """The processes and all their descendants that are alive."""
    import psutil

    found = []
    for pid in pids:
        try:
            process = psutil.Process(pid)
            found.append(pid)
            found.extend(child.pid for child in process.children(recursive=True))
        except psutil.NoSuchProcess:
            continue
    return found


def rss_of(pids: Sequence[int]) -> int:
    import psutil

    total = 0
    for pid in tree_pids(pids):
        try:
            total += psutil.Process(pid).memory_info().rss
        except psutil.NoSuchProcess:
            continue
    return total


def cpu_of(pids: Sequence[int]) -> float:
    import psutil

    total = 0.0
    for pid in tree_pids(pids):
        try:
            times = psutil.Process(pid).cpu_times()
            total += times.user + times.system
        except psutil.NoSuchProcess:
            continue
    return total


def settle(pids: Sequence[int], most: float) -> None:
    """Wait (at most ``most`` seconds) until the processes use under 10% CPU for half a second:
    an open notebook keeps its servers busy (storing, saving) for a while after it syncs."""
    deadline = time.monotonic() + most
    while time.monotonic() < deadline:
        before = cpu_of(pids)
        time.sleep(0.5)  # the window CPU use is measured over
        if cpu_of(pids) - before < 0.05:
            return


class Child:
    """A server process with its output in a log file; stopped with SIGTERM, then SIGKILL."""

    def __init__(self, name: str, command: list[str], env: dict[str, str], logs: Path):
        self.name = name
        self.log_path = logs / f"{name}.log"
        with self.log_path.open("ab") as out:
            self.process = subprocess.Popen(
                command,
                cwd=ROOT,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
            )

    @property
    def pid(self) -> int:
        return self.process.pid

    def check(self) -> None:
        if self.process.poll() is not None:
            raise SystemExit(f"{self.name} exited; see {self.log_path}:\n{self.tail()}")

    def tail(self) -> str:
        return self.log_path.read_text(errors="replace")[-3000:]

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)


def wait_http(url: str, what: str, alive: Callable[[], None], timeout: float = 90.0) -> None:
    """Wait until ``url`` answers any HTTP status (``alive`` raises when the process died)."""
    import urllib.error
    import urllib.request

    deadline = time.monotonic() + timeout
    while True:
        alive()
        try:
            urllib.request.urlopen(url, timeout=2).close()
            return
        except urllib.error.HTTPError:
            return
        except OSError:
            if time.monotonic() > deadline:
                raise SystemExit(f"{what} did not answer on {url}") from None
            time.sleep(0.1)  # polling a process that tells us nothing


def jupyter_server(
    root: Path,
    python: str | None = None,
    args: Sequence[str] = (),
    env: dict[str, str] | None = None,
):
    """A ``LocalJupyterServer`` (private config and data directories, no config files read),
    run by ``python`` when given (another virtualenv's) instead of this interpreter: then
    without the launcher's classes from this project's bridge (its contents manager, its kernel
    WebSocket connection), which that virtualenv does not have, so the peer runs its defaults."""
    from jupyter_sync.jupyter.launcher import (
        CONNECTION_CLASS,
        CONTENTS_MANAGER,
        NO_DELAY_CONNECTION,
        LocalJupyterServer,
    )

    ours_only = {
        f"--ServerApp.contents_manager_class={CONTENTS_MANAGER}",
        f"--{CONNECTION_CLASS}={NO_DELAY_CONNECTION}",
    }

    class Server(LocalJupyterServer):
        def command(self) -> list[str]:
            command = super().command()
            if not python:
                return command
            return [python, *(arg for arg in command[1:] if arg not in ours_only)]

    return Server(root, args=args, env=env)


# --- The sides ------------------------------------------------------------------------------


@dataclass
class Side:
    """Server processes reached at ``base`` with ``token``; ``pids`` are what memory counts."""

    name: str
    base: str = ""
    token: str = ""
    pids: list[int] = field(default_factory=list)
    names: list[str] = field(default_factory=list)
    stoppers: list[Callable[[], None]] = field(default_factory=list)
    checks: list[Callable[[], None]] = field(default_factory=list)

    def check(self) -> None:
        for check in self.checks:
            check()

    def stop(self) -> None:
        for stop in reversed(self.stoppers):
            try:
                stop()
            except Exception as error:
                log(f"stopping {self.name}: {error!r}")


def theirs_python(
    venv: Path,
    requirements: Sequence[str] = (THEIRS_REQUIREMENT, "ipykernel"),
    modules: Sequence[str] = ("jupyter_server_ydoc", "jupyter_server_fileid", "ipykernel"),
) -> str:
    """The virtualenv's interpreter, with ``requirements`` installed (once: when one of
    ``modules`` does not import)."""
    python = venv / "bin" / "python"
    probe = [str(python), "-c", f"import {', '.join(modules)}"]
    if python.exists() and subprocess.run(probe, capture_output=True).returncode == 0:
        return str(python)
    log(f"installing {' '.join(requirements)} into {venv} (once)")
    subprocess.run([sys.executable, "-m", "venv", "--clear", str(venv)], check=True)
    install = [str(python), "-m", "pip", "install", "-q", *requirements]
    done = subprocess.run(install, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"pip install {' '.join(requirements)} failed:\n{done.stderr[-3000:]}")
    return str(python)


def versions(python: str, names: Sequence[str]) -> str:
    """``name version, ...`` of distributions installed for ``python``."""
    code = (
        "import sys, importlib.metadata as m; "
        "print(', '.join(f'{n} {m.version(n)}' for n in sys.argv[1:]))"
    )
    done = subprocess.run([python, "-c", code, *names], capture_output=True, text=True)
    return done.stdout.strip() or done.stderr.strip()[-200:]


def start_theirs(args: argparse.Namespace, root: Path, logs: Path) -> Side:
    python = theirs_python(args.theirs_venv)
    print(
        "theirs: "
        + versions(
            python,
            ["jupyter-collaboration", "jupyter-server-ydoc", "pycrdt-websocket", "pycrdt"],
        )
        + ", defaults",
        flush=True,
    )
    extensions = [f"--ServerApp.jpserver_extensions={name}=True" for name in THEIRS_EXTENSIONS]
    server = jupyter_server(root, python, extensions)
    side = Side("theirs")
    side.stoppers.append(closer(server, logs, "jupyter-theirs"))
    server.start()
    side.base, side.token, side.pids = server.url, server.token, [server.pid]
    side.names = ["jupyter"]
    side.checks.append(lambda: None if server.alive else _died("jupyter (theirs)", server.log))
    return side


def closer(server: Any, logs: Path, name: str) -> Callable[[], None]:
    """Stop a ``LocalJupyterServer``, keeping its log (its own directory goes with it)."""

    def close() -> None:
        server.stop()
        (logs / f"{name}.log").write_text(server.log)
        server.close()

    return close


def _died(name: str, log_text: str) -> None:
    raise SystemExit(f"{name} exited:\n{log_text[-3000:]}")


def ours_accounts() -> tuple[str, str]:
    """(the bridge's token, allowed to act for Jupyter users; an editor's token for --direct).

    The jupyter datastore and the supernode's service account are made here, as
    ``run_supernode`` makes them."""
    from django.contrib.auth.models import User
    from django.core.management import call_command

    from jupyter_sync.supernode import account
    from relay.models import ApiToken
    from tables.permissions import grant

    account.ensure_service_account()
    datastore = account.ensure_jupyter_datastore()
    editor = User.objects.create_user("lab-bench-editor")
    grant(datastore, editor, "editor")
    direct = ApiToken.objects.create(user=editor).key
    bridge = bridge_token(call_command)
    return bridge, direct


def bridge_token(call_command: Callable[..., Any]) -> str:
    """The bridge's token, allowed to act for Jupyter users (``manage.py create_bridge_token``):
    each Jupyter user then acts as a Django user of their own, an editor (RTC_BRIDGE_ROLE)."""
    import io

    out = io.StringIO()
    call_command("create_bridge_token", "lab-bench-bridge", stdout=out, stderr=io.StringIO())
    return out.getvalue().strip().split()[-1]


def start_ours(args: argparse.Namespace, root: Path, logs: Path, tokens: tuple[str, str]) -> Side:
    from jupyter_sync.jupyter.launcher import free_port

    bridge, direct = tokens
    commit = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True
    ).stdout.strip()
    print(
        f"ours: {commit or 'this checkout'}, daphne {' '.join(args.daphne_arg) or 'as scripts/run'}"
        f", {versions(sys.executable, ['pycrdt'])}",
        flush=True,
    )
    port = free_port()
    rtc_url = f"http://127.0.0.1:{port}"
    side = Side("ours")
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    bridged = [
        "--ServerApp.jpserver_extensions=jupyter_rtc_bridge=True",
        f"--RTCBridge.server_url={rtc_url}",
        f"--RTCBridge.token={bridge}",
    ]
    # This checkout's bridge, whichever one the virtualenv has installed (editable installs).
    server = jupyter_server(root, args=bridged, env={"PYTHONPATH": str(ROOT / "bridge")})
    side.stoppers.append(closer(server, logs, "jupyter-ours"))
    daphne = str(Path(sys.executable).with_name("daphne"))
    web = Child(
        "daphne",
        [
            daphne,
            "-b",
            "127.0.0.1",
            "-p",
            str(port),
            *args.daphne_arg,
            "rtc_project.asgi:application",
        ],
        env,
        logs,
    )
    side.stoppers.append(web.stop)
    wait_http(f"{rtc_url}/admin/login/", "daphne", web.check)
    server.start()
    supernode = Child(
        "supernode",
        [
            sys.executable,
            "manage.py",
            "run_supernode",
            "--jupyter-url",
            server.url,
            "--jupyter-token",
            server.token,
            "--server-url",
            rtc_url,
        ],
        env,
        logs,
    )
    side.stoppers.append(supernode.stop)  # stopped first: its servers outlive it
    side.base, side.token = server.url, server.token
    side.pids = [web.pid, supernode.pid, server.pid]
    side.names = ["daphne", "supernode", "jupyter+bridge"]
    side.checks += [
        web.check,
        supernode.check,
        lambda: None if server.alive else _died("jupyter (ours)", server.log),
    ]
    side.direct = (rtc_url, direct)  # type: ignore[attr-defined]
    return side


# --- The room clients -----------------------------------------------------------------------


class Clients:
    """``node bench/lab_clients.mjs``: one request at a time, answered by id (its own
    deadlines end every wait)."""

    def __init__(self, logs: Path):
        if not (NODE_MODULES / "y-websocket").exists():
            raise SystemExit("tests/node/node_modules is missing: npm ci --prefix tests/node")
        self.stderr = (logs / "node.log").open("ab")
        self.process = subprocess.Popen(
            ["node", str(NODE_SCRIPT)],
            cwd=ROOT,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self.stderr,
            text=True,
        )
        self.ids = 0
        self.reply()  # the "ready" line

    def reply(self) -> dict[str, Any]:
        assert self.process.stdout is not None
        line = self.process.stdout.readline()
        if not line:
            raise SystemExit(f"the Node clients exited ({self.process.wait()})")
        return json.loads(line)

    def __call__(self, cmd: str, **fields: Any) -> dict[str, Any]:
        assert self.process.stdin is not None
        self.ids += 1
        self.process.stdin.write(json.dumps({"id": self.ids, "cmd": cmd, **fields}) + "\n")
        self.process.stdin.flush()
        while True:
            answer = self.reply()
            if answer.get("id") == self.ids:
                if not answer["ok"]:
                    raise RuntimeError(answer["error"])
                return answer

    def close(self) -> None:
        if self.process.poll() is None:
            assert self.process.stdin is not None
            self.process.stdin.close()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
        self.stderr.close()


@dataclass
class Figures:
    side: str
    opens_ms: list[float] = field(default_factory=list)
    put_ms: list[float] = field(default_factory=list)
    doc_bytes: int = 0
    p50_ms: list[float] = field(default_factory=list)
    p99_ms: list[float] = field(default_factory=list)
    rss_before: int = 0
    rss_after: int = 0
    opened: int = 0
    load: list[str] = field(default_factory=list)
    failed: str = ""
    memory: bool = True
    reconnects: int = 0
    cpu_ms: dict[str, list[float]] = field(default_factory=dict)
    """CPU time per keystroke of each server process (with its children), per round."""
    open_cpu_ms: dict[str, list[float]] = field(default_factory=dict)
    """CPU time of each server process from an open's PUT until the servers are idle again."""

    @staticmethod
    def cpu_text(spent: dict[str, list[float]], digits: int) -> str:
        parts = [f"{name} {median(values):,.{digits}f}" for name, values in spent.items()]
        return ", ".join(parts) or "-"

    @property
    def load_text(self) -> str:
        return " / ".join(load.split(" on ")[0].removeprefix("load average ") for load in self.load)

    @property
    def per_notebook(self) -> float:
        return (self.rss_after - self.rss_before) / max(self.opened, 1)


def open_retrying(clients: Clients, side: Side, name: str, path: str, cells: int) -> None:
    """Open the warm-up notebook, retrying while the side is still starting (a supernode that
    has not connected yet answers 503)."""
    deadline = time.monotonic() + 90
    while True:
        side.check()
        try:
            clients("open", name=name, base=side.base, token=side.token, path=path, cells=cells)
            return
        except RuntimeError as error:
            if "PUT 503" not in str(error) or time.monotonic() > deadline:
                raise SystemExit(f"{side.name}: cannot open {path}: {error}") from None
            clients("close", name=name)
            time.sleep(0.5)  # the side is still starting; nothing to wait on but the answer


def measure(
    side: Side, label: str, prefix: str, args: argparse.Namespace, logs: Path, memory: bool = True
) -> Figures:
    """Warm up, then (a), (c) and (b) on one side; ``memory=False`` for a side that shares
    another's processes (its notebooks open on top of the other's: RSS says little)."""
    figures = Figures(label, memory=memory)
    figures.load.append(load_average())
    clients = Clients(logs)
    try:
        for name in ("warm-a", "warm-b"):
            open_retrying(clients, side, name, f"{prefix}warmup.ipynb", WARMUP_CELLS)
        clients("type", writer="warm-a", reader="warm-b", cell=1, count=20, gapMs=args.gap_ms)
        settle(side.pids, args.settle)
        figures.rss_before = rss_of(side.pids)
        for index in range(args.repeat):
            path = f"{prefix}big-{index + 1}.ipynb"
            cpu_before = [cpu_of([pid]) for pid in side.pids]
            try:
                opened = clients(
                    "open",
                    name=f"open-{index}",
                    base=side.base,
                    token=side.token,
                    path=path,
                    cells=args.cells,
                    timeoutMs=args.open_timeout * 1000,
                )
            except RuntimeError as error:
                figures.failed = str(error)
                log(f"{label}: {error}")
                return figures
            side.check()
            figures.opens_ms.append(opened["ms"])
            figures.put_ms.append(opened["putMs"])
            figures.doc_bytes = opened["bytes"]
            figures.reconnects += opened["reconnects"]
            log(f"{label}: opened {path} in {opened['ms']:.0f} ms")
            settle(side.pids, args.settle)
            for name, pid, before in zip(side.names, side.pids, cpu_before, strict=True):
                figures.open_cpu_ms.setdefault(name, []).append((cpu_of([pid]) - before) * 1000)
        figures.opened = args.repeat
        figures.rss_after = rss_of(side.pids)
        for name in ("typer", "watcher"):
            clients(
                "open",
                name=name,
                base=side.base,
                token=side.token,
                path=f"{prefix}big-1.ipynb",
                cells=args.cells,
            )
        cell = int(args.cells * TYPED_CELL)
        for _ in range(args.repeat):
            settle(side.pids, args.settle)
            cpu_before = [cpu_of([pid]) for pid in side.pids]
            typed = clients(
                "type",
                writer="typer",
                reader="watcher",
                cell=cell,
                count=args.keystrokes,
                gapMs=args.gap_ms,
            )
            side.check()
            for name, pid, before in zip(side.names, side.pids, cpu_before, strict=True):
                spent = (cpu_of([pid]) - before) * 1000 / args.keystrokes
                figures.cpu_ms.setdefault(name, []).append(spent)
            figures.p50_ms.append(percentile(typed["latencies"], 50))
            figures.p99_ms.append(percentile(typed["latencies"], 99))
            log(
                f"{label}: keystrokes p50 {figures.p50_ms[-1]:.1f} ms, p99 {figures.p99_ms[-1]:.1f}"
            )
    finally:
        clients.close()
        figures.load.append(load_average())
    return figures


# --- Report ---------------------------------------------------------------------------------


def ratio(ours: float, theirs: float) -> str:
    return f"{ours / theirs:.2f}x" if theirs else "-"


def report(all_figures: list[Figures], args: argparse.Namespace, file_bytes: int) -> None:
    print(
        f"\nnotebook: {args.cells:,} cells, {file_bytes / 1e6:.2f} MB on disk; {args.repeat} "
        f"notebooks opened per side; {args.keystrokes} keystrokes x {args.repeat} rounds, "
        f"{args.gap_ms:g} ms apart"
    )
    rows = []
    for f in all_figures:
        if f.failed:
            rows.append([f.side, "failed", *["-"] * 7, f.load_text])
            continue
        rows.append(
            [
                f.side,
                f"{median(f.opens_ms):,.0f}",
                f"{min(f.opens_ms):,.0f}-{max(f.opens_ms):,.0f}",
                f"{median(f.put_ms):,.0f}",
                f"{f.doc_bytes / 1e6:.2f} MB",
                f"{median(f.p50_ms):.1f}",
                f"{median(f.p99_ms):.1f}",
                mib(f.per_notebook) if f.memory else "-",
                f"{mib(f.rss_before)} -> {mib(f.rss_after)}" if f.memory else "(ours' processes)",
                f.load_text,
            ]
        )
    print_table(
        [
            "side",
            "open ms (median)",
            "range",
            "of which PUT",
            "synced doc",
            "keystroke p50 ms",
            "p99 ms",
            "RSS per notebook",
            "RSS none -> open",
            "load start/end",
        ],
        rows,
    )
    for f in all_figures:
        if f.memory and f.open_cpu_ms:
            spent = f.cpu_text(f.open_cpu_ms, 0)
            print(f"{f.side}: server CPU ms per open (until idle again, median): {spent}")
        if f.memory and f.cpu_ms:
            spent = f.cpu_text(f.cpu_ms, 1)
            print(f"{f.side}: server CPU ms per keystroke (median of rounds): {spent}")
        if f.reconnects:
            print(f"{f.side}: the room was closed and joined again {f.reconnects} time(s) in (a)")
    for f in all_figures:
        if f.failed:
            print(f"\n{f.side}: {f.failed}")
            if f.side.startswith("ours") and not any(
                "max-message-size" in arg for arg in args.daphne_arg
            ):
                print(DAPHNE_LIMIT_HINT)
    theirs = next((f for f in all_figures if f.side == "theirs" and not f.failed), None)
    rows = []
    for f in all_figures:
        if theirs is None or f is theirs or f.failed:
            continue
        rows.append(
            [
                f"{f.side} / theirs",
                ratio(median(f.opens_ms), median(theirs.opens_ms)),
                ratio(median(f.p50_ms), median(theirs.p50_ms)),
                ratio(median(f.p99_ms), median(theirs.p99_ms)),
                ratio(f.per_notebook, theirs.per_notebook) if f.memory else "-",
            ]
        )
    if rows:
        print_table(["ratio", "open", "keystroke p50", "p99", "RSS per notebook"], rows)


def main() -> None:
    args = parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="rtc-bench-lab-"))
    logs = tmp / "logs"
    logs.mkdir()
    print(f"lab benchmark; {load_average()}", flush=True)
    all_figures: list[Figures] = []
    file_bytes = 0
    try:
        if not args.skip_theirs:
            root = tmp / "theirs"
            file_bytes = write_notebooks(root, args)
            side = start_theirs(args, root, logs)
            try:
                all_figures.append(measure(side, "theirs", "", args, logs))
            finally:
                side.stop()
        if not args.skip_ours:
            args.data_dir = args.data_dir or str(tmp / "data")
            setup_django(args)
            root = tmp / "ours"
            file_bytes = write_notebooks(root, args)
            if args.direct:
                write_notebooks(root / "direct", args)
            side = start_ours(args, root, logs, ours_accounts())
            try:
                all_figures.append(measure(side, "ours", "", args, logs))
                if args.direct:
                    rtc_url, token = side.direct  # type: ignore[attr-defined]
                    direct = Side(
                        "ours, direct",
                        base=rtc_url,
                        token=token,
                        pids=side.pids,
                        names=side.names,
                        checks=side.checks,
                    )
                    all_figures.append(
                        measure(direct, "ours, direct", "direct/", args, logs, memory=False)
                    )
            finally:
                side.stop()
    except BaseException:
        log(f"logs kept in {logs}")
        raise
    else:
        report(all_figures, args, file_bytes)
        print(f"\n{load_average()}")
        if any(f.failed or f.reconnects for f in all_figures):
            print(f"logs kept in {logs}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
