"""An asyncio client for the JSON datastore protocol (``/ws/datastores/<datastore>/``).

``DatastoreClient`` keeps a ``pycrdt.Doc`` equal to a datastore on the server and sends the
document's local changes back as transactions::

    async with DatastoreClient("ws://localhost:8000", "groceries", token=key) as client:
        items = client.doc.get("items", type=Map)
        items["milk"] = Map({"title": Text("Milk"), "done": False})
        await client.wait_acked(timeout=5)

Design, after pycrdt-websocket and jupyter_client (the parts live in ``connection``,
``ordering`` and ``outgoing``; the wire format in ``wire.json_protocol``):

- Every background task (the connection loop, the socket reader, the sender, gap fills, the
  awareness timer) lives in one task group owned by the client; ``aclose()`` cancels it and
  closes the socket, so nothing outlives the ``async with`` block.
- Requests are matched to replies by ``msgId``; every wait has a deadline on the event loop's
  monotonic clock.
- ``client.serial`` is the highest serial applied, without gaps: transactions that arrive ahead
  of it are buffered and the missing serials are fetched with ``transaction-request``.
- Local changes are queued as unacknowledged transactions until the server acknowledges them. A
  dropped connection is re-established with exponential backoff, resumed with
  ``history-request {since}``, and every unacknowledged transaction is sent again with the same
  id (the server stores a transaction id once, so re-sending is idempotent).
- A refused change (``error-reply`` with a ``transactionId``) cannot be taken out of a CRDT
  document, so the client rebuilds its document from the server (a fresh ``Doc``, assigned to
  ``client.doc``), re-applies the changes still awaiting an answer, and then calls
  ``on_rejected``. Code that keeps references to shared types must fetch them again from the new
  ``client.doc``. A ``missing-dependencies`` refusal while an earlier transaction of ours is
  still unanswered is not final: the server only lacks that earlier one (dropped by the rate
  limiter, say), so the transaction is held back and sent again after it.
- The server does not say which message its rate limiter dropped; after a ``rate-limited``
  error every unanswered transaction is sent again after a pause. Requests are never repeated
  (an undo might run twice): a dropped one ends at its deadline.
- The document is not thread-safe: edit ``client.doc`` from the event loop's thread.
"""

from __future__ import annotations

import asyncio
import inspect
import itertools
import logging
import uuid
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

import anyio
from anyio.abc import TaskGroup
from pycrdt import Awareness, Doc, TransactionEvent
from websockets.exceptions import ConnectionClosed

from rtc_client.backoff import Backoff
from rtc_client.connection import (
    TRANSIENT_ERRORS,
    Connection,
    close_socket,
    datastore_url,
    keep_connected,
    open_socket,
    permanent_error,
)
from rtc_client.errors import ClientClosed, ConnectionLost, RejectedTransaction, RTCError
from rtc_client.ordering import IncomingOrder
from rtc_client.outgoing import OutgoingQueue, batches
from rtc_client.wire import json_protocol
from rtc_client.wire.json_protocol import MAX_REQUESTED, MessageType, decode_patch

logger = logging.getLogger(__name__)

EMPTY_UPDATE = b"\x00\x00"
"""A Yjs update that changes nothing."""


# --- The client --------------------------------------------------------------------------------


class DatastoreClient:
    """Keeps ``self.doc`` in sync with one datastore of an RTC server."""

    def __init__(
        self,
        url: str,
        datastore: str,
        *,
        token: str | None = None,
        doc: Doc | None = None,
        store_id: str | None = None,
        on_rejected: Callable[[RejectedTransaction], Any] | None = None,
        backoff: Backoff | None = None,
        connect_timeout: float = 10.0,
        request_timeout: float = 30.0,
        max_batch: int = 100,
        max_batch_bytes: int = 1_000_000,
        max_message_bytes: int | None = None,
        rate_limit_pause: float = 1.0,
        additional_headers: dict[str, str] | None = None,
    ) -> None:
        """
        Args:
            url: The server's base URL, ``ws://host:port`` (or ``wss://``).
            datastore: The datastore's name (it must exist).
            token: A REST framework token key, sent as ``?token=``.
            doc: The document to keep in sync (a new one if omitted). Changes it holds before
                the first sync are sent to the server.
            store_id: Prefix of this client's transaction ids (random if omitted); reuse it
                only with the unacknowledged transactions of the same client.
            on_rejected: Called (or awaited, if it returns an awaitable) with each refused local
                transaction, after ``client.doc`` has been rebuilt from the server.
            backoff: Delays between reconnection attempts.
            connect_timeout: Deadline of the WebSocket handshake and of each (re)join.
            request_timeout: Default deadline of ``request()`` and its wrappers.
            max_batch, max_batch_bytes: Largest transaction-broadcast message sent.
            max_message_bytes: Largest incoming message (None: no limit; a history reply holds
                the whole state).
            rate_limit_pause: How long to hold back transactions after a ``rate-limited`` error.
            additional_headers: Extra HTTP headers for the handshake (e.g. ``Origin``).
        """
        self.url = url
        self.datastore = datastore
        self.token = token
        self.doc: Doc = doc if doc is not None else Doc()
        self.awareness = Awareness(self.doc)
        self.on_rejected = on_rejected
        self.backoff = backoff or Backoff()
        self.connect_timeout = connect_timeout
        self.request_timeout = request_timeout
        self.max_batch = max_batch
        self.max_batch_bytes = max_batch_bytes
        self.max_message_bytes = max_message_bytes
        self.rate_limit_pause = rate_limit_pause
        self.additional_headers = additional_headers

        self._incoming = IncomingOrder()
        self._outgoing = OutgoingQueue(store_id or uuid.uuid4().hex[:12])
        self.stable_serial: int | None = None
        """The latest ``state-stable`` serial the server announced."""
        self.rejections: list[RejectedTransaction] = []
        self.errors: list[RTCError] = []
        """Error replies that answered no request: refusals, rate limiting, server errors."""
        self.connections = 0
        """How many times a connection was established (1 + reconnections)."""
        self.last_error: BaseException | None = None
        """Why the latest attempt to connect failed before it synced; None once one syncs. A
        caller waiting for a server that does not answer can say why."""
        self.last_close: tuple[int | None, str] | None = None
        """The close code and reason that ended the last connection (None: none ended yet);
        1009 says the server refused a message as too large, which sending it again will not
        change."""

        self._msg_ids = (f"c-{number}" for number in itertools.count(1))
        self._paused = False
        self._applying_remote = False
        self._joined = False
        self._merged = False
        self._reload_needed = False
        self._resume_needed = False  # a gap behind the server's pruned history: join again
        self._reloading = False
        self._unannounced: list[RejectedTransaction] = []
        self._awareness_dirty = True
        self._conn: Connection | None = None
        self._tg: TaskGroup | None = None
        self._task: asyncio.Task[None] | None = None
        self._closing = False
        self._failure: BaseException | None = None
        self._changed = asyncio.Event()
        self._doc_subscription = self.doc.observe(self._on_doc_event)
        self._awareness_subscription = self.awareness.observe(self._on_awareness_event)

    # --- Lifecycle ------------------------------------------------------------------------

    async def __aenter__(self) -> DatastoreClient:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    async def start(self, timeout: float | None = None, *, wait: bool = True) -> None:
        """Connect and wait for the first sync (raises RTCError if the server refuses us).

        ``wait=False`` only starts connecting, retrying until closed: for a caller that waits
        for ``wait_synced()`` itself, however long the server takes to come up.
        """
        if self._task is not None or self._closing:
            raise RuntimeError("a client starts once")
        self._task = asyncio.create_task(self._main(), name=f"rtc-client-{self.datastore}")
        if not wait:
            return
        try:
            await self.wait_synced(self.connect_timeout if timeout is None else timeout)
        except BaseException:
            await self.aclose()
            raise

    async def aclose(self) -> None:
        """Stop every background task and close the connection. Idempotent."""
        self._closing = True
        task, self._task = self._task, None
        if task is not None and not task.done():
            if self._tg is not None:
                self._tg.cancel_scope.cancel()
            else:
                task.cancel()  # not running yet: it has no task group to cancel
            await asyncio.wait([task])
        if self._doc_subscription is not None:
            self.doc.unobserve(self._doc_subscription)
            self._doc_subscription = None
        if self._awareness_subscription is not None:
            self.awareness.unobserve(self._awareness_subscription)
            self._awareness_subscription = None
        self._notify()

    async def reconnect(self) -> None:
        """Close the current connection; the client reconnects and resumes by itself."""
        conn = self._conn
        if conn is not None:
            await conn.ws.close()

    @property
    def serial(self) -> int:
        """Highest serial applied to ``doc``; every serial up to it is applied."""
        return self._incoming.serial

    @property
    def store_id(self) -> str:
        """Prefix of this client's transaction ids."""
        return self._outgoing.store_id

    @property
    def pending(self) -> dict[str, dict[str, Any]]:
        """Local transactions not yet acknowledged, by id, in the order they were made."""
        return self._outgoing.pending

    @property
    def acked(self) -> dict[str, int | None]:
        """Serial of each local transaction the server acknowledged (None: it changed nothing)."""
        return self._outgoing.acked

    @property
    def in_flight(self) -> set[str]:
        """Ids of local transactions sent on the current connection and not yet answered."""
        conn = self._conn
        return set() if conn is None else {tid for tid in self.pending if tid in conn.sent}

    @property
    def connected(self) -> bool:
        return self._conn is not None

    @property
    def closed(self) -> bool:
        """Closed (``aclose()``) or stopped for good: it will not connect again."""
        return self._closing

    @property
    def synced(self) -> bool:
        """Connected, and the document holds everything the server had when we joined."""
        return (
            self._conn is not None
            and self._conn.synced
            and not (self._reload_needed or self._reloading)
        )

    async def _main(self) -> None:
        try:
            async with anyio.create_task_group() as tg:
                self._tg = tg
                await tg.start(self.awareness.start)
                tg.start_soon(self._run)
        except BaseException as error:  # recorded for every waiter, logged once
            if not isinstance(error, asyncio.CancelledError):
                logger.exception("datastore client for %r stopped", self.datastore)
                self._failure = error
            else:
                raise
        finally:
            self._tg = None
            self._closing = True
            self._notify()

    async def _run(self) -> None:
        """Connect, and reconnect with backoff whenever the connection drops."""
        error = await keep_connected(
            self._connect_once, self.backoff, lambda: self._closing, self.datastore
        )
        if error is not None:
            self._failure = error
            assert self._tg is not None
            self._tg.cancel_scope.cancel()

    async def _connect_once(self) -> bool:
        """One connection, from handshake to close. True if it got as far as a sync.

        Raises the error that ended it, RTCError with a permanent code if reconnecting cannot
        help.
        """
        conn: Connection | None = None
        failure: BaseException | None = None
        try:
            ws = await open_socket(
                datastore_url(self.url, self.datastore, self.token),
                self.connect_timeout,
                self.additional_headers,
                self.max_message_bytes,
            )
        except Exception as error:
            self.last_error = error
            self._notify()
            raise
        try:
            async with anyio.create_task_group() as tg:
                conn = Connection(ws=ws, tg=tg, msg_ids=self._msg_ids)
                self._conn = conn
                self.connections += 1
                tg.start_soon(self._reader, conn)
                tg.start_soon(self._synchronizer, conn)
        except* (*TRANSIENT_ERRORS, RTCError) as group:
            failure = group.exceptions[0]
        finally:
            self._conn = None
            if conn is not None:
                self._disconnected(conn)
            await close_socket(ws)
            if conn is not None:
                self.last_close = (ws.close_code, ws.close_reason or "")
                self._notify()
        refused = permanent_error(ws, conn.error if conn else None)
        if not (conn is not None and conn.synced):
            self.last_error = refused or failure or self.last_error
            self._notify()
        if refused is not None:
            raise refused
        if failure is not None:
            raise failure
        return conn is not None and conn.synced

    def _disconnected(self, conn: Connection) -> None:
        conn.lose_waiters()
        others = [cid for cid in self.awareness.states if cid != self.awareness.client_id]
        if others:
            # Their removals would be relayed on a connection we no longer have.
            self.awareness.remove_awareness_states(others, "disconnect")
        self._awareness_dirty = True
        self._notify()

    # --- Connection tasks -----------------------------------------------------------------

    async def _reader(self, conn: Connection) -> None:
        """Dispatch incoming messages until the socket closes, then end the connection."""
        try:
            async for raw in conn.ws:
                message = json_protocol.parse_message(raw)
                if message is None:
                    logger.warning("ignoring a frame that is not a protocol message: %.200r", raw)
                    continue
                self._dispatch(conn, message)
                self._notify()  # whatever a wait_for() predicate looks at may have changed
        except ConnectionClosed:
            pass
        finally:
            conn.tg.cancel_scope.cancel()

    async def _synchronizer(self, conn: Connection) -> None:
        """Join (or resume), then start sending; rebuild the document when a change is refused."""
        with anyio.fail_after(self.connect_timeout):
            await self._join(conn)
        conn.synced = True
        self.last_error = None
        self._notify()
        conn.tg.start_soon(self._sender, conn)
        await conn.send(MessageType.AWARENESS_QUERY, {})
        while True:
            await conn.resync.wait()
            conn.resync = anyio.Event()
            if self._reload_needed or self._resume_needed:
                self._resume_needed = False
                with anyio.fail_after(self.connect_timeout):
                    await self._join(conn)
                self._notify()

    async def _sender(self, conn: Connection) -> None:
        """Send unacknowledged transactions and awareness changes as they appear."""
        while True:
            conn.wake = anyio.Event()
            unsent = self._outgoing.unsent(conn.sent, conn.deferred)
            for batch in batches(unsent, self.max_batch, self.max_batch_bytes):
                ids = [tx["id"] for tx in batch]
                conn.sent.update(ids)
                content = json_protocol.transaction_broadcast(batch)
                await conn.send(MessageType.TRANSACTION_BROADCAST, content)
            if self._awareness_dirty:
                self._awareness_dirty = False
                update = self.awareness.encode_awareness_update([self.awareness.client_id])
                content = json_protocol.awareness_update(update)
                await conn.send(MessageType.AWARENESS_UPDATE, content)
            self._notify()
            await conn.wake.wait()

    # --- Joining and resuming -------------------------------------------------------------

    async def _join(self, conn: Connection) -> None:
        """Bring the document up to the server's serial.

        First join: merge the server's state into ``doc`` and send what ``doc`` held that the
        server lacks. Resume: ask only for what came after ``serial``. Reload (after a refused
        change): a new document from the server's state, plus our changes still unanswered.
        """
        reload = self._reload_needed
        self._reload_needed = False
        self._reloading = reload
        self._paused = True  # pushes arriving meanwhile are buffered, applied after the reply
        try:
            request: dict[str, Any] = {}
            if self._joined and not reload:
                request["since"] = self.serial
            reply = await conn.request(MessageType.HISTORY_REQUEST, request)
            state = reply.get("state")
            transactions = reply.get("transactions") or []
            if not self._merged:
                self._send_local_extra(state, transactions)
                self._merged = True
            if reload:
                self._replace_doc(Doc())
                self._incoming.restart()
            if state:
                self._apply_remote(decode_patch(state))
                checkpoint_serial = int(reply.get("checkpointSerial") or 0)
                self._incoming.serial = max(self._incoming.serial, checkpoint_serial)
            if reload:
                for transaction in self.pending.values():
                    self._apply_remote(decode_patch(transaction["patch"]))
            for transaction in transactions:
                self._receive(transaction)
        except BaseException:
            self._reload_needed = self._reload_needed or reload
            self._reloading = False
            raise
        finally:
            self._paused = False
        self._joined = True
        try:
            target = int(reply.get("serial") or 0)
            self._advance(conn, target)
            await self._wait_until(lambda: self.serial >= target, None)
        finally:
            self._reloading = False
        announced, self._unannounced = self._unannounced, []
        for rejection in announced:
            self._call_back(rejection)

    def _send_local_extra(self, state: str | None, transactions: list[dict[str, Any]]) -> None:
        """Queue, as one transaction, what the caller's doc held before joining."""
        if self.doc.get_state() == b"\x00":
            return
        server = Doc()
        if state:
            server.apply_update(decode_patch(state))
        for transaction in transactions:
            server.apply_update(decode_patch(transaction["patch"]))
        extra = self.doc.get_update(server.get_state())
        if extra != EMPTY_UPDATE:
            self._queue_local(extra)

    def _replace_doc(self, doc: Doc) -> None:
        if self._doc_subscription is not None:
            self.doc.unobserve(self._doc_subscription)
        self.doc = doc
        self._doc_subscription = doc.observe(self._on_doc_event)

    # --- Incoming messages ----------------------------------------------------------------

    def _dispatch(self, conn: Connection, message: dict[str, Any]) -> None:
        msg_type = message["msgType"]
        content = message["content"]
        parent = message.get("parentId")
        # Pushes and replies alike carry state worth keeping.
        if msg_type == MessageType.AWARENESS_UPDATE and isinstance(content.get("update"), str):
            self.awareness.apply_awareness_update(decode_patch(content["update"]), "remote")
        elif msg_type == MessageType.STATE_STABLE and isinstance(content.get("serial"), int):
            self.stable_serial = content["serial"]
            self._notify()
        # Then whoever waits for it.
        if msg_type == MessageType.TRANSACTION_BROADCAST and parent is None:
            for transaction in content.get("transactions") or []:
                self._receive(transaction)
            self._advance(conn)
        elif msg_type == MessageType.TRANSACTION_ACK:
            self._acknowledged(conn, content)
        elif msg_type == MessageType.ERROR_REPLY:
            self._error(conn, message)
        elif conn.answer(message):
            pass
        elif msg_type not in (MessageType.AWARENESS_UPDATE, MessageType.STATE_STABLE):
            logger.debug("ignoring a %s message", msg_type)

    def _receive(self, transaction: dict[str, Any]) -> None:
        """Buffer a stored transaction; ``_advance`` applies it once its predecessors are in."""
        serial = transaction.get("serial")
        if self._incoming.wants(serial):
            self._incoming.buffer(serial, decode_patch(transaction["patch"]))

    def _acknowledged(self, conn: Connection, content: dict[str, Any]) -> None:
        ids = content.get("transactionIds") or []
        serials = content.get("serials") or [None] * len(ids)
        for tid, serial in zip(ids, serials, strict=False):
            transaction = self._outgoing.acknowledge(tid, serial)
            if transaction is not None and self._incoming.wants(serial):
                self._incoming.buffer(serial, decode_patch(transaction["patch"]), applied=True)
        self._answered(conn)
        self._advance(conn)

    def _error(self, conn: Connection, message: dict[str, Any]) -> None:
        """An error-reply: a refused transaction, a failed request, or a complaint."""
        content = message["content"]
        error = RTCError.from_reply(content)
        refused = [content["transactionId"]] if "transactionId" in content else []
        refused += content.get("transactionIds") or []  # one error for a whole message
        if refused:
            self.errors.append(error)
            self._refused(conn, [tid for tid in refused if isinstance(tid, str)], error)
            return
        if conn.answer(message):
            return
        self.errors.append(error)
        conn.error = content
        logger.warning("error from the server: %s", error)
        if error.code == "rate-limited":
            # The server dropped a message without saying which: send again, after a pause,
            # everything unanswered (transaction ids make that safe) and our presence.
            conn.tg.start_soon(self._resend_later, conn, list(conn.sent))
        self._notify()

    def _refused(self, conn: Connection, ids: list[str], error: RTCError) -> None:
        """Rebuild the document without our refused transactions (see the module docstring).

        Except for ``missing-dependencies`` while an earlier transaction of ours is unanswered:
        the server lacks that one (the rate limiter dropped it, say), not something lost for
        good, so the transaction is sent again once the earlier ones are answered.
        """
        for tid in ids:
            if error.code == "missing-dependencies" and self._outgoing.has_earlier(tid):
                logger.info("transaction %s waits for our earlier ones: %s", tid, error)
                conn.sent.discard(tid)
                conn.deferred.add(tid)
                continue
            transaction = self._outgoing.refuse(tid)
            if transaction is None:
                logger.warning("refusal of a transaction we do not have pending: %s", error)
                continue
            logger.info("transaction %s refused: %s", tid, error)
            patch = decode_patch(transaction["patch"])
            rejection = RejectedTransaction(tid, error.code, error.reason, patch)
            self.rejections.append(rejection)
            self._unannounced.append(rejection)
            self._reload_needed = True
        if self._reload_needed:
            self._answered(conn)
            conn.resync.set()
        self._notify()

    def _answered(self, conn: Connection) -> None:
        """Some of our transactions were answered: deferred ones may go out again."""
        if conn.deferred:
            conn.deferred.clear()
            conn.wake.set()

    async def _resend_later(self, conn: Connection, ids: list[str]) -> None:
        await anyio.sleep(self.rate_limit_pause)
        conn.sent.difference_update(ids)
        self._awareness_dirty = True
        conn.wake.set()

    def _advance(self, conn: Connection, upto: int = 0) -> None:
        """Apply buffered transactions in serial order; fetch the serials of any gap.

        ``upto``: a serial the server is known to have reached (its history reply's).
        """
        if self._paused:
            return
        self._incoming.advance(self._apply_remote)
        self._notify()
        gap = [s for s in self._incoming.missing(upto) if s not in conn.fetching]
        if gap:
            conn.fetching.update(gap)
            conn.tg.start_soon(self._fill_gap, conn, gap)

    async def _fill_gap(self, conn: Connection, serials: list[int]) -> None:
        pruned = 0
        try:
            for start in range(0, len(serials), MAX_REQUESTED):
                chunk = serials[start : start + MAX_REQUESTED]
                with anyio.fail_after(self.request_timeout):
                    request = {"serials": chunk}
                    reply = await conn.request(MessageType.TRANSACTION_REQUEST, request)
                for transaction in reply.get("transactions") or []:
                    self._receive(transaction)
                pruned = max(pruned, int(reply.get("historyStart") or 0))
        finally:
            conn.fetching.difference_update(serials)
        if pruned > self.serial:
            # What we miss was pruned from the server's history: resume from its checkpoint.
            self._resume_needed = True
            conn.resync.set()
            return
        self._advance(conn)

    def _apply_remote(self, update: bytes) -> None:
        """Apply an update from the server without queueing it as a local change."""
        self._applying_remote = True
        try:
            self.doc.apply_update(update)
        finally:
            self._applying_remote = False

    # --- Local changes --------------------------------------------------------------------

    def _on_doc_event(self, event: TransactionEvent) -> None:
        if self._applying_remote or self._closing:
            return
        update = event.update
        if update != EMPTY_UPDATE:
            self._queue_local(update)

    def _queue_local(self, update: bytes) -> None:
        self._outgoing.add(update)
        if self._conn is not None:
            self._conn.wake.set()
        self._notify()

    def _on_awareness_event(self, topic: str, changes: tuple[dict[str, Any], Any]) -> None:
        if topic == "update" and changes[1] == "local":
            self._awareness_dirty = True
            if self._conn is not None:
                self._conn.wake.set()

    def _call_back(self, rejection: RejectedTransaction) -> None:
        """Run ``on_rejected``; its failures are logged, they do not stop the client."""
        if self.on_rejected is None:
            return
        try:
            result = self.on_rejected(rejection)
        except Exception:
            logger.exception("on_rejected callback failed")
            return
        if inspect.isawaitable(result):
            if self._tg is None:
                _close_awaitable(result)
            else:
                self._tg.start_soon(_await_logged, result)

    # --- Waiting --------------------------------------------------------------------------

    def _notify(self) -> None:
        self._changed.set()
        self._changed = asyncio.Event()

    async def _wait_until(self, predicate: Callable[[], bool], timeout: float | None) -> None:
        async with asyncio.timeout(timeout):
            while not predicate():
                if self._failure is not None:
                    raise self._failure
                if self._closing:
                    raise ClientClosed("the client is closed")
                await self._changed.wait()

    async def wait_for(self, predicate: Callable[[], bool], timeout: float | None = None) -> None:
        """Wait until ``predicate()`` holds; it is checked whenever the client's state changes."""
        await self._wait_until(predicate, timeout)

    async def wait_synced(self, timeout: float | None = None) -> None:
        """Wait until connected and caught up with the server."""
        await self._wait_until(lambda: self.synced, timeout)

    async def wait_acked(
        self, timeout: float | None = None, *, while_connected: bool = False
    ) -> None:
        """Wait until the server has answered every local transaction (acked or refused).

        ``while_connected``: raise ``ConnectionLost`` as soon as the client is not connected,
        instead of waiting for a reconnection: a server that went away answers nothing, and a
        caller about to stop should not wait for it.
        """

        def answered() -> bool:
            if while_connected and self._conn is None:
                raise ConnectionLost("not connected: the server cannot answer")
            return not self.pending and not (self._reload_needed or self._reloading)

        await self._wait_until(answered, timeout)

    async def wait_for_serial(self, serial: int, timeout: float | None = None) -> None:
        """Wait until every transaction up to ``serial`` is applied to ``doc``."""
        await self._wait_until(lambda: self.serial >= serial, timeout)

    # --- Requests -------------------------------------------------------------------------

    async def request(
        self, msg_type: str, content: dict[str, Any] | None = None, timeout: float | None = None
    ) -> dict[str, Any]:
        """Send a request once synced and return its reply's content.

        Raises RTCError for an error-reply, ConnectionLost if the connection closed first
        (the request is not repeated: it may have run), TimeoutError at the deadline.
        """
        timeout = self.request_timeout if timeout is None else timeout
        async with asyncio.timeout(timeout):
            await self.wait_synced()
            assert self._conn is not None
            return await self._conn.request(msg_type, content or {})

    async def server_serial(self, timeout: float | None = None) -> int:
        """The server's newest serial (``serial-request``)."""
        return int((await self.request(MessageType.SERIAL_REQUEST, {}, timeout))["serial"])

    async def permissions(self, timeout: float | None = None) -> dict[str, Any]:
        """This user's rights on the datastore (``permissions-request``)."""
        return await self.request(MessageType.PERMISSIONS_REQUEST, {}, timeout)

    async def undo(
        self, serial: int | None = None, *, wait: bool = True, timeout: float | None = None
    ) -> dict[str, Any]:
        """Undo our user's last change, or the transaction ``serial``; returns the reply.

        With ``wait``, returns once the undo transaction is applied to ``doc``.
        """
        return await self._revert(MessageType.UNDO_REQUEST, serial, wait, timeout)

    async def redo(
        self, serial: int | None = None, *, wait: bool = True, timeout: float | None = None
    ) -> dict[str, Any]:
        """Redo our user's last undone change, or undo the undo ``serial``."""
        return await self._revert(MessageType.REDO_REQUEST, serial, wait, timeout)

    async def _revert(
        self, msg_type: str, serial: int | None, wait: bool, timeout: float | None
    ) -> dict[str, Any]:
        timeout = self.request_timeout if timeout is None else timeout
        async with asyncio.timeout(timeout):
            reply = await self.request(msg_type, {} if serial is None else {"serial": serial})
            if wait and isinstance(reply.get("serial"), int):
                await self.wait_for_serial(reply["serial"])
        return reply

    async def fetch_transactions(
        self,
        serials: Iterable[int] | None = None,
        ids: Iterable[str] | None = None,
        timeout: float | None = None,
    ) -> list[dict[str, Any]]:
        """Stored transactions by serial or by id, as on the wire (``patch`` in base64)."""
        if (serials is None) == (ids is None):
            raise ValueError("give serials or ids")
        key, values = (
            ("serials", list(serials))
            if serials is not None
            else ("transactionIds", list(ids or []))
        )
        found: list[dict[str, Any]] = []
        for start in range(0, len(values), MAX_REQUESTED):
            chunk = values[start : start + MAX_REQUESTED]
            reply = await self.request(MessageType.TRANSACTION_REQUEST, {key: chunk}, timeout)
            found.extend(reply.get("transactions") or [])
        return found

    async def report_serial(self, timeout: float | None = None) -> int | None:
        """Tell the server our serial (``serial-update``); returns the stable serial."""
        reply = await self.request(MessageType.SERIAL_UPDATE, {"serial": self.serial}, timeout)
        self.stable_serial = reply.get("serial")
        return self.stable_serial


async def _await_logged(awaitable: Awaitable[Any]) -> None:
    try:
        await awaitable
    except Exception:
        logger.exception("on_rejected callback failed")


def _close_awaitable(awaitable: Awaitable[Any]) -> None:
    """Discard a coroutine that cannot run any more without a never-awaited warning."""
    close = getattr(awaitable, "close", None)
    if close is not None:
        close()
