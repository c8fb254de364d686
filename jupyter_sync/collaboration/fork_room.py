"""The timeline's fork room, ``/api/collaboration/room/timeline:<fork id>``: a read-only
y-websocket room showing a document at a point of its history (``collaboration.timeline``).

jupyter-collaboration's front end connects the document's own Y document to it
(``connectToForkDoc``), so the room starts from the state the window already holds and then sends
the operations each slider move makes (``PUT api/collaboration/undo_redo``), in the order of the
fork's ``version``; a connection that missed one (a lost channel-layer message) is sent the
whole difference from the fork's row instead. What the client sends is not stored: the view is
read-only, and its edits are dropped in silence (the front end warned "read-only mode").

Only the person who opened the timeline may join their fork (4404 for anyone else), and only
while they may still read the document. Awareness is not shared here.
"""

from __future__ import annotations

import logging

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncWebsocketConsumer
from pycrdt import Doc
from rtc_client.wire import yjs_protocol

from jupyter_sync.collaboration import timeline
from relay.consumers import ConnectionRefusal, check_handshake, require_user
from tables.conf import rtc_settings

logger = logging.getLogger(__name__)


class ForkRoomConsumer(AsyncWebsocketConsumer):
    """One connection to a fork room: the view's state, then its moves."""

    group: str | None = None
    doc: Doc | None = None
    version = 0

    async def connect(self) -> None:
        await self.accept()  # then close with a code: a refused handshake tells the browser nothing
        try:
            check_handshake(self.scope)
            user = self.scope.get("user")
            require_user(user)
            room = self.scope["url_route"]["kwargs"]["room"]
            fork_id = timeline.fork_id_of(room)
            if fork_id is None:
                raise ConnectionRefusal(4400, "bad-room", f"not a timeline room: {room!r}")
            # Join first: a move made while the state is read is announced to us too.
            self.group = timeline.group_name(fork_id)
            await self.channel_layer.group_add(self.group, self.channel_name)
            try:
                state, version = await database_sync_to_async(timeline.view_state)(fork_id, user)
            except timeline.TimelineRefused as refused:
                raise ConnectionRefusal(4404, refused.code, refused.detail) from None
        except ConnectionRefusal as refusal:
            await self.send(bytes_data=yjs_protocol.permission_denied(refusal.reason))
            await self.close(code=refusal.close_code, reason=refusal.reason)
            return
        self.fork_id, self.user = fork_id, user
        self.doc = Doc(allow_multithreading=True)
        self.doc.apply_update(state)
        self.version = version
        await self.send(bytes_data=yjs_protocol.sync_step1(self.doc.get_state()))

    async def disconnect(self, code: int) -> None:
        if self.group is not None:
            await self.channel_layer.group_discard(self.group, self.channel_name)

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        if self.doc is None or bytes_data is None:
            return
        if len(bytes_data) > rtc_settings.MAX_MESSAGE_BYTES:
            await self.close(code=1009, reason="message too large")
            return
        try:
            message = yjs_protocol.parse(bytes_data)
        except yjs_protocol.ProtocolError:
            return
        if (
            message.type is yjs_protocol.MessageType.SYNC
            and message.sync_type is yjs_protocol.SyncType.STEP1
        ):
            try:
                missing = self.doc.get_update(message.payload)
            except Exception:  # not a state vector
                return
            await self.send(bytes_data=yjs_protocol.sync_step2(missing))
        # Updates and awareness: a read-only view, shared with nobody.

    async def timeline_moved(self, event: dict) -> None:
        """A move of this fork (``timeline.announce``): its operations, or, after a gap, the
        difference from the fork's row."""
        if self.doc is None or event["version"] <= self.version:
            return
        if event["version"] == self.version + 1:
            update = event["update"]
            self.doc.apply_update(update)
            self.version = event["version"]
        else:
            try:
                state, version = await database_sync_to_async(timeline.view_state)(
                    self.fork_id, self.user
                )
            except timeline.TimelineRefused:
                return
            fresh = Doc(allow_multithreading=True)
            fresh.apply_update(state)
            update = fresh.get_update(self.doc.get_state())
            self.doc, self.version = fresh, version
        await self.send(bytes_data=yjs_protocol.sync_update(update))
