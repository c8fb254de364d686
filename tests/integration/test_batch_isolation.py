"""One bad transaction never sinks the others committed with it.

Writers that arrive together share one database transaction (group commit, tables/commit.py).
PostgreSQL stores no NUL character and no driver encodes a lone surrogate: before, one such
string anywhere in a transaction (a value, a record id, its txid or store id) failed the whole
database transaction, and every other writer's transaction in the batch was neither stored nor
answered. Each is now refused on its own (``bad-text``), the same on every database; and a batch
that fails for any other reason is committed again one transaction at a time."""

from __future__ import annotations

import base64

import pytest
from django.contrib.auth.models import User
from rest_framework.test import APIClient

from tables import service
from tables.commit import queue_for
from tables.models import Transaction
from tables.permissions import grant
from tables.service import Proposal, Status
from tests.support.factories import Client, add_todo

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def datastore():
    owner = User.objects.create_user("owner")
    return service.create_datastore("todo", "todo", owner=owner)


def stored_txids(datastore) -> list[str]:
    return list(
        Transaction.objects.filter(datastore=datastore).order_by("serial").values_list("txid")
    )


def one_batch(datastore, proposals: list[tuple[Proposal, object]]) -> list:
    """Queue every proposal, then commit them as the queue's leader does: as one batch."""
    queue = queue_for(datastore)
    futures = [queue.enqueue(proposal, authorize)[0] for proposal, authorize in proposals]
    queue.drain()
    return futures


def test_each_bad_string_is_refused_alone_and_the_rest_of_its_batch_stored(datastore):
    writers = [Client(datastore, author_id=None) for _ in range(7)]
    update = [
        writers[0].change(lambda d: add_todo(d, "a", "first")),
        writers[1].change(lambda d: add_todo(d, "b", "nul \x00 in a title")),
        writers[2].change(lambda d: add_todo(d, "c\x00", "nul in a record id")),
        writers[3].change(lambda d: add_todo(d, "d", "a bad txid")),
        writers[4].change(lambda d: add_todo(d, "e", "a bad store id")),
        writers[5].change(lambda d: add_todo(d, "f", "\x00 first")),
        writers[6].change(lambda d: add_todo(d, "g", "last")),
    ]
    proposals = [
        Proposal(update[0], txid="t0", store_id="s0"),
        Proposal(update[1], txid="t1", store_id="s1"),
        Proposal(update[2], txid="t2", store_id="s2"),
        Proposal(update[3], txid="t3\ud800", store_id="s3"),
        Proposal(update[4], txid="t4", store_id="s4\x00"),
        Proposal(update[5], txid="t5", store_id="s5"),
        Proposal(update[6], txid="t6", store_id="s6"),
    ]
    queue = queue_for(datastore)
    before = queue.batches
    futures = one_batch(datastore, [(proposal, None) for proposal in proposals])
    outcomes = [future.result(timeout=30) for future in futures]

    assert queue.batches == before + 1  # refused inside the batch, not by a failed commit
    assert [outcome.status for outcome in outcomes] == [
        Status.STORED,
        *[Status.REJECTED] * 5,
        Status.STORED,
    ]
    for outcome in outcomes[1:6]:
        assert outcome.error_code == "bad-text", outcome
    assert "NUL" in outcomes[1].error and "surrogate" in outcomes[3].error
    assert stored_txids(datastore) == [("t0",), ("t6",)]
    state, serial = service.live_python(datastore)
    assert sorted(state["items"]) == ["a", "g"] and serial == 2
    assert [str(outcome.serial) for outcome in (outcomes[0], outcomes[6])] == ["1", "2"]


def test_a_batch_failing_for_another_reason_is_committed_one_by_one(datastore):
    """An authorize hook that raises (a bug, not a refusal) fails its own transaction only."""
    writers = [Client(datastore) for _ in range(3)]
    updates = [
        writer.change(lambda d, i=i: add_todo(d, f"item-{i}", f"title {i}"))
        for i, writer in enumerate(writers)
    ]

    def broken(proposal, _analysis):
        if proposal.txid == "t1":
            raise RuntimeError("the hook's own bug")
        return None

    futures = one_batch(
        datastore, [(Proposal(update, txid=f"t{i}"), broken) for i, update in enumerate(updates)]
    )
    assert futures[0].result(timeout=30).status is Status.STORED
    with pytest.raises(RuntimeError, match="the hook's own bug"):
        futures[1].result(timeout=30)
    assert futures[2].result(timeout=30).status is Status.STORED
    assert stored_txids(datastore) == [("t0",), ("t2",)]
    state, _ = service.live_python(datastore)
    assert sorted(state["items"]) == ["item-0", "item-2"]


def test_over_rest_a_nul_is_a_400_and_the_datastore_keeps_working(datastore):
    editor = User.objects.create_user("ed")
    grant(datastore, editor, "editor")
    api = APIClient()
    api.force_authenticate(editor)
    url = f"/api/datastores/{datastore.name}/transactions/"
    writer = Client(datastore)

    def post(update: bytes, txid: str):
        return api.post(url, {"patch": base64.b64encode(update).decode(), "id": txid}, "json")

    response = post(writer.change(lambda d: add_todo(d, "y", "a\x00b")), "nul")
    assert response.status_code == 400, response.content
    assert response.json()["code"] == "bad-text"
    response = post(Client(datastore).change(lambda d: add_todo(d, "z", "fine")), "fine")
    assert response.status_code == 201, response.content
    assert stored_txids(datastore) == [("fine",)]
