"""Pure helpers over Yjs bytes."""

from __future__ import annotations

from pycrdt import get_update


class MalformedUpdate(ValueError):
    """The bytes are not a Yjs v1 update."""

    code = "malformed-update"


def _read_var_uint(data: bytes, pos: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        if pos >= len(data):
            raise MalformedUpdate("truncated variable-length integer")
        byte = data[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        if byte < 0x80:
            return value, pos
        shift += 7
        if shift > 63:
            raise MalformedUpdate("variable-length integer too long")


def decode_state_vector(data: bytes) -> dict[int, int]:
    """Decode a Yjs state vector (client id -> next clock)."""
    count, pos = _read_var_uint(data, 0)
    vector = {}
    for _ in range(count):
        client, pos = _read_var_uint(data, pos)
        clock, pos = _read_var_uint(data, pos)
        vector[client] = clock
    return vector


def unintegrated(update: bytes, state_vector: bytes) -> bool:
    """True when ``update`` has structs beyond ``state_vector``.

    Checked after applying ``update`` to a document whose state vector is now ``state_vector``:
    anything left over could not be integrated (it builds on changes the document lacks).
    """
    try:
        rest = get_update(update, state_vector)
    except Exception as error:
        raise MalformedUpdate(f"not a Yjs update: {error}") from None
    clients, _ = _read_var_uint(rest, 0)
    return clients > 0
