"""Yjs updates written byte by byte, for what no well-behaved client would send."""

from __future__ import annotations


def var(n: int) -> bytes:
    """lib0's variable-length unsigned integer."""
    out = bytearray()
    while True:
        byte, n = n & 0x7F, n >> 7
        out.append(byte | 0x80 if n else byte)
        if not n:
            return bytes(out)


def var_string(text: str) -> bytes:
    data = text.encode()
    return var(len(data)) + data


def any_update(value: bytes) -> bytes:
    """One v1 update: client 1 sets root map "m"'s key "k" to one lib0 ``Any`` value (its
    encoded bytes)."""
    info = 8 | 0x20  # ContentAny, with a parent key
    item = bytes([info]) + var(1) + var_string("m") + var_string("k") + var(1) + value
    return var(1) + var(1) + var(1) + var(0) + item + var(0)


def nested_arrays(depth: int) -> bytes:
    """A lib0 ``Any``: ``depth`` arrays of one element each, around a null."""
    return (b"\x75" + var(1)) * depth + b"\x7e"
