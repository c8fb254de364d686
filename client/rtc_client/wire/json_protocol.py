"""The JSON datastore protocol's wire format (the server's docs/protocol.md), as pure functions.

A message is one JSON object per text frame: ``{msgId, msgType, parentId?, content}``; a reply's
``parentId`` is the ``msgId`` it answers. Patches (Yjs updates) travel in base64. The server's
consumer and hub and the client build and read messages here, so each shape is written once.
"""

from __future__ import annotations

import base64
import binascii
import enum
import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

MAX_REQUESTED = 1000
"""The most serials or ids one ``transaction-request`` may name (the server answers at most this
many transactions), and the longest tail a resume gets instead of a checkpoint."""

MAX_SERIAL = 2**63 - 1
"""The largest serial (and any integer in a message): what a database's 64-bit integer holds.
A larger one is refused as ``out-of-range`` before it reaches a query."""

MAX_ID_CHARS = 100
"""The longest transaction id or store id (what the server stores)."""


class MessageType(enum.StrEnum):
    HISTORY_REQUEST = "history-request"
    HISTORY_REPLY = "history-reply"
    TRANSACTION_BROADCAST = "transaction-broadcast"
    TRANSACTION_ACK = "transaction-ack"
    TRANSACTION_REQUEST = "transaction-request"
    TRANSACTION_REPLY = "transaction-reply"
    SERIAL_REQUEST = "serial-request"
    SERIAL_REPLY = "serial-reply"
    SERIAL_UPDATE = "serial-update"
    STATE_STABLE = "state-stable"
    PERMISSIONS_REQUEST = "permissions-request"
    PERMISSIONS_REPLY = "permissions-reply"
    UNDO_REQUEST = "undo-request"
    UNDO_REPLY = "undo-reply"
    REDO_REQUEST = "redo-request"
    REDO_REPLY = "redo-reply"
    AWARENESS_UPDATE = "awareness-update"
    AWARENESS_QUERY = "awareness-query"
    ERROR_REPLY = "error-reply"


# --- Frames ------------------------------------------------------------------------------------


def make_message(
    msg_id: str, msg_type: str, content: dict[str, Any], parent_id: str | None = None
) -> str:
    """A protocol message as the text frame to send."""
    message: dict[str, Any] = {"msgId": msg_id, "msgType": msg_type}
    if parent_id is not None:
        message["parentId"] = parent_id
    message["content"] = content
    return json.dumps(message, separators=(",", ":"))


def parse_message(raw: str | bytes) -> dict[str, Any] | None:
    """The message in a frame from the server, or None if the frame is not a protocol message
    (a client takes what it can: content that is not an object reads as empty)."""
    try:
        message = json.loads(raw)
    except (ValueError, RecursionError):
        return None
    if not isinstance(message, dict) or not isinstance(message.get("msgType"), str):
        return None
    if not isinstance(message.get("content"), dict):
        message["content"] = {}
    return message


class BadMessage(ValueError):
    """A frame or a content field that breaks the protocol; ``code`` is the error-reply's code,
    ``msg_id`` the id of the message it answers (None when the frame has no usable id)."""

    def __init__(self, reason: str, code: str = "bad-message", msg_id: str | None = None):
        super().__init__(reason)
        self.code = code
        self.msg_id = msg_id


@dataclass(frozen=True)
class Envelope:
    msg_id: str | None
    msg_type: str
    content: dict[str, Any]


def read_message(text: str) -> Envelope:
    """A client's message, checked strictly (raises BadMessage): the server answers every
    malformed frame with an error-reply."""
    try:
        message = json.loads(text)
    except RecursionError:
        raise BadMessage("the frame nests too deep", "too-deep") from None
    except ValueError as error:  # not JSON, or an integer of more digits than Python reads
        raise BadMessage(f"the frame is not valid JSON ({error})"[:200], "bad-json") from None
    if not isinstance(message, dict):
        raise BadMessage("a message must be a JSON object", "bad-json")
    msg_id = message.get("msgId")
    if msg_id is not None and not isinstance(msg_id, str):
        raise BadMessage("msgId must be a string")
    msg_type = message.get("msgType")
    content = message.get("content", {})
    if not isinstance(msg_type, str):
        raise BadMessage("msgType must be a string", msg_id=msg_id)
    if not isinstance(content, dict):
        raise BadMessage("content must be an object", msg_id=msg_id)
    return Envelope(msg_id, msg_type, content)


# --- Patches and transactions ------------------------------------------------------------------


def encode_patch(update: bytes) -> str:
    return base64.b64encode(update).decode("ascii")


def decode_patch(patch: str) -> bytes:
    """The update in a base64 patch (raises ValueError if it is not base64)."""
    return base64.b64decode(patch, validate=True)


def transaction_json(
    txid: str, store_id: str, update: bytes, serial: int | None = None
) -> dict[str, Any]:
    """A transaction as messages carry it; ``serial`` once the server stored it."""
    transaction: dict[str, Any] = {"id": txid, "storeId": store_id}
    if serial is not None:
        transaction["serial"] = serial
    transaction["patch"] = encode_patch(update)
    return transaction


def read_transactions(content: dict[str, Any]) -> list[tuple[str, str, bytes]]:
    """``(id, storeId, update)`` of each transaction a ``transaction-broadcast`` proposes."""
    entries = read_list(content, "transactions", dict)
    if not entries:
        raise BadMessage("content.transactions is empty")
    proposed = []
    for number, entry in enumerate(entries):
        txid = entry.get("id")
        if not isinstance(txid, str) or not 0 < len(txid) <= MAX_ID_CHARS:
            raise BadMessage(
                f"transactions[{number}].id must be a string of 1-{MAX_ID_CHARS} chars"
            )
        store_id = entry.get("storeId", "")
        if isinstance(store_id, bool) or not isinstance(store_id, (str, int)):
            raise BadMessage(f"transactions[{number}].storeId must be a string or number")
        if isinstance(store_id, int):
            check_range(store_id, f"transactions[{number}].storeId", minimum=-MAX_SERIAL)
        elif len(store_id) > MAX_ID_CHARS:
            raise BadMessage(f"transactions[{number}].storeId is longer than {MAX_ID_CHARS} chars")
        update = read_patch(entry.get("patch"), f"transactions[{number}].patch")
        proposed.append((txid, str(store_id), update))
    return proposed


# --- Contents ----------------------------------------------------------------------------------


def history_reply(
    state: bytes | None,
    checkpoint_serial: int | None,
    serial: int,
    transactions: list[dict[str, Any]],
) -> dict[str, Any]:
    """A ``history-reply``: a checkpoint's state (None: none, or a resume that needs only the
    tail), the stored transactions after it, and the serial they reach."""
    return {
        "state": encode_patch(state) if state else None,
        "checkpointSerial": checkpoint_serial,
        "serial": serial,
        "transactions": transactions,
    }


def transaction_broadcast(transactions: list[dict[str, Any]]) -> dict[str, Any]:
    """A ``transaction-broadcast``: proposed transactions (client to server), or stored ones
    (server to clients)."""
    return {"transactions": transactions}


def transaction_reply(transactions: list[dict[str, Any]], history_start: int) -> dict[str, Any]:
    """A ``transaction-reply``: the stored transactions asked for, and the serial the server's
    history was pruned up to (what is missing at or below it will not come)."""
    return {"transactions": transactions, "historyStart": history_start}


def transaction_ack(
    transaction_ids: Sequence[str], serials: Sequence[int | None]
) -> dict[str, Any]:
    """A ``transaction-ack``: the serial of each stored transaction (None: it changed nothing)."""
    return {"transactionIds": list(transaction_ids), "serials": list(serials)}


def revert_reply(serial: int, reverts: int | None) -> dict[str, Any]:
    """An ``undo-reply`` or ``redo-reply``: the new transaction's serial, and the one it reverts."""
    return {"serial": serial, "reverts": reverts}


def permissions_reply(read: bool, write: bool, role: str, read_only_tables: list[str]) -> dict:
    return {"read": read, "write": write, "role": role, "readOnlyTables": read_only_tables}


def awareness_update(update: bytes) -> dict[str, Any]:
    """An ``awareness-update``: a y-protocols awareness update, in base64."""
    return {"update": encode_patch(update)}


def error_reply(code: str, reason: str, **extra: Any) -> dict[str, Any]:
    """An ``error-reply``; ``transactionId(s)`` in ``extra`` name refused transactions."""
    return {"code": code, "reason": reason, **extra}


# --- Reading a client's content ------------------------------------------------------------------


def read_field(
    content: dict[str, Any], name: str, kind: type | tuple[type, ...], required: bool = True
) -> Any:
    if name not in content:
        if required:
            raise BadMessage(f"content.{name} is required")
        return None
    value = content[name]
    if (isinstance(value, bool) and kind is not bool) or not isinstance(value, kind):
        names = kind.__name__ if isinstance(kind, type) else "/".join(k.__name__ for k in kind)
        raise BadMessage(f"content.{name} must be {names}, got {type(value).__name__}")
    return value


def check_range(value: int, what: str, minimum: int = 0, maximum: int = MAX_SERIAL) -> int:
    """An integer a database can hold (raises BadMessage ``out-of-range``): Python's integers
    have no bound, a query's do."""
    if not minimum <= value <= maximum:
        raise BadMessage(f"{what} must be between {minimum} and {maximum}", "out-of-range")
    return value


def read_serial(content: dict[str, Any], name: str, required: bool = False) -> int | None:
    value = read_field(content, name, int, required)
    if value is not None and value < 0:
        raise BadMessage(f"content.{name} must be >= 0")
    return None if value is None else check_range(value, f"content.{name}")


def read_list(content: dict[str, Any], name: str, kind: type) -> list:
    values = read_field(content, name, list)
    if len(values) > MAX_REQUESTED:
        raise BadMessage(f"content.{name} has more than {MAX_REQUESTED} entries")
    for value in values:
        if isinstance(value, bool) or not isinstance(value, kind):
            raise BadMessage(f"content.{name} must hold {kind.__name__} values")
        if isinstance(value, int):
            check_range(value, f"content.{name}[]", minimum=-MAX_SERIAL)
    return values


def read_patch(value: Any, what: str) -> bytes:
    if not isinstance(value, str):
        raise BadMessage(f"{what} must be a base64 string")
    try:
        return decode_patch(value)
    except (binascii.Error, ValueError):
        raise BadMessage(f"{what} is not valid base64") from None
