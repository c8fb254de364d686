"""``/ws/yjs/<datastore>``: the y-websocket protocol, so stock Yjs providers work unchanged."""

from __future__ import annotations

import uuid

from channels.db import database_sync_to_async
from rtc_client.wire import yjs_protocol

from relay.consumers import ConnectionRefusal, RelayConsumer
from relay.daphne_send import frame_sink
from relay.hub import Batch, Outlet
from relay.presence import Refusal
from tables import service
from tables.service import Status
from tables.ydoc import MalformedUpdate


class YjsConsumer(RelayConsumer):
    tells_presence_refusals = True
    """Whether dropped awareness entries are answered with an auth message (else logged)."""

    async def joined(self) -> None:
        # Announce our state so the client answers with what we lack (its offline edits).
        state_vector, _ = await database_sync_to_async(service.live_state_vector)(
            self.access.datastore
        )
        await self.send(bytes_data=yjs_protocol.sync_step1(state_vector))
        presence = self.room.presence_snapshot()
        if presence:
            await self.send(bytes_data=yjs_protocol.awareness(presence))

    async def handle(self, text_data: str | None, bytes_data: bytes | None) -> None:
        if bytes_data is None:
            await self.deny("bad-message", "y-websocket frames are binary")
            return
        try:
            message = yjs_protocol.parse(bytes_data)
        except yjs_protocol.ProtocolError as error:
            await self.deny("bad-message", str(error))
            return
        kind = message.type
        if kind is yjs_protocol.MessageType.SYNC:
            if message.sync_type is yjs_protocol.SyncType.STEP1:
                await self.answer_step1(message.payload)
            else:
                await self.receive_update(message.payload)
        elif kind is yjs_protocol.MessageType.AWARENESS:
            try:
                await self.presence_from_client(message.payload)
            except yjs_protocol.ProtocolError as error:
                await self.deny("bad-message", f"awareness: {error}")
        elif kind is yjs_protocol.MessageType.QUERY_AWARENESS:
            presence = self.room.presence_snapshot()
            if presence:
                await self.send(bytes_data=yjs_protocol.awareness(presence))
        # Auth messages from a client mean nothing to the server.

    async def answer_step1(self, state_vector: bytes) -> None:
        """Sync step 2: everything the client lacks; from then on the room delivers the rest."""

        async def sync() -> int:
            diff, serial = await database_sync_to_async(service.live_diff)(
                self.access.datastore, state_vector
            )
            await self.send(bytes_data=yjs_protocol.sync_step2(diff))
            return serial

        try:
            await self.room.admit(self, sync)
        except MalformedUpdate as error:
            await self.deny("bad-message", str(error))

    async def receive_update(self, update: bytes) -> None:
        """A sync step 2 or an update: the role is decided first, as the JSON protocol does.

        A reader's update never reaches the write path (which applies before it authorizes, and
        rebuilds the document after a refusal): it is compared with the live document, and
        refused only if it would change it, so the step 2 with nothing new that every client
        sends on joining passes in silence. Awaited, not spawned: what the client sends next is
        handled after the answer, in order.
        """
        if self.access.can_write:
            self.write(update)
            return
        try:
            changes = await database_sync_to_async(service.live_adds)(self.access.datastore, update)
        except (MalformedUpdate, service.UpdateTooLarge) as error:
            await self.update_refused(error.code, str(error))
            return
        if changes and not await self.reader_update_ignored(update):
            role = self.access.role or "none"
            await self.update_refused(
                "permission-denied", f"role {role} may not write to {self.access.datastore.name!r}"
            )

    async def reader_update_ignored(self, update: bytes) -> bool:
        """Whether a reader's update that would change the document is dropped in silence
        rather than refused: never, here (a room whose front end writes on its own may say
        otherwise)."""
        return False

    def write(self, update: bytes) -> None:
        future = self.submit(update, uuid.uuid4().hex, self.member_id)

        async def report() -> None:
            outcome = await future
            self.settle(outcome)
            if outcome.status is Status.REJECTED:
                await self.update_refused(outcome.error_code, outcome.error)

        self.spawn(report())

    async def update_refused(self, code: str, reason: str) -> None:
        """A client's update was not stored: y-websocket's auth message says why (a stock
        provider logs it); the connection stays open."""
        await self.deny(code, reason)

    async def presence_refused(self, refusal: Refusal, msg_id: str | None) -> None:
        """y-websocket's auth message, as for a refused update (a stock provider logs it)."""
        if self.tells_presence_refusals:
            await self.deny(refusal.code, refusal.reason)
        else:
            await super().presence_refused(refusal, msg_id)

    async def deny(self, code: str, reason: str) -> None:
        await self.send(bytes_data=yjs_protocol.permission_denied(f"{code}: {reason}"))

    # --- Member ---------------------------------------------------------------------------------

    def make_outlet(self) -> Outlet | None:
        """Under daphne, the room writes broadcast frames (built once per batch) to the socket
        itself, and merges what a slow reader missed; a subclass that sends transactions its
        own way keeps ``send_transactions``."""
        if type(self).send_transactions is not YjsConsumer.send_transactions:
            return None
        sink = frame_sink(self.scope)
        return None if sink is None else Outlet(sink)

    async def send_transactions(self, batch: Batch) -> None:
        unseen = self.unseen(batch)
        if unseen:
            await self.send(bytes_data=batch.y_frame(unseen))

    async def send_awareness(self, update: bytes) -> None:
        await self.send(bytes_data=yjs_protocol.awareness(update))

    # --- RelayConsumer --------------------------------------------------------------------------

    async def refuse(self, refusal: ConnectionRefusal) -> None:
        await self.deny(refusal.code, refusal.reason)
        await self.close(code=refusal.close_code, reason=refusal.reason)

    async def rate_limited(self) -> None:
        # An update dropped here would leave the client diverged: make it reconnect instead.
        await self.refuse(ConnectionRefusal(4429, "rate-limited", "too many messages; slow down"))

    async def report_error(self, code: str, reason: str) -> None:
        await self.deny(code, reason)
