"""The y-websocket wire format (y-protocols), as pure functions over bytes.

Message = varuint type, then a body:

* 0 sync: varuint sync type (0 step 1, 1 step 2, 2 update), then varuint-length bytes;
* 1 awareness: varuint-length awareness update;
* 2 auth: varuint 0 (permission denied), then a varstring reason;
* 3 query-awareness: nothing.

Awareness update = varuint count, then per client: varuint client id, varuint clock, varstring
JSON state ("null" when the client left).
"""

from __future__ import annotations

import enum
import json
from dataclasses import dataclass
from typing import Any


class ProtocolError(ValueError):
    """Bytes that are not a well-formed y-websocket message."""


class MessageType(enum.IntEnum):
    SYNC = 0
    AWARENESS = 1
    AUTH = 2
    QUERY_AWARENESS = 3


class SyncType(enum.IntEnum):
    STEP1 = 0
    STEP2 = 1
    UPDATE = 2


# --- lib0 encoding --------------------------------------------------------------------------


def write_var_uint(number: int) -> bytes:
    out = bytearray()
    while number > 0x7F:
        out.append(0x80 | (number & 0x7F))
        number >>= 7
    out.append(number)
    return bytes(out)


def write_var_bytes(data: bytes) -> bytes:
    return write_var_uint(len(data)) + data


def write_var_string(text: str) -> bytes:
    return write_var_bytes(text.encode())


class Reader:
    def __init__(self, data: bytes):
        self.data = data
        self.pos = 0

    def var_uint(self) -> int:
        number = shift = 0
        while True:
            if self.pos >= len(self.data):
                raise ProtocolError("message ends inside a number")
            byte = self.data[self.pos]
            self.pos += 1
            number |= (byte & 0x7F) << shift
            if byte < 0x80:
                return number
            shift += 7
            if shift > 63:
                raise ProtocolError("number too long")

    def var_bytes(self) -> bytes:
        length = self.var_uint()
        end = self.pos + length
        if end > len(self.data):
            raise ProtocolError(
                f"message announces {length} bytes but has {len(self.data) - self.pos}"
            )
        chunk = self.data[self.pos : end]
        self.pos = end
        return chunk

    def var_string(self) -> str:
        try:
            return self.var_bytes().decode()
        except UnicodeDecodeError:
            raise ProtocolError("string is not UTF-8") from None

    def done(self) -> bool:
        return self.pos >= len(self.data)


# --- Messages -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Message:
    type: MessageType
    sync_type: SyncType | None = None
    payload: bytes = b""  # state vector, update, or awareness update
    reason: str = ""  # auth


def parse(data: bytes) -> Message:
    """Decode one frame (raises ProtocolError)."""
    reader = Reader(data)
    try:
        kind = MessageType(reader.var_uint())
    except ValueError:
        raise ProtocolError("unknown message type") from None
    if kind is MessageType.SYNC:
        try:
            sync_type = SyncType(reader.var_uint())
        except ValueError:
            raise ProtocolError("unknown sync message type") from None
        return Message(kind, sync_type, reader.var_bytes())
    if kind is MessageType.AWARENESS:
        return Message(kind, payload=reader.var_bytes())
    if kind is MessageType.AUTH:
        reader.var_uint()
        return Message(kind, reason=reader.var_string())
    return Message(kind)


def sync_step1(state_vector: bytes) -> bytes:
    return bytes([MessageType.SYNC, SyncType.STEP1]) + write_var_bytes(state_vector)


def sync_step2(update: bytes) -> bytes:
    return bytes([MessageType.SYNC, SyncType.STEP2]) + write_var_bytes(update)


def sync_update(update: bytes) -> bytes:
    return bytes([MessageType.SYNC, SyncType.UPDATE]) + write_var_bytes(update)


def awareness(update: bytes) -> bytes:
    return bytes([MessageType.AWARENESS]) + write_var_bytes(update)


def permission_denied(reason: str) -> bytes:
    return bytes([MessageType.AUTH, 0]) + write_var_string(reason)


# --- Awareness ------------------------------------------------------------------------------


@dataclass(frozen=True)
class AwarenessEntry:
    client_id: int
    clock: int
    state: Any  # None: the client is gone

    @property
    def removed(self) -> bool:
        return self.state is None


def decode_awareness(update: bytes) -> list[AwarenessEntry]:
    reader = Reader(update)
    entries = []
    for _ in range(reader.var_uint()):
        client_id = reader.var_uint()
        clock = reader.var_uint()
        raw = reader.var_string()
        try:
            state = json.loads(raw)
        except json.JSONDecodeError:
            raise ProtocolError("awareness state is not JSON") from None
        entries.append(AwarenessEntry(client_id, clock, state))
    return entries


def encode_awareness(entries: list[AwarenessEntry]) -> bytes:
    out = bytearray(write_var_uint(len(entries)))
    for entry in entries:
        out += write_var_uint(entry.client_id)
        out += write_var_uint(entry.clock)
        out += write_var_string(json.dumps(entry.state, separators=(",", ":")))
    return bytes(out)
