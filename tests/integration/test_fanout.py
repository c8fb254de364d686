"""Fan-out across processes: two daphne workers sharing PostgreSQL and Redis."""

from __future__ import annotations

import asyncio
import base64
import itertools
import json

import pytest
from channels.db import database_sync_to_async
from pycrdt import Doc, Map, Text
from websockets.asyncio.client import connect

from tables import records, service
from tables.models import Transaction
from tests.support.factories import owned_datastore

pytest_plugins = ["tests.support.liveserver"]
pytestmark = pytest.mark.django_db(transaction=True)

_ids = itertools.count(1)


class Peer:
    """A JSON-protocol client over a real socket, tracking serials and gaps."""

    def __init__(self, ws):
        self.ws = ws
        self.doc = Doc()
        self.serials: list[int] = []
        self.acked: dict[str, int] = {}
        self.replies: dict[str, dict] = {}
        self.changed = asyncio.Event()

    @classmethod
    async def open(cls, server, datastore: str, token: str) -> Peer:
        ws = await connect(f"{server.datastore_ws_url(datastore)}?token={token}")
        peer = cls(ws)
        peer.task = asyncio.create_task(peer._read())
        reply = await peer.request("history-request")
        if reply["content"]["state"]:
            peer.doc.apply_update(base64.b64decode(reply["content"]["state"]))
        peer._apply(reply["content"]["transactions"])
        peer.serials = list(range(1, reply["content"]["serial"] + 1))
        return peer

    async def _read(self) -> None:
        async for frame in self.ws:
            message = json.loads(frame)
            if message["msgType"] == "transaction-broadcast":
                self._apply(message["content"]["transactions"])
            elif message["msgType"] == "transaction-ack":
                content = message["content"]
                for txid, serial in zip(content["transactionIds"], content["serials"], strict=True):
                    self.acked[txid] = serial
                    self.serials.append(serial)
            if "parentId" in message:
                self.replies[message["parentId"]] = message
            self.changed.set()

    def _apply(self, transactions: list[dict]) -> None:
        for tx in transactions:
            self.doc.apply_update(base64.b64decode(tx["patch"]))
            self.serials.append(tx["serial"])

    async def until(self, predicate, timeout: float = 20) -> None:
        try:
            async with asyncio.timeout(timeout):
                while not predicate():
                    self.changed.clear()
                    await self.changed.wait()
        except TimeoutError:
            raise AssertionError(
                f"not met in {timeout}s: items={sorted(self.items())} "
                f"serials={self.serials} acked={self.acked}"
            ) from None

    async def request(self, msg_type: str, content: dict | None = None) -> dict:
        msg_id = f"c-{next(_ids)}"
        await self.ws.send(
            json.dumps({"msgId": msg_id, "msgType": msg_type, "content": content or {}})
        )
        await self.until(lambda: msg_id in self.replies)
        return self.replies.pop(msg_id)

    async def add(self, key: str) -> str:
        before = self.doc.get_state()
        with self.doc.transaction():
            self.doc.get("items", type=Map)[key] = Map({"title": Text(key), "done": False})
        txid = f"{key}-tx"
        patch = base64.b64encode(self.doc.get_update(before)).decode()
        await self.ws.send(
            json.dumps(
                {
                    "msgId": f"c-{next(_ids)}",
                    "msgType": "transaction-broadcast",
                    "content": {"transactions": [{"id": txid, "patch": patch}]},
                }
            )
        )
        return txid

    def items(self) -> set[str]:
        return set(self.doc.get("items", type=Map))

    async def close(self) -> None:
        await self.ws.close()
        self.task.cancel()


@database_sync_to_async
def stored_serials() -> list[int]:
    return list(Transaction.objects.order_by("serial").values_list("serial", flat=True))


@pytest.fixture
async def opened():
    """Peers to close at teardown, whatever happened in the test."""
    peers: list[Peer] = []
    yield peers
    for peer in peers:
        await peer.close()


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
