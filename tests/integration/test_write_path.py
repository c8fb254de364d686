"""The write path: serials, de-duplication, no-ops, schema violations, convergence."""

from __future__ import annotations

import pytest
from pycrdt import Array, Doc, Map, Text

from tables import service
from tables.models import Datastore, Transaction
from tables.service import Proposal, Status
from tables.signals import transactions_committed
from tests.support.factories import Client, add_todo

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def todo() -> Datastore:
    return service.create_datastore("todo-1", "todo")


def serials(datastore: Datastore) -> list[int]:
    return list(
        Transaction.objects.filter(datastore=datastore)
        .order_by("serial")
        .values_list("serial", flat=True)
    )


def test_concurrent_edits_converge_with_gapless_serials(todo):
    alice, bob = Client(todo), Client(todo)
    alice.send(lambda d: add_todo(d, "a", "from alice"))
    bob.send(lambda d: add_todo(d, "b", "from bob"))
    alice.receive()
    bob.receive()
    # Both type into the same title at the same time.
    a = alice.send(lambda d: d.get("items", type=Map)["a"]["title"].insert(0, "A:"))
    b = bob.send(lambda d: d.get("items", type=Map)["a"]["title"].insert(10, "!"))
    assert (a.status, b.status) == (Status.STORED, Status.STORED)
    alice.receive()
    bob.receive()
    server, serial = service.live_python(todo)
    assert alice.table("items").to_py() == bob.table("items").to_py() == server["items"]
    assert server["items"]["a"]["title"] == "A:from alice!"
    assert serials(todo) == [1, 2, 3, 4] and serial == 4
    todo.refresh_from_db()
    assert todo.last_serial == 4


def test_duplicate_transaction_id_is_stored_once(todo):
    client = Client(todo)
    update = client.change(lambda d: add_todo(d, "a", "once"))
    first = service.write_one(todo, Proposal(update, txid="same"))
    again = service.write_one(todo, Proposal(update, txid="same"))
    assert first.status is Status.STORED and again.status is Status.DUPLICATE
    assert again.serial == first.serial == 1
    assert Transaction.objects.filter(datastore=todo).count() == 1


def test_duplicates_inside_one_batch_share_the_serial(todo):
    update = Client(todo).change(lambda d: add_todo(d, "a", "x"))
    outcomes = service.write(todo, [(Proposal(update, txid="t"), None)] * 3)
    assert [o.status for o in outcomes] == [Status.STORED, Status.DUPLICATE, Status.DUPLICATE]
    assert {o.serial for o in outcomes} == {1}
    assert serials(todo) == [1]


def test_update_that_changes_nothing_is_not_stored(todo):
    client = Client(todo)
    client.send(lambda d: add_todo(d, "a", "x"))
    # A reconnecting client re-sends its whole state: nothing new in it.
    outcome = service.write_one(todo, Proposal(client.doc.get_update(), txid="resend"))
    assert outcome.status is Status.NOOP
    assert serials(todo) == [1]


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda d: d.get("nope", type=Map).__setitem__("r", 1), "unknown table 'nope'"),
        (
            lambda d: d.get("items", type=Map).__setitem__("r", Map({"colour": "red"})),
            "unknown field 'colour'",
        ),
        (
            lambda d: d.get("items", type=Map).__setitem__("r", Map({"done": "yes"})),
            "done: expected boolean, got str",
        ),
        (
            lambda d: d.get("items", type=Map).__setitem__("r", Map({"title": "plain"})),
            "title: expected a shared text, got str",
        ),
        (
            lambda d: d.get("items", type=Map).__setitem__("r", Map({"done": Array([1])})),
            "done: expected a JSON value, got a shared list",
        ),
        (
            lambda d: d.get("items", type=Map).__setitem__("r", "not a record"),
            "a record must be a map",
        ),
        (
            lambda d: d.get("lists", type=Map).__setitem__("l", Map({"items": Array([Text("x")])})),
            "items must be JSON values",
        ),
    ],
    ids=["table", "field", "register-type", "text-type", "shared-in-register", "record", "item"],
)
def test_schema_violation_is_refused_and_nothing_changes(todo, mutate, message):
    client = Client(todo)
    client.send(lambda d: add_todo(d, "a", "kept"))
    before, _ = service.live_python(todo)
    outcome = client.send(mutate)
    assert outcome.status is Status.REJECTED
    assert outcome.error_code == "schema-violation"
    assert message in outcome.error
    assert serials(todo) == [1]
    after, serial = service.live_python(todo)
    assert after == before and serial == 1
    # A fresh client loading the datastore sees no trace of it either.
    assert Client(todo).doc.get("nope", type=Map).to_py() in ({}, None)


def test_a_rejected_update_in_a_batch_leaves_the_others(todo):
    client = Client(todo)
    good1 = client.change(lambda d: add_todo(d, "a", "one"))
    bad = client.change(lambda d: d.get("items", type=Map)["a"].__setitem__("done", "x"))
    fresh = Client(todo)
    good2 = fresh.change(lambda d: add_todo(d, "b", "two"))
    outcomes = service.write(
        todo, [(Proposal(good1), None), (Proposal(bad), None), (Proposal(good2), None)]
    )
    assert [o.status for o in outcomes] == [Status.STORED, Status.REJECTED, Status.STORED]
    assert [o.serial for o in outcomes] == [1, None, 2]
    state, _ = service.live_python(todo)
    assert state["items"] == {
        "a": {"title": "one", "done": False},
        "b": {"title": "two", "done": False},
    }


@pytest.mark.parametrize(
    "payload",
    [b"", b"\x00", b"garbage bytes", b"\x01\x02\x03\x04\x05\x06\x07\x08\x09"],
    ids=["empty", "zero", "text", "truncated"],
)
def test_malformed_bytes_are_refused(todo, payload):
    Client(todo).send(lambda d: add_todo(d, "a", "kept"))
    outcome = service.write_one(todo, Proposal(payload))
    assert outcome.status in (Status.REJECTED, Status.NOOP)
    if outcome.status is Status.REJECTED:
        assert outcome.error_code == "malformed-update"
    assert serials(todo) == [1]
    state, _ = service.live_python(todo)
    assert state["items"]["a"]["title"] == "kept"


def test_client_building_on_a_refused_change_must_resync(todo):
    client = Client(todo)
    client.send(lambda d: d.get("items", type=Map).__setitem__("bad", 1))
    outcome = client.send(lambda d: add_todo(d, "a", "on top of the refused one"))
    assert outcome.status is Status.REJECTED
    assert outcome.error_code == "missing-dependencies"
    assert serials(todo) == []


def test_update_with_missing_dependencies_is_refused(todo):
    other = Doc()
    other.get("items", type=Map)["a"] = Map({"title": Text("base")})
    before = other.get_state()
    other.get("items", type=Map)["a"]["title"].insert(4, "!")
    tail_only = other.get_update(before)  # builds on a change the server never got
    outcome = service.write_one(todo, Proposal(tail_only))
    assert outcome.status is Status.REJECTED
    assert outcome.error_code == "missing-dependencies"
    assert serials(todo) == []
    # The server is still healthy and accepts the whole story.
    assert service.write_one(todo, Proposal(other.get_update())).status is Status.STORED


def test_oversized_update_is_refused(todo, settings):
    settings.RTC = {**settings.RTC, "MAX_UPDATE_BYTES": 100}
    outcome = Client(todo).send(lambda d: add_todo(d, "a", "x" * 500))
    assert outcome.status is Status.REJECTED and outcome.error_code == "too-large"
    assert serials(todo) == []


def test_authorize_hook_sees_touched_tables_and_can_refuse(todo):
    seen = []

    def authorize(proposal, analysis):
        seen.append(analysis.tables)
        return "lists are read-only here" if "lists" in analysis.tables else None

    client = Client(todo)
    ok = service.write_one(
        todo, Proposal(client.change(lambda d: add_todo(d, "a", "x"))), authorize
    )
    refused = service.write_one(
        todo,
        Proposal(client.change(lambda d: d.get("lists", type=Map).__setitem__("l", Map()))),
        authorize,
    )
    assert ok.status is Status.STORED
    assert refused.status is Status.REJECTED and refused.error_code == "permission-denied"
    assert seen == [{"items"}, {"lists"}]
    assert service.live_python(todo)[0]["lists"] == {}


def test_committed_signal_fires_after_commit_only(todo):
    received = []

    def receiver(sender, datastore, transactions, **kwargs):
        # The rows are visible: the signal comes after the commit.
        assert Transaction.objects.filter(datastore=datastore).count() == transactions[-1].serial
        received.extend(t.serial for t in transactions)

    transactions_committed.connect(receiver)
    try:
        client = Client(todo)
        client.send(lambda d: add_todo(d, "a", "x"))
        client.send(lambda d: d.get("items", type=Map).__setitem__("bad", 1))  # refused
        # The refused change is in the client's doc: it must start again from the server.
        Client(todo).send(lambda d: add_todo(d, "b", "y"))
    finally:
        transactions_committed.disconnect(receiver)
    assert received == [1, 2]


def test_rolled_back_outer_transaction_leaves_no_trace(todo):
    from django.db import transaction

    received = []

    def receiver(sender, transactions, **kwargs):
        received.extend(t.serial for t in transactions)

    transactions_committed.connect(receiver, dispatch_uid="t")
    client = Client(todo)
    client.send(lambda d: add_todo(d, "a", "kept"))
    with pytest.raises(RuntimeError), transaction.atomic():
        client.send(lambda d: add_todo(d, "b", "rolled back"))
        raise RuntimeError
    transactions_committed.disconnect(dispatch_uid="t")
    state, serial = service.live_python(todo)
    assert list(state["items"]) == ["a"] and serial == 1
    assert received == [1]
    # The next write gets serial 2, not 3.
    assert Client(todo).send(lambda d: add_todo(d, "c", "next")).serial == 2


def test_items_inserted_into_existing_lists_and_maps_are_checked(todo):
    jupyter = service.create_datastore("j", "jupyter")
    client = Client(todo)
    client.send(lambda d: d.get("lists", type=Map).__setitem__("l", Map({"items": Array(["a"])})))
    refused = client.send(lambda d: d.get("lists", type=Map)["l"]["items"].append(Text("x")))
    assert refused.status is Status.REJECTED
    assert "lists['l'].items: items must be JSON values" in refused.error
    ok = Client(todo).send(lambda d: d.get("lists", type=Map)["l"]["items"].append("b"))
    assert ok.status is Status.STORED
    assert service.live_python(todo)[0]["lists"]["l"]["items"] == ["a", "b"]

    spec = Client(jupyter)
    spec.send(lambda d: d.get("kernelspecs", type=Map).__setitem__("p", Map({"spec": Map()})))
    refused = spec.send(
        lambda d: d.get("kernelspecs", type=Map)["p"]["spec"].__setitem__("argv", Array(["python"]))
    )
    assert refused.status is Status.REJECTED and "kernelspecs['p'].spec" in refused.error
