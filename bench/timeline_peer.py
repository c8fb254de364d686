"""Benchmark: the timeline over HTTP, this server against jupyter-collaboration 5, one history.

    .venv/bin/python bench/timeline_peer.py                          # 10,000 updates, both sides
    .venv/bin/python bench/timeline_peer.py --history 100000 --theirs-budget 300

The notebook's history is ``bench/timeline.py``'s (``updates``: the same Yjs updates for the same
``--history``, ``--cells`` and ``--seed``), made once and given to both sides:

* **theirs**: a Jupyter Server with jupyter-collaboration 5 (``bench/lab.py``'s virtualenv and
  launcher) serving an empty notebook file; the updates go in through its room WebSocket
  (``PUT api/collaboration/session/<path>``, then y-sync on ``api/collaboration/room/
  json:notebook:<fileId>``), one message per update, so that its SQLiteYStore holds one row per
  update as in real use. The feed ends when the store holds them all (polled, with a deadline:
  ``--theirs-budget``; past it theirs is measured on the rows stored so far and says so).
* **ours**: daphne as scripts/run starts it, on a notebook document whose datastore got the same
  updates through the write path (one transaction each), recorded as open at the same path.

Then, on each side and over HTTP with its token, ``--repeat`` times: ``GET api/collaboration/
timeline/<path>?format=json&type=notebook`` (a fork room), and ``PUT api/collaboration/undo_redo/
<room>?action=&steps=&forkRoom=``: one step back, one forward, one back again, to the oldest
point, one forward from there, to the middle, and ``action=restore``. Our slider has at most
1000 points (a step is ``history / 1000`` updates on a long history); theirs one point per undo
step of its replay. After the move to the middle each side's fork is compared with the document
at that point (ours: ``history.doc_at`` at the answered serial; theirs: its fork room's content,
read over its WebSocket, against a replay of its store's rows up to that point). Memory: RSS of
each server process before the first open and after it (the fork held).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import signal
import sqlite3
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import common, lab
from bench import timeline as ours_bench

PATH = "history.ipynb"
EMPTY_NOTEBOOK = {"cells": [], "metadata": {}, "nbformat": 4, "nbformat_minor": 5}


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    common.add_common_arguments(parser)
    parser.add_argument("--history", type=int, default=10_000, help="updates in the history")
    parser.add_argument("--cells", type=int, default=30)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument(
        "--theirs-budget",
        type=float,
        default=300.0,
        help="most seconds for theirs to store the history (then measured on what it stored)",
    )
    parser.add_argument(
        "--request-timeout", type=float, default=600.0, help="most seconds one request may take"
    )
    parser.add_argument("--skip-theirs", action="store_true")
    parser.add_argument("--skip-ours", action="store_true")
    parser.add_argument("--theirs-venv", type=Path, default=lab.THEIRS_VENV)
    return parser.parse_args()


@dataclass
class Result:
    """One side's figures: seconds per operation, RSS around the first open, checks."""

    name: str
    seconds: dict[str, list[float]] = field(default_factory=dict)
    rss_before: int = 0
    rss_after: int = 0
    points: int = 0
    history: int = 0
    note: str = ""
    checks: list[str] = field(default_factory=list)

    def add(self, operation: str, seconds: float) -> None:
        self.seconds.setdefault(operation, []).append(seconds)


def timed_request(client: Any, method: str, url: str) -> tuple[float, Any]:
    """One HTTP request's wall time and its answer (an error status ends the run)."""
    start = time.perf_counter()
    answer = client.request(method, url)
    seconds = time.perf_counter() - start
    if answer.status_code >= 400:
        raise SystemExit(f"{method} {url}: {answer.status_code} {answer.text[:500]}")
    return seconds, answer


def moves(points: int) -> list[tuple[str, str, int]]:
    """The slider moves, as (operation, action, steps), on a slider of ``points`` points."""
    return [
        ("one step back", "undo", 1),
        ("one step forward", "redo", 1),
        ("one step back again", "undo", 1),
        ("to the oldest point", "undo", points),
        ("one step forward from the oldest", "redo", 1),
        ("to the middle", "redo", points // 2),
    ]


def move_slider(client: Any, result: Result, room: str, fork: str, points: int) -> list[Any]:
    """Make every move of ``moves(points)`` in order, each timed into ``result``; their answers."""
    answers = []
    for name, action, steps in moves(points):
        seconds, answer = timed_request(
            client,
            "PUT",
            f"/api/collaboration/undo_redo/{quote(room, safe='')}"
            f"?action={action}&steps={steps}&forkRoom={fork}",
        )
        result.add(f"move: {name}", seconds)
        answers.append(answer)
    return answers


# --- Theirs --------------------------------------------------------------------------------------


async def room_doc(
    url: str,
    feed: Sequence[bytes] = (),
    wait_synced: float = 60.0,
    hold: HeldRoom | None = None,
) -> Any:
    """Join a y-websocket room, sync with it and send ``feed`` (one update message each): the
    room's document as this client then has it. With ``hold``, stay in the room until it is
    released (a room nobody is in is dropped, and their timeline needs the room)."""
    import websockets
    from pycrdt import (
        Doc,
        YMessageType,
        YSyncMessageType,
        create_sync_message,
        create_update_message,
        handle_sync_message,
    )

    doc = Doc()
    synced = asyncio.Event()
    # No keepalive pings: their server answers none while an undo of many steps holds its
    # event loop (tens of seconds), and a client that gives up on it empties the room.
    async with websockets.connect(url, max_size=None, ping_interval=None) as ws:

        async def receive() -> None:
            async for message in ws:
                if not isinstance(message, bytes) or message[0] != YMessageType.SYNC:
                    continue
                reply = handle_sync_message(message[1:], doc)
                if reply is not None:
                    await ws.send(reply)
                if message[1] == YSyncMessageType.SYNC_STEP2:
                    synced.set()

        reader = asyncio.create_task(receive())
        try:
            await ws.send(create_sync_message(doc))
            await asyncio.wait_for(synced.wait(), wait_synced)
            for update in feed:
                await ws.send(create_update_message(update))
            if feed:  # every update sent before closing: the answer to a step 1 comes after
                synced.clear()
                await ws.send(create_sync_message(doc))
                await asyncio.wait_for(synced.wait(), wait_synced)
            if hold is not None:
                hold.sent.set()
                await asyncio.to_thread(hold.release.wait)
        finally:
            reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await reader
    return doc


class HeldRoom:
    """A room client in a thread of its own: it feeds the updates, then stays until ``close``."""

    def __init__(self, url: str, feed: Sequence[bytes]):
        self.sent = threading.Event()
        self.release = threading.Event()
        self.errors: list[BaseException] = []
        self.thread = threading.Thread(target=self.run, args=(url, feed), daemon=True)
        self.thread.start()

    def run(self, url: str, feed: Sequence[bytes]) -> None:
        try:
            asyncio.run(room_doc(url, feed, hold=self))
        except BaseException as error:
            self.errors.append(error)
            self.sent.set()

    def wait_sent(self, timeout: float) -> None:
        if not self.sent.wait(timeout) or self.errors:
            raise SystemExit(f"feeding their room failed: {self.errors or 'timed out'}")

    def close(self) -> None:
        self.release.set()
        self.thread.join(timeout=30)


def store_rows(db: Path, room: str) -> list[bytes]:
    """The updates jupyter-collaboration's SQLiteYStore holds for ``room``, oldest first."""
    if not db.exists():
        return []
    with contextlib.closing(sqlite3.connect(db, timeout=30)) as conn:
        try:
            rows = conn.execute(
                "SELECT yupdate FROM yupdates WHERE path LIKE ? ORDER BY rowid", (like(room),)
            ).fetchall()
        except sqlite3.OperationalError:  # the table is not there yet
            return []
    return [row[0] for row in rows]


def like(room: str) -> str:
    """The store's rows of a room: its ``path`` column is made from the room id, not equal to
    it (``.notebook:<fileId>.y`` for ``json:notebook:<fileId>``)."""
    return f"%{room.rsplit(':', 1)[-1]}%"


def store_count(db: Path, room: str) -> int:
    if not db.exists():
        return 0
    with contextlib.closing(sqlite3.connect(db, timeout=30)) as conn:
        try:
            query = "SELECT count(*) FROM yupdates WHERE path LIKE ?"
            return conn.execute(query, (like(room),)).fetchone()[0]
        except sqlite3.OperationalError:
            return 0


def theirs_ws(side: lab.Side, room: str, session: str | None = None) -> str:
    query = f"token={side.token}" + (f"&sessionId={session}" if session else "")
    return f"{side.base.replace('http', 'ws', 1)}/api/collaboration/room/{room}?{query}"


def run_theirs(args: argparse.Namespace, patches: list[bytes], work: Path) -> Result:
    """Feed the history to jupyter-collaboration's room, then time its timeline routes."""
    import httpx

    from jupyter_sync.document_content import content

    root, logs = work / "theirs-root", work / "logs"
    root.mkdir(parents=True)
    (root / PATH).write_text(json.dumps(EMPTY_NOTEBOOK))
    side = lab.start_theirs(args, root, logs)
    result = Result("theirs")
    with contextlib.ExitStack() as stack:
        stack.callback(side.stop)
        headers = {"Authorization": f"token {side.token}"}
        timeout = args.request_timeout
        with httpx.Client(base_url=side.base, headers=headers, timeout=timeout) as http:
            session = http.put(
                f"/api/collaboration/session/{PATH}", json={"format": "json", "type": "notebook"}
            )
            session.raise_for_status()
            file_id, session_id = session.json()["fileId"], session.json()["sessionId"]
            room = f"json:notebook:{file_id}"
            db = root / ".jupyter_ystore.db"
            # The room stores the file's content first (a few rows), then one row per update.
            baseline = asyncio.run(baseline_rows(side, room, session_id, db))
            started = time.perf_counter()
            held = HeldRoom(theirs_ws(side, room, session_id), patches)
            stack.callback(held.close)
            held.wait_sent(args.theirs_budget)
            sent = time.perf_counter() - started
            deadline = time.monotonic() + args.theirs_budget
            wanted = baseline + len(patches)
            stored = store_count(db, room)
            while stored < wanted and time.monotonic() < deadline:
                side.check()
                time.sleep(0.5)  # the store gives no signal: poll its row count
                stored = store_count(db, room)
            fed = time.perf_counter() - started
            result.history = stored - baseline
            print(
                f"theirs: {len(patches)} updates sent in {sent:.1f} s, {stored - baseline} stored "
                f"after {fed:.1f} s ({baseline} rows before: the file's content)",
                flush=True,
            )
            if stored < wanted:
                result.note = f"stopped at the budget: {stored - baseline} of {len(patches)} stored"
            rows = store_rows(db, room)
            lab.settle(side.pids, 30)
            result.rss_before = lab.rss_of(side.pids)
            for repeat in range(args.repeat):
                seconds, answer = timed_request(
                    http, "GET", f"/api/collaboration/timeline/{PATH}?format=json&type=notebook"
                )
                body = answer.json()
                if repeat == 0:
                    result.rss_after = lab.rss_of(side.pids)
                points = len(body["timestamps"])
                result.points = points
                result.add("open", seconds)
                fork = body["forkRoom"]
                position = points - 1
                move_slider(http, result, room, fork, points)
                for _name, action, steps in moves(points):
                    # Their undo keeps the first step (the file's content) on the stack.
                    if action == "undo":
                        position = max(position - steps, 0)
                    else:
                        position = min(position + steps, points - 1)
                if repeat == 0:
                    shown = asyncio.run(room_doc(theirs_ws(side, fork)))
                    result.checks.append(
                        check_theirs(content(shown, "notebook"), rows, position, points)
                    )
                seconds, _ = timed_request(
                    http,
                    "PUT",
                    f"/api/collaboration/undo_redo/{quote(room, safe='')}"
                    f"?action=restore&steps=0&forkRoom={fork}",
                )
                result.add("restore", seconds)
    return result


async def baseline_rows(side: lab.Side, room: str, session: str, db: Path) -> int:
    """Open the room once (the server loads the file into it and stores that): its rows then,
    once their count has stayed the same for a second."""
    await room_doc(theirs_ws(side, room, session))
    deadline = time.monotonic() + 60
    count, since = store_count(db, room), time.monotonic()
    while time.monotonic() < deadline and (count == 0 or time.monotonic() - since < 1.0):
        await asyncio.sleep(0.2)  # polled: the store gives no signal
        now = store_count(db, room)
        if now != count:
            count, since = now, time.monotonic()
    return count


def check_theirs(shown: dict, rows: list[bytes], position: int, points: int) -> str:
    """Whether the fork shows the store's rows replayed up to the one that made the undo step
    at ``position`` (their timeline counts a point for each row that adds an undo step of
    jupyter_ydoc's notebook undo manager)."""
    from jupyter_ydoc import YNotebook
    from pycrdt import Doc

    from jupyter_sync.document_content import content

    doc = Doc()
    manager = YNotebook(doc).undo_manager
    ends: list[int] = []
    for index, row in enumerate(rows):
        steps = len(manager.undo_stack)
        doc.apply_update(row)
        if len(manager.undo_stack) > steps:
            ends.append(index)
    if len(ends) != points:
        return f"theirs: {points} points answered, {len(ends)} undo steps in a replay: unchecked"
    expected = Doc()
    for row in rows[: ends[position] + 1]:
        expected.apply_update(row)
    wanted = content(expected, "notebook")
    differ = [root for root in wanted if wanted[root] != shown.get(root)]
    return (
        f"theirs: the middle (point {position}) equals the store's rows 0..{ends[position]} "
        "replayed: " + (f"DIFFERS ({', '.join(differ)})" if differ else "ok")
    )


# --- Ours ----------------------------------------------------------------------------------------


def ours_document(patches: list[bytes]) -> tuple[str, Any, Any]:
    """An editor's token, and the notebook's datastore with the history, recorded open at
    ``PATH`` as the supernode leaves an opened notebook (roles from the jupyter datastore)."""
    from django.contrib.auth.models import User

    from jupyter_sync.collaboration.document_records import document_datastore_name
    from jupyter_sync.schema import JUPYTER_DATASTORE
    from relay.models import ApiToken
    from tables import records, service
    from tables.permissions import grant

    owner = User.objects.create_user("timeline-bench-owner")
    editor = User.objects.create_user("timeline-bench-editor")
    jupyter = service.create_datastore(JUPYTER_DATASTORE, "jupyter", owner=owner)
    grant(jupyter, editor, "editor")
    document_id = "bench1"
    datastore = service.create_datastore(document_datastore_name(document_id), "notebook", owner)
    datastore.roles_from = jupyter
    datastore.save(update_fields=["roles_from"])
    ours_bench.write_history(datastore, editor.pk, patches)
    record = {
        "path": PATH,
        "type": "notebook",
        "format": "json",
        "datastore_name": datastore.name,
        "status": "open",
    }
    records.set_fields(jupyter, "documents", document_id, record)
    return ApiToken.objects.create(user=editor).key, datastore, editor


def run_ours(args: argparse.Namespace, patches: list[bytes], work: Path) -> Result:
    """Write the history through the write path, then time our timeline routes on daphne."""
    import httpx

    from jupyter_sync.collaboration import timeline
    from jupyter_sync.document_content import content
    from jupyter_sync.jupyter.launcher import free_port
    from tables import history

    started = time.perf_counter()
    token, datastore, editor = ours_document(patches)
    print(
        f"ours: {datastore.last_serial} transactions written in "
        f"{time.perf_counter() - started:.1f} s",
        flush=True,
    )
    logs = work / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    port = free_port()
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    daphne = str(Path(sys.executable).with_name("daphne"))
    web = lab.Child(
        "daphne-timeline",
        [daphne, "-b", "127.0.0.1", "-p", str(port), "rtc_project.asgi:application"],
        env,
        logs,
    )
    result = Result("ours", history=datastore.last_serial)
    try:
        base = f"http://127.0.0.1:{port}"
        lab.wait_http(f"{base}/admin/login/", "daphne", web.check)
        headers = {"Authorization": f"Token {token}"}
        with httpx.Client(base_url=base, headers=headers, timeout=args.request_timeout) as http:
            http.get("/admin/login/")  # the first request imports the views: not an open's cost
            lab.settle([web.pid], 30)
            result.rss_before = lab.rss_of([web.pid])
            for repeat in range(args.repeat):
                seconds, answer = timed_request(
                    http, "GET", f"/api/collaboration/timeline/{PATH}?format=json&type=notebook"
                )
                body = answer.json()
                if repeat == 0:
                    result.rss_after = lab.rss_of([web.pid])
                points = len(body["timestamps"])
                result.points = points
                result.add("open", seconds)
                room, fork = body["roomId"], body["forkRoom"]
                serial = move_slider(http, result, room, fork, points)[-1].json()["serial"]
                if repeat == 0:
                    fork_row = timeline.fork_for(timeline.fork_id_of(fork) or "", editor)
                    shown = content(timeline.view_doc(fork_row), "notebook")
                    same = shown == content(history.doc_at(datastore, serial), "notebook")
                    result.checks.append(
                        f"ours: the middle (serial {serial}) equals history.doc_at there: "
                        + ("ok" if same else "DIFFERS")
                    )
                seconds, _ = timed_request(
                    http,
                    "PUT",
                    f"/api/collaboration/undo_redo/{quote(room, safe='')}"
                    f"?action=restore&steps=0&forkRoom={fork}",
                )
                result.add("restore", seconds)
    finally:
        web.stop()
    return result


# --- Report --------------------------------------------------------------------------------------


def report(results: list[Result], args: argparse.Namespace, loads: list[str]) -> None:
    by_name = {result.name: result for result in results}
    ours, theirs = by_name.get("ours"), by_name.get("theirs")
    names: list[str] = []
    for result in results:
        names += [name for name in result.seconds if name not in names]

    def ms(result: Result | None, name: str) -> float | None:
        if result is None or name not in result.seconds:
            return None
        return common.median(result.seconds[name]) * 1000

    rows: list[list[str]] = []
    for name in names:
        mine, peer = ms(ours, name), ms(theirs, name)
        ratio = f"{mine / peer:.2f}" if mine is not None and peer else "-"
        rows.append(
            [
                name,
                f"{mine:,.1f}" if mine is not None else "-",
                f"{peer:,.1f}" if peer is not None else "-",
                ratio,
            ]
        )
    for label, get in (
        ("RSS before open (MiB)", lambda r: r.rss_before),
        ("RSS after open (MiB)", lambda r: r.rss_after),
        ("RSS added by open (MiB)", lambda r: r.rss_after - r.rss_before),
    ):
        values = [get(r) / 1048576 if r is not None else None for r in (ours, theirs)]
        rows.append([label, *(f"{v:,.1f}" if v is not None else "-" for v in values), "-"])
    points = " / ".join(f"{r.name} {r.points} points, {r.history} updates" for r in results)
    common.print_table(
        ["operation", "ours ms", "theirs ms", "ours/theirs"],
        rows,
        f"--history {args.history}, median of {args.repeat} (slider: {points}); {'; '.join(loads)}",
    )
    for result in results:
        for line in result.checks:
            print(line)
        if result.note:
            print(f"{result.name}: {result.note}")


def stop_on_sigterm() -> None:
    """SIGTERM ends the run as Ctrl+C does: through the ``finally`` blocks that stop the
    servers it started."""

    def handler(signum: int, frame: object) -> None:
        raise SystemExit(f"stopped by signal {signum}")

    signal.signal(signal.SIGTERM, handler)


def main() -> None:
    args = parse_args()
    stop_on_sigterm()
    common.setup_django(args)
    started = time.perf_counter()
    patches = list(ours_bench.updates(args.history, args.cells, args.seed))
    size = sum(len(update) for update in patches)
    print(
        f"{len(patches)} updates made in {time.perf_counter() - started:.1f} s "
        f"({common.kib(size)} in all); {common.load_average()}",
        flush=True,
    )
    work = Path(tempfile.mkdtemp(prefix="timeline-peer-", dir=args.data_dir))
    results: list[Result] = []
    loads: list[str] = []
    runners: list[Callable[[argparse.Namespace, list[bytes], Path], Result]] = []
    if not args.skip_ours:
        runners.append(run_ours)
    if not args.skip_theirs:
        runners.append(run_theirs)
    for run in runners:
        results.append(run(args, patches, work))
        loads.append(f"{results[-1].name}: {common.load_average()}")
        if len(runners) > 1 and len(results) < len(runners):
            report(results, args, loads)  # kept should the next side fail
    report(results, args, loads)


if __name__ == "__main__":
    main()
