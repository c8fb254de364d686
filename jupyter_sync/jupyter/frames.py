"""Kernel messages on a websocket: Jupyter's JSON websocket format, decoded and encoded."""

from __future__ import annotations

import itertools
import json
import struct
from typing import Any

from jupyter_client.jsonutil import json_default

Json = dict[str, Any]
DEFAULT_TIMEOUT = 30.0
"""Seconds an HTTP request, a websocket handshake or a kernel request may take by default."""


def msg_type(message: Json) -> str | None:
    """A message's type, from the top level or its header."""
    return message.get("msg_type") or message.get("header", {}).get("msg_type")


def encode_frame(message: Json, channel: str) -> str:
    """A message built with ``Session.msg(...)`` as a text frame on ``channel``."""
    return json.dumps(dict(message, channel=channel, buffers=[]), default=json_default)


def decode_frame(frame: str | bytes) -> Json:
    """A message from a websocket frame: JSON text, or the binary form carrying buffers."""
    if isinstance(frame, str):
        return json.loads(frame)
    (count,) = struct.unpack("!I", frame[:4])
    offsets: list[int | None] = list(struct.unpack(f"!{count}I", frame[4 : 4 * (count + 1)]))
    offsets.append(None)
    parts = [frame[start:stop] for start, stop in itertools.pairwise(offsets)]
    message = json.loads(parts[0].decode())
    message["buffers"] = parts[1:]
    return message
