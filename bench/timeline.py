"""Benchmark: the timeline on a notebook with a long history.

    .venv/bin/python bench/timeline.py                        # SQLite in a temp dir, 10,000 patches
    .venv/bin/python bench/timeline.py --postgres --history 20000

Builds a notebook datastore (``--cells`` cells) with ``--history`` patches through
``tables.service.write`` (each types a character into a cell, every 50th adds a cell and every
70th deletes one), then times what jupyter-collaboration's timeline does
(``jupyter_sync.collaboration.timeline``): opening it (a fork and its points), moving the slider
one step back and forward, a jump to the oldest point and to the middle, and a restore. Each
figure is the median of ``--repeat`` runs; the view after every move is checked against
``history.doc_at``.
"""

from __future__ import annotations

import argparse
import random
import sys
import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import common


def updates(history: int, cells: int, seed: int) -> Iterator[bytes]:
    """The notebook's ``history`` Yjs updates, the same bytes for the same arguments: its
    ``cells`` cells laid out by jupyter_ydoc, then one edit each (a character typed into a cell;
    every 50th adds a cell, every 70th deletes one). bench/timeline_peer.py feeds the same ones
    to both servers."""
    from jupyter_ydoc import YNotebook
    from pycrdt import Array, Doc, Map, Text, merge_updates

    doc = Doc(client_id=seed)
    notebook = {
        "cells": [
            {
                "id": f"c{index}",
                "cell_type": "code",
                "source": f"x{index} = {index}\n",
                "metadata": {},
                "outputs": [],
                "execution_count": None,
            }
            for index in range(cells)
        ],
        "metadata": {},
        "nbformat": 4,
        "nbformat_minor": 5,
    }
    made: list[bytes] = []
    # Each transaction's own update, as a client sends it (``get_update(state)`` would repeat
    # the whole delete set every time).
    subscription = doc.observe(lambda event: made.append(event.update))
    YNotebook(doc).set(notebook)
    yield merge_updates(*made)
    made.clear()
    rng = random.Random(seed)
    ycells = doc.get("cells", type=Array)
    added = 0
    for number in range(1, history):
        if number % 50 == 0:
            added += 1
            cell = {"id": f"n{added}", "cell_type": "markdown", "source": Text("# new")}
            ycells.insert(rng.randrange(len(ycells) + 1), Map({**cell, "metadata": Map({})}))
        elif number % 70 == 0 and len(ycells) > 1:
            del ycells[rng.randrange(len(ycells))]
        else:
            source = ycells[rng.randrange(len(ycells))]["source"]
            source.insert(rng.randrange(len(source) + 1), rng.choice("abcdefgh \n"))
        yield merge_updates(*made)
        made.clear()
    doc.unobserve(subscription)


def write_history(datastore: Any, author_id: int, patches: Iterable[bytes]) -> None:
    """Each update its own transaction, written through the write path in batches of 200."""
    from tables import service
    from tables.service import Proposal

    batch: list[tuple[Proposal, None]] = []
    for update in patches:
        batch.append((Proposal(update, author_id=author_id), None))
        if len(batch) == 200:
            service.write(datastore, batch)
            batch = []
    if batch:
        service.write(datastore, batch)
    datastore.refresh_from_db()


def build(history: int, cells: int, seed: int) -> Any:
    """A notebook datastore with ``history`` patches, written in batches through the write path."""
    from django.contrib.auth.models import User

    from tables import service

    owner = User.objects.create_user("bench-owner")
    datastore = service.create_datastore("bench-notebook", "notebook", owner)
    write_history(datastore, owner.pk, updates(history, cells, seed))
    return datastore, owner


def timed(run: Callable[[], Any]) -> tuple[float, Any]:
    start = time.perf_counter()
    result = run()
    return time.perf_counter() - start, result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    common.add_common_arguments(parser)
    parser.add_argument("--history", type=int, default=10_000)
    parser.add_argument("--cells", type=int, default=30)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    common.setup_django(args)

    from jupyter_sync.collaboration import timeline
    from jupyter_sync.document_content import content
    from tables import history
    from tables.conf import rtc_settings
    from tables.models import Checkpoint, Transaction

    started = time.perf_counter()
    datastore, owner = build(args.history, args.cells, args.seed)
    built = time.perf_counter() - started
    state = len(history.doc_at(datastore).get_update())
    print(
        f"{datastore.last_serial} patches written in {built:.1f} s; state {common.kib(state)}, "
        f"{Checkpoint.objects.filter(datastore=datastore).count()} checkpoints "
        f"(every {rtc_settings.CHECKPOINT_EVERY} patches); {common.vendor()}; "
        f"load {common.load_average()}"
    )

    def check(fork_id: str, serial: int) -> None:
        fork = timeline.fork_for(fork_id, owner)
        shown = content(timeline.view_doc(fork), "notebook")
        assert shown == content(history.doc_at(datastore, serial), "notebook"), serial

    figures: dict[str, list[float]] = {}
    for _ in range(args.repeat):

        def open_one() -> tuple[str, int]:
            fork = timeline.start_fork(datastore, "bench", owner)
            return fork.id, len(timeline.points(fork))

        seconds, (fork_id, points) = timed(open_one)
        figures.setdefault(f"open (fork + {points} points)", []).append(seconds)
        steps = [
            ("one step back", "undo", 1),
            ("one step forward", "redo", 1),
            ("one step back again", "undo", 1),
            ("to the oldest point", "undo", points),
            ("one step forward from the oldest", "redo", 1),
            ("to the middle", "redo", points // 2),
        ]
        for name, action, count in steps:
            seconds, moved = timed(
                lambda f=fork_id, a=action, c=count: timeline.move(f, owner, a, c)
            )
            figures.setdefault(f"move: {name}", []).append(seconds)
            check(fork_id, moved.serial)
        room = f"json:notebook:{datastore.name}"
        fork = timeline.fork_for(fork_id, owner)
        fork.document_id = datastore.name
        fork.save(update_fields=["document_id"])
        before = datastore.last_serial
        seconds, restored = timed(lambda f=fork_id, r=room: timeline.restore(f, r, owner))
        figures.setdefault("restore (one transaction)", []).append(seconds)
        assert restored.outcome.ok, restored.outcome
        datastore.refresh_from_db()
        assert Transaction.objects.filter(datastore=datastore, serial__gt=before).count() == 1
        assert content(history.doc_at(datastore), "notebook") == content(
            history.doc_at(datastore, restored.serial), "notebook"
        )

    rows = [
        [name, f"{common.median(values) * 1000:.1f}", f"{max(values) * 1000:.1f}"]
        for name, values in figures.items()
    ]
    common.print_table(["operation", "median ms", "max ms"], rows, f"{args.history} patches")


if __name__ == "__main__":
    main()
