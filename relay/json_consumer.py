"""``/ws/datastores/<datastore>/``: the JSON datastore protocol (see docs/protocol.md)."""

from __future__ import annotations

import itertools
from typing import Any

from channels.db import database_sync_to_async
from rtc_client.wire import json_protocol, yjs_protocol
from rtc_client.wire.json_protocol import (
    MAX_REQUESTED,
    BadMessage,
    MessageType,
    read_list,
    read_patch,
    read_serial,
)

from relay.consumers import ConnectionRefusal, RelayConsumer
from relay.hub import Batch, transactions_json
from relay.presence import Refusal
from tables import history, undo
from tables.nesting import json_nesting_exceeds, max_json_nesting
from tables.service import Status

_server_ids = itertools.count(1)


class DatastoreConsumer(RelayConsumer):
    """One JSON object per text frame: ``{msgId, msgType, parentId?, content}``."""

    async def joined(self) -> None:
        self.handlers = {
            MessageType.HISTORY_REQUEST: self.on_history_request,
            MessageType.TRANSACTION_BROADCAST: self.on_transaction_broadcast,
            MessageType.TRANSACTION_REQUEST: self.on_transaction_request,
            MessageType.SERIAL_REQUEST: self.on_serial_request,
            MessageType.PERMISSIONS_REQUEST: self.on_permissions_request,
            MessageType.SERIAL_UPDATE: self.on_serial_update,
            MessageType.UNDO_REQUEST: self.on_undo_request,
            MessageType.REDO_REQUEST: self.on_redo_request,
            MessageType.AWARENESS_UPDATE: self.on_awareness_update,
            MessageType.AWARENESS_QUERY: self.on_awareness_query,
        }

    async def handle(self, text_data: str | None, bytes_data: bytes | None) -> None:
        if text_data is None:
            await self.error(None, "bad-message", "frames must be text (JSON)")
            return
        limit = max_json_nesting()
        if json_nesting_exceeds(text_data, limit):
            await self.error(None, "too-deep", f"the frame nests more than {limit} levels deep")
            return
        try:
            message = json_protocol.read_message(text_data)
        except BadMessage as error:
            await self.error(error.msg_id, error.code, str(error))
            return
        handler = self.handlers.get(message.msg_type)
        if handler is None:
            reason = f"unknown msgType {message.msg_type!r}"
            await self.error(message.msg_id, "unknown-message-type", reason)
            return
        try:
            await handler(message.msg_id, message.content)
        except BadMessage as error:
            await self.error(message.msg_id, error.code, str(error))

    # --- sending ----------------------------------------------------------------------------

    async def push(self, msg_type: str, content: dict[str, Any], parent_id: str | None = None):
        msg_id = f"s-{next(_server_ids)}"
        await self.send(text_data=json_protocol.make_message(msg_id, msg_type, content, parent_id))

    async def error(self, parent_id: str | None, code: str, reason: str, **extra: Any) -> None:
        await self.push(
            MessageType.ERROR_REPLY, json_protocol.error_reply(code, reason, **extra), parent_id
        )

    # --- handlers -----------------------------------------------------------------------------

    async def on_history_request(self, msg_id: str | None, content: dict[str, Any]) -> None:
        since = read_serial(content, "since")

        async def sync() -> int:
            catch_up = await database_sync_to_async(history.catch_up)(
                self.access.datastore.pk, since, MAX_REQUESTED
            )
            reply = json_protocol.history_reply(
                catch_up.state,
                catch_up.checkpoint_serial,
                catch_up.serial,
                transactions_json(catch_up.transactions),
            )
            await self.push(MessageType.HISTORY_REPLY, reply, msg_id)
            return catch_up.serial

        await self.room.admit(self, sync)

    async def on_transaction_broadcast(self, msg_id: str | None, content: dict[str, Any]):
        proposed = json_protocol.read_transactions(content)
        if not self.access.can_write:
            await self.error(
                msg_id,
                "permission-denied",
                f"role {self.access.role} may not write",
                transactionIds=[txid for txid, _, _ in proposed],
            )
            return
        futures = [self.submit(update, txid, store_id) for txid, store_id, update in proposed]

        async def acknowledge() -> None:
            ids, serials = [], []
            for future in futures:
                outcome = await future
                self.settle(outcome)
                if outcome.status is Status.REJECTED:
                    await self.error(
                        msg_id, outcome.error_code, outcome.error, transactionId=outcome.txid
                    )
                else:
                    ids.append(outcome.txid)
                    serials.append(None if outcome.status is Status.NOOP else outcome.serial)
            if ids:
                ack = json_protocol.transaction_ack(ids, serials)
                await self.push(MessageType.TRANSACTION_ACK, ack, msg_id)

        self.spawn(acknowledge())

    async def on_transaction_request(self, msg_id: str | None, content: dict[str, Any]) -> None:
        if "serials" in content:
            wanted = {"serials": read_list(content, "serials", int)}
        elif "transactionIds" in content:
            wanted = {"txids": read_list(content, "transactionIds", str)}
        else:
            raise BadMessage("content.serials or content.transactionIds is required")
        found, pruned = await database_sync_to_async(history.find_transactions)(
            self.access.datastore.pk, **wanted
        )
        reply = json_protocol.transaction_reply(transactions_json(found), pruned)
        await self.push(MessageType.TRANSACTION_REPLY, reply, msg_id)

    async def on_serial_request(self, msg_id: str | None, content: dict[str, Any]) -> None:
        serial = await database_sync_to_async(history.last_serial)(self.access.datastore.pk)
        await self.push(MessageType.SERIAL_REPLY, {"serial": serial}, msg_id)

    async def on_permissions_request(self, msg_id: str | None, content: dict[str, Any]) -> None:
        access = self.access
        read_only_tables = await database_sync_to_async(access.read_only_tables)()
        reply = json_protocol.permissions_reply(
            access.can_read, access.can_write, access.role, read_only_tables
        )
        await self.push(MessageType.PERMISSIONS_REPLY, reply, msg_id)

    async def on_serial_update(self, msg_id: str | None, content: dict[str, Any]) -> None:
        serial = read_serial(content, "serial", required=True)
        before = self.room.stable_serial()
        stable = self.room.report_serial(self.member_id, serial)
        await self.push(MessageType.STATE_STABLE, {"serial": stable}, msg_id)
        if stable != before:
            for member in list(self.room.members.values()):
                if member is not self and isinstance(member, DatastoreConsumer):
                    await member.push(MessageType.STATE_STABLE, {"serial": stable})

    async def on_undo_request(self, msg_id: str | None, content: dict[str, Any]) -> None:
        await self._revert("undo", MessageType.UNDO_REPLY, msg_id, content)

    async def on_redo_request(self, msg_id: str | None, content: dict[str, Any]) -> None:
        await self._revert("redo", MessageType.REDO_REPLY, msg_id, content)

    async def _revert(
        self, kind: str, reply_type: MessageType, msg_id: str | None, content: dict[str, Any]
    ) -> None:
        serial = read_serial(content, "serial")
        if not self.access.can_write:
            await self.error(msg_id, "permission-denied", f"role {self.access.role} may not write")
            return
        try:
            outcome = await database_sync_to_async(undo.undo_or_redo)(
                self.access.datastore.pk,
                kind,
                serial,
                author_id=self.access.user_id,
                authorize=self.authorize,
            )
        except (undo.NothingToUndo, undo.UndoUnsupported) as error:
            await self.error(msg_id, error.code, str(error))
            return
        if outcome.status is not Status.STORED:
            await self.error(msg_id, outcome.error_code or "nothing-to-undo", outcome.error or "")
            return
        reverts = await database_sync_to_async(history.reverted_serial)(outcome.transaction_pk)
        await self.push(reply_type, json_protocol.revert_reply(outcome.serial, reverts), msg_id)

    async def on_awareness_update(self, msg_id: str | None, content: dict[str, Any]) -> None:
        update = read_patch(content.get("update"), "content.update")
        try:
            await self.presence_from_client(update, msg_id)
        except yjs_protocol.ProtocolError as error:
            raise BadMessage(f"content.update: {error}") from None

    async def presence_refused(self, refusal: Refusal, msg_id: str | None) -> None:
        await self.error(msg_id, refusal.code, refusal.reason, clientIds=list(refusal.client_ids))

    async def on_awareness_query(self, msg_id: str | None, content: dict[str, Any]) -> None:
        presence = self.room.presence_snapshot() or yjs_protocol.encode_awareness([])
        await self.push(
            MessageType.AWARENESS_UPDATE, json_protocol.awareness_update(presence), msg_id
        )

    # --- Member -------------------------------------------------------------------------------

    async def send_transactions(self, batch: Batch) -> None:
        unseen = self.unseen(batch)
        if len(unseen) == len(batch.transactions):
            await self.send(text_data=batch.json_frame)
        elif unseen:
            transactions = batch.json_transactions
            content = json_protocol.transaction_broadcast([transactions[i] for i in unseen])
            await self.push(MessageType.TRANSACTION_BROADCAST, content)

    async def send_awareness(self, update: bytes) -> None:
        await self.push(MessageType.AWARENESS_UPDATE, json_protocol.awareness_update(update))

    # --- RelayConsumer ------------------------------------------------------------------------

    async def refuse(self, refusal: ConnectionRefusal) -> None:
        await self.error(None, refusal.code, refusal.reason)
        await self.close(code=refusal.close_code)

    async def rate_limited(self) -> None:
        await self.error(None, "rate-limited", "too many messages; this one was dropped")

    async def report_error(self, code: str, reason: str) -> None:
        await self.error(None, code, reason)
