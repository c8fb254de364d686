"""Benchmark: opening a big notebook, stage by stage, against jupyter_ydoc loading the same file.

    .venv/bin/python bench/big_open.py                       # 1,000 cells of 1,390 characters
    .venv/bin/python bench/big_open.py --repeat 7 --cells 1000 --cell-chars 1390
    .venv/bin/python bench/big_open.py --postgres

One run, side by side, on the same ``--cells``-cell notebook of code cells of ``--cell-chars``
characters (1.4 MB on disk by default, the size issue 15 names):

* **peer**: jupyter_ydoc loading the ``.ipynb`` file in this process: read it, parse the JSON,
  ``YNotebook(Doc()).set(content)`` (and, printed apart, encoding the document as one update,
  what a server sends a joining client); measured just before each of ours, so both see the
  same machine;
* **ours**: this server as ``scripts/run`` runs it (daphne with its WebSocket limits at
  ``RTC_MAX_MESSAGE_BYTES``, SQLite in a temporary DATA_DIR unless ``--postgres``), a Jupyter
  Server holding the files, ``manage.py run_supernode`` against it; a stock y-websocket client
  (``bench/lab_clients.mjs``, Node) asks to open a never-opened notebook as JupyterLab does
  (``PUT /api/collaboration/session/<path>``, then the room), timed from the PUT until its
  document holds every cell.

daphne and the supernode run through ``bench/stages.py``, which times named functions inside them
(wall clock, one machine), so the open is split into its stages: the request reaching the
supernode, the contents read from Jupyter Server, building the Yjs document, sending it to the
server, the server's first commit (size and nesting check, apply and analyze, persist, of which
projection), the acknowledgement back, the record saying ``open`` and the answer, and the client
joining (the state for it, sent and applied). Medians of ``--repeat`` opens, one notebook each.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import ROOT, add_common_arguments, load_average, median, print_table
from bench.lab import (
    Child,
    Clients,
    Side,
    jupyter_server,
    notebook_of,
    open_retrying,
    settle,
    wait_http,
)

SUPERNODE = "supernode: open (all)"
STAGES = [
    # (row, stage in bench/stages.py)
    ("contents read from Jupyter Server", "supernode: read"),
    ("the document's datastore made", "supernode: datastore made"),
    ("the document's client connected", "supernode: client connected"),
    ("building the Yjs document", "supernode: build doc"),
    ("server: message received and parsed", "server: message received, parsed, queued"),
    ("server: first commit (all)", "server: write (all)"),
    ("  size and nesting check", "server: size and nesting check"),
    ("  apply and analyze", "server: apply and analyze"),
    ("  persist (rows, checkpoint, projection)", "server: persist (rows, checkpoint, projection)"),
    ("    of which projection", "server: projection"),
    ("state for the joining client", "server: state for a joining client"),
    ("room handshake and checks", "server: room handshake and checks"),
    ("sync step 2 (the state) sent", "server: sync step 2 sent"),
]


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_common_arguments(parser)
    parser.add_argument("--repeat", type=int, default=5, help="notebooks opened (medians of)")
    parser.add_argument("--cells", type=int, default=1000, help="code cells per notebook")
    parser.add_argument("--cell-chars", type=int, default=1300, help="source characters per cell")
    parser.add_argument("--settle", type=float, default=20.0, help="most seconds to wait idle")
    parser.add_argument("--open-timeout", type=float, default=120.0, help="seconds for an open")
    return parser.parse_args()


def make_notebook(cells: int, chars: int) -> dict[str, Any]:
    """Code cells of ``chars`` characters (as tests/jupyter/test_big_notebooks.py makes them: 1,000
    cells of 1,300 characters is a 1.4 MB file)."""
    content = []
    for index in range(cells):
        line = "values = compute(table, column)  # one line of a cell's code, 80 characters\n"
        source = (f"# cell {index}\n" + line * (chars // len(line) + 1))[:chars]
        content.append(
            {
                "id": f"cell-{index:05d}",
                "cell_type": "code",
                "execution_count": None,
                "metadata": {},
                "outputs": [],
                "source": source,
            }
        )
    return notebook_of(content)


def peer_load(path: Path) -> tuple[float, float, int]:
    """jupyter_ydoc loading the file: (seconds to a loaded YNotebook, seconds to encode it as
    one update, the update's size)."""
    from jupyter_ydoc import YNotebook
    from pycrdt import Doc

    start = time.perf_counter()
    notebook = YNotebook(Doc())
    notebook.set(json.loads(path.read_text()))
    loaded = time.perf_counter()
    update = notebook.ydoc.get_update()
    return loaded - start, time.perf_counter() - loaded, len(update)


def accounts() -> str:
    """The supernode's account and the jupyter datastore (as run_supernode makes them), and an
    editor's token for the client."""
    from django.contrib.auth.models import User

    from jupyter_sync.supernode import account
    from relay.models import ApiToken
    from tables.permissions import grant

    account.ensure_service_account()
    datastore = account.ensure_jupyter_datastore()
    editor = User.objects.create_user("big-open-editor")
    grant(datastore, editor, "editor")
    return ApiToken.objects.create(user=editor).key


def start(root: Path, logs: Path, stages_file: Path) -> tuple[Side, str]:
    from jupyter_sync.jupyter.launcher import free_port
    from tables.conf import rtc_settings

    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = dict(os.environ, PYTHONUNBUFFERED="1", BENCH_STAGES_FILE=str(stages_file))
    limit = str(rtc_settings.MAX_MESSAGE_BYTES)
    daphne = str(Path(sys.executable).with_name("daphne"))
    side = Side("ours")
    web = Child(
        "daphne",
        [daphne, "-b", "127.0.0.1", "-p", str(port), "--websocket-max-message-size", limit,
         "--websocket-max-frame-size", limit, "bench.stages:application"],
        env,
        logs,
    )  # fmt: skip
    side.stoppers.append(web.stop)
    wait_http(f"{url}/admin/login/", "daphne", web.check)
    server = jupyter_server(root, env={"PYTHONPATH": str(ROOT / "bridge")})
    side.stoppers.append(lambda: (server.stop(), server.close()))
    server.start()
    supernode = Child(
        "supernode",
        [sys.executable, str(ROOT / "bench" / "stages.py"), "manage", "run_supernode",
         "--jupyter-url", server.url, "--jupyter-token", server.token, "--server-url", url],
        env,
        logs,
    )  # fmt: skip
    side.stoppers.append(supernode.stop)
    side.pids = [web.pid, supernode.pid, server.pid]
    side.checks += [web.check, supernode.check]
    side.base = url
    return side, url


def read_stages(stages_file: Path, since: float, until: float) -> list[dict[str, Any]]:
    found = []
    with stages_file.open() as lines:
        for line in lines:
            entry = json.loads(line)
            if entry["start"] >= since and entry["end"] <= until:
                found.append(entry)
    return found


def longest(entries: list[dict[str, Any]], stage: str, label: str = "") -> dict[str, Any] | None:
    """The longest call of ``stage`` about ``label`` (a document's path or datastore) or about
    something big: the open's own call among the small writes going on beside it."""
    calls = [
        e
        for e in entries
        if e["stage"] == stage
        and (
            stage.startswith(("supernode", "server: room", "server: sync"))  # documents only
            or e["label"].endswith(label)
            or e["label"].startswith("doc-")
            or e["size"] > 100_000
        )
    ]
    return max(calls, key=lambda e: e["end"] - e["start"], default=None)


def split(entries: list[dict[str, Any]], path: str, t0: float, put: float, synced: float):
    """Each stage's milliseconds, and the gaps between them, for one open."""
    rows: dict[str, float] = {}
    found = {stage: longest(entries, stage, path) for _, stage in STAGES}
    # The room's, not the supernode's connection to the document (made before the answer).
    found[STAGES[11][1]] = longest([e for e in entries if e["start"] >= put], STAGES[11][1])
    found[SUPERNODE] = longest(entries, SUPERNODE, path)
    ms = lambda a, b: (b - a) * 1000  # noqa: E731
    opened, built = found[SUPERNODE], found["supernode: build doc"]
    received, written = found[STAGES[4][1]], found[STAGES[5][1]]
    joined = found["server: state for a joining client"]
    if opened:
        rows["request reaching the supernode"] = ms(t0, opened["start"])
        parts = [found[stage] for _, stage in STAGES[:4]]
        if built and all(parts):
            inside = sum(ms(p["start"], p["end"]) for p in parts)
            rows["supernode: between those (records written, ...)"] = (
                ms(opened["start"], built["end"]) - inside
            )
    for row, stage in STAGES[:4]:
        if found[stage]:
            rows[row] = ms(found[stage]["start"], found[stage]["end"])
    if built and received:
        rows["sending to the server"] = ms(built["end"], received["start"])
    for row, stage in STAGES[4:10]:
        if found[stage]:
            rows[row] = ms(found[stage]["start"], found[stage]["end"])
        if stage == STAGES[4][1] and received and written:
            rows["server: queued for the write (group commit, database thread)"] = ms(
                received["end"], written["start"]
            )
    if written and opened:
        rows["acknowledgement back to the supernode"] = ms(written["end"], opened["end"])
    if opened:
        rows["record open, the request answered"] = ms(opened["end"], put)
    rows["client joining (all)"] = ms(put, synced)
    handshake, step2 = found[STAGES[11][1]], found[STAGES[12][1]]
    if handshake:
        rows[f"  {STAGES[11][0]}"] = ms(handshake["start"], handshake["end"])
        rows["  request answered to the handshake"] = ms(put, handshake["start"])
    if joined:
        rows[f"  {STAGES[10][0]}"] = ms(joined["start"], joined["end"])
    if step2:
        rows[f"  {STAGES[12][0]}"] = ms(step2["start"], step2["end"])
        rows["  the client applying it (after it was sent)"] = ms(step2["end"], synced)
    rows["unaccounted (total less the stages above)"] = ms(t0, synced) - sum(
        value for name, value in rows.items() if not name.startswith(" ")
    )
    rows["total: request to a client with every cell"] = ms(t0, synced)
    return rows


def main() -> None:
    args = parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="rtc-bench-big-open-"))
    logs = tmp / "logs"
    logs.mkdir()
    args.data_dir = args.data_dir or str(tmp / "data")
    from bench.common import setup_django, vendor

    url = setup_django(args)
    print(f"big open; database {vendor()} ({url}); {load_average()}", flush=True)
    root = tmp / "notebooks"
    root.mkdir()
    text = json.dumps(make_notebook(args.cells, args.cell_chars), indent=1)
    for index in range(args.repeat):
        (root / f"big-{index + 1}.ipynb").write_text(text)
    (root / "warmup.ipynb").write_text(json.dumps(make_notebook(20, 200), indent=1))
    size = len(text.encode())
    token = accounts()
    stages_file = tmp / "stages.jsonl"
    stages_file.touch()
    side, base = start(root, logs, stages_file)
    side.token = token
    clients = Clients(logs)
    peer: list[float] = []
    encode: list[float] = []
    peer_bytes = 0
    splits: list[dict[str, float]] = []
    loads = [load_average()]
    try:
        open_retrying(clients, side, "warm", "warmup.ipynb", 20)
        for index in range(args.repeat):
            path = f"big-{index + 1}.ipynb"
            settle(side.pids, args.settle)
            loaded, encoded, peer_bytes = peer_load(root / path)
            peer.append(loaded)
            encode.append(encoded)
            settle(side.pids, args.settle)
            t0 = time.time()
            opened = clients(
                "open",
                name=f"open-{index}",
                base=base,
                token=token,
                path=path,
                cells=args.cells,
                timeoutMs=args.open_timeout * 1000,
            )
            side.check()
            put, synced = t0 + opened["putMs"] / 1000, t0 + opened["ms"] / 1000
            time.sleep(0.2)  # the last stage lines are written as the calls return
            entries = read_stages(stages_file, t0, synced + 0.2)
            splits.append(split(entries, path, t0, put, synced))
            total = splits[-1]["total: request to a client with every cell"]
            print(
                f"  {path}: ours {total:,.0f} ms, jupyter_ydoc {loaded * 1000:.0f} ms",
                file=sys.stderr,
                flush=True,
            )
            clients("close", name=f"open-{index}")
    finally:
        clients.close()
        side.stop()
    loads.append(load_average())
    peer_ms = median(peer) * 1000
    print(
        f"\nnotebook: {args.cells:,} code cells of {args.cell_chars:,} characters, "
        f"{size / 1e6:.2f} MB on disk ({peer_bytes / 1e6:.2f} MB as one Yjs update); "
        f"{args.repeat} opens, one notebook each; medians in ms\n"
    )
    names = list(dict.fromkeys(name for s in splits for name in s))
    rows = []
    for name in names:
        values = [s[name] for s in splits if name in s]
        rows.append([name, f"{median(values):,.1f}", f"{min(values):,.1f}-{max(values):,.1f}"])
    print_table(["stage (ours)", "ms (median)", "range"], rows)
    total = median(s["total: request to a client with every cell"] for s in splits)
    print(
        f"\npeer: jupyter_ydoc loads the file (read, parse, YNotebook.set) in {peer_ms:.1f} ms "
        f"(range {min(peer) * 1000:.1f}-{max(peer) * 1000:.1f}); encoding it as one update "
        f"{median(encode) * 1000:.1f} ms more"
    )
    print(f"ratio: ours / jupyter_ydoc = {total / peer_ms:.2f}x (goal: <= 3x)")
    print(f"load: {loads[0]} at the start, {loads[1]} at the end")
    shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
