"""Projection: Django rows kept equal to the documents after each commit."""

from __future__ import annotations

import pytest
from pycrdt import Array, Map, Text

from jupyter_sync import models as jmodels
from tables import history, records, service
from tables.projection import get_projector
from tests.support.factories import Client, add_todo
from tests.support.notebooks import y_code_cell
from todo.models import TodoItem, TodoList

pytestmark = pytest.mark.django_db(transaction=True)


def todo_rows(datastore) -> dict:
    return {
        row.record_id: {"title": row.title, "done": row.done}
        for row in TodoItem.objects.filter(datastore=datastore)
    }


def test_todo_projection_equals_the_document():
    datastore = service.create_datastore("todo", "todo")
    alice, bob = Client(datastore), Client(datastore)
    alice.send(lambda d: add_todo(d, "a", "milk"))
    bob.send(lambda d: add_todo(d, "b", "eggs", done=True))
    alice.receive()
    alice.send(lambda d: d.get("items", type=Map)["a"]["title"].insert(0, "buy "))
    alice.send(
        lambda d: d.get("lists", type=Map).__setitem__(
            "l", Map({"title": Text("groceries"), "items": Array(["b", "a"])})
        )
    )
    document = service.live_python(datastore)[0]
    assert (
        todo_rows(datastore)
        == document["items"]
        == {
            "a": {"title": "buy milk", "done": False},
            "b": {"title": "eggs", "done": True},
        }
    )
    shopping = TodoList.objects.get(datastore=datastore, record_id="l")
    assert (shopping.title, shopping.items) == ("groceries", ["b", "a"])
    # Queryable with the ORM.
    assert list(TodoItem.objects.filter(done=True).values_list("record_id", flat=True)) == ["b"]

    alice.receive()
    alice.send(lambda d: d.get("items", type=Map).pop("b"))
    assert set(todo_rows(datastore)) == {"a"}


def test_refused_write_leaves_projection_alone():
    datastore = service.create_datastore("todo", "todo")
    client = Client(datastore)
    client.send(lambda d: add_todo(d, "a", "milk"))
    client.send(lambda d: d.get("items", type=Map)["a"].__setitem__("done", "no"))
    assert todo_rows(datastore) == {"a": {"title": "milk", "done": False}}


def test_jupyter_tables_project_to_typed_columns():
    datastore = service.create_datastore("jupyter", "jupyter")
    records.set_fields(
        datastore,
        "kernels",
        "k1",
        {
            "name": "python3",
            "execution_state": "busy",
            "connections": 2,
            "last_activity": "2026-11-25T10:00:00+00:00",
        },
        origin="supernode",
    )
    records.set_fields(
        datastore,
        "executions",
        "e1",
        {
            "cell_id": "c1",
            "status": "requested",
            "code": "1+1",
            "outputs": [],
        },
    )
    kernel = jmodels.Kernel.objects.get(datastore=datastore, record_id="k1")
    assert (kernel.name, kernel.execution_state, kernel.connections) == ("python3", "busy", 2)
    assert kernel.last_activity.isoformat() == "2026-11-25T10:00:00+00:00"
    execution = jmodels.Execution.objects.get(record_id="e1")
    assert (execution.code, execution.status, execution.outputs) == ("1+1", "requested", [])


def test_notebook_projects_to_notebook_cell_and_output_rows():
    datastore = service.create_datastore("nb", "notebook")
    client = Client(datastore)
    client.send(
        lambda d: d.get("meta", type=Map).update(
            {"nbformat": 4, "nbformat_minor": 5, "metadata": {"kernelspec": {"name": "python3"}}}
        )
    )
    client.send(
        lambda d: d.get("cells", type=Array).extend(
            [y_code_cell("c1", "print(1)"), y_code_cell("c2", "x = 2")]
        )
    )
    client.send(
        lambda d: d.get("cells", type=Array)[0]["outputs"].append(
            Map({"output_type": "stream", "name": "stdout", "text": "1\n"})
        )
    )
    client.send(lambda d: d.get("cells", type=Array)[0].__setitem__("execution_count", 1))
    client.send(lambda d: d.get("cells", type=Array)[1]["source"].insert(5, "0"))

    notebook = jmodels.Notebook.objects.get(datastore=datastore)
    assert (notebook.nbformat, notebook.metadata["kernelspec"]["name"]) == (4, "python3")
    cells = list(
        notebook.cells.with_index().values_list("cell_id", "index", "source", "execution_count")
    )
    assert cells == [("c1", 0, "print(1)", 1), ("c2", 1, "x = 20", None)]
    output = jmodels.Output.objects.get(cell__cell_id="c1")
    assert output.output_type == "stream" and output.content["text"] == "1\n"

    # Deleting a cell: the index, derived from the positions, follows.
    client.send(lambda d: d.get("cells", type=Array).__delitem__(0))
    assert list(notebook.cells.with_index().values_list("cell_id", "index")) == [("c2", 0)]


def test_rebuild_equals_incremental_projection():
    datastore = service.create_datastore("todo", "todo")
    client = Client(datastore)
    for key in "abc":
        client.send(lambda d, key=key: add_todo(d, key, key * 3))
    incremental = todo_rows(datastore)
    datastore.refresh_from_db()
    get_projector("todo").rebuild(datastore, history.doc_at(datastore))
    assert todo_rows(datastore) == incremental


def test_projection_queries_do_not_grow_with_the_batch():
    from django.db import connection
    from django.test.utils import CaptureQueriesContext
    from pycrdt import Doc

    from tables.service import Proposal

    datastore = service.create_datastore("todo", "todo")

    def batch_queries(prefix: str, size: int) -> int:
        proposals = []
        for i in range(size):
            doc = Doc()
            add_todo(doc, f"{prefix}{i}", "x")
            proposals.append((Proposal(doc.get_update()), None))
        with CaptureQueriesContext(connection) as queries:
            outcomes = service.write(datastore, proposals)
        assert all(o.status == "stored" for o in outcomes)
        return len(queries)

    batch_queries("warm", 1)  # load the document first
    assert batch_queries("small", 3) == batch_queries("large", 30)
    assert TodoItem.objects.filter(datastore=datastore).count() == 34


def test_a_field_edit_is_one_update_of_its_column_and_a_missing_row_comes_back():
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    datastore = service.create_datastore("todo", "todo")
    client = Client(datastore)
    for key in "abc":
        client.send(lambda d, key=key: add_todo(d, key, key))
    table = TodoItem._meta.db_table
    with CaptureQueriesContext(connection) as captured:
        client.send(lambda d: d.get("items", type=Map)["b"]["title"].insert(1, "!"))
    statements = [q["sql"] for q in captured.captured_queries if table in q["sql"]]
    assert len(statements) == 1 and statements[0].startswith("UPDATE"), statements
    assert '"done"' not in statements[0]
    # Several records in one batch: still one statement for the same column.
    updates = [
        client.change(lambda d, key=key: d.get("items", type=Map)[key]["title"].insert(0, "*"))
        for key in "abc"
    ]
    with CaptureQueriesContext(connection) as captured:
        service.write(datastore, [(service.Proposal(u), None) for u in updates])
    assert len([q for q in captured.captured_queries if table in q["sql"]]) == 1
    assert todo_rows(datastore) == service.live_python(datastore)[0]["items"]

    TodoItem.objects.filter(datastore=datastore, record_id="c").delete()
    client.send(lambda d: d.get("items", type=Map)["c"].__setitem__("done", True))
    assert todo_rows(datastore) == service.live_python(datastore)[0]["items"]
    assert todo_rows(datastore)["c"] == {"title": "*c", "done": True}


def test_todo_rows_equal_the_document_after_random_edits_in_batches():
    import random

    rng = random.Random(15)
    datastore = service.create_datastore("todo", "todo")
    client = Client(datastore)
    made = 0

    def edit(doc) -> None:
        nonlocal made
        items = doc.get("items", type=Map)
        keys = sorted(items.keys())
        kind = rng.choice(["add", "type", "type", "toggle", "remove", "replace"])
        if not keys or kind == "add":
            made += 1
            add_todo(doc, f"i{made}", rng.choice(["", "milk", "eggs"]))
        elif kind == "type":
            title = items[rng.choice(keys)]["title"]
            title.insert(rng.randint(0, len(title)), rng.choice("xyz"))
        elif kind == "toggle":
            item = items[rng.choice(keys)]
            item["done"] = not item["done"]
        elif kind == "remove":
            del items[rng.choice(keys)]
        else:
            add_todo(doc, rng.choice(keys), "again", done=True)

    for step in range(80):
        updates = [
            client.change(lambda d: [edit(d) for _ in range(rng.choice([1, 1, 3]))])
            for _ in range(rng.choice([1, 1, 2, 5]))
        ]
        batch = [(service.Proposal(u, txid=f"t{step}-{i}"), None) for i, u in enumerate(updates)]
        assert all(o.ok for o in service.write(datastore, batch))
        assert todo_rows(datastore) == service.live_python(datastore)[0]["items"], step
