"""Benchmark: transactions per second through the write path, with and without group commit.

    .venv/bin/python bench/write_path.py                      # SQLite in a temporary directory
    .venv/bin/python bench/write_path.py --postgres           # postgres://postgres@127.0.0.1/rtc_bench
    .venv/bin/python bench/write_path.py --writers 1 8 32 --seconds 3 --repeat 3
    .venv/bin/python bench/write_path.py --profile --writers 32   # cProfile of the batched path

Each writer is an asyncio task with its own pycrdt ``Doc`` (a client). It owns one todo item and
types into its title one character at a time, toggling ``done`` every tenth change; each change
is one small Yjs update sent as one proposal. "group" sends it through
``tables.commit.acommit`` (the group-commit entry point); "single" sends it through
``service.write_one`` in ``database_sync_to_async`` (one database transaction per write, all of
them serialised on Django's single sync thread, exactly like the group path's leader), so the two
differ only in the batching. "ystore" is the peer: the same writers' updates stored with
pycrdt-store's ``SQLiteYStore.write`` (one SQLite transaction per update, nothing validated or
projected) in a fresh SQLite file with this project's SQLite settings (WAL, synchronous=NORMAL).
Every run uses a fresh datastore; the figures are medians of ``--repeat`` runs.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import common


@dataclass
class RunResult:
    mode: str
    writers: int
    stored: int
    seconds: float
    latencies: list[float]
    batches: int
    other_statuses: dict[str, int] = field(default_factory=dict)
    gapless: bool = False
    converged: bool = False
    last_serial: int = 0
    per_writer: list[int] = field(default_factory=list)

    @property
    def tps(self) -> float:
        return self.stored / self.seconds

    @property
    def mean_batch(self) -> float:
        return self.stored / self.batches if self.batches else float("nan")


class Writer:
    """One client: its own Doc, one todo item, small edits."""

    def __init__(self, index: int, state: bytes):
        from pycrdt import Doc, Map

        self.index = index
        self.item_id = f"item-{index}"
        self.doc = Doc()
        self.doc.apply_update(state)
        self.record = self.doc.get("items", type=Map)[self.item_id]
        self.title = self.record["title"]
        self.count = 0
        # What a Yjs client sends: the update of each local transaction (its "update" event).
        self._sent: list[bytes] = []
        self._subscription = self.doc.observe(lambda event: self._sent.append(event.update))

    def edit(self) -> bytes:
        self._sent.clear()
        with self.doc.transaction():
            if self.count % 10 == 9:
                self.record["done"] = not self.record["done"]
            else:
                self.title.insert(len(self.title), chr(ord("a") + self.count % 26))
        self.count += 1
        return self._sent[-1]


def make_datastore(name: str, writers: int):
    """A fresh todo datastore with one item per writer, and the writers' client docs."""
    from pycrdt import Doc, Map, Text

    from tables import service
    from tables.service import Proposal

    datastore = service.create_datastore(name, "todo")
    seed = Doc()
    with seed.transaction():
        items = seed.get("items", type=Map)
        for index in range(writers):
            items[f"item-{index}"] = Map({"title": Text(""), "done": False})
    service.write_one(datastore, Proposal(seed.get_update(), txid=f"{name}-seed"))
    state, _ = service.live_state(datastore)
    return datastore, [Writer(index, state) for index in range(writers)]


def check(datastore, writers: list[Writer]) -> tuple[bool, bool, int]:
    """Serials gapless (count == last_serial == max, min == 1) and every title as typed."""
    from django.db.models import Count, Max, Min

    from tables import service
    from tables.models import Datastore, Transaction

    datastore = Datastore.objects.get(pk=datastore.pk)
    agg = Transaction.objects.filter(datastore=datastore).aggregate(
        n=Count("id"), lo=Min("serial"), hi=Max("serial")
    )
    gapless = agg["n"] == datastore.last_serial == agg["hi"] and agg["lo"] == 1
    server, _ = service.live_python(datastore)
    converged = all(server["items"][w.item_id] == w.record.to_py() for w in writers)
    return gapless, converged, datastore.last_serial


YSTORE_PRAGMAS = ("PRAGMA journal_mode=WAL", "PRAGMA synchronous=NORMAL")


async def run_ystore(
    writers_n: int, seconds: float, transactions: int, label: str, directory: str
) -> RunResult:
    """The same writers and edits, each update stored by one ``SQLiteYStore.write``."""
    from pycrdt import Doc, Map, Text
    from pycrdt.store import SQLiteYStore

    class Store(SQLiteYStore):
        db_path = str(Path(directory) / f"{label}.ystore.db")

    seed = Doc()
    with seed.transaction():
        items = seed.get("items", type=Map)
        for index in range(writers_n):
            items[f"item-{index}"] = Map({"title": Text(""), "done": False})
    writers = [Writer(index, seed.get_update()) for index in range(writers_n)]
    latencies: list[float] = []
    stored = submitted = 0
    deadline = time.perf_counter() + seconds if not transactions else float("inf")
    limit = transactions or float("inf")
    async with Store(path=label) as store:
        await store.db_initialized.wait()
        cursor = await store._db.cursor()
        for pragma in YSTORE_PRAGMAS:  # the settings rtc_project/settings.py gives SQLite
            await cursor.execute(pragma)
        await store.write(seed.get_update())

        async def work(writer: Writer) -> None:
            nonlocal stored, submitted
            while time.perf_counter() < deadline and submitted < limit:
                submitted += 1
                update = writer.edit()
                start = time.perf_counter()
                await store.write(update)
                latencies.append(time.perf_counter() - start)
                stored += 1

        began = time.perf_counter()
        await asyncio.gather(*(work(w) for w in writers))
        elapsed = time.perf_counter() - began
        converged = await _ystore_converged(store, writers)
    return RunResult(
        "ystore",
        writers_n,
        stored,
        elapsed,
        latencies,
        stored,
        {},
        True,
        converged,
        stored,
        [w.count for w in writers],
    )


async def _ystore_converged(store, writers: list[Writer]) -> bool:
    from pycrdt import Doc, Map

    doc = Doc()
    await store.apply_updates(doc)
    items = doc.get("items", type=Map)
    return all(items[w.item_id].to_py() == w.record.to_py() for w in writers)


async def run_once(
    mode: str, writers_n: int, seconds: float, transactions: int, label: str, directory: str = ""
) -> RunResult:
    if mode == "ystore":
        return await run_ystore(writers_n, seconds, transactions, label, directory)
    from channels.db import database_sync_to_async

    from tables import commit, service
    from tables.service import Proposal, Status

    datastore, writers = await database_sync_to_async(make_datastore)(label, writers_n)
    write_one = database_sync_to_async(service.write_one)
    latencies: list[float] = []
    statuses: dict[str, int] = {}
    stored = submitted = 0
    deadline = time.perf_counter() + seconds if not transactions else float("inf")
    limit = transactions or float("inf")

    async def work(writer: Writer) -> None:
        nonlocal stored, submitted
        while time.perf_counter() < deadline and submitted < limit:
            submitted += 1
            update = writer.edit()
            proposal = Proposal(update, txid=f"{label}-{writer.index}-{writer.count}")
            start = time.perf_counter()
            if mode == "group":
                outcome = await commit.acommit(datastore, proposal)
            else:
                outcome = await write_one(datastore, proposal)
            latencies.append(time.perf_counter() - start)
            if outcome.status is Status.STORED:
                stored += 1
            else:
                statuses[str(outcome.status)] = statuses.get(str(outcome.status), 0) + 1

    began = time.perf_counter()
    await asyncio.gather(*(work(w) for w in writers))
    elapsed = time.perf_counter() - began
    batches = commit.queue_for(datastore).batches if mode == "group" else stored
    gapless, converged, last_serial = await database_sync_to_async(check)(datastore, writers)
    return RunResult(
        mode,
        writers_n,
        stored,
        elapsed,
        latencies,
        batches,
        statuses,
        gapless,
        converged,
        last_serial,
        [w.count for w in writers],
    )


def summarize(results: list[RunResult]) -> dict:
    return {
        "tx": sum(r.stored for r in results),
        "tps": common.median(r.tps for r in results),
        "tps_min": min(r.tps for r in results),
        "tps_max": max(r.tps for r in results),
        "p50": common.median(common.percentile(r.latencies, 50) for r in results) * 1000,
        "p99": common.median(common.percentile(r.latencies, 99) for r in results) * 1000,
        "max": common.median(max(r.latencies) for r in results) * 1000,
        "fair_min": min(min(r.per_writer) for r in results),
        "fair_max": max(max(r.per_writer) for r in results),
        "batch": common.median(r.mean_batch for r in results),
        "gapless": all(r.gapless for r in results),
        "converged": all(r.converged for r in results),
        "other": sum(sum(r.other_statuses.values()) for r in results),
    }


async def benchmark(args: argparse.Namespace) -> None:
    db = common.vendor()
    modes = ["group", "single"] if not args.group_only else ["group"]
    if args.ystore:
        modes.append("ystore")
    summaries: dict[tuple[str, int], dict] = {}
    run = 0
    for writers in args.writers:
        by_mode: dict[str, list[RunResult]] = {mode: [] for mode in modes}
        # Interleave the modes so that drift in the machine's speed hits both alike.
        for rep in range(args.repeat):
            for mode in modes:
                run += 1
                result = await run_once(
                    mode,
                    writers,
                    args.seconds,
                    args.transactions,
                    f"w{run}-{mode}-{writers}",
                    args.data_dir,
                )
                by_mode[mode].append(result)
                common.reset_process_state()
                if args.verbose:
                    print(
                        f"  {mode:6} writers={writers:3} rep={rep + 1}: {result.tps:8.0f} tx/s, "
                        f"batch {result.mean_batch:5.1f}, gapless={result.gapless}, "
                        f"serial={result.last_serial}",
                        flush=True,
                    )
        for mode in modes:
            summaries[(mode, writers)] = summarize(by_mode[mode])

    rows = []
    for (mode, writers), s in summaries.items():
        rows.append(
            [
                db,
                mode,
                writers,
                s["tx"],
                f"{s['tps']:,.0f}",
                f"{s['tps_min']:,.0f}-{s['tps_max']:,.0f}",
                f"{s['p50']:.2f}",
                f"{s['p99']:.2f}",
                f"{s['max']:,.0f}",
                f"{s['fair_min']}-{s['fair_max']}",
                f"{s['batch']:.1f}",
                "yes" if s["gapless"] else "NO",
                "yes" if s["converged"] else "NO",
                s["other"],
            ]
        )
    common.print_table(
        [
            "db",
            "mode",
            "writers",
            "tx (all reps)",
            "tx/s (median)",
            "tx/s range",
            "p50 ms",
            "p99 ms",
            "max ms",
            "tx per writer",
            "mean batch",
            "gapless",
            "converged",
            "not stored",
        ],
        rows,
        title=(
            f"Write path, {db}: "
            + (f"{args.transactions} tx" if args.transactions else f"{args.seconds:g} s")
            + f" per run, median of {args.repeat} runs "
            f"(latency = submit to outcome)"
        ),
    )
    if "single" in modes:
        ratio_rows = []
        for writers in args.writers:
            group, single = summaries[("group", writers)], summaries[("single", writers)]
            ratio_rows.append(
                [
                    db,
                    writers,
                    f"{group['tps']:,.0f}",
                    f"{single['tps']:,.0f}",
                    f"{group['tps'] / single['tps']:.2f}x",
                ]
            )
        common.print_table(
            ["db", "writers", "group tx/s", "single tx/s", "group / single"],
            ratio_rows,
            title=f"Group commit speed-up, {db}",
        )
    if "ystore" in modes:
        peer_rows = []
        for writers in args.writers:
            group, peer = summaries[("group", writers)], summaries[("ystore", writers)]
            peer_rows.append(
                [
                    db,
                    writers,
                    f"{group['tps']:,.0f}",
                    f"{peer['tps']:,.0f}",
                    f"{group['tps'] / peer['tps']:.2f}x",
                ]
            )
        common.print_table(
            ["db", "writers", "group tx/s", "SQLiteYStore tx/s", "group / SQLiteYStore"],
            peer_rows,
            title="Against pycrdt-store's SQLiteYStore (SQLite, WAL, synchronous=NORMAL)",
        )
    all_gapless = all(s["gapless"] for s in summaries.values())
    print(
        f"\nSerials gapless in every datastore (count == last_serial == max serial, min 1): "
        f"{'yes' if all_gapless else 'NO'}"
    )


def profile(args: argparse.Namespace) -> None:
    """cProfile the batched write path synchronously: rounds of one edit per writer -> write()."""
    from tables import service
    from tables.service import Proposal

    writers = args.writers[-1]
    datastore, clients = make_datastore("profile", writers)
    rounds = max(1, args.profile_tx // writers)

    def body() -> None:
        for round_ in range(rounds):
            batch = [(Proposal(c.edit(), txid=f"p-{c.index}-{round_}"), None) for c in clients]
            service.write(datastore, batch)

    profiler = cProfile.Profile()
    start = time.perf_counter()
    profiler.runcall(body)
    elapsed = time.perf_counter() - start
    gapless, converged, last = check(datastore, clients)
    print(
        f"\nProfile, {common.vendor()}: {rounds} batches of {writers} via service.write, "
        f"{rounds * writers / elapsed:,.0f} tx/s under cProfile; gapless={gapless}, "
        f"converged={converged}, last_serial={last}"
    )
    common.print_profile(profiler, args.top)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    common.add_common_arguments(parser)
    parser.add_argument("--writers", type=int, nargs="+", default=[1, 8, 32])
    parser.add_argument("--seconds", type=float, default=2.0, help="length of each run")
    parser.add_argument(
        "--transactions",
        type=int,
        default=0,
        help="end each run after this many transactions instead of after --seconds",
    )
    parser.add_argument("--repeat", type=int, default=3, help="runs per configuration")
    parser.add_argument("--group-only", action="store_true", help="skip the no-group baseline")
    parser.add_argument(
        "--ystore", action="store_true", help="also run pycrdt-store's SQLiteYStore as the peer"
    )
    parser.add_argument("--verbose", "-v", action="store_true", help="print every run")
    parser.add_argument("--profile", action="store_true", help="cProfile instead of timing")
    parser.add_argument("--profile-tx", type=int, default=5000)
    parser.add_argument("--top", type=int, default=25, help="profile entries to print")
    args = parser.parse_args(argv)
    url = common.setup_django(args)
    print(f"database: {common.vendor()} ({url}); {common.load_average()}", flush=True)
    if args.profile:
        profile(args)
    else:
        asyncio.run(benchmark(args))
    print(f"finished; {common.load_average()}")


if __name__ == "__main__":
    main()
