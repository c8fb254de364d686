"""``/ws/datastores/<datastore>/``: the JSON datastore protocol (see docs/protocol.md)."""

from __future__ import annotations

import base64
import binascii
import itertools
import json
from typing import Any

from channels.db import database_sync_to_async

from relay import yprotocol
from relay.consumers import Refusal, RelayConsumer
from relay.hub import Batch
from tables import history, undo
from tables.models import Datastore, Transaction
from tables.service import Outcome, Status

MAX_REQUESTED = 1000
_server_ids = itertools.count(1)


class BadMessage(ValueError):
    code = "bad-message"


def _field(
    content: dict[str, Any], name: str, kind: type | tuple[type, ...], required: bool = True
):
    if name not in content:
        if required:
            raise BadMessage(f"content.{name} is required")
        return None
    value = content[name]
    if (isinstance(value, bool) and kind is not bool) or not isinstance(value, kind):
        names = kind.__name__ if isinstance(kind, type) else "/".join(k.__name__ for k in kind)
        raise BadMessage(f"content.{name} must be {names}, got {type(value).__name__}")
    return value


def _serial(content: dict[str, Any], name: str, required: bool = False) -> int | None:
    value = _field(content, name, int, required)
    if value is not None and value < 0:
        raise BadMessage(f"content.{name} must be >= 0")
    return value


def _list_of(content: dict[str, Any], name: str, kind: type) -> list:
    values = _field(content, name, list)
    if len(values) > MAX_REQUESTED:
        raise BadMessage(f"content.{name} has more than {MAX_REQUESTED} entries")
    for value in values:
        if isinstance(value, bool) or not isinstance(value, kind):
            raise BadMessage(f"content.{name} must hold {kind.__name__} values")
    return values


def _b64(value: Any, what: str) -> bytes:
    if not isinstance(value, str):
        raise BadMessage(f"{what} must be a base64 string")
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise BadMessage(f"{what} is not valid base64") from None


def _tx_json(serial: int, txid: str, store_id: str, update: bytes) -> dict[str, Any]:
    return {
        "id": txid,
        "storeId": store_id,
        "serial": serial,
        "patch": base64.b64encode(update).decode(),
    }


# --- reads (in a database thread) ------------------------------------------------------------


@database_sync_to_async
def _history(datastore_pk: int, since: int | None) -> tuple[dict[str, Any], int]:
    datastore = Datastore.objects.get(pk=datastore_pk)
    last = datastore.last_serial
    rows = Transaction.objects.filter(datastore=datastore).order_by("serial")
    # A resume gets only the tail when it is short and still stored (not behind a pruning).
    resumable = since is not None and datastore.history_start <= since <= last
    if resumable and last - since <= MAX_REQUESTED:
        tail = rows.filter(serial__gt=since).values_list("serial", "txid", "store_id", "update")
        return {
            "state": None,
            "checkpointSerial": None,
            "serial": last,
            "transactions": [_tx_json(s, t, st, bytes(u)) for s, t, st, u in tail],
        }, last
    snap = history.snapshot(datastore)
    tail = rows.filter(serial__gt=snap.checkpoint_serial, serial__lte=snap.serial).values_list(
        "serial", "txid", "store_id", "update"
    )
    state = base64.b64encode(snap.checkpoint_state).decode() if snap.checkpoint_state else None
    return {
        "state": state,
        "checkpointSerial": snap.checkpoint_serial,
        "serial": snap.serial,
        "transactions": [_tx_json(s, t, st, bytes(u)) for s, t, st, u in tail],
    }, snap.serial


@database_sync_to_async
def _fetch(
    datastore_pk: int, serials: list[int] | None, txids: list[str] | None
) -> tuple[list[dict], int]:
    """The stored transactions asked for, and the serial the history was pruned up to."""
    rows = Transaction.objects.filter(datastore_id=datastore_pk).order_by("serial")
    rows = rows.filter(serial__in=serials) if serials is not None else rows.filter(txid__in=txids)
    found = [
        _tx_json(s, t, st, bytes(u))
        for s, t, st, u in rows.values_list("serial", "txid", "store_id", "update")
    ]
    return found, Datastore.objects.values_list("history_start", flat=True).get(pk=datastore_pk)


@database_sync_to_async
def _last_serial(datastore_pk: int) -> int:
    return Datastore.objects.values_list("last_serial", flat=True).get(pk=datastore_pk)


@database_sync_to_async
def _revert(
    datastore_pk: int, kind: str, serial: int | None, author_id: int | None, authorize
) -> Outcome:
    """Undo/redo through the same authorize hook as every write (table policies included)."""
    datastore = Datastore.objects.get(pk=datastore_pk)
    who = {"author_id": author_id, "authorize": authorize}
    if kind == "undo":
        if serial is None:
            return undo.undo_last(datastore, **who)
        return undo.undo(datastore, serial, **who)
    if serial is None:
        return undo.redo_last(datastore, **who)
    return undo.redo(datastore, serial, **who)


@database_sync_to_async
def _reverted_serial(transaction_pk: int | None) -> int | None:
    if transaction_pk is None:
        return None
    return (
        Transaction.objects.filter(pk=transaction_pk)
        .values_list("reverts__serial", flat=True)
        .first()
    )


class DatastoreConsumer(RelayConsumer):
    """One JSON object per text frame: ``{msgId, msgType, parentId?, content}``."""

    async def joined(self) -> None:
        self.handlers = {
            "history-request": self.on_history_request,
            "transaction-broadcast": self.on_transaction_broadcast,
            "transaction-request": self.on_transaction_request,
            "serial-request": self.on_serial_request,
            "permissions-request": self.on_permissions_request,
            "serial-update": self.on_serial_update,
            "undo-request": self.on_undo_request,
            "redo-request": self.on_redo_request,
            "awareness-update": self.on_awareness_update,
            "awareness-query": self.on_awareness_query,
        }

    async def handle(self, text_data: str | None, bytes_data: bytes | None) -> None:
        if text_data is None:
            await self.error(None, "bad-message", "frames must be text (JSON)")
            return
        try:
            message = json.loads(text_data)
        except (json.JSONDecodeError, RecursionError):
            await self.error(None, "bad-json", "the frame is not valid JSON")
            return
        if not isinstance(message, dict):
            await self.error(None, "bad-json", "a message must be a JSON object")
            return
        msg_id = message.get("msgId")
        if msg_id is not None and not isinstance(msg_id, str):
            await self.error(None, "bad-message", "msgId must be a string")
            return
        msg_type = message.get("msgType")
        content = message.get("content", {})
        if not isinstance(msg_type, str):
            await self.error(msg_id, "bad-message", "msgType must be a string")
            return
        if not isinstance(content, dict):
            await self.error(msg_id, "bad-message", "content must be an object")
            return
        handler = self.handlers.get(msg_type)
        if handler is None:
            await self.error(msg_id, "unknown-message-type", f"unknown msgType {msg_type!r}")
            return
        try:
            await handler(msg_id, content)
        except BadMessage as error:
            await self.error(msg_id, error.code, str(error))

    # --- sending ----------------------------------------------------------------------------

    async def push(self, msg_type: str, content: dict[str, Any], parent_id: str | None = None):
        message: dict[str, Any] = {"msgId": f"s-{next(_server_ids)}", "msgType": msg_type}
        if parent_id is not None:
            message["parentId"] = parent_id
        message["content"] = content
        await self.send(text_data=json.dumps(message, separators=(",", ":")))

    async def error(self, parent_id: str | None, code: str, reason: str, **extra: Any) -> None:
        await self.push("error-reply", {"code": code, "reason": reason, **extra}, parent_id)

    # --- handlers -----------------------------------------------------------------------------

    async def on_history_request(self, msg_id: str | None, content: dict[str, Any]) -> None:
        since = _serial(content, "since")

        async def sync() -> int:
            reply, serial = await _history(self.access.datastore.pk, since)
            await self.push("history-reply", reply, msg_id)
            return serial

        await self.room.admit(self, sync)

    async def on_transaction_broadcast(self, msg_id: str | None, content: dict[str, Any]):
        entries = _list_of(content, "transactions", dict)
        if not entries:
            raise BadMessage("content.transactions is empty")
        parsed = []
        for number, entry in enumerate(entries):
            txid = entry.get("id")
            if not isinstance(txid, str) or not 0 < len(txid) <= 100:
                raise BadMessage(f"transactions[{number}].id must be a string of 1-100 chars")
            store_id = entry.get("storeId", "")
            if isinstance(store_id, bool) or not isinstance(store_id, (str, int)):
                raise BadMessage(f"transactions[{number}].storeId must be a string or number")
            parsed.append(
                (txid, str(store_id), _b64(entry.get("patch"), f"transactions[{number}].patch"))
            )
        if not self.access.can_write:
            await self.error(
                msg_id,
                "permission-denied",
                f"role {self.access.role} may not write",
                transactionIds=[txid for txid, _, _ in parsed],
            )
            return
        futures = [self.submit(update, txid, store_id) for txid, store_id, update in parsed]

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
                await self.push(
                    "transaction-ack", {"transactionIds": ids, "serials": serials}, msg_id
                )

        self.spawn(acknowledge())

    async def on_transaction_request(self, msg_id: str | None, content: dict[str, Any]) -> None:
        if "serials" in content:
            found, pruned = await _fetch(
                self.access.datastore.pk, _list_of(content, "serials", int), None
            )
        elif "transactionIds" in content:
            txids = _list_of(content, "transactionIds", str)
            found, pruned = await _fetch(self.access.datastore.pk, None, txids)
        else:
            raise BadMessage("content.serials or content.transactionIds is required")
        await self.push(
            "transaction-reply", {"transactions": found, "historyStart": pruned}, msg_id
        )

    async def on_serial_request(self, msg_id: str | None, content: dict[str, Any]) -> None:
        serial = await _last_serial(self.access.datastore.pk)
        await self.push("serial-reply", {"serial": serial}, msg_id)

    async def on_permissions_request(self, msg_id: str | None, content: dict[str, Any]) -> None:
        access = self.access
        await self.push(
            "permissions-reply",
            {
                "read": access.can_read,
                "write": access.can_write,
                "role": access.role,
                "readOnlyTables": await database_sync_to_async(access.read_only_tables)(),
            },
            msg_id,
        )

    async def on_serial_update(self, msg_id: str | None, content: dict[str, Any]) -> None:
        serial = _serial(content, "serial", required=True)
        before = self.room.stable_serial()
        stable = self.room.report_serial(self.member_id, serial)
        await self.push("state-stable", {"serial": stable}, msg_id)
        if stable != before:
            for member in list(self.room.members.values()):
                if member is not self and isinstance(member, DatastoreConsumer):
                    await member.push("state-stable", {"serial": stable})

    async def on_undo_request(self, msg_id: str | None, content: dict[str, Any]) -> None:
        await self._revert("undo", msg_id, content)

    async def on_redo_request(self, msg_id: str | None, content: dict[str, Any]) -> None:
        await self._revert("redo", msg_id, content)

    async def _revert(self, kind: str, msg_id: str | None, content: dict[str, Any]) -> None:
        serial = _serial(content, "serial")
        if not self.access.can_write:
            await self.error(msg_id, "permission-denied", f"role {self.access.role} may not write")
            return
        try:
            outcome = await _revert(
                self.access.datastore.pk, kind, serial, self.access.user_id, self.authorize
            )
        except (undo.NothingToUndo, undo.UndoUnsupported) as error:
            await self.error(msg_id, error.code, str(error))
            return
        if outcome.status is not Status.STORED:
            await self.error(msg_id, outcome.error_code or "nothing-to-undo", outcome.error or "")
            return
        reverts = await _reverted_serial(outcome.transaction_pk)
        await self.push(f"{kind}-reply", {"serial": outcome.serial, "reverts": reverts}, msg_id)

    async def on_awareness_update(self, msg_id: str | None, content: dict[str, Any]) -> None:
        update = _b64(content.get("update"), "content.update")
        try:
            await self.presence_from_client(update)
        except yprotocol.ProtocolError as error:
            raise BadMessage(f"content.update: {error}") from None

    async def on_awareness_query(self, msg_id: str | None, content: dict[str, Any]) -> None:
        presence = self.room.presence_snapshot() or yprotocol.encode_awareness([])
        await self.push("awareness-update", {"update": base64.b64encode(presence).decode()}, msg_id)

    # --- Member -------------------------------------------------------------------------------

    async def send_transactions(self, batch: Batch) -> None:
        unseen = self.unseen(batch)
        if len(unseen) == len(batch.transactions):
            await self.send(text_data=batch.json_frame)
        elif unseen:
            transactions = batch.json_transactions
            await self.push(
                "transaction-broadcast", {"transactions": [transactions[i] for i in unseen]}
            )

    async def send_awareness(self, update: bytes) -> None:
        await self.push("awareness-update", {"update": base64.b64encode(update).decode()})

    # --- RelayConsumer ------------------------------------------------------------------------

    async def refuse(self, refusal: Refusal) -> None:
        await self.error(None, refusal.code, refusal.reason)
        await self.close(code=refusal.close_code)

    async def rate_limited(self) -> None:
        await self.error(None, "rate-limited", "too many messages; this one was dropped")

    async def report_error(self, code: str, reason: str) -> None:
        await self.error(None, code, reason)
