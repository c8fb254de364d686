"""What one commit costs the database, counted: the write path's statements cannot silently grow.

Most of a small commit's time is Django building statements, not the database running them, so
the number of statements per commit is what keeps it fast. Counted without BEGIN and COMMIT (the
SQLite backend logs them, PostgreSQL's does not), so the same figures hold on both databases.
"""

from __future__ import annotations

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from pycrdt import Map

from tables import service, write_sql
from tables.models import Datastore, TouchedRecord, Transaction
from tables.service import Proposal, Status
from tests.support.factories import Client, add_todo
from tests.support.queries import statements_run

pytestmark = pytest.mark.django_db(transaction=True)

# Lock and read the datastore row, insert the patches, insert the touched records, update the
# projected column, update the datastore row. No transaction id is looked up for a change.
ONE_COMMIT = ["SELECT", "INSERT", "INSERT", "UPDATE", "UPDATE"]


def statements(write) -> list[str]:
    """The first word of each statement ``write()`` ran, transaction control left out."""
    with CaptureQueriesContext(connection) as captured:
        outcomes = write()
    assert all(outcome.status is Status.STORED for outcome in outcomes), outcomes
    return [sql.split(None, 1)[0].upper() for sql in statements_run(captured)]


@pytest.fixture
def todo() -> tuple[Datastore, Client]:
    datastore = service.create_datastore("todo-q", "todo")
    client = Client(datastore)
    for key in "abc":
        client.send(lambda d, key=key: add_todo(d, key, key))  # loads the doc, makes the rows
    return datastore, client


def type_into(key: str, text: str):
    return lambda d: d.get("items", type=Map)[key]["title"].insert(0, text)


def test_a_keystroke_is_five_statements(todo):
    datastore, client = todo
    update = client.change(type_into("a", "!"))
    ran = statements(lambda: [service.write_one(datastore, Proposal(update, txid="c-1"))])
    assert ran == ONE_COMMIT
    # A server-made id, the same.
    update = client.change(type_into("a", "?"))
    assert statements(lambda: [service.write_one(datastore, Proposal(update))]) == ONE_COMMIT


def test_a_retry_changes_nothing_and_is_found_a_duplicate(todo):
    datastore, client = todo
    update = client.change(type_into("a", "!"))
    first = service.write_one(datastore, Proposal(update, txid="c-1"))
    again = service.write_one(datastore, Proposal(update, txid="c-1"))
    assert (again.status, again.serial) == (Status.DUPLICATE, first.serial)
    assert Transaction.objects.filter(datastore=datastore, txid="c-1").count() == 1
    # The same change under a new id is a no-op.
    other = service.write_one(datastore, Proposal(update, txid="c-2"))
    assert (other.status, other.serial) == (Status.NOOP, first.serial)


def test_a_stored_id_given_to_another_change_is_a_duplicate_and_stores_nothing(todo):
    """The unique constraint refuses it; the batch runs again with its ids looked up first, so
    the other proposals of the batch are stored all the same."""
    datastore, client = todo
    service.write_one(datastore, Proposal(client.change(type_into("a", "!")), txid="c-1"))
    reused = client.change(type_into("b", "?"))
    fresh = Client(datastore).change(type_into("c", "+"))  # not built on the refused one
    outcomes = service.write(
        datastore, [(Proposal(reused, txid="c-1"), None), (Proposal(fresh, txid="c-2"), None)]
    )
    assert [(o.status, o.serial) for o in outcomes] == [
        (Status.DUPLICATE, 4),
        (Status.STORED, 5),
    ]
    items = service.live_python(datastore)[0]["items"]
    assert (items["a"]["title"], items["b"]["title"], items["c"]["title"]) == ("!a", "b", "+c")
    assert Datastore.objects.get(pk=datastore.pk).last_serial == 5


def test_a_batch_costs_the_statements_of_one_transaction(todo):
    datastore, client = todo
    updates = [client.change(type_into(key, "*")) for key in "abc" * 3]
    batch = [(Proposal(update, txid=f"b-{i}"), None) for i, update in enumerate(updates)]
    assert statements(lambda: service.write(datastore, batch)) == ONE_COMMIT
    assert list(Transaction.objects.filter(datastore=datastore).values_list("serial", flat=True))[
        -9:
    ] == list(range(4, 13))


def test_stale_instances_of_one_datastore_keep_serials_and_sizes_exact(todo):
    """The write path takes only the fixed facts from the caller's instance: counters come from
    the locked row, so instances read at different times write one dense history."""
    datastore, client = todo
    first, second = Datastore.objects.get(pk=datastore.pk), Datastore.objects.get(pk=datastore.pk)
    for index, instance in enumerate([first, second, first, datastore, second]):
        update = client.change(type_into("b", str(index)))
        assert service.write_one(instance, Proposal(update, txid=f"s-{index}")).serial == 4 + index
    assert first.last_serial == second.last_serial == 3  # the callers' instances are untouched
    row = Datastore.objects.get(pk=datastore.pk)
    rows = Transaction.objects.filter(datastore=datastore)
    assert row.last_serial == rows.count() == 8
    assert row.size == sum(rows.values_list("size", flat=True))
    assert service.live_python(datastore)[0]["items"]["b"]["title"] == "43210b"


def stored_rows(datastore: Datastore) -> tuple[list[tuple], list[tuple]]:
    """The patch rows (serial, txid, id) and touched-record rows (serial, table, record) stored."""
    patches = list(
        Transaction.objects.filter(datastore=datastore)
        .order_by("serial")
        .values_list("serial", "txid", "pk")
    )
    touched = sorted(
        TouchedRecord.objects.filter(datastore=datastore).values_list(
            "transaction__serial", "table", "record_id"
        )
    )
    return patches, touched


def test_a_batch_bigger_than_one_statement_holds_is_stored_whole(todo):
    """A batch of more patches, and more touched records, than one INSERT can carry on this
    database (its limit on parameters) is inserted in chunks: every row stored, ids in order."""
    datastore, client = todo
    per_statement = connection.ops.bulk_batch_size(
        [TouchedRecord._meta.get_field(name) for name in write_sql.TOUCHED_FIELDS], [None] * 10**6
    )
    many = min(per_statement + 5, 2000)

    def add_many(doc) -> None:
        for index in range(many):
            add_todo(doc, f"m{index}", "x")

    patches = [Proposal(client.change(add_many), txid="many")]
    patches += [Proposal(client.change(type_into("a", str(i))), txid=f"k-{i}") for i in range(120)]
    outcomes = service.write(datastore, [(proposal, None) for proposal in patches])
    assert [o.status for o in outcomes] == [Status.STORED] * len(patches)
    stored, touched = stored_rows(datastore)
    new = stored[3:]
    assert (
        [(serial, txid) for serial, txid, _ in new]
        == [(o.serial, o.txid) for o in outcomes]
        == [(4 + i, p.txid) for i, p in enumerate(patches)]
    )
    assert [pk for _, _, pk in new] == [o.transaction_pk for o in outcomes]
    assert [row for row in touched if row[0] == 4] == sorted(
        (4, "items", f"m{index}") for index in range(many)
    )
    assert [row for row in touched if row[0] > 4] == [(5 + i, "items", "a") for i in range(120)]


def test_backends_that_cannot_return_inserted_ids_read_them_back(todo, monkeypatch):
    """On a backend without ``RETURNING`` from a multi-row insert, the ids are read back by
    serial: the outcomes and the touched records point at the right patch rows."""
    datastore, client = todo
    monkeypatch.setattr(type(connection.features), "can_return_rows_from_bulk_insert", False)
    batch = [(Proposal(client.change(type_into(key, "+")), txid=f"r-{key}"), None) for key in "ab"]
    outcomes = service.write(datastore, batch)
    assert [o.status for o in outcomes] == [Status.STORED] * 2
    stored, touched = stored_rows(datastore)
    assert [(serial, txid, pk) for serial, txid, pk in stored[-2:]] == [
        (o.serial, o.txid, o.transaction_pk) for o in outcomes
    ]
    assert touched[-2:] == [(4, "items", "a"), (5, "items", "b")]
