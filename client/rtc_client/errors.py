"""What the client raises, and the record of a local transaction the server refused."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


class RTCError(Exception):
    """The server answered with an ``error-reply`` (or closed the connection for good)."""

    def __init__(self, code: str, reason: str = "", content: dict[str, Any] | None = None):
        super().__init__(f"{code}: {reason}" if reason else code)
        self.code = code
        self.reason = reason
        self.content = content or {}

    @classmethod
    def from_reply(cls, content: dict[str, Any]) -> RTCError:
        """The error an ``error-reply``'s content describes."""
        return cls(content.get("code", "error"), content.get("reason", ""), content)


class ConnectionLost(ConnectionError):
    """The connection closed before the reply to a request arrived (it may or may not have run)."""


class ClientClosed(RuntimeError):
    """The client was closed (or stopped after a permanent error) while waiting."""


@dataclass(frozen=True)
class RejectedTransaction:
    """A local transaction the server refused; the document was rebuilt without it."""

    transaction_id: str
    code: str
    reason: str
    patch: bytes
