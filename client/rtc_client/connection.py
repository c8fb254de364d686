"""One WebSocket connection to a datastore, and the loop that keeps one open.

A ``Connection`` holds what belongs to one socket (the requests awaiting their replies, the ids
of the transactions sent on it, the serials being fetched) and is discarded when it closes.
``keep_connected`` reconnects with backoff until the client closes or the server refuses it for
good (a close code after which reconnecting cannot help).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote, urlencode

import anyio
from anyio.abc import TaskGroup
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake

from rtc_client.backoff import Backoff
from rtc_client.errors import ConnectionLost, RTCError
from rtc_client.wire.json_protocol import MessageType, make_message

logger = logging.getLogger(__name__)

PERMANENT_CLOSE_CODES = {
    4401: "unauthenticated",
    4403: "forbidden",
    4404: "unknown-datastore",
}
"""Close codes after which reconnecting cannot help: the client stops and reports the error."""

TRANSIENT_ERRORS = (OSError, InvalidHandshake, ConnectionClosed, ConnectionLost, TimeoutError)
"""Errors that end a connection attempt but not the client: it reconnects after a delay."""


def datastore_url(base_url: str, datastore: str, token: str | None = None) -> str:
    """The WebSocket URL of a datastore on a server whose base URL is ``ws://host:port``."""
    url = f"{base_url.rstrip('/')}/ws/datastores/{quote(datastore, safe='')}/"
    if token:
        url += "?" + urlencode({"token": token})
    return url


async def open_socket(
    url: str,
    timeout: float,
    additional_headers: dict[str, str] | None,
    max_message_bytes: int | None,
) -> ClientConnection:
    """The WebSocket handshake, under a deadline."""
    with anyio.fail_after(timeout):
        return await connect(
            url,
            additional_headers=additional_headers,
            max_size=max_message_bytes,
            open_timeout=None,
            proxy=None,
        )


async def close_socket(ws: ClientConnection) -> None:
    """Close politely for a while, then drop the transport."""
    with anyio.move_on_after(2, shield=True):
        await ws.close()
    if ws.transport is not None and not ws.transport.is_closing():
        ws.transport.abort()


def permanent_error(ws: ClientConnection, last_error: dict[str, Any] | None) -> RTCError | None:
    """The error of a close code after which reconnecting cannot help (None for another close),
    with the reason of the server's last error-reply, else of the close frame."""
    if ws.close_code not in PERMANENT_CLOSE_CODES:
        return None
    reason = (last_error or {}).get("reason", "")
    return RTCError(PERMANENT_CLOSE_CODES[ws.close_code], reason or ws.close_reason or "")


@dataclass
class Connection:
    """What belongs to one WebSocket connection; discarded when it closes."""

    ws: ClientConnection
    tg: TaskGroup
    msg_ids: Iterator[str]
    """The client's message ids (they go on across its connections)."""
    waiters: dict[str, asyncio.Future[dict[str, Any]]] = field(default_factory=dict)
    sent: set[str] = field(default_factory=set)
    """Ids of transactions sent on this connection (all pending ones are sent again on the next)."""
    deferred: set[str] = field(default_factory=set)
    """Ids refused for ``missing-dependencies`` that wait for our earlier ones to be answered."""
    fetching: set[int] = field(default_factory=set)
    synced: bool = False
    wake: anyio.Event = field(default_factory=anyio.Event)
    resync: anyio.Event = field(default_factory=anyio.Event)
    error: dict[str, Any] | None = None
    """The last error-reply that answered nothing: the reason the server gives before closing."""

    async def send(self, msg_type: str, content: dict[str, Any]) -> None:
        """Send a message whose answers, if any, are handled by type, not awaited."""
        await self.ws.send(make_message(next(self.msg_ids), msg_type, content))

    async def request(self, msg_type: str, content: dict[str, Any]) -> dict[str, Any]:
        """Send a request and return its reply's content (no deadline of its own).

        Raises RTCError for an error-reply, ConnectionLost if the connection closes first.
        """
        msg_id = next(self.msg_ids)
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self.waiters[msg_id] = future
        try:
            try:
                await self.ws.send(make_message(msg_id, msg_type, content))
            except ConnectionClosed as error:
                raise ConnectionLost("the connection closed") from error
            reply = await future
        finally:
            self.waiters.pop(msg_id, None)
        if reply["msgType"] == MessageType.ERROR_REPLY:
            raise RTCError.from_reply(reply["content"])
        return reply["content"]

    def answer(self, message: dict[str, Any]) -> bool:
        """Hand a reply to the request awaiting it; False if none does."""
        future = self.waiters.pop(message.get("parentId"), None)
        if future is None:
            return False
        if not future.done():
            future.set_result(message)
        return True

    def lose_waiters(self) -> None:
        """The socket closed: every request still awaiting a reply fails with ConnectionLost."""
        for future in self.waiters.values():
            if not future.done():
                future.set_exception(ConnectionLost("the connection closed"))
                future.exception()  # retrieved: a request nobody awaits any more must not warn
        self.waiters.clear()


async def keep_connected(
    connect_once: Callable[[], Awaitable[bool]],
    backoff: Backoff,
    closing: Callable[[], bool],
    name: str,
) -> RTCError | None:
    """Run ``connect_once`` (True: it got as far as a sync) again after a delay whenever it
    ends, until ``closing()``; returns the permanent error that stopped it, if one did."""
    delays = backoff.delays()
    while not closing():
        try:
            if await connect_once():
                delays = backoff.delays()
        except RTCError as error:
            if error.code in PERMANENT_CLOSE_CODES.values():
                return error
            logger.info("connection to %r failed: %s", name, error)
        except TRANSIENT_ERRORS as error:
            logger.info("connection to %r failed: %r", name, error)
        if closing():
            return None
        await anyio.sleep(next(delays))
    return None
