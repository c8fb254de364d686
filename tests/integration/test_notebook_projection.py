"""The notebook projection follows each commit's changes: the rows equal the document after any
mix of edits, and a commit costs statements for what it changed, not for every cell."""

from __future__ import annotations

import random
from typing import Any

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from pycrdt import Array, Doc, Map

from jupyter_sync import models as jmodels
from jupyter_sync.projection import NotebookProjector
from tables import service
from tables.projection import get_projector
from tables.service import Proposal, Status
from tests.support.factories import Client
from tests.support.projected import cell, document, rows

pytestmark = pytest.mark.django_db(transaction=True)


def notebook(name: str, cells: int) -> tuple[Any, Client]:
    datastore = service.create_datastore(name, "notebook")
    client = Client(datastore)
    client.send(
        lambda d: d.get("cells", type=Array).extend(
            [cell(f"c{i}", f"x = {i}\n") for i in range(cells)]
        )
    )
    return datastore, client


class RandomEditor:
    """Edits a notebook the way clients do, chosen by a seeded random generator."""

    def __init__(self, rng: random.Random, prefix: str = "n"):
        self.rng = rng
        self.prefix = prefix
        self.made = 0

    def edit(self, doc: Doc) -> None:
        cells = doc.get("cells", type=Array)
        n = len(cells)
        kind = self.rng.choice(
            ["keystroke", "keystroke", "insert", "delete", "move", "output", "count", "metadata"]
        )
        if n == 0 or kind == "insert":
            self.made += 1
            cells.insert(self.rng.randint(0, n), cell(f"{self.prefix}{self.made}", "new"))
            return
        at = self.rng.randrange(n)
        target = cells[at]
        if kind == "keystroke":
            source = target["source"]
            source.insert(self.rng.randint(0, len(source)), self.rng.choice("abc\n"))
        elif kind == "delete" and n > 2:
            del cells[at]
        elif kind == "move" and n > 1:
            copy = cell(str(target["id"]), str(target["source"]))
            del cells[at]
            cells.insert(self.rng.randint(0, n - 1), copy)
        elif kind == "output":
            target["outputs"].append(
                Map({"output_type": "stream", "name": "stdout", "text": self.rng.choice("xyz")})
            )
        elif kind == "count":
            target["execution_count"] = self.rng.randint(1, 9)
        else:
            target["metadata"]["tag"] = self.rng.choice("pq")


def test_rows_equal_the_document_after_random_edits_singly_and_in_batches(monkeypatch):
    rng = random.Random(15)
    datastore, client = notebook("random", 12)
    editor = RandomEditor(rng)
    whole: list[object] = []  # ids stay unique, so no commit needs the whole notebook again
    monkeypatch.setattr(NotebookProjector, "_sync_all", lambda *args: whole.append(args))
    for step in range(120):
        # Several transactions, some of several edits, committed in one batch or one by one.
        updates = []
        for _ in range(rng.choice([1, 1, 2, 4])):
            edits = rng.choice([1, 1, 3])
            updates.append(
                client.change(lambda d, edits=edits: [editor.edit(d) for _ in range(edits)])
            )
        batch = [(Proposal(u, txid=f"r{step}-{i}"), None) for i, u in enumerate(updates)]
        outcomes = service.write(datastore, batch)
        assert all(o.status is Status.STORED for o in outcomes), outcomes
        assert rows(datastore) == document(datastore), f"step {step}"
    assert whole == []
    monkeypatch.undo()
    # And a rebuild from scratch gives the same rows.
    incremental = rows(datastore)
    datastore.refresh_from_db()
    get_projector("notebook").rebuild(datastore, client.doc)
    assert rows(datastore) == incremental


def test_repeated_or_changed_ids_fall_back_to_the_whole_notebook():
    datastore, client = notebook("ids", 4)
    # A second cell "c3": one row per id, the last cell with that id.
    client.send(lambda d: d.get("cells", type=Array).insert(1, cell("c3", "again")))
    assert [r[1:] for r in rows(datastore)] == [r[1:] for r in document(datastore) if r[0] != 1]
    client.send(lambda d: d.get("cells", type=Array).__delitem__(1))
    assert rows(datastore) == document(datastore)
    client.send(lambda d: d.get("cells", type=Array)[0].__setitem__("id", "renamed"))
    assert rows(datastore) == document(datastore)
    assert [r[1] for r in rows(datastore)] == ["renamed", "c1", "c2", "c3"]


def cell_statements(queries: list[dict]) -> list[str]:
    return [
        q["sql"]
        for q in queries
        if "jupyter_sync_cell" in q["sql"] or "jupyter_sync_output" in q["sql"]
    ]


def statements_for(cells: int, mutate) -> list[str]:
    datastore, client = notebook(f"q{cells}", cells)
    update = client.change(mutate)
    with CaptureQueriesContext(connection) as captured:
        outcome = service.write_one(datastore, Proposal(update))
    assert outcome.status is Status.STORED
    assert rows(datastore) == document(datastore)
    return cell_statements(captured.captured_queries)


@pytest.mark.parametrize(
    "mutate",
    [
        pytest.param(lambda d: d.get("cells", type=Array)[5]["source"].insert(0, "y"), id="key"),
        pytest.param(lambda d: d.get("cells", type=Array).insert(5, cell("new")), id="insert"),
        pytest.param(lambda d: d.get("cells", type=Array).__delitem__(5), id="delete"),
        pytest.param(
            lambda d: (
                d.get("cells", type=Array).__delitem__(5),
                d.get("cells", type=Array).insert(8, cell("c5", "x = 5\n")),
            ),
            id="move",
        ),
    ],
)
def test_a_commit_costs_the_same_statements_in_a_small_and_a_big_notebook(mutate):
    small, big = statements_for(11, mutate), statements_for(300, mutate)
    assert len(big) == len(small) <= 6, big


def test_a_keystroke_updates_one_row_and_leaves_outputs_alone():
    statements = statements_for(
        50, lambda d: d.get("cells", type=Array)[7]["source"].insert(0, "y")
    )
    assert len(statements) == 1 and statements[0].startswith("UPDATE"), statements


def test_an_output_replaces_its_cell_s_output_rows_and_the_notebook_is_read_once():
    """A run's output (the cell's state and count with it): the cell's row found by id, its
    outputs replaced; the notebook row read in one statement, not looked up and locked again."""

    def output(doc: Doc) -> None:
        target = doc.get("cells", type=Array)[3]
        target["execution_count"] = None
        target["outputs"].append(Map({"output_type": "stream", "name": "stdout", "text": "hi"}))

    datastore, client = notebook("outputs", 20)
    update = client.change(output)
    with CaptureQueriesContext(connection) as captured:
        outcome = service.write_one(datastore, Proposal(update))
    assert outcome.status is Status.STORED
    assert rows(datastore) == document(datastore)
    statements = cell_statements(captured.captured_queries)
    verbs = {"SELECT", "UPDATE", "DELETE", "INSERT"}  # executemany's are logged "N times: ..."
    kinds = [next(word for word in sql.split() if word in verbs) for sql in statements]
    assert kinds == ["SELECT", "UPDATE", "DELETE", "INSERT"], statements
    notebook_reads = [
        q["sql"] for q in captured.captured_queries if "jupyter_sync_notebook" in q["sql"]
    ]
    assert len(notebook_reads) == 1 and notebook_reads[0].startswith("SELECT"), notebook_reads


def positions_by_id(datastore) -> dict[str, int]:
    return dict(
        jmodels.Cell.objects.filter(notebook__datastore=datastore).values_list(
            "cell_id", "position"
        )
    )


@pytest.mark.parametrize("where", ["after", "before"])
def test_inserts_at_one_place_renumber_a_neighbourhood_when_the_gap_runs_out(monkeypatch, where):
    """Each cell inserted right after (or right before) the previous one halves the gap its
    neighbours leave; once it runs out, a neighbourhood is renumbered, not the notebook, and
    only the inserted rows are written otherwise."""
    datastore, client = notebook(f"gap-{where}", 60)
    start = positions_by_id(datastore)
    whole: list[object] = []
    monkeypatch.setattr(NotebookProjector, "_sync_all", lambda *args: whole.append(args))
    renumbered: list[int] = []  # existing rows whose position changed, per commit
    for i in range(120):
        at = 30 + i if where == "after" else 30
        before = positions_by_id(datastore)
        client.send(lambda d, i=i, at=at: d.get("cells", type=Array).insert(at, cell(f"n{i}")))
        after = positions_by_id(datastore)
        assert set(after) - set(before) == {f"n{i}"}
        renumbered.append(sum(after[cell_id] != p for cell_id, p in before.items()))
        assert rows(datastore) == document(datastore), f"insert {i}"
    assert whole == []
    monkeypatch.undo()
    assert renumbered[:25] == [0] * 25  # 2**32 apart: room for about 32 halvings
    assert any(renumbered), "the gap never ran out"
    assert max(renumbered) < 90 and sum(renumbered) < 4 * 120, renumbered
    # The rows far from the place were never written.
    far = [f"c{i}" for i in range(60) if abs(i - 30) > 8]
    assert {k: after[k] for k in far} == {k: start[k] for k in far}
    incremental = rows(datastore)
    datastore.refresh_from_db()
    get_projector("notebook").rebuild(datastore, client.doc)
    assert rows(datastore) == incremental


def test_deleting_at_the_ends_emptying_and_refilling(monkeypatch):
    datastore, client = notebook("ends", 6)
    whole: list[object] = []
    monkeypatch.setattr(NotebookProjector, "_sync_all", lambda *args: whole.append(args))
    steps = [
        lambda c: c.__delitem__(0),
        lambda c: c.__delitem__(len(c) - 1),
        lambda c: (c.insert(0, cell("first")), c.append(cell("last"))),
        lambda c: c.__delitem__(slice(1, 3)),  # two kept cells at once
        lambda c: (c.__delitem__(0), c.insert(1, cell("first")), c.__delitem__(len(c) - 1)),
        lambda c: c.__delitem__(slice(0, len(c))),  # every cell
        lambda c: c.extend([cell("a"), cell("b")]),
        lambda c: (c.insert(0, cell("z")), c.insert(0, cell("y"))),
    ]
    for step, mutate in enumerate(steps):
        client.send(lambda d, mutate=mutate: mutate(d.get("cells", type=Array)))
        assert rows(datastore) == document(datastore), f"step {step}"
    assert [r[1] for r in rows(datastore)] == ["y", "z", "a", "b"]
    assert whole == []


def test_concurrent_structural_edits_from_two_clients(monkeypatch):
    """Two clients edit from the same state without seeing each other's edits (inserting at the
    same place, deleting and moving the same cells), their updates committed in one batch or
    one after the other; the rows follow the merged document every time."""
    rng = random.Random(4)
    datastore, first = notebook("concurrent", 20)
    second = Client(datastore)
    editors = [RandomEditor(rng, "a"), RandomEditor(rng, "b")]
    whole: list[object] = []
    sync_all = NotebookProjector._sync_all

    def counted(*args: Any) -> None:
        whole.append(args)
        sync_all(*args)

    monkeypatch.setattr(NotebookProjector, "_sync_all", counted)
    for step in range(60):
        updates = [
            client.change(lambda d, editor=editor: [editor.edit(d) for _ in range(2)])
            for client, editor in zip((first, second), editors, strict=True)
        ]
        proposals = [(Proposal(u, txid=f"c{step}-{i}"), None) for i, u in enumerate(updates)]
        if step % 2:
            outcomes = service.write(datastore, proposals)
        else:
            outcomes = [service.write(datastore, [p])[0] for p in proposals]
        assert all(o.status is Status.STORED for o in outcomes), outcomes
        # Both moving one cell leaves two cells with its id: its row is the last one's.
        last = {r[1]: r for r in document(datastore)}
        expected = sorted(last.values(), key=lambda r: r[0])
        assert [r[1:] for r in rows(datastore)] == [r[1:] for r in expected], f"step {step}"
        first.receive()
        second.receive()
    assert whole == []  # (this seed never has both move the same cell: see the next test)


def test_two_clients_deleting_moving_and_inserting_at_the_same_cells():
    datastore, first = notebook("collide", 8)
    second = Client(datastore)

    def first_repeat(d: Doc) -> int:
        ids = [str(c["id"]) for c in d.get("cells", type=Array)]
        return next(i for i, cell_id in enumerate(ids) if ids.count(cell_id) > 1)

    def move(d: Doc, source: int, target: int) -> None:
        cells = d.get("cells", type=Array)
        copy = cell(str(cells[source]["id"]), str(cells[source]["source"]))
        del cells[source]
        cells.insert(target, copy)

    rounds = [
        # Both delete cell 2 and insert at 3.
        (
            lambda d: (
                d.get("cells", type=Array).__delitem__(2),
                d.get("cells", type=Array).insert(3, cell("a1")),
            ),
            lambda d: (
                d.get("cells", type=Array).__delitem__(2),
                d.get("cells", type=Array).insert(3, cell("b1")),
            ),
        ),
        # One moves cell 1 down while the other deletes its neighbours.
        (
            lambda d: move(d, 1, 5),
            lambda d: d.get("cells", type=Array).__delitem__(slice(0, 3)),
        ),
        # Both move the same cell (two copies with one id: the last one's row).
        (lambda d: move(d, 0, 3), lambda d: move(d, 0, 1)),
        # One deletes one of the copies, the other types in another cell.
        (
            lambda d: d.get("cells", type=Array).__delitem__(first_repeat(d)),
            lambda d: d.get("cells", type=Array)[-1]["source"].insert(0, "y"),
        ),
    ]
    repeated_steps = []
    for step, (one, two) in enumerate(rounds):
        updates = [first.change(one), second.change(two)]
        proposals = [(Proposal(u, txid=f"x{step}-{i}"), None) for i, u in enumerate(updates)]
        outcomes = service.write(datastore, proposals)
        assert all(o.status is Status.STORED for o in outcomes), (step, outcomes)
        last = {r[1]: r for r in document(datastore)}
        expected = sorted(last.values(), key=lambda r: r[0])
        assert [r[1:] for r in rows(datastore)] == [r[1:] for r in expected], f"step {step}"
        repeated = jmodels.Notebook.objects.get(datastore=datastore).repeated_ids
        assert repeated == (len(last) < len(document(datastore))), f"step {step}"
        if repeated:
            repeated_steps.append(step)
        first.receive()
        second.receive()
    assert repeated_steps == [2]


def test_an_edit_of_a_repeated_id_keeps_the_last_cell_s_row():
    datastore, client = notebook("repeats", 4)
    client.send(lambda d: d.get("cells", type=Array).insert(1, cell("c3", "again")))
    assert jmodels.Notebook.objects.get(datastore=datastore).repeated_ids
    # The first cell "c3" changes; its row stays the last "c3"'s.
    client.send(lambda d: d.get("cells", type=Array)[1]["source"].insert(0, "y"))
    assert [r[1:] for r in rows(datastore)] == [r[1:] for r in document(datastore) if r[0] != 1]
    client.send(lambda d: d.get("cells", type=Array).__delitem__(1))
    assert not jmodels.Notebook.objects.get(datastore=datastore).repeated_ids
    assert rows(datastore) == document(datastore)
