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


def _delete_set(data: bytes, pos: int) -> dict[int, list[tuple[int, int]]]:
    """Decode a delete set (client -> [start, end) clock ranges, merged and sorted)."""
    clients, pos = _read_var_uint(data, pos)
    ranges: dict[int, list[tuple[int, int]]] = {}
    for _ in range(clients):
        client, pos = _read_var_uint(data, pos)
        count, pos = _read_var_uint(data, pos)
        for _ in range(count):
            clock, pos = _read_var_uint(data, pos)
            length, pos = _read_var_uint(data, pos)
            ranges.setdefault(client, []).append((clock, clock + length))
    for client, spans in ranges.items():
        merged: list[tuple[int, int]] = []
        for start, end in sorted(spans):
            if merged and start <= merged[-1][1]:
                merged[-1] = (merged[-1][0], max(merged[-1][1], end))
            else:
                merged.append((start, end))
        ranges[client] = merged
    return ranges


def _covered(spans: list[tuple[int, int]], start: int, end: int) -> bool:
    return any(low <= start and end <= high for low, high in spans)


def adds_nothing(update: bytes, state_vector: bytes, deletions: bytes) -> bool:
    """True when ``update`` would not change a document whose state vector is ``state_vector``
    and whose deletions are ``deletions`` (``doc.get_update(doc.get_state())``: no structs, the
    whole delete set), judged without applying it.

    A y-websocket client answers the server's sync step 1 with everything after the server's
    state vector plus its whole delete set: a reader with nothing new sends no structs and
    deletions the document already has. Raises MalformedUpdate for bytes that are not an update.
    """
    try:
        rest = get_update(update, state_vector)  # the structs the document lacks, the deletions
        clients, pos = _read_var_uint(rest, 0)
        if clients:
            return False
        theirs = _delete_set(rest, pos)
    except MalformedUpdate:
        raise
    except Exception as error:
        raise MalformedUpdate(f"not a Yjs update: {error}") from None
    if not theirs:
        return True
    _, pos = _read_var_uint(deletions, 0)
    ours = _delete_set(deletions, pos)
    return all(
        _covered(ours.get(client, []), start, end)
        for client, spans in theirs.items()
        for start, end in spans
    )
