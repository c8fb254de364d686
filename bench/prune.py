"""Benchmark: pruning a long history, and what a writer sees while it runs.

    .venv/bin/python bench/prune.py                       # SQLite in a temp dir, 100,000 patches
    .venv/bin/python bench/prune.py --postgres            # postgres://postgres@127.0.0.1/rtc_bench
    .venv/bin/python bench/prune.py --history 20000 --rate 50

Builds a todo datastore with ``--history`` patches through ``tables.service.write`` (as
bench/load.py does), dates its checkpoints two days back, then runs a writer that adds one item
to that datastore ``--rate`` times a second, for ``--seconds`` without pruning (the baseline) and
then while ``tables.pruning.prune_history`` deletes everything behind the newest checkpoint but
the newest 1,000 patches. It prints the pruning's time and rate, the bytes of patches freed, and
the writer's latency p50/p99/max in both phases side by side, with the ratio; then checks that
the document loaded again from the database equals the live one.
"""

from __future__ import annotations

import argparse
import sys
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import common, load


class Writer(threading.Thread):
    """Writes one small change every 1/rate seconds and records each write's latency."""

    def __init__(self, rate: float):
        super().__init__(daemon=True)
        self.interval = 1 / rate
        self.writes: list[tuple[float, float]] = []  # (started, seconds)
        self.errors: list[str] = []
        self.stopping = threading.Event()

    def run(self) -> None:
        from django.db import connection
        from pycrdt import Doc, Map, Text

        from tables import service
        from tables.models import Datastore
        from tables.service import Proposal

        datastore = Datastore.objects.get(name=load.HISTORY_NAME)
        doc = Doc()
        doc.apply_update(service.live_state(datastore)[0])
        count = 0
        next_at = time.perf_counter()
        try:
            while not self.stopping.is_set():
                before = doc.get_state()
                doc.get("items", type=Map)[f"w{count}"] = Map({"title": Text("x"), "done": False})
                proposal = Proposal(doc.get_update(before), txid=f"w{count}")
                start = time.perf_counter()
                try:
                    service.write_one(datastore, proposal)
                except Exception as error:  # counted, not fatal: the figure is what it sees
                    self.errors.append(repr(error))
                self.writes.append((start, time.perf_counter() - start))
                count += 1
                next_at += self.interval
                self.stopping.wait(max(0.0, next_at - time.perf_counter()))
        finally:
            connection.close()

    def started_between(self, start: float, end: float) -> list[float]:
        """Latencies of the writes that started in ``[start, end)``."""
        return [seconds for started, seconds in self.writes if start <= started < end]


def latency_row(name: str, values: list[float]) -> list[str]:
    if not values:
        return [name, "0", "-", "-", "-"]
    ms = [value * 1000 for value in values]
    return [
        name,
        f"{len(ms):,}",
        f"{common.percentile(ms, 50):.1f}",
        f"{common.percentile(ms, 99):.1f}",
        f"{max(ms):.1f}",
    ]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    common.add_common_arguments(parser)
    parser.add_argument("--history", type=int, default=100_000, help="patches in the datastore")
    parser.add_argument("--batch", type=int, default=250, help="proposals per write when building")
    parser.add_argument("--max-items", type=int, default=100, help="live items, at most")
    parser.add_argument("--rate", type=float, default=50, help="the writer's writes per second")
    parser.add_argument("--seconds", type=float, default=5, help="length of the baseline phase")
    args = parser.parse_args(argv)
    args.url = common.setup_django(args)
    print(f"database: {common.vendor()} ({args.url}); {common.load_average()}", flush=True)

    from tables import service
    from tables.loaded import doc_cache
    from tables.models import Checkpoint, Datastore, Transaction
    from tables.pruning import prune_history

    print(f"building {args.history:,} patches ...", flush=True)
    built = load.build_history(args.history, args.batch, args.max_items)
    datastore = Datastore.objects.get(name=load.HISTORY_NAME)
    two_days_ago = datetime.now(UTC) - timedelta(days=2)
    Checkpoint.objects.filter(datastore=datastore).update(created_at=two_days_ago)
    doc_cache.clear()

    writer = Writer(args.rate)
    writer.start()
    time.sleep(0.5)  # the writer's first writes load its datastore: not part of either phase
    baseline_start = time.perf_counter()
    time.sleep(args.seconds)  # a phase of fixed length (a benchmark, not a test)
    start = time.perf_counter()
    pruned = prune_history(datastore, older_than=datetime.now(UTC) - timedelta(days=1))
    end = time.perf_counter()
    seconds = end - start
    writer.stopping.set()
    writer.join()
    baseline = writer.started_between(baseline_start, start)
    during = writer.started_between(start, end)

    datastore.refresh_from_db()
    live, _ = service.live_python(datastore)
    doc_cache.clear()
    start = time.perf_counter()
    reloaded, _ = service.live_python(datastore)
    cold = time.perf_counter() - start
    kept = Transaction.objects.filter(datastore=datastore).count()

    common.print_table(
        ["", "value"],
        [
            ["patches before", f"{built['last_serial']:,}"],
            ["patch bytes before", common.mib(built["patch_bytes"])],
            ["pruned patches", f"{pruned.transactions:,}"],
            ["pruned bytes", common.mib(pruned.bytes)],
            ["kept patches", f"{kept:,} (history starts at {pruned.history_start:,})"],
            ["prune time", f"{seconds:.2f} s"],
            ["prune rate", f"{pruned.transactions / seconds:,.0f} patches/s"],
            ["reloaded == live", "yes" if reloaded == live else "NO"],
            ["cold load after", f"{cold * 1000:.0f} ms"],
        ],
        title="pruning",
    )
    baseline_p99 = common.percentile(baseline, 99) if baseline else 0
    during_p99 = common.percentile(during, 99) if during else 0
    common.print_table(
        ["writer", "writes", "p50 ms", "p99 ms", "max ms"],
        [latency_row("baseline", baseline), latency_row("while pruning", during)],
        title=f"a writer adding an item {args.rate:g} times a second to that datastore",
    )
    if baseline_p99:
        print(f"p99 while pruning / baseline: {during_p99 / baseline_p99:.2f}x")
    if writer.errors:
        print(f"writer errors: {len(writer.errors)} (first: {writer.errors[0]})")
    print(f"\nfinished; {common.load_average()}")


if __name__ == "__main__":
    main()
