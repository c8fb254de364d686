"""kill -9 a worker under load: no acknowledged transaction is lost, clients reconnect and
converge, and re-sent transactions are stored once."""

from __future__ import annotations

import asyncio
import signal

import pytest
from channels.db import database_sync_to_async
from pycrdt import Map, Text
from rtc_client import Backoff, DatastoreClient

from tables.models import Transaction
from tests.support.factories import owned_datastore

pytest_plugins = ["tests.support.liveserver"]
pytestmark = pytest.mark.django_db(transaction=True)

WRITERS = 3
EDITS = 60


@database_sync_to_async
def stored() -> dict[str, int]:
    return dict(Transaction.objects.values_list("txid", "serial"))


async def write(client: DatastoreClient, name: str) -> None:
    for i in range(EDITS):
        with client.doc.transaction():
            client.doc.get("items", type=Map)[f"{name}{i}"] = Map(
                {"title": Text(name), "done": False}
            )
        await asyncio.sleep(0.005)  # pacing the load, not synchronisation


async def test_kill_9_under_load_loses_no_acknowledged_transaction(
    postgres, redis_url, start_server
):
    url, prefix = redis_url
    env = {"REDIS_URL": url, "REDIS_PREFIX": prefix}
    victim = await asyncio.to_thread(start_server, env=env, name="victim")
    survivor = await asyncio.to_thread(start_server, env=env, name="survivor")
    token = await database_sync_to_async(owned_datastore)("todo")
    backoff = Backoff(initial=0.05, maximum=0.5)
    clients = [
        DatastoreClient(server.ws_url, "todo", token=token, backoff=backoff)
        for server in (victim, victim, survivor)
    ]
    for client in clients:
        await client.start(timeout=10)

    writers = [asyncio.create_task(write(c, f"w{n}-")) for n, c in enumerate(clients)]
    # Kill the worker once it has acknowledged some of the load.
    await clients[0].wait_for(lambda: len(clients[0].acked) >= 10, timeout=30)
    acked_before_kill = {txid: serial for c in clients for txid, serial in c.acked.items()}
    await asyncio.to_thread(victim.kill, signal.SIGKILL)
    await asyncio.to_thread(victim.start)  # same port: its clients come back by themselves
    await asyncio.gather(*writers)

    for client in clients:
        await client.wait_acked(timeout=60)
    rows = await stored()
    # Every acknowledged transaction is stored, under the serial it was acknowledged with.
    for txid, serial in acked_before_kill.items():
        assert rows[txid] == serial
    for client in clients:
        for txid, serial in client.acked.items():
            assert serial is None or rows[txid] == serial
    # Each edit stored exactly once (ids are unique per datastore), serials without gaps.
    assert len(rows) == WRITERS * EDITS
    assert sorted(rows.values()) == list(range(1, WRITERS * EDITS + 1))
    everything = {f"w{n}-{i}" for n in range(WRITERS) for i in range(EDITS)}
    for client in clients:
        await client.wait_for(
            lambda client=client: set(client.doc.get("items", type=Map)) == everything, timeout=30
        )
    assert sum(c.connections for c in clients[:2]) >= 4  # the victim's clients reconnected
    for client in clients:
        await client.aclose()
