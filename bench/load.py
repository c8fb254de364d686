"""Benchmark: loading datastores — a long history cold, time travel, memory per loaded document.

    .venv/bin/python bench/load.py                         # both parts, SQLite in a temp dir
    .venv/bin/python bench/load.py --postgres              # postgres://postgres@127.0.0.1/rtc_bench
    .venv/bin/python bench/load.py history --history 100000 --repeat 3
    .venv/bin/python bench/load.py many --datastores 200 --items 20

``history``: builds one todo datastore with ``--history`` patches, written through
``tables.service.write`` in batches (so checkpoints exist exactly as in production, every
``CHECKPOINT_EVERY`` transactions), from a few pycrdt clients typing into items, adding, deleting
and toggling them. Then, each in a fresh child process (so that memory figures start from the same
baseline and freed memory is not silently reused), it measures:

* cold load: ``doc_cache.clear()`` then ``doc_cache.get(datastore)`` (newest checkpoint + tail);
* full replay: ``tables.history.replay(datastore, last_serial)`` (every patch, no checkpoint);
* time travel: ``tables.history.doc_at(datastore, middle_serial)``.

``many``: creates ``--datastores`` small todo datastores (``--items`` items each) and loads them all
into the doc cache in a child process, reporting RSS and tracemalloc growth per loaded document.

``notebooks``: memory per loaded notebook against its encoded size, beside the peer: a bare
``pycrdt.Doc`` holding the same state (what a Yjs server without history keeps). ``--notebooks``
notebooks of ``--cells`` code cells, each opened as the supernode opens one (its whole content as
one update) and then edited a little (typing, a cell deleted). Three ways, each in fresh children:
loaded cold from the database, written through the write path (the opening), and the bare doc.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import random
import subprocess
import sys
import time
import tracemalloc
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import common

HISTORY_NAME = "history"
MANY_PREFIX = "small-"
NOTEBOOK_PREFIX = "notebook-"
WARM_NAME = "warm-up"


# --- Building the data ----------------------------------------------------------------------


class HistoryGenerator:
    """A few clients editing one todo list; every change is one real Yjs update.

    The clients take turns (``turn`` changes each) and catch up with everything written before
    their turn, as real peers do; ``hub`` mirrors what the server has. Of the changes, ~85% type
    a character into one of the 20 newest items' titles, 6% backspace, 5% toggle ``done``, 2% add
    an item and 2% delete one once the list holds ``max_items`` (until then they add too): a list
    with churn, whose size stays bounded.
    """

    def __init__(self, clients: int = 4, turn: int = 50, seed: int = 1, max_items: int = 100):
        from pycrdt import Doc

        self.rng = random.Random(seed)
        self.hub = Doc()
        self.clients = [Doc() for _ in range(clients)]
        # Each client sends the update of each local transaction (its "update" event), as a Yjs
        # client does. Not ``doc.get_update(before)``: that carries the document's whole delete
        # set every time (see README).
        self._sent: list[bytes] = []
        self._subscriptions = [
            doc.observe(lambda event: self._sent.append(event.update)) for doc in self.clients
        ]
        self.turn = turn
        self.count = 0
        self.live: list[str] = []
        self.max_items = max_items
        self.next_item = 0

    def next(self) -> bytes:
        from pycrdt import Array, Map, Text

        client = self.clients[(self.count // self.turn) % len(self.clients)]
        if self.count % self.turn == 0:
            client.apply_update(self.hub.get_update(client.get_state()))
        self._sent.clear()
        items = client.get("items", type=Map)
        lists = client.get("lists", type=Map)
        roll = self.rng.random()
        with client.transaction():
            if self.count == 0:
                lists["main"] = Map({"title": Text("Main"), "items": Array([])})
            elif not self.live or roll < 0.02 or (roll < 0.04 and len(self.live) < self.max_items):
                item_id = f"i{self.next_item}"
                self.next_item += 1
                items[item_id] = Map({"title": Text(""), "done": False})
                lists["main"]["items"].append(item_id)
                self.live.append(item_id)
            elif roll < 0.04:
                item_id = self.live.pop(self.rng.randrange(len(self.live)))
                del items[item_id]
                order = lists["main"]["items"]
                position = order.to_py().index(item_id)
                del order[position]
            else:
                item_id = self.live[-1 - self.rng.randrange(min(20, len(self.live)))]
                record = items[item_id]
                title = record["title"]
                if roll < 0.09:
                    record["done"] = not record["done"]
                elif roll < 0.15 and len(title):
                    del title[len(title) - 1]
                else:
                    at = (
                        len(title)
                        if self.rng.random() < 0.9
                        else self.rng.randrange(len(title) + 1)
                    )
                    title.insert(at, self.rng.choice("abcdefghijklmnopqrstuvwxyz     "))
        update = self._sent[-1]
        self.hub.apply_update(update)
        self.count += 1
        return update


def build_history(total: int, batch: int, max_items: int) -> dict:
    """The big datastore, written through ``service.write`` in batches; returns build figures."""
    from tables import service
    from tables.conf import rtc_settings
    from tables.models import Checkpoint, Datastore
    from tables.service import Proposal

    datastore = service.create_datastore(HISTORY_NAME, "todo")
    generator = HistoryGenerator(max_items=max_items)
    # A first batch of 1.5 checkpoint intervals puts checkpoints half an interval before the end
    # of each later interval: the tail after the newest checkpoint is then ~CHECKPOINT_EVERY / 2
    # patches (the average case), not 0 (the best) or CHECKPOINT_EVERY - 1 (the worst).
    first = min(total, rtc_settings.CHECKPOINT_EVERY + rtc_settings.CHECKPOINT_EVERY // 2)
    statuses: dict[str, int] = {}
    written = 0
    generating = writing = 0.0
    size = first
    while written < total:
        size = min(size, total - written)
        start = time.perf_counter()
        proposals = [
            (Proposal(generator.next(), txid=f"h{written + i}"), None) for i in range(size)
        ]
        generating += time.perf_counter() - start
        start = time.perf_counter()
        for outcome in service.write(datastore, proposals):
            statuses[str(outcome.status)] = statuses.get(str(outcome.status), 0) + 1
        writing += time.perf_counter() - start
        written += size
        size = batch
        if written % 10000 < batch:
            print(f"  built {written:,} / {total:,} patches", flush=True)
    datastore = Datastore.objects.get(pk=datastore.pk)
    checkpoints = Checkpoint.objects.filter(datastore=datastore)
    return {
        "statuses": statuses,
        "generating": generating,
        "writing": writing,
        "last_serial": datastore.last_serial,
        "checkpoint_serial": datastore.checkpoint_serial,
        "checkpoints": checkpoints.count(),
        "checkpoint_bytes": sum(checkpoints.values_list("size", flat=True)),
        "patch_bytes": datastore.size,
        "newest_checkpoint": checkpoints.order_by("-serial").values_list("size", flat=True).first(),
        "expected": generator.hub,
    }


def build_small(count: int, items: int) -> float:
    """``count`` todo datastores of ``items`` items each, plus a little typing in each."""
    from pycrdt import Array, Doc, Map, Text

    from tables import service
    from tables.service import Proposal

    start = time.perf_counter()
    for index in range(count):
        datastore = service.create_datastore(f"{MANY_PREFIX}{index}", "todo")
        client = Doc()
        with client.transaction():
            records = client.get("items", type=Map)
            lists = client.get("lists", type=Map)
            ids = [f"item-{n}" for n in range(items)]
            for n, item_id in enumerate(ids):
                records[item_id] = Map({"title": Text(f"Todo number {n}"), "done": n % 3 == 0})
            lists["main"] = Map({"title": Text("Main"), "items": Array(ids)})
        updates = [client.get_update()]
        for n in range(items):  # one more edit per item, as a user would make
            before = client.get_state()
            client.get("items", type=Map)[f"item-{n}"]["title"] += "!"
            updates.append(client.get_update(before))
        service.write(
            datastore, [(Proposal(u, txid=f"s{index}-{i}"), None) for i, u in enumerate(updates)]
        )
    return time.perf_counter() - start


def notebook_update(cells: int, seed: int) -> bytes:
    """A notebook of ``cells`` code cells of ~400 characters, as jupyter_ydoc lays it out."""
    import nbformat
    from jupyter_ydoc import YNotebook

    rng = random.Random(seed)
    words = ("x", "value", "print", "range", "data", "frame", "plot", "=", "+", "(", ")", "1")
    sources = [
        f"# cell {n}\n" + " ".join(rng.choice(words) for _ in range(90)) for n in range(cells)
    ]
    book = YNotebook()
    book.set(nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(s) for s in sources]))
    return book.ydoc.get_update()


def build_notebooks(args: argparse.Namespace) -> int:
    """``--notebooks`` notebook datastores: opened (one update), then typed into and a cell
    deleted. Saves each opening update and final state for the children; the encoded size."""
    from pycrdt import Array, Doc

    from tables import service
    from tables.service import Proposal

    encoded = 0
    for index in range(args.notebooks):
        opening = notebook_update(args.cells, index)
        client = Doc()
        client.apply_update(opening)
        updates = [opening]
        cells = client.get("cells", type=Array)
        for n in range(0, args.cells, 10):  # a keystroke in every tenth cell
            before = client.get_state()
            cells[n]["source"].insert(0, "y")
            updates.append(client.get_update(before))
        before = client.get_state()
        del cells[len(cells) - 1]
        updates.append(client.get_update(before))
        datastore = service.create_datastore(f"{NOTEBOOK_PREFIX}{index}", "notebook")
        service.write(
            datastore, [(Proposal(u, txid=f"n{index}-{i}"), None) for i, u in enumerate(updates)]
        )
        state = client.get_update()
        encoded += len(state)
        (Path(args.data_dir) / f"opening-{index}.bin").write_bytes(opening)
        (Path(args.data_dir) / f"state-{index}.bin").write_bytes(state)
    return encoded


def build_warm_up() -> None:
    """A tiny datastore that the children load first, so that one-off costs are not measured."""
    from pycrdt import Doc, Map, Text

    from tables import service
    from tables.service import Proposal

    datastore = service.create_datastore(WARM_NAME, "todo")
    client = Doc()
    client.get("items", type=Map)["a"] = Map({"title": Text("warm"), "done": False})
    service.write_one(datastore, Proposal(client.get_update(), txid="warm"))


# --- Measuring, in a child process ----------------------------------------------------------


def child(args: argparse.Namespace) -> None:
    os.environ["RTC_MAX_LOADED"] = str(max(1000, args.datastores + 10))
    common.setup_django(args, fresh=False)
    from tables import history
    from tables.loaded import doc_cache
    from tables.models import Datastore

    # One-off costs (first queries, imports, compiled code paths) are paid here, not measured.
    warm = Datastore.objects.get(name=WARM_NAME)
    doc_cache.get(warm)
    history.replay(warm, warm.last_serial)
    history.doc_at(warm, 1)
    doc_cache.clear()

    if args.task == "many":
        targets = list(Datastore.objects.filter(name__startswith=MANY_PREFIX))

        def work():
            return [doc_cache.get(datastore) for datastore in targets]

    elif args.task == "notebooks-load":
        targets = list(Datastore.objects.filter(name__startswith=NOTEBOOK_PREFIX))

        def work():
            return [doc_cache.get(datastore) for datastore in targets]

    elif args.task == "notebooks-write":
        from tables import service
        from tables.service import Proposal

        openings = sorted(Path(args.data_dir).glob("opening-*.bin"))
        updates = [path.read_bytes() for path in openings]
        fresh = [
            service.create_datastore(f"opened-{os.getpid()}-{n}", "notebook")
            for n in range(len(updates))
        ]
        # The first opening pays one-off costs (the projection's code paths); not measured.
        warm_book = service.create_datastore(f"opened-{os.getpid()}-warm", "notebook")
        service.write_one(warm_book, Proposal(updates[0]))
        doc_cache.clear()

        def work():
            for datastore, update in zip(fresh, updates, strict=True):
                service.write_one(datastore, Proposal(update))
            return [doc_cache.peek(datastore.pk) for datastore in fresh]

    elif args.task == "notebooks-bare":
        from pycrdt import Doc

        states = [path.read_bytes() for path in sorted(Path(args.data_dir).glob("state-*.bin"))]

        def work():
            docs = []
            for state in states:
                doc = Doc()
                doc.apply_update(state)
                docs.append(doc)
            return docs

    else:
        datastore = Datastore.objects.get(name=HISTORY_NAME)
        if args.task == "cold":

            def work():
                doc_cache.clear()
                return doc_cache.get(datastore)

        elif args.task == "replay":

            def work():
                return history.replay(datastore, datastore.last_serial)

        else:  # doc_at

            def work():
                return history.doc_at(datastore, args.serial)

    gc.collect()
    rss_before = common.rss_bytes()
    common.reset_peak_rss()
    if args.tracemalloc:
        tracemalloc.start()
    start = time.perf_counter()
    result = work()
    seconds = time.perf_counter() - start
    traced_current = traced_peak = 0
    if args.tracemalloc:
        gc.collect()
        traced_current, traced_peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
    gc.collect()
    rss_after = common.rss_bytes()
    peak_after = common.peak_rss_bytes()
    # What the process still holds once glibc hands back the free pages it keeps for reuse.
    common.trim_malloc()
    rss_trimmed = common.rss_bytes()
    print(
        json.dumps(
            {
                "seconds": seconds,
                "rss_delta": rss_after - rss_before,
                "peak_rss_delta": max(0, peak_after - rss_before),
                "rss_trimmed_delta": rss_trimmed - rss_before,
                "traced_current": traced_current,
                "traced_peak": traced_peak,
                "count": len(result) if isinstance(result, list) else 1,
            }
        )
    )


def measure(args: argparse.Namespace, task: str, **extra) -> dict:
    """Median figures of ``--repeat`` child runs, timing and tracemalloc in separate children."""
    runs: list[dict] = []
    traced: list[dict] = []
    for _ in range(args.repeat):
        for use_tracemalloc in (False, True):
            command = [
                sys.executable,
                str(Path(__file__).resolve()),
                "_child",
                "--task",
                task,
                "--database-url",
                args.url,
                "--data-dir",
                str(args.data_dir),
                "--datastores",
                str(args.datastores),
            ]
            if args.conn_max_age is not None:
                command += ["--conn-max-age", str(args.conn_max_age)]
            for key, value in extra.items():
                command += [f"--{key}", str(value)]
            if use_tracemalloc:
                command.append("--tracemalloc")
            output = subprocess.run(command, check=True, capture_output=True, text=True).stdout
            figures = json.loads(output.strip().splitlines()[-1])
            (traced if use_tracemalloc else runs).append(figures)
    return {
        "seconds": common.median(r["seconds"] for r in runs),
        "seconds_min": min(r["seconds"] for r in runs),
        "seconds_max": max(r["seconds"] for r in runs),
        "rss_delta": common.median(r["rss_delta"] for r in runs),
        "peak_rss_delta": common.median(r["peak_rss_delta"] for r in runs),
        "rss_trimmed_delta": common.median(r["rss_trimmed_delta"] for r in runs),
        "traced_current": common.median(r["traced_current"] for r in traced),
        "traced_peak": common.median(r["traced_peak"] for r in traced),
        "seconds_traced": common.median(r["seconds"] for r in traced),
        "count": runs[0]["count"],
    }


# --- The two parts --------------------------------------------------------------------------


def run_history(args: argparse.Namespace) -> None:
    from tables import history, service
    from tables.conf import rtc_settings
    from tables.loaded import doc_cache
    from tables.models import Datastore
    from todo.schema import TODO

    db = common.vendor()
    print(
        f"\nBuilding {args.history:,} patches through service.write in batches of {args.batch} "
        f"(CHECKPOINT_EVERY={rtc_settings.CHECKPOINT_EVERY}) ...",
        flush=True,
    )
    built = build_history(args.history, args.batch, args.max_items)
    rate = built["last_serial"] / built["writing"]
    datastore = Datastore.objects.get(name=HISTORY_NAME)
    middle = datastore.last_serial // 2 + rtc_settings.CHECKPOINT_EVERY // 4

    # Correctness, once: cold load == full replay == what the clients produced; doc_at(middle)
    # == replay up to middle.
    doc_cache.clear()
    loaded = doc_cache.get(datastore).to_python()
    replayed = TODO.to_python(history.replay(datastore, datastore.last_serial))
    expected = TODO.to_python(built["expected"])
    at_middle = TODO.to_python(history.doc_at(datastore, middle))
    replayed_middle = TODO.to_python(history.replay(datastore, middle))
    doc_cache.clear()
    same = loaded == replayed == expected
    same_middle = at_middle == replayed_middle
    live_items = len(loaded["items"])
    state_bytes = len(service.live_state(datastore)[0])
    doc_cache.clear()

    common.print_table(
        ["figure", "value"],
        [
            ["patches stored", f"{built['last_serial']:,}"],
            ["statuses", ", ".join(f"{k}={v:,}" for k, v in sorted(built["statuses"].items()))],
            ["write path while building", f"{rate:,.0f} tx/s ({built['writing']:.1f} s)"],
            ["client-side update generation", f"{built['generating']:.1f} s"],
            ["patch bytes (Datastore.size)", common.mib(built["patch_bytes"])],
            ["checkpoints", f"{built['checkpoints']:,}"],
            ["checkpoint bytes, all kept", common.mib(built["checkpoint_bytes"])],
            ["newest checkpoint", common.kib(built["newest_checkpoint"] or 0)],
            ["encoded state now", common.kib(state_bytes)],
            [
                "tail after newest checkpoint",
                f"{built['last_serial'] - built['checkpoint_serial']}",
            ],
            ["live items in the document", f"{live_items:,}"],
            ["cold load == replay == clients", "yes" if same else "NO"],
            [f"doc_at({middle:,}) == replay to {middle:,}", "yes" if same_middle else "NO"],
        ],
        title=f"History datastore, {db}",
    )

    print(f"\nMeasuring in child processes, {args.repeat} runs each ...", flush=True)
    cold = measure(args, "cold")
    replay = measure(args, "replay")
    at = measure(args, "doc_at", serial=middle)
    rows = []
    for label, figures in (
        ("cold load (checkpoint + tail)", cold),
        (f"replay all {datastore.last_serial:,} patches", replay),
        (f"doc_at(serial {middle:,})", at),
    ):
        rows.append(
            [
                label,
                f"{figures['seconds'] * 1000:,.1f}",
                f"{figures['seconds_min'] * 1000:,.1f}-{figures['seconds_max'] * 1000:,.1f}",
                common.mib(figures["traced_peak"]),
                common.mib(figures["rss_delta"]),
                common.mib(figures["peak_rss_delta"]),
            ]
        )
    common.print_table(
        ["operation", "ms (median)", "ms range", "tracemalloc peak", "RSS delta", "peak RSS delta"],
        rows,
        title=(
            f"Loading a {datastore.last_serial:,}-patch datastore, {db} (median of {args.repeat})"
        ),
    )
    common.print_table(
        ["ratio", "value"],
        [
            ["replay time / cold load time", f"{replay['seconds'] / cold['seconds']:,.1f}x"],
            [
                "replay tracemalloc peak / cold load's",
                f"{replay['traced_peak'] / max(cold['traced_peak'], 1):,.1f}x",
            ],
            [
                "replay peak RSS delta / cold load's",
                f"{replay['peak_rss_delta'] / max(cold['peak_rss_delta'], 1):,.1f}x",
            ],
        ],
        title=f"Checkpoints vs full replay, {db}",
    )


def run_many(args: argparse.Namespace) -> None:
    db = common.vendor()
    print(f"\nBuilding {args.datastores} todo datastores of {args.items} items ...", flush=True)
    seconds = build_small(args.datastores, args.items)
    print(f"  built in {seconds:.1f} s", flush=True)
    figures = measure(args, "many")
    k = figures["count"]
    common.print_table(
        ["figure", "total", "per loaded datastore"],
        [
            [
                "load time",
                f"{figures['seconds'] * 1000:,.0f} ms",
                f"{figures['seconds'] / k * 1000:.2f} ms",
            ],
            [
                "RSS delta (retained)",
                common.mib(figures["rss_delta"]),
                common.kib(figures["rss_delta"] / k),
            ],
            [
                "peak RSS delta",
                common.mib(figures["peak_rss_delta"]),
                common.kib(figures["peak_rss_delta"] / k),
            ],
            [
                "tracemalloc, retained",
                common.mib(figures["traced_current"]),
                common.kib(figures["traced_current"] / k),
            ],
            [
                "tracemalloc, peak",
                common.mib(figures["traced_peak"]),
                common.kib(figures["traced_peak"] / k),
            ],
        ],
        title=(
            f"Memory per loaded datastore, {db}: {k} todo datastores of {args.items} items "
            f"(~{args.items + 1} transactions each), median of {args.repeat}"
        ),
    )


def run_notebooks(args: argparse.Namespace) -> None:
    db = common.vendor()
    print(
        f"\nBuilding {args.notebooks} notebooks of {args.cells} cells (opened, then edited) ...",
        flush=True,
    )
    encoded = build_notebooks(args)
    k = args.notebooks
    rows = []
    bare = None
    for label, task in (
        ("bare pycrdt Doc (peer)", "notebooks-bare"),
        ("loaded cold (doc_cache.get)", "notebooks-load"),
        ("opened through the write path", "notebooks-write"),
    ):
        figures = measure(args, task)
        trimmed = figures["rss_trimmed_delta"] / encoded
        bare = trimmed if bare is None else bare
        rows.append(
            [
                label,
                common.kib(figures["rss_delta"] / k),
                f"{figures['rss_delta'] / encoded:.1f}x",
                common.kib(figures["rss_trimmed_delta"] / k),
                f"{trimmed:.1f}x",
                f"{trimmed / bare:.2f}" if bare else "-",
                common.kib(figures["traced_current"] / k),
            ]
        )
    common.print_table(
        [
            "per notebook",
            "RSS",
            "x encoded",
            "RSS, trimmed",
            "x encoded",
            "ratio to peer",
            "Python objects",
        ],
        rows,
        title=(
            f"Memory per loaded notebook, {db}: {k} notebooks of {args.cells} cells, "
            f"{common.kib(encoded / k)} encoded each, median of {args.repeat} "
            "(trimmed: after malloc_trim, without the free pages glibc keeps for reuse)"
        ),
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "part",
        nargs="?",
        default="all",
        choices=["all", "history", "many", "notebooks", "_child"],
    )
    common.add_common_arguments(parser)
    parser.add_argument("--history", type=int, default=100_000, help="patches in the big datastore")
    parser.add_argument(
        "--batch", type=int, default=250, help="proposals per service.write while building"
    )
    parser.add_argument(
        "--max-items", type=int, default=100, help="live items in the history datastore, at most"
    )
    parser.add_argument("--datastores", type=int, default=200, help="small datastores to load")
    parser.add_argument("--items", type=int, default=20, help="items per small datastore")
    parser.add_argument("--notebooks", type=int, default=20, help="notebooks to load")
    parser.add_argument("--cells", type=int, default=100, help="code cells per notebook")
    parser.add_argument("--repeat", type=int, default=3, help="child runs per measurement")
    # Child-only options.
    parser.add_argument("--task", help=argparse.SUPPRESS)
    parser.add_argument("--serial", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--tracemalloc", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.part == "_child":
        child(args)
        return
    args.url = common.setup_django(args)
    print(f"database: {common.vendor()} ({args.url}); {common.load_average()}", flush=True)
    build_warm_up()
    if args.part in ("all", "history"):
        run_history(args)
    if args.part in ("all", "many"):
        run_many(args)
    if args.part in ("all", "notebooks"):
        run_notebooks(args)
    print(f"\nfinished; {common.load_average()}")


if __name__ == "__main__":
    main()
