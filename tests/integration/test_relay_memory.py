"""Connections that come and go leave nothing behind in the worker, so its memory can return to
its baseline: the hub drops the room (and the lock that guards its creation) once its last
connection leaves, and no consumer outlives its connection. An idle connection holds no
per-write state: a write's sets are put back to the shared empty default once it is answered.

Both protocols in process, against the real ASGI application (the hub lives in this process).
"""

from __future__ import annotations

import gc
import weakref

import pytest
from channels.db import database_sync_to_async
from pycrdt import Text

from relay.consumers import NOTHING, RelayConsumer
from relay.hub import get_hub
from tables.models import Datastore
from tests.support.factories import owned_datastore
from tests.support.peers import JsonPeer, YPeer
from tests.support.waiting import aeventually

pytestmark = pytest.mark.django_db(transaction=True)

db = database_sync_to_async


def add_text(text: str):
    def mutate(doc) -> None:
        doc.get("t", type=Text).insert(0, text)

    return mutate


async def open_write_and_close(name: str, token: str, pk: int) -> list[weakref.ref]:
    """22 connections to one datastore (both protocols, one writing) that all close again;
    weak references to their consumers."""
    readers = [await YPeer.synced(name, token) for _ in range(20)]
    json_peer = await JsonPeer.joined(name, token)
    writer = await YPeer.synced(name, token)
    await writer.edit(add_text("hello"))
    await readers[0].until(lambda: str(readers[0].doc.get("t", type=Text)) == "hello")

    room = get_hub().rooms[pk]
    assert len(room.members) == 22
    # Every y-websocket client's sync step 2 on joining is a write, and the writer wrote: once
    # answered, none holds a set of its own any more.
    await aeventually(
        lambda: all(m.tasks is NOTHING and m.own_txids is NOTHING for m in room.members.values()),
        what="every connection's writes answered and their sets dropped",
        explain=lambda: repr([(m.tasks, m.own_txids) for m in room.members.values()]),
    )
    consumers = [weakref.ref(member) for member in room.members.values()]
    assert all(isinstance(ref(), RelayConsumer) for ref in consumers)
    for peer in [*readers, json_peer, writer]:
        await peer.close()
    return consumers


async def test_connections_that_close_leave_no_room_and_no_consumer():
    token = await db(owned_datastore)("churn", "freeform")
    pk = (await db(Datastore.objects.get)(name="churn")).pk

    consumers = await open_write_and_close("churn", token, pk)

    assert pk not in get_hub().rooms
    assert pk not in get_hub()._room_locks
    gc.collect()
    assert [ref() for ref in consumers if ref() is not None] == []
