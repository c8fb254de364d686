"""Helpers for in-process WebSocket tests against the real ASGI application."""

from __future__ import annotations

import base64
import contextlib
import itertools
import json
from collections.abc import Iterator
from typing import Any

from channels.db import database_sync_to_async
from channels.testing import WebsocketCommunicator
from pycrdt import Doc
from rtc_client.wire import yjs_protocol

from relay.hub import on_committed
from relay.models import ApiToken
from rtc_project.asgi import application
from tables.signals import transactions_committed

_ids = itertools.count(1)


@database_sync_to_async
def token_for(user) -> str:
    return ApiToken.objects.create(user=user).key


@contextlib.contextmanager
def unannounced() -> Iterator[None]:
    """Commits made inside are not broadcast by this process's hub, as if made by a process
    whose broadcast got lost: clients get them only when a later delivery fills the gap."""
    transactions_committed.disconnect(on_committed, dispatch_uid="relay.hub")
    try:
        yield
    finally:
        transactions_committed.connect(on_committed, dispatch_uid="relay.hub")


async def connect(path: str, token: str | None = None, headers=None) -> WebsocketCommunicator:
    if token is not None:
        path = f"{path}{'&' if '?' in path else '?'}token={token}"
    communicator = WebsocketCommunicator(application, path, headers=headers or [])
    connected, _ = await communicator.connect(timeout=10)
    assert connected
    return communicator


class JsonPeer:
    """A JSON-protocol connection with its own pycrdt document."""

    def __init__(self, communicator: WebsocketCommunicator):
        self.ws = communicator
        self.doc = Doc()
        self.serial = 0
        self.pushed: list[dict[str, Any]] = []

    @classmethod
    async def open(cls, datastore: str, token: str | None, **kwargs) -> JsonPeer:
        return cls(await connect(f"/ws/datastores/{datastore}/", token, **kwargs))

    @classmethod
    async def joined(cls, datastore: str, token: str | None, **kwargs) -> JsonPeer:
        """Opened, and joined with a history request."""
        peer = await cls.open(datastore, token, **kwargs)
        await peer.join()
        return peer

    @classmethod
    async def joined_together(cls, datastore: str, *tokens: str) -> list[JsonPeer]:
        """One peer per token, all opened before any of them joins."""
        peers = [await cls.open(datastore, token) for token in tokens]
        for peer in peers:
            await peer.join()
        return peers

    async def send(self, msg_type: str, content: dict | None = None, **extra) -> str:
        msg_id = f"c-{next(_ids)}"
        message = {"msgId": msg_id, "msgType": msg_type, "content": content or {}, **extra}
        await self.ws.send_to(text_data=json.dumps(message))
        return msg_id

    async def receive(self, timeout: float = 10) -> dict[str, Any]:
        return json.loads(await self.ws.receive_from(timeout=timeout))

    async def reply_to(self, msg_id: str, timeout: float = 10) -> dict[str, Any]:
        """The reply with this parentId; other messages are kept in ``pushed``."""
        while True:
            message = await self.receive(timeout)
            if message.get("parentId") == msg_id:
                return message
            self.pushed.append(message)

    async def next_of(self, msg_type: str, timeout: float = 10) -> dict[str, Any]:
        for index, message in enumerate(self.pushed):
            if message["msgType"] == msg_type:
                return self.pushed.pop(index)
        while True:
            message = await self.receive(timeout)
            if message["msgType"] == msg_type:
                return message
            self.pushed.append(message)

    async def request(self, msg_type: str, content: dict | None = None) -> dict[str, Any]:
        return await self.reply_to(await self.send(msg_type, content))

    async def join(self) -> dict[str, Any]:
        reply = await self.request("history-request")
        content = reply["content"]
        if content["state"]:
            self.doc.apply_update(base64.b64decode(content["state"]))
        self.apply(content["transactions"])
        self.serial = content["serial"]
        return reply

    def apply(self, transactions: list[dict]) -> None:
        for tx in transactions:
            self.doc.apply_update(base64.b64decode(tx["patch"]))
            self.serial = max(self.serial, tx["serial"])

    def change(self, mutate) -> str:
        before = self.doc.get_state()
        with self.doc.transaction():
            mutate(self.doc)
        return base64.b64encode(self.doc.get_update(before)).decode()

    async def commit(self, mutate, txid: str | None = None) -> dict[str, Any]:
        txid = txid or f"tx-{next(_ids)}"
        msg_id = await self.send(
            "transaction-broadcast",
            {"transactions": [{"id": txid, "storeId": "peer", "patch": self.change(mutate)}]},
        )
        return await self.reply_to(msg_id)

    async def close(self) -> None:
        await self.ws.disconnect()


class YPeer:
    """A y-websocket connection speaking the protocol by hand, with its own document."""

    def __init__(self, communicator: WebsocketCommunicator):
        self.ws = communicator
        self.doc = Doc()
        self.denied: list[str] = []
        self.awareness: list[bytes] = []

    @classmethod
    async def open(cls, datastore: str, token: str | None, **kwargs) -> YPeer:
        return cls(await connect(f"/ws/yjs/{datastore}", token, **kwargs))

    @classmethod
    async def synced(cls, datastore: str, token: str | None, **kwargs) -> YPeer:
        """Opened, with the sync handshake done."""
        peer = await cls.open(datastore, token, **kwargs)
        await peer.handshake()
        return peer

    async def handshake(self) -> None:
        """Answer the server's step 1, send ours, apply its step 2."""
        await self.ws.send_to(bytes_data=yjs_protocol.sync_step1(self.doc.get_state()))
        while True:
            message = await self.next_message()
            if message.type is yjs_protocol.MessageType.SYNC:
                if message.sync_type is yjs_protocol.SyncType.STEP1:
                    diff = self.doc.get_update(message.payload)
                    await self.ws.send_to(bytes_data=yjs_protocol.sync_step2(diff))
                elif message.sync_type is yjs_protocol.SyncType.STEP2:
                    self.doc.apply_update(message.payload)
                    return

    async def next_message(self, timeout: float = 10) -> yjs_protocol.Message:
        message = yjs_protocol.parse(await self.ws.receive_from(timeout=timeout))
        if message.type is yjs_protocol.MessageType.AUTH:
            self.denied.append(message.reason)
        elif message.type is yjs_protocol.MessageType.AWARENESS:
            self.awareness.append(message.payload)
        elif message.type is yjs_protocol.MessageType.SYNC and message.sync_type is not (
            yjs_protocol.SyncType.STEP1
        ):
            self.doc.apply_update(message.payload)
        return message

    async def until(self, predicate, timeout: float = 10) -> None:
        while not predicate():
            await self.next_message(timeout)

    async def edit(self, mutate) -> None:
        before = self.doc.get_state()
        with self.doc.transaction():
            mutate(self.doc)
        await self.ws.send_to(bytes_data=yjs_protocol.sync_update(self.doc.get_update(before)))

    async def close(self) -> None:
        await self.ws.disconnect()
