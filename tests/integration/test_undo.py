"""Undo and redo as new transactions, keeping other people's concurrent edits."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import User
from pycrdt import Array, Map, Text

from tables import service, undo
from tables.models import Origin, Transaction
from tables.service import Status
from tests.support.factories import Client, add_todo
from tests.support.notebooks import y_code_cell

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def people():
    return User.objects.create_user("alice"), User.objects.create_user("bob")


@pytest.fixture
def todo():
    return service.create_datastore("todo", "todo")


def items(datastore) -> dict:
    return service.live_python(datastore)[0]["items"]


def test_undo_text_keeps_a_concurrent_edit(todo, people):
    alice, bob = (Client(todo, author_id=p.id) for p in people)
    alice.send(lambda d: add_todo(d, "a", "milk"))
    bob.receive()
    alice.send(lambda d: d.get("items", type=Map)["a"]["title"].insert(4, " and eggs"))
    bob.send(lambda d: d.get("items", type=Map)["a"]["title"].insert(0, "buy "))
    assert items(todo)["a"]["title"] == "buy milk and eggs"

    outcome = undo.undo_last(todo, author_id=people[0].id)
    assert outcome.status is Status.STORED
    assert items(todo)["a"]["title"] == "buy milk"  # alice's edit gone, bob's kept
    row = Transaction.objects.get(datastore=todo, serial=outcome.serial)
    assert (row.origin, row.author_id, row.reverts.serial) == (Origin.UNDO, people[0].id, 2)

    redone = undo.redo_last(todo, author_id=people[0].id)
    assert redone.status is Status.STORED
    assert items(todo)["a"]["title"] == "buy milk and eggs"
    assert Transaction.objects.get(datastore=todo, serial=redone.serial).origin == Origin.REDO


def test_undo_register_and_deleted_text_is_restored(todo, people):
    alice = Client(todo, author_id=people[0].id)
    alice.send(lambda d: add_todo(d, "a", "keep me"))
    alice.send(lambda d: d.get("items", type=Map)["a"].__setitem__("done", True))
    alice.send(lambda d: d.get("items", type=Map)["a"]["title"].__delitem__(slice(0, 5)))
    assert items(todo)["a"] == {"title": "me", "done": True}
    undo.undo_last(todo, author_id=people[0].id)
    assert items(todo)["a"]["title"] == "keep me"  # deleted text comes back
    undo.undo_last(todo, author_id=people[0].id)
    assert items(todo)["a"]["done"] is False
    undo.redo_last(todo, author_id=people[0].id)
    assert items(todo)["a"]["done"] is True


def test_undo_in_a_list_keeps_the_other_authors_items(todo, people):
    alice, bob = (Client(todo, author_id=p.id) for p in people)
    alice.send(lambda d: d.get("lists", type=Map).__setitem__("l", Map({"items": Array(["a"])})))
    bob.receive()
    alice.send(lambda d: d.get("lists", type=Map)["l"]["items"].append("b"))
    bob.send(lambda d: d.get("lists", type=Map)["l"]["items"].insert(0, "z"))
    assert service.live_python(todo)[0]["lists"]["l"]["items"] == ["z", "a", "b"]
    undo.undo_last(todo, author_id=people[0].id)
    assert service.live_python(todo)[0]["lists"]["l"]["items"] == ["z", "a"]


def test_undo_and_redo_by_serial(todo, people):
    alice = Client(todo, author_id=people[0].id)
    alice.send(lambda d: add_todo(d, "a", "one"))
    alice.send(lambda d: add_todo(d, "b", "two"))
    undo.undo(todo, 1, author_id=people[1].id)  # anyone may revert a given transaction
    assert list(items(todo)) == ["b"]
    undo.redo(todo, 1, author_id=people[1].id)
    assert set(items(todo)) == {"a", "b"}
    with pytest.raises(undo.NothingToUndo, match="has not been undone"):
        undo.redo(todo, 2, author_id=None)


def test_author_stacks_follow_editor_semantics(todo, people):
    alice = Client(todo, author_id=people[0].id)
    for key in "abc":
        alice.send(lambda d, key=key: add_todo(d, key, key))
    undo.undo_last(todo, author_id=people[0].id)  # removes c
    undo.undo_last(todo, author_id=people[0].id)  # removes b
    assert list(items(todo)) == ["a"]
    undo.redo_last(todo, author_id=people[0].id)  # b back
    assert set(items(todo)) == {"a", "b"}
    alice.receive()
    alice.send(lambda d: add_todo(d, "d", "d"))  # a new edit clears the redo stack
    with pytest.raises(undo.NothingToUndo, match="nothing to redo"):
        undo.redo_last(todo, author_id=people[0].id)
    undo_stack, redo_stack = undo.author_stacks(todo, people[0].id)
    assert [t.serial for t in undo_stack][-1] == 7 and redo_stack == []


def test_nothing_to_undo(todo, people):
    with pytest.raises(undo.NothingToUndo):
        undo.undo_last(todo, author_id=people[0].id)
    with pytest.raises(undo.NothingToUndo):
        undo.undo(todo, 42, author_id=None)


def test_undo_of_a_change_already_overwritten_is_a_noop(todo, people):
    alice, bob = (Client(todo, author_id=p.id) for p in people)
    alice.send(lambda d: add_todo(d, "a", "x"))
    bob.receive()
    bob.send(lambda d: d.get("items", type=Map).pop("a"))
    outcome = undo.undo(todo, 1, author_id=people[0].id)
    # Undoing the insertion of a record bob already deleted changes nothing.
    assert outcome.status is Status.NOOP
    assert outcome.error_code == "nothing-to-undo"


def test_undo_needs_declared_roots(people):
    free = service.create_datastore("free", "freeform")
    client = Client(free)
    client.send(lambda d: d.get("anything", type=Text).insert(0, "hi"))
    with pytest.raises(undo.UndoUnsupported):
        undo.undo(free, 1, author_id=None)


def test_undo_in_a_notebook(people):
    notebook = service.create_datastore("nb", "notebook")
    client = Client(notebook, author_id=people[0].id)
    client.send(lambda d: d.get("cells", type=Array).append(y_code_cell("c1", "print(1)")))
    client.send(lambda d: d.get("cells", type=Array)[0]["source"].insert(8, "\nprint(2)"))
    undo.undo_last(notebook, author_id=people[0].id)
    cells = service.live_python(notebook)[0]["cells"]
    assert cells[0]["source"] == "print(1)"


def cells(doc) -> Array:
    return doc.get("cells", type=Array)


def sources(notebook) -> list[str]:
    return [cell["source"] for cell in service.live_python(notebook)[0]["cells"]]


def test_undo_in_a_notebook_keeps_concurrent_edits_in_the_same_cell_and_others(people):
    notebook = service.create_datastore("nb2", "notebook")
    loader = Client(notebook)
    loader.send(
        lambda d: d.get("cells", type=Array).extend(
            [y_code_cell("c1", "x = 1"), y_code_cell("c2", "y = 2")]
        )
    )
    alice, bob = (Client(notebook, author_id=p.id) for p in people)

    # Concurrent: neither has seen the other's edit when making their own.
    alice.send(lambda d: cells(d)[0]["source"].insert(5, " + 40"))
    bob.send(lambda d: cells(d)[0]["source"].insert(0, "# b\n"))
    bob.send(lambda d: cells(d)[1]["source"].insert(5, " * 3"))
    bob.send(lambda d: cells(d).append(y_code_cell("c3", "z = 0")))
    assert sources(notebook) == ["# b\nx = 1 + 40", "y = 2 * 3", "z = 0"]

    outcome = undo.undo_last(notebook, author_id=people[0].id)
    assert outcome.status is Status.STORED
    assert sources(notebook) == ["# b\nx = 1", "y = 2 * 3", "z = 0"]
    row = Transaction.objects.get(datastore=notebook, serial=outcome.serial)
    assert (row.origin, row.author_id, row.reverts.serial) == (Origin.UNDO, people[0].id, 2)

    # A deleted cell comes back by undo, with Bob's later edit elsewhere kept.
    alice.receive()
    alice.send(lambda d: cells(d).__delitem__(1))
    bob.send(lambda d: cells(d)[0]["source"].insert(0, "# again\n"))
    assert sources(notebook) == ["# again\n# b\nx = 1", "z = 0"]
    undo.undo_last(notebook, author_id=people[0].id)
    assert sources(notebook) == ["# again\n# b\nx = 1", "y = 2 * 3", "z = 0"]
    assert [c["id"] for c in service.live_python(notebook)[0]["cells"]] == ["c1", "c2", "c3"]
