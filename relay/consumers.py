"""The relay's WebSocket consumers: thin transport adapters over the tables service.

A consumer parses and authorizes, then calls the write path (``tables.commit.asubmit``) or a
read; fan-out is the hub's job. ``RelayConsumer`` holds what both protocols share: the connection
check (authentication, origin, role, datastore), size and rate limits, and membership in the
datastore's room.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Awaitable
from typing import Any

from channels.consumer import get_handler_name
from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncWebsocketConsumer

from relay.auth import origin_allowed
from relay.hub import Batch, Outlet, Room, get_hub
from relay.presence import Refusal
from relay.ratelimit import TokenBucket
from tables.commit import asubmit
from tables.conf import rtc_settings
from tables.models import Origin
from tables.outages import (
    DATABASE_ERRORS,
    DATABASE_UNAVAILABLE,
    DATABASE_UNAVAILABLE_DETAIL,
    one_line,
)
from tables.permissions import Access, access_to
from tables.service import Outcome, Proposal, Status

logger = logging.getLogger(__name__)

NOTHING: frozenset = frozenset()


class ConnectionRefusal(Exception):
    """The connection must be closed, with a close code and a reason the client can read."""

    def __init__(self, close_code: int, code: str, reason: str):
        super().__init__(reason)
        self.close_code = close_code
        self.code = code
        self.reason = reason


DATABASE_UNAVAILABLE_CLOSE = 4503


def require_user(user) -> None:
    """Refuse (4401) a connection without a user, unless anonymous users have a role."""
    if not (user is not None and user.is_authenticated) and not rtc_settings.ANONYMOUS_ROLE:
        raise ConnectionRefusal(4401, "unauthenticated", "log in, or pass an API token as ?token=")


def database_unavailable(scope: dict[str, Any], error: str) -> ConnectionRefusal:
    """The refusal (4503) of a connection the database cannot serve now, logged as one line:
    an outage, not a bug, so no traceback; clients reconnect."""
    logger.warning(
        "relay: %s closed with %s, the database is unavailable: %s",
        scope.get("path"),
        DATABASE_UNAVAILABLE_CLOSE,
        error,
    )
    return ConnectionRefusal(
        DATABASE_UNAVAILABLE_CLOSE, DATABASE_UNAVAILABLE, DATABASE_UNAVAILABLE_DETAIL
    )


def check_handshake(scope: dict[str, Any]) -> None:
    """A database the authentication middleware could not reach, what it refused, and a
    session cookie sent from another site's page: ``ConnectionRefusal`` (every WebSocket route
    checks this first)."""
    if scope.get("rtc_database_error"):
        raise database_unavailable(scope, scope["rtc_database_error"])
    refusal = scope.get("rtc_auth_refusal")
    if refusal:
        raise ConnectionRefusal(*refusal)
    if scope.get("rtc_auth_error"):
        raise ConnectionRefusal(4401, "unauthenticated", scope["rtc_auth_error"])
    if scope.get("rtc_auth") == "session" and not origin_allowed(scope):
        raise ConnectionRefusal(
            4403,
            "forbidden",
            "a session cookie from another site's page is not accepted; use an API token",
        )


@database_sync_to_async
def resolve_access(name: str, user) -> Access:
    require_user(user)
    access = access_to(user, name)
    if access is None:
        raise ConnectionRefusal(4404, "unknown-datastore", f"unknown datastore {name!r}")
    if not access.can_read:
        raise ConnectionRefusal(4403, "forbidden", f"no access to datastore {name!r}")
    return access


class RelayConsumer(AsyncWebsocketConsumer):
    """What both protocols share. Subclasses implement ``joined``, ``handle``, ``refuse`` and
    the hub's ``Member`` methods."""

    room: Room | None = None
    outlet: Outlet | None = None
    """Set by a protocol whose broadcasts the room writes straight to the socket."""
    # Shared empty defaults, replaced by a set of the connection's own while it has writes or
    # tasks in flight, and put back once that set is empty again (a joining client's empty sync
    # step 2 is a write): two empty sets are ~430 bytes that every idle connection would hold.
    own_txids: set[str] = NOTHING  # type: ignore[assignment]
    tasks: set[asyncio.Task] = NOTHING  # type: ignore[assignment]
    # No channel of its own: fan-out is the hub's (one channel per worker), and channels would
    # otherwise subscribe one per connection, failing every handshake while Redis is down.
    channel_layer_alias = None

    async def dispatch(self, message: dict[str, Any]) -> None:
        """Channels' dispatch first hops to the database thread to close old connections, for
        every frame; that thread is the one committing, so each frame would wait for a commit
        and group commit could never batch. Our database work goes through
        ``database_sync_to_async``, which closes old connections itself."""
        handler = getattr(self, get_handler_name(message), None)
        if handler is None:
            raise ValueError(f"no handler for message type {message['type']}")
        await handler(message)

    async def connect(self) -> None:
        # Accept first: a refused handshake gives the browser no reason, a close code does.
        await self.accept()
        self.member_id = uuid.uuid4().hex
        self.serial: int | None = None
        self.limiter = TokenBucket(rtc_settings.RATE_LIMIT, rtc_settings.RATE_BURST)
        try:
            self.access = await self.check_connection()
            self.hub = get_hub()
            self.room = await self.hub.room_for(self.access.datastore)
            self.authorize = self.access.authorizer()
            self.outlet = self.make_outlet()
            await self.joined()
        except ConnectionRefusal as refusal:
            await self.refuse(refusal)
        except DATABASE_ERRORS as error:
            await self.refuse(database_unavailable(self.scope, one_line(error)))

    async def check_connection(self) -> Access:
        check_handshake(self.scope)
        return await self.datastore_access(self.scope.get("user"))

    async def datastore_access(self, user) -> Access:
        """The user's access to the datastore this connection is for: by default the one the
        URL names. A route that names its datastore another way (a document id) overrides
        this, and raises ``ConnectionRefusal`` like ``resolve_access``."""
        return await resolve_access(self.scope["url_route"]["kwargs"]["datastore"], user)

    async def disconnect(self, code: int) -> None:
        for task in list(self.tasks):
            task.cancel()
        if self.room is not None:
            room, self.room = self.room, None
            await self.hub.leave(room, self)

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        if self.room is None:
            return  # refused and closing
        limit = rtc_settings.MAX_MESSAGE_BYTES
        size = len(bytes_data) if bytes_data is not None else len((text_data or "").encode())
        if size > limit:
            await self.refuse(
                ConnectionRefusal(
                    1009, "too-large", f"message of {size} bytes exceeds {limit} bytes"
                )
            )
            return
        if not self.limiter.allow():
            if self.limiter.refused > max(rtc_settings.RATE_BURST, 1):
                await self.answer_pending()
                await self.refuse(
                    ConnectionRefusal(4429, "rate-limited", "too many messages; slow down")
                )
            else:
                await self.rate_limited()
            return
        try:
            await self.handle(text_data, bytes_data)
        except DATABASE_ERRORS as error:
            logger.warning(
                "relay: a message on %s failed, the database is unavailable: %s",
                self.access.datastore,
                one_line(error),
            )
            await self.report_error(DATABASE_UNAVAILABLE, DATABASE_UNAVAILABLE_DETAIL)
        except Exception:
            logger.exception("relay: handling a message on %s failed", self.access.datastore)
            await self.report_error("server-error", "unexpected server error (logged)")

    # --- helpers for subclasses ---------------------------------------------------------------

    def spawn(self, coroutine: Awaitable[Any]) -> None:
        """Run work that waits for a commit without holding up the next message."""
        task = asyncio.ensure_future(coroutine)
        if not self.tasks:
            self.tasks = set()
        self.tasks.add(task)
        task.add_done_callback(self._task_done)

    async def answer_pending(self, timeout: float = 5.0) -> None:
        """Wait (a while) for the answers to writes already accepted, before closing: a client
        told what was stored does not send it again on its next connection, and so makes
        progress even if every connection ends in a flood."""
        if self.tasks:
            await asyncio.wait(list(self.tasks), timeout=timeout)

    def _task_done(self, task: asyncio.Task) -> None:
        self.tasks.discard(task)
        if not self.tasks:
            self.tasks = NOTHING
        if not task.cancelled() and task.exception() is not None:
            logger.error("relay task failed", exc_info=task.exception())

    def submit(self, update: bytes, txid: str, store_id: str = "") -> asyncio.Future[Outcome]:
        """Queue an update in arrival order; resolves after commit."""
        if not self.own_txids:
            self.own_txids = set()
        self.own_txids.add(txid)
        proposal = Proposal(
            update,
            txid=txid,
            store_id=store_id,
            author_id=self.access.user_id,
            origin=Origin.CLIENT,
        )
        return asubmit(self.access.datastore, proposal, self.authorize)

    def settle(self, outcome: Outcome) -> None:
        if outcome.status is not Status.STORED and self.own_txids:
            self.forget_txid(outcome.txid)

    def forget_txid(self, txid: str) -> None:
        self.own_txids.discard(txid)
        if not self.own_txids:
            self.own_txids = NOTHING

    def unseen(self, batch: Batch) -> list[int]:
        """Indices of a batch's transactions this connection has not seen nor sent."""
        indices = []
        for index, tx in enumerate(batch.transactions):
            if self.serial is not None and tx.serial <= self.serial:
                continue
            if tx.txid in self.own_txids:
                self.forget_txid(tx.txid)
                continue
            indices.append(index)
        self.serial = max(self.serial or 0, batch.transactions[-1].serial)
        return indices

    async def presence_from_client(self, update: bytes, msg_id: str | None = None) -> None:
        """Record what this connection may announce (its own client ids, within the caps),
        relay that to this worker's others, publish it to the other workers; say what was
        dropped (raises yjs_protocol.ProtocolError)."""
        recorded = self.room.record_presence(
            update,
            self.member_id,
            max_clients=rtc_settings.MAX_PRESENCE_CLIENTS,
            max_bytes=rtc_settings.MAX_PRESENCE_BYTES,
        )
        if recorded.update is not None:
            await self.room.relay_presence(recorded.update, self)
            await self.hub.publish_presence(self.room, recorded.update, self.member_id)
        for refusal in recorded.refusals:
            await self.presence_refused(refusal, msg_id)

    async def presence_refused(self, refusal: Refusal, msg_id: str | None) -> None:
        """Awareness entries were dropped: the protocol's way of saying so, the connection
        kept. By default a log line (for a client that cannot be told)."""
        logger.info(
            "presence on %s dropped (%s): %s",
            self.access.datastore.name,
            refusal.code,
            refusal.reason,
        )

    def make_outlet(self) -> Outlet | None:
        """The connection's ``Outlet``, for a protocol whose broadcast frames are the same for
        every reader; by default none (``send_transactions`` sends them)."""
        return None

    # --- to implement -----------------------------------------------------------------------

    async def joined(self) -> None:
        raise NotImplementedError

    async def handle(self, text_data: str | None, bytes_data: bytes | None) -> None:
        raise NotImplementedError

    async def refuse(self, refusal: ConnectionRefusal) -> None:
        raise NotImplementedError

    async def rate_limited(self) -> None:
        raise NotImplementedError

    async def report_error(self, code: str, reason: str) -> None:
        raise NotImplementedError
