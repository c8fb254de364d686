"""Benchmark: what one edit costs in a small and in a big notebook, side by side.

    .venv/bin/python bench/edit_cost.py                        # SQLite, 11 and 1,001 cells
    .venv/bin/python bench/edit_cost.py --postgres
    .venv/bin/python bench/edit_cost.py --cells 11 1001 --chars 1390 --repeat 40
    .venv/bin/python bench/edit_cost.py --profile   # cProfile of the big notebook's edits

Two notebook datastores are seeded with code cells of ``--chars`` characters (1,001 cells of 1,390
characters is a 1.39 MB notebook). A client with its own pycrdt ``Doc`` then makes, in each
round, the same five edits in each notebook, taking turns (so drift in the machine's speed hits
both alike): a keystroke in the middle cell's source, a cell inserted in the middle, a cell moved
from the middle a quarter of the notebook down (deleted and inserted again with the same id, as
JupyterLab moves cells), the inserted cell deleted (so the notebook keeps its size), and a run's
first output in the middle cell (its outputs replaced, its count cleared, its state running: the
supernode's transaction). Each edit
is one Yjs update sent through ``tables.commit.commit``, the group-commit entry point the
consumers use, and timed from submission to its outcome (durable and projected). At the end the
``Cell`` rows of both notebooks are compared with their documents.
"""

from __future__ import annotations

import argparse
import cProfile
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import common

EDITS = ("keystroke", "insert", "move", "delete", "output")


def code_cell(cell_id: str, source: str) -> dict:
    from nbformat.v4 import new_code_cell

    return dict(new_code_cell(source, id=cell_id))


class Editor:
    """One notebook datastore and a client editing it."""

    def __init__(self, name: str, cells: int, chars: int):
        from jupyter_ydoc import YNotebook
        from pycrdt import Array, Doc

        from tables import service
        from tables.service import Proposal

        self.datastore = service.create_datastore(name, "notebook")
        seed = Doc()
        YNotebook(seed).set(
            {
                "cells": [
                    code_cell(f"c{i}", (f"# cell {i}\n" + "x = 1  # " * chars)[:chars])
                    for i in range(cells)
                ],
                "metadata": {},
                "nbformat": 4,
                "nbformat_minor": 5,
            }
        )
        start = time.perf_counter()
        service.write_one(self.datastore, Proposal(seed.get_update(), txid=f"{name}-seed"))
        self.seeded = time.perf_counter() - start  # the first write projects every cell
        self.size = len(seed.get_update())
        self.doc = Doc()
        self.doc.apply_update(service.live_state(self.datastore)[0])
        self.cells = self.doc.get("cells", type=Array)
        self.notebook = YNotebook(self.doc)
        self.count = 0
        self._sent: list[bytes] = []
        self._subscription = self.doc.observe(lambda event: self._sent.append(event.update))

    def _cell(self, cell_id: str, source: str):
        """A new cell's shared types, as jupyter_ydoc builds them."""
        return self.notebook.create_ycell(code_cell(cell_id, source))

    def change(self, edit: str) -> bytes:
        """Make one edit in the client's doc; the update a Yjs client would send."""
        self._sent.clear()
        middle = len(self.cells) // 2
        from pycrdt import Map

        with self.doc.transaction():
            if edit == "keystroke":
                source = self.cells[middle]["source"]
                source.insert(len(source) // 2, "y")
            elif edit == "insert":
                self.count += 1
                self.cells.insert(middle, self._cell(f"new{self.count}", "print('hello')\n"))
            elif edit == "move":
                target = (middle + len(self.cells) // 4) % len(self.cells)
                cell = self.cells[middle]
                moved = self._cell(str(cell["id"]), str(cell["source"]))
                del self.cells[middle]
                self.cells.insert(target, moved)
            elif edit == "delete":
                index = next(i for i, c in enumerate(self.cells) if c["id"] == f"new{self.count}")
                del self.cells[index]
            elif edit == "output":  # a run's first output, as the supernode writes it
                cell = self.cells[middle]
                outputs = cell["outputs"]
                del outputs[0 : len(outputs)]
                cell["execution_count"] = None
                cell["execution_state"] = "running"
                outputs.append(Map({"output_type": "stream", "name": "stdout", "text": "hi\n"}))
        return self._sent[-1]

    def send(self, edit: str) -> float:
        from tables import commit
        from tables.service import Proposal, Status

        update = self.change(edit)
        start = time.perf_counter()
        outcome = commit.commit(self.datastore, Proposal(update))
        elapsed = time.perf_counter() - start
        assert outcome.status is Status.STORED, outcome
        return elapsed

    def projected_equals_document(self) -> bool:
        from jupyter_sync.models import Cell

        rows = list(
            Cell.objects.filter(notebook__datastore=self.datastore)
            .order_by("position")
            .values_list("cell_id", "source")
        )
        cells = [(str(c["id"]), str(c["source"])) for c in self.cells]
        return rows == cells


def benchmark(args: argparse.Namespace) -> None:
    small_n, big_n = args.cells
    small = Editor("small", small_n, args.chars)
    big = Editor("big", big_n, args.chars)
    times: dict[tuple[str, str], list[float]] = {}
    for _ in range(args.warmup):
        for editor in (small, big):
            for edit in EDITS:
                editor.send(edit)
    for _ in range(args.repeat):
        for editor, label in ((small, "small"), (big, "big")):
            for edit in EDITS:
                times.setdefault((label, edit), []).append(editor.send(edit))
    rows = []
    for edit in EDITS:
        s = common.median(times[("small", edit)]) * 1000
        b = common.median(times[("big", edit)]) * 1000
        rows.append(
            [
                edit,
                f"{s:.2f}",
                f"{b:.2f}",
                f"{b / s:.2f}x",
                f"{common.percentile(times[('small', edit)], 90) * 1000:.2f}",
                f"{common.percentile(times[('big', edit)], 90) * 1000:.2f}",
            ]
        )
    common.print_table(
        ["edit", "small ms (median)", "big ms (median)", "big / small", "small p90", "big p90"],
        rows,
        title=(
            f"Edit cost, {common.vendor()}: {small_n} cells ({common.kib(small.size)}) against "
            f"{big_n} cells ({common.mib(big.size)}), {args.repeat} rounds, submit to outcome"
        ),
    )
    print(
        f"\nFirst write (every cell projected): {small.seeded * 1000:.1f} ms for {small_n} cells, "
        f"{big.seeded * 1000:.1f} ms for {big_n} cells"
    )
    equal = small.projected_equals_document() and big.projected_equals_document()
    print(f"\nCell rows equal the documents: {'yes' if equal else 'NO'}")


def profile(args: argparse.Namespace) -> None:
    """cProfile the big notebook's edits (rounds of the four edits)."""
    big = Editor("big", args.cells[-1], args.chars)
    for edit in EDITS:
        big.send(edit)
    profiler = cProfile.Profile()
    profiler.enable()
    for _ in range(args.repeat):
        for edit in EDITS:
            big.send(edit)
    profiler.disable()
    print(f"\nProfile, {common.vendor()}: {args.repeat} rounds of {', '.join(EDITS)}")
    common.print_profile(profiler, args.top)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    common.add_common_arguments(parser)
    parser.add_argument("--cells", type=int, nargs=2, default=[11, 1001], metavar=("SMALL", "BIG"))
    parser.add_argument("--chars", type=int, default=1390, help="characters per cell")
    parser.add_argument("--repeat", type=int, default=40, help="rounds of the four edits")
    parser.add_argument("--warmup", type=int, default=3, help="untimed rounds first")
    parser.add_argument("--profile", action="store_true", help="cProfile instead of timing")
    parser.add_argument("--top", type=int, default=25, help="profile entries to print")
    args = parser.parse_args(argv)
    url = common.setup_django(args)
    print(f"database: {common.vendor()} ({url}); {common.load_average()}", flush=True)
    if args.profile:
        profile(args)
    else:
        benchmark(args)
    print(f"finished; {common.load_average()}")


if __name__ == "__main__":
    main()
