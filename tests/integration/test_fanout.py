"""Fan-out across processes: two daphne workers sharing PostgreSQL and Redis."""

from __future__ import annotations

import asyncio

import pytest
from channels.db import database_sync_to_async

from tables import records, service
from tables.models import Transaction
from tests.support.factories import owned_datastore
from tests.support.socket_peers import Peer

pytest_plugins = ["tests.support.liveserver"]
pytestmark = pytest.mark.django_db(transaction=True)


@database_sync_to_async
def stored_serials() -> list[int]:
    return list(Transaction.objects.order_by("serial").values_list("serial", flat=True))


async def test_two_workers_with_redis_converge_with_gapless_serials(
    postgres, redis_url, start_server, opened
):
    url, prefix = redis_url
    env = {"REDIS_URL": url, "REDIS_PREFIX": prefix}
    first = await asyncio.to_thread(start_server, env=env, name="worker-1")
    second = await asyncio.to_thread(start_server, env=env, name="worker-2")
    token = await database_sync_to_async(owned_datastore)("shared")
    alice = await Peer.open(first, "shared", token)
    bob = await Peer.open(second, "shared", token)
    carol = await Peer.open(second, "shared", token)  # a second reader on the same worker
    opened.extend([alice, bob, carol])

    sent = [await alice.add(f"a{i}") for i in range(15)] + [
        await bob.add(f"b{i}") for i in range(15)
    ]
    everything = {f"{p}{i}" for p in "ab" for i in range(15)}
    for peer in (alice, bob, carol):
        await peer.until(lambda peer=peer: peer.items() == everything)
    # Others may see a transaction before its sender has its ack: wait for the acks too.
    for peer in (alice, bob):
        await peer.until(lambda peer=peer: len(peer.acked) == 15)
    assert set(alice.acked) | set(bob.acked) == set(sent)

    assert await stored_serials() == list(range(1, 31))
    for peer in (alice, bob, carol):
        # Every connection saw every serial exactly once (own ones through acks).
        assert sorted(peer.serials) == list(range(1, 31))

    # A broadcast a worker never heard (a write from a process without the channel layer)
    # is filled in from the database when the next one arrives.
    await database_sync_to_async(records.set_fields)(
        await database_sync_to_async(service.get_datastore)("shared"),
        "items",
        "quiet",
        {"title": "unannounced"},
    )
    await alice.add("loud")
    for peer in (alice, bob, carol):
        await peer.until(lambda peer=peer: {"quiet", "loud"} <= peer.items())
    assert sorted(carol.serials) == list(range(1, 33))
