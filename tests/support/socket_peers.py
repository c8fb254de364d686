"""A JSON-protocol client over a real socket (a live server's), tracking serials and gaps: for
tests of several processes (fan-out across workers, outages of what they share)."""

from __future__ import annotations

import asyncio
import base64
import itertools
import json

from pycrdt import Doc, Map, Text
from websockets.asyncio.client import connect

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
