"""Fan-out: one channel-layer message per worker for each commit, then local delivery.

Each worker process has one ``Hub`` (per event loop) with one channel-layer channel. A ``Room``
holds the local connections of one datastore; the hub joins the datastore's group once for the
room, however many connections it has. A commit is delivered to local rooms directly and
published once to the group for the other workers.

Rooms deliver transactions in serial order without gaps: a batch that does not follow the last
delivered serial is completed from the database first, so a worker that missed a broadcast (or
received them out of order) still gives every connection the whole story.
"""

from __future__ import annotations

import asyncio
import contextvars
import itertools
import logging
import threading
import time
import uuid
import weakref
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from functools import cached_property
from typing import Any, Protocol

from asgiref.sync import async_to_sync
from channels.db import database_sync_to_async
from channels.layers import InMemoryChannelLayer, get_channel_layer
from pycrdt import merge_updates
from rtc_client.wire import json_protocol, yjs_protocol

from relay.daphne_send import FrameSink, data_frame
from relay.groups import datastore_group
from relay.presence import Presence, Recorded
from tables import history
from tables.conf import rtc_settings
from tables.history import StoredTransaction
from tables.models import Datastore
from tables.service import Committed

logger = logging.getLogger(__name__)

GROUP_REFRESH = 3600.0  # channel layers expire group memberships after a day
HEARTBEAT = 2.0  # seconds between round trips through the channel layer
PING_TIMEOUT = 5.0  # seconds a heartbeat waits for its own message to come back
RECHECK = 0.05  # seconds between looks at the sockets of connections that fell behind
WINDOW = 1024  # recent transactions a room keeps while a connection is behind (and at most
# RTC_CATCH_UP_BYTES of them); one further behind is served from the database


def transactions_json(transactions: list[StoredTransaction]) -> list[dict[str, Any]]:
    """Stored transactions as the JSON protocol's messages carry them."""
    return [
        json_protocol.transaction_json(tx.txid, tx.store_id, tx.update, tx.serial)
        for tx in transactions
    ]


class Batch:
    """Transactions delivered together; encodings are computed once and shared."""

    def __init__(self, transactions: list[StoredTransaction]):
        self.transactions = transactions
        self.first_serial = transactions[0].serial
        self.last_serial = transactions[-1].serial
        self._y_frames: dict[tuple[int, ...], bytes] = {}
        self._ws_frames: dict[tuple[int, ...], bytes] = {}

    @cached_property
    def json_transactions(self) -> list[dict[str, Any]]:
        return transactions_json(self.transactions)

    @cached_property
    def json_frame(self) -> str:
        """The whole batch as one JSON-protocol message, encoded once for every connection."""
        return json_protocol.make_message(
            f"s-b{self.transactions[-1].serial}",
            json_protocol.MessageType.TRANSACTION_BROADCAST,
            json_protocol.transaction_broadcast(self.json_transactions),
        )

    def y_frame(self, indices: Sequence[int]) -> bytes:
        """One y-websocket sync-update frame for these transactions, built once per distinct
        selection (most connections get all of a batch, its senders all but their own).

        Several updates become one merged update: y-websocket applies an update message with
        ``applyUpdate``, and a merge of updates applies as the updates in turn would, so a
        connection gets one frame per batch, not one per transaction."""
        key = tuple(indices)
        frame = self._y_frames.get(key)
        if frame is None:
            updates = [self.transactions[index].update for index in key]
            update = updates[0] if len(updates) == 1 else merge_updates(*updates)
            frame = self._y_frames[key] = yjs_protocol.sync_update(update)
        return frame

    @cached_property
    def everything(self) -> tuple[int, ...]:
        return tuple(range(len(self.transactions)))

    def ws_frame(self, indices: Sequence[int]) -> bytes:
        """``y_frame`` as a whole WebSocket frame, header included: what a ``FrameSink``
        writes, built once per batch however many connections get it."""
        key = tuple(indices)
        frame = self._ws_frames.get(key)
        if frame is None:
            frame = self._ws_frames[key] = data_frame(self.y_frame(key), True)
        return frame


class Outlet:
    """How a room reaches one connection without ASGI messages (y-websocket connections served
    by daphne): its ``FrameSink``, and where it stands when it fell behind.

    A connection whose socket does not take what it is sent is *behind*: the room stops writing
    to it and keeps only ``behind``, the serial it had; once its socket has drained, it gets one
    merged update for everything it missed (Yjs updates merge, and applying a merge is applying
    each in turn). Its memory and the server's work for it stay bounded however slow it is:
    a serial, not a queue of frames.
    """

    __slots__ = ("behind", "fetching", "sink")

    def __init__(self, sink: FrameSink):
        self.sink = sink
        self.behind: int | None = None
        self.fetching = False


class Member(Protocol):
    """A local connection, as a room sees it."""

    member_id: str
    serial: int | None
    outlet: Outlet | None
    """Set: the room writes the member's transactions itself (``send_transactions`` unused)."""
    own_txids: set[str]

    def unseen(self, batch: Batch) -> list[int]: ...

    async def send_transactions(self, batch: Batch) -> None: ...

    async def send_awareness(self, update: bytes) -> None: ...


class Room:
    def __init__(self, hub: Hub, datastore: Datastore, serial: int):
        self.hub = hub
        self.datastore = datastore
        self.group = datastore_group(datastore.pk)
        self.serial = serial
        self.members: dict[str, Member] = {}
        self.lock = asyncio.Lock()
        self.presence = Presence()
        self.reported: dict[str, int] = {}
        self.recent: deque[StoredTransaction] = deque()  # kept while a member is behind
        self.recent_bytes = 0
        self.behind: dict[str, Member] = {}
        self._missed: dict[int, bytes] = {}  # merged frames from a serial to ``self.serial``
        self._recheck: asyncio.TimerHandle | None = None

    # --- membership -------------------------------------------------------------------------

    async def admit(self, member: Member, sync: Callable[[], Awaitable[int]]) -> None:
        """Send a member its (starting or fresh) state, ``sync`` returning its serial, and make
        it a member, atomically with respect to deliveries: it misses nothing."""
        async with self.lock:
            member.serial = await sync()
            self.members[member.member_id] = member
            # Until it reports, a member counts as holding what it joined with.
            self.reported.setdefault(member.member_id, member.serial)

    def leave(self, member: Member) -> bytes | None:
        """Forget a member; returns the awareness update removing every client it announced
        (None: it announced none), for the others."""
        self.members.pop(member.member_id, None)
        self.reported.pop(member.member_id, None)
        self.behind.pop(member.member_id, None)
        return self.departures(member.member_id)

    def close(self) -> None:
        """The room is dropped: stop looking at sockets."""
        if self._recheck is not None:
            self._recheck.cancel()
            self._recheck = None
        self.behind.clear()
        self.recent.clear()

    # --- transactions -----------------------------------------------------------------------

    async def deliver(self, transactions: list[StoredTransaction]) -> None:
        async with self.lock:
            fresh = sorted(
                (tx for tx in transactions if tx.serial > self.serial), key=lambda tx: tx.serial
            )
            if not fresh:
                return
            expected = list(range(self.serial + 1, fresh[-1].serial + 1))
            if [tx.serial for tx in fresh] != expected:
                logger.debug(
                    "%s: filling the gap %s..%s from the database",
                    self.datastore.name,
                    self.serial + 1,
                    fresh[-1].serial,
                )
                fresh = await database_sync_to_async(history.transactions_between)(
                    self.datastore.pk, self.serial, fresh[-1].serial
                )
                if not fresh:
                    return
            previous, self.serial = self.serial, fresh[-1].serial
            self._remember(fresh)
            batch = Batch(fresh)
            for member in list(self.members.values()):
                try:
                    outlet = getattr(member, "outlet", None)
                    if outlet is not None:
                        self._write(member, outlet, batch, previous)
                    else:
                        await member.send_transactions(batch)
                except Exception as error:  # typically a connection closing meanwhile
                    logger.info("delivering to %s failed: %r", member.member_id, error)

    # --- members written to directly (Outlet) ---------------------------------------------------

    def _remember(self, fresh: list[StoredTransaction]) -> None:
        """Keep recent transactions while someone is behind (bounded), else just this batch."""
        self._missed.clear()
        if not self.behind:
            self.recent.clear()
            self.recent_bytes = 0
        self.recent.extend(fresh)
        self.recent_bytes += sum(len(tx.update) for tx in fresh)
        limit = rtc_settings.CATCH_UP_BYTES
        while len(self.recent) > WINDOW or self.recent_bytes > limit:
            self.recent_bytes -= len(self.recent.popleft().update)

    def _write(self, member: Member, outlet: Outlet, batch: Batch, previous: int) -> None:
        """One batch to one member: the batch's frame, built once, straight to its socket; or,
        if the socket has not taken what came before, nothing but a note of where it stands."""
        if outlet.behind is not None:
            return  # the recheck sends it everything at once
        serial = member.serial
        if not member.own_txids and (serial is None or serial < batch.first_serial):
            member.serial = batch.last_serial
            indices: Sequence[int] = batch.everything
        else:
            indices = member.unseen(batch)
            if not indices:
                return
        if outlet.sink.try_write(batch.ws_frame(indices)):
            return
        outlet.behind = previous if serial is None else max(previous, serial)
        member.serial = outlet.behind
        self.behind[member.member_id] = member
        self._schedule_recheck()

    def _schedule_recheck(self) -> None:
        if self._recheck is None and self.behind:
            self._recheck = self.hub.loop.call_later(RECHECK, self._send_missed)

    def _send_missed(self) -> None:
        """Each member that is behind and whose socket has drained gets one merged update."""
        self._recheck = None
        for member_id, member in list(self.behind.items()):
            outlet = getattr(member, "outlet", None)
            if self.members.get(member_id) is not member or outlet is None:
                self.behind.pop(member_id, None)
                continue
            try:
                self._send_missed_to(member, outlet)
            except Exception as error:  # typically a connection closing meanwhile
                logger.info("catching up %s failed: %r", member_id, error)
        self._schedule_recheck()

    def _send_missed_to(self, member: Member, outlet: Outlet) -> None:
        since = outlet.behind
        if outlet.fetching or since is None or not outlet.sink.ready():
            return
        if since >= self.serial:
            self._caught_up(member, outlet, since)
            return
        frame = self._missed_frame(since)
        if frame is None:  # further behind than the window: from the database
            outlet.fetching = True
            self.hub._spawn(self._send_missed_from_database(member, outlet, since))
            return
        outlet.sink.write(frame)
        self._caught_up(member, outlet, self.serial)

    def _caught_up(self, member: Member, outlet: Outlet, serial: int) -> None:
        if member.own_txids:  # its own were in the merge: no longer to be skipped
            for tx in self.recent:
                if tx.serial > (outlet.behind or 0):
                    member.own_txids.discard(tx.txid)
        outlet.behind = None
        member.serial = serial
        self.behind.pop(member.member_id, None)

    def _missed_frame(self, since: int) -> bytes | None:
        """One frame with the merge of the transactions after ``since`` (built once per
        ``since`` and serial); None if the window does not reach back that far."""
        frame = self._missed.get(since)
        if frame is None:
            if not self.recent or self.recent[0].serial > since + 1:
                return None
            updates = [tx.update for tx in self.recent if tx.serial > since]
            update = updates[0] if len(updates) == 1 else merge_updates(*updates)
            frame = self._missed[since] = data_frame(yjs_protocol.sync_update(update), True)
        return frame

    async def _send_missed_from_database(self, member: Member, outlet: Outlet, since: int) -> None:
        upto = self.serial
        try:
            missed = await database_sync_to_async(history.transactions_between)(
                self.datastore.pk, since, upto
            )
            if self.members.get(member.member_id) is member and missed:
                updates = [tx.update for tx in missed]
                update = updates[0] if len(updates) == 1 else merge_updates(*updates)
                outlet.sink.write(data_frame(yjs_protocol.sync_update(update), True))
                outlet.behind = member.serial = upto
        finally:
            outlet.fetching = False
            self._schedule_recheck()

    async def catch_up(self) -> None:
        """Deliver what was committed since the last delivery, from the database: what other
        workers announced while the channel layer was down never arrives."""
        last = await database_sync_to_async(history.last_serial)(self.datastore.pk)
        if last > self.serial:
            await self.deliver(
                await database_sync_to_async(history.transactions_between)(
                    self.datastore.pk, self.serial, last
                )
            )

    # --- presence ---------------------------------------------------------------------------

    def record_presence(
        self, update: bytes, owner: str, *, max_clients: int = 0, max_bytes: int = 0
    ) -> Recorded:
        """Remember the states of an awareness update that ``owner`` (a member id, or
        ``<worker>:<member>`` for another worker's connection) may set; see ``relay.presence``
        (raises yjs_protocol.ProtocolError)."""
        return self.presence.record(update, owner, max_clients=max_clients, max_bytes=max_bytes)

    async def relay_presence(self, update: bytes, sender: Member | None) -> None:
        for member in list(self.members.values()):
            if member is not sender:
                try:
                    await member.send_awareness(update)
                except Exception as error:
                    logger.info("awareness to %s failed: %r", member.member_id, error)

    def presence_snapshot(self) -> bytes | None:
        return self.presence.snapshot()

    def departures(self, owner: str) -> bytes | None:
        """An awareness update removing every client this owner announced; they are its no
        more."""
        return self.presence.departures(owner)

    # --- stable serial ----------------------------------------------------------------------

    def report_serial(self, member_id: str, serial: int) -> int:
        self.reported[member_id] = max(serial, self.reported.get(member_id, 0))
        return self.stable_serial()

    def stable_serial(self) -> int:
        """The lowest serial every member has reported (or joined with)."""
        return min(self.reported.values(), default=self.serial)


class _RoomLock:
    """``Hub.room_for``'s lock of one datastore, and how many are in or waiting for it."""

    __slots__ = ("lock", "users")

    def __init__(self) -> None:
        self.lock = asyncio.Lock()
        self.users = 0


class Hub:
    """This worker's rooms and its one channel-layer subscription.

    The channel layer (Redis) only carries fan-out between workers: while it cannot be reached,
    connections still open and work on this worker (local delivery needs no layer), the outage
    is logged once as a warning, and a heartbeat (a message to the hub's own channel every
    ``HEARTBEAT`` seconds) notices when it is back: rooms joined meanwhile subscribe, and every
    room catches up from the database on what other workers committed while it heard nothing.
    """

    def __init__(self, loop: asyncio.AbstractEventLoop):
        self.loop = loop
        self.worker_id = uuid.uuid4().hex
        self.rooms: dict[int, Room] = {}
        self.layer = get_channel_layer()
        self.channel: str | None = None
        self.layer_up = True
        self._unsubscribed: set[int] = set()  # rooms whose group_add has not succeeded yet
        self._pings = itertools.count(1)
        self._pong: tuple[int, asyncio.Event] | None = None
        self._room_locks: dict[int, _RoomLock] = {}
        self._tasks: set[asyncio.Task] = set()
        self._watching = False

    @property
    def crosses_processes(self) -> bool:
        return self.layer is not None and not isinstance(self.layer, InMemoryChannelLayer)

    async def _start(self) -> None:
        if not self.crosses_processes:
            return
        if not self._watching:
            self._watching = True
            self._spawn(self._watch())
        if self.channel is None and self.layer_up:
            await self._open_channel()

    async def _open_channel(self) -> bool:
        try:
            self.channel = await self.layer.new_channel("rtc.worker.")
        except Exception as error:
            self._layer_failed(error)
            return False
        self._spawn(self._receive_loop(self.channel))
        return True

    def _spawn(self, coroutine: Awaitable[Any]) -> None:
        """Run ``coroutine`` as the hub's task, in a context of its own: it outlives whoever
        started it, and a REST request's context names that request's thread, which asgiref
        refuses to run anything on once the request is over."""
        task = self.loop.create_task(coroutine, context=contextvars.Context())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def close(self) -> None:
        for room in self.rooms.values():
            room.close()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def room_for(self, datastore: Datastore) -> Room:
        # One room per datastore however many connections open it at once; the lock is kept
        # only while someone is in or waiting here, not for every datastore ever opened.
        lock = self._room_locks.get(datastore.pk)
        if lock is None:
            lock = self._room_locks[datastore.pk] = _RoomLock()
        lock.users += 1
        try:
            async with lock.lock:
                return await self._room_for(datastore)
        finally:
            lock.users -= 1
            if not lock.users and self._room_locks.get(datastore.pk) is lock:
                del self._room_locks[datastore.pk]

    async def _room_for(self, datastore: Datastore) -> Room:
        room = self.rooms.get(datastore.pk)
        if room is None:
            await self._start()
            # Subscribe before reading the serial: nothing committed after it is missed.
            # Without a layer now, the heartbeat subscribes it later and catches it up.
            if self.crosses_processes:
                await self._subscribe(datastore.pk)
            serial = await database_sync_to_async(history.last_serial)(datastore.pk)
            room = Room(self, datastore, serial)
            self.rooms[datastore.pk] = room
        return room

    async def _subscribe(self, datastore_pk: int) -> None:
        if self.channel is not None and self.layer_up:
            try:
                await self.layer.group_add(datastore_group(datastore_pk), self.channel)
                self._unsubscribed.discard(datastore_pk)
                return
            except Exception as error:
                self._layer_failed(error)
        self._unsubscribed.add(datastore_pk)

    async def leave(self, room: Room, member: Member) -> None:
        """Take a member out of its room, tell the others it left, and drop the room once empty."""
        departures = room.leave(member)
        if departures:
            await room.relay_presence(departures, None)
            await self.publish_presence(room, departures, member.member_id, left=True)
        if not room.members and self.rooms.get(room.datastore.pk) is room:
            room.close()
            del self.rooms[room.datastore.pk]
            self._unsubscribed.discard(room.datastore.pk)
            if self.channel is not None and self.layer_up:
                try:
                    await self.layer.group_discard(room.group, self.channel)
                except Exception as error:
                    self._layer_failed(error)

    # --- the channel layer's health -----------------------------------------------------------

    def _layer_failed(self, error: BaseException) -> None:
        """Note an outage of the channel layer; logged once, until the heartbeat sees it back."""
        if self.layer_up:
            self.layer_up = False
            logger.warning(
                "relay hub: the channel layer cannot be reached (%s); connections on this "
                "worker keep working, fan-out to other workers resumes when it is back",
                " ".join(str(error).split()) or type(error).__name__,
            )

    async def _watch(self) -> None:
        """The heartbeat: every ``HEARTBEAT`` seconds, a round trip through the layer (and,
        while it is down, another attempt to subscribe what could not be)."""
        refreshed = time.monotonic()
        while True:
            await asyncio.sleep(HEARTBEAT)
            if await self._heartbeat() and not self.layer_up:
                self.layer_up = True
                logger.info("relay hub: the channel layer is back; fan-out resumed")
                for room in list(self.rooms.values()):
                    await room.catch_up()
            if self.layer_up and time.monotonic() - refreshed > GROUP_REFRESH:
                refreshed = time.monotonic()
                for pk in list(self.rooms):
                    self._unsubscribed.add(pk)

    async def _heartbeat(self) -> bool:
        """Whether the layer answers: subscriptions owed are made, and a ping sent to this
        hub's own channel comes back."""
        try:
            if self.channel is None and not await self._open_channel():
                return False
            for pk in list(self._unsubscribed):
                if pk in self.rooms:
                    await self.layer.group_add(datastore_group(pk), self.channel)
                self._unsubscribed.discard(pk)
            ping = next(self._pings)
            pong = asyncio.Event()
            self._pong = (ping, pong)
            await self.layer.send(
                self.channel, {"type": "rtc.ping", "worker": self.worker_id, "ping": ping}
            )
            await asyncio.wait_for(pong.wait(), PING_TIMEOUT)
            return True
        except asyncio.CancelledError:
            raise
        except Exception as error:  # a timeout too: the layer lost the message
            self._layer_failed(error)
            return False

    # --- publishing -------------------------------------------------------------------------

    async def _group_send(self, group: str, message: dict[str, Any]) -> None:
        if not self.layer_up:
            return  # lost anyway; rooms catch up from the database once the layer is back
        try:
            await self.layer.group_send(group, message)
        except Exception as error:
            self._layer_failed(error)

    async def publish_presence(
        self, room: Room, update: bytes, member_id: str, *, left: bool = False
    ) -> None:
        """Tell the other workers what one of this worker's connections announced (only what
        was accepted here), or, ``left``, that it is gone with all it announced."""
        if self.channel is not None:
            await self._group_send(
                room.group,
                {
                    "type": "rtc.awareness",
                    "worker": self.worker_id,
                    "datastore": room.datastore.pk,
                    "member": member_id,
                    "left": left,
                    "update": update,
                },
            )

    async def _publish_transactions(
        self, datastore_pk: int, transactions: list[StoredTransaction]
    ) -> None:
        room = self.rooms.get(datastore_pk)
        if room is not None:
            await room.deliver(transactions)
        if self.crosses_processes:
            await self._group_send(
                datastore_group(datastore_pk),
                _transactions_message(self.worker_id, datastore_pk, transactions),
            )

    # --- receiving --------------------------------------------------------------------------

    async def _receive_loop(self, channel: str) -> None:
        while True:
            try:
                message = await self.layer.receive(channel)
            except asyncio.CancelledError:
                raise
            except Exception as error:  # a layer that polls Redis (not pub/sub) lost it
                self._layer_failed(error)
                await asyncio.sleep(HEARTBEAT)
                continue
            try:
                await self._dispatch(message)
            except Exception:
                logger.exception("relay hub: message from the channel layer failed")

    async def _dispatch(self, message: dict[str, Any]) -> None:
        if message.get("type") == "rtc.ping":
            if message.get("worker") == self.worker_id and self._pong is not None:
                ping, pong = self._pong
                if message.get("ping") == ping:
                    pong.set()
            return
        if message.get("worker") == self.worker_id:
            return
        room = self.rooms.get(message.get("datastore"))
        if room is None:
            return
        if message.get("type") == "rtc.transactions":
            await room.deliver([StoredTransaction(*fields) for fields in message["transactions"]])
        elif message.get("type") == "rtc.awareness":
            await self._remote_presence(room, message)

    async def _remote_presence(self, room: Room, message: dict[str, Any]) -> None:
        """Another worker's connection announced (or left): the same ownership rule as for
        this worker's own, the owner named by worker and member. What this worker knows is what
        it was told, in order: an id it saw owned first by someone else stays theirs here."""
        owner = f"{message.get('worker')}:{message.get('member', '')}"
        if message.get("left"):
            update = room.departures(owner)
        else:
            recorded = room.record_presence(message["update"], owner)
            update = recorded.update
            for refusal in recorded.refusals:
                logger.info("presence from %s dropped: %s", owner, refusal.reason)
        if update is not None:
            await room.relay_presence(update, None)


def _transactions_message(
    worker: str, datastore_pk: int, transactions: list[StoredTransaction]
) -> dict:
    return {
        "type": "rtc.transactions",
        "worker": worker,
        "datastore": datastore_pk,
        "transactions": [[tx.serial, tx.txid, tx.store_id, tx.update] for tx in transactions],
    }


# --- one hub per event loop ------------------------------------------------------------------

_hubs: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, Hub] = weakref.WeakKeyDictionary()
_hubs_lock = threading.Lock()
_announcing_fails = False  # logged once per outage of the channel layer, not once per commit


def get_hub() -> Hub:
    """The hub of the running event loop (a worker has one loop; tests get one per test)."""
    loop = asyncio.get_running_loop()
    with _hubs_lock:
        hub = _hubs.get(loop)
        if hub is None:
            hub = _hubs[loop] = Hub(loop)
        return hub


def on_committed(
    sender: Any, datastore: Datastore, transactions: list[Committed], **kwargs
) -> None:
    """``transactions_committed`` receiver: runs after commit, in whichever thread committed."""
    global _announcing_fails
    txs = [StoredTransaction(c.serial, c.txid, c.store_id, c.update) for c in transactions]
    with _hubs_lock:
        hubs = [hub for hub in _hubs.values() if not hub.loop.is_closed()]
    for hub in hubs:
        # A fresh context: the committing thread's would make the delivery's own database
        # calls wait for that thread (asgiref's thread-sensitive executor), i.e. forever.
        hub.loop.call_soon_threadsafe(
            lambda hub=hub: hub._spawn(hub._publish_transactions(datastore.pk, txs)),
            context=contextvars.Context(),
        )
    if not hubs:
        # A process without WebSocket connections (a command, a separate REST worker): tell
        # the workers that have them.
        layer = get_channel_layer()
        if layer is not None and not isinstance(layer, InMemoryChannelLayer):
            try:
                async_to_sync(layer.group_send)(
                    datastore_group(datastore.pk), _transactions_message("", datastore.pk, txs)
                )
            except Exception as error:  # stored all the same: workers fill the gap later
                if not _announcing_fails:
                    logger.warning("relay: commits cannot be announced to the workers: %s", error)
                _announcing_fails = True
            else:
                _announcing_fails = False
