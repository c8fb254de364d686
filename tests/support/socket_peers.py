"""Clients over a real socket (a live server's): a JSON-protocol one tracking serials and gaps,
for tests of several processes (fan-out across workers, outages of what they share), and a
y-websocket one that can stop reading (a reader that falls behind)."""

from __future__ import annotations

import asyncio
import base64
import itertools
import json
import re
import socket
from urllib.parse import urlsplit

from pycrdt import Doc, Map, Text
from rtc_client.wire import yjs_protocol
from websockets.asyncio.client import connect

from tests.support.waiting import until_set

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
        await until_set(
            self.changed,
            predicate,
            timeout,
            lambda: f"items={sorted(self.items())} serials={self.serials} acked={self.acked}",
        )

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


MARKER = re.compile(rb"#(\d{6})#")


class YjsPeer:
    """A y-websocket client over a real socket, speaking the protocol by hand (sync step 1/2,
    updates) on a pycrdt ``Doc`` with one Text ``t``. It notes the markers (``#000042#``) found
    in each update frame it receives, and can stop reading its socket (``pause``), so that the
    server sees a reader that does not keep up."""

    def __init__(self, ws):
        self.ws = ws
        self.doc = Doc()
        self.text = self.doc.get("t", type=Text)
        self.frames: list[set[int]] = []  # markers in each sync update frame received
        self.synced = False
        self.changed = asyncio.Event()
        self.reading = asyncio.Event()
        self.reading.set()

    @classmethod
    async def open(
        cls, server, datastore: str, token: str, *, receive_buffer: int | None = None
    ) -> YjsPeer:
        """Connect and sync; ``receive_buffer``: the socket's SO_RCVBUF, small for a reader
        meant to fall behind (the kernel then holds little of what it does not read)."""
        url = f"{server.yjs_url}/{datastore}?token={token}"
        options: dict = {"max_size": None}
        if receive_buffer is not None:
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, receive_buffer)
            sock.setblocking(False)
            host, port = urlsplit(server.url).hostname, urlsplit(server.url).port
            await asyncio.get_running_loop().sock_connect(sock, (host, port))
            options.update(sock=sock, max_queue=1)
        peer = cls(await connect(url, **options))
        peer.task = asyncio.create_task(peer._read())
        await peer.ws.send(yjs_protocol.sync_step1(peer.doc.get_state()))
        await peer.until(lambda: peer.synced)
        return peer

    async def _read(self) -> None:
        async for frame in self.ws:
            await self.reading.wait()
            message = yjs_protocol.parse(frame)
            if message.type is yjs_protocol.MessageType.SYNC:
                if message.sync_type is yjs_protocol.SyncType.STEP1:
                    diff = self.doc.get_update(message.payload)
                    await self.ws.send(yjs_protocol.sync_step2(diff))
                else:
                    self.doc.apply_update(message.payload)
                    if message.sync_type is yjs_protocol.SyncType.STEP2:
                        self.synced = True
                    else:
                        self.frames.append({int(m) for m in MARKER.findall(message.payload)})
            self.changed.set()

    def pause(self) -> None:
        """Stop reading: what arrives waits in the client's one-message queue, then in the
        kernel, then on the server."""
        self.reading.clear()

    def resume(self) -> None:
        self.reading.set()

    def received(self) -> set[int]:
        return set().union(*self.frames)

    async def insert(self, number: int, filler: str = "") -> None:
        """Append ``#<number>#`` (and ``filler``) to the Text, sent as one update."""
        before = self.doc.get_state()
        self.text += f"#{number:06d}#{filler}"
        await self.ws.send(yjs_protocol.sync_update(self.doc.get_update(before)))

    async def until(self, predicate, timeout: float = 30) -> None:
        await until_set(
            self.changed,
            predicate,
            timeout,
            lambda: f"{len(self.frames)} update frames, {len(str(self.text))} characters",
        )

    async def close(self) -> None:
        self.reading.set()
        await self.ws.close()
        self.task.cancel()
        await asyncio.gather(self.task, return_exceptions=True)
