"""What the browser is told when the RTC server closes a room (or cannot be reached).

JupyterLab's docprovider gives up on 4400/4404/4500, shows a dialog and stops syncing on 1003
(with a JSON reason), and lets y-websocket reconnect with backoff on anything else. The RTC server
closes with its own 44xx codes (daphne cannot send 1003) and says why in a y-websocket
"permission denied" message just before; the bridge turns that into what the docprovider reads.
"""

from __future__ import annotations

import json

GOING_AWAY = 1001
SESSION_CLOSE = 1003  # the docprovider's "session expired" dialog
GONE = 1011  # the RTC server went away mid-connection: reconnect
TRY_AGAIN = 1013  # the RTC server cannot be reached now: reconnect later
MAX_REASON_BYTES = 123  # RFC 6455: a close frame's reason fits in 123 bytes

PASSED_THROUGH = {4400, 4404, 4429, 4500}
RELOAD_DIALOG = {4401, 4403, 4409}
UNSENDABLE = {1005, 1006, 1015}  # reserved: a peer never sends these

DEFAULT_REASONS = {
    4401: "The collaboration server refused the bridge.",
    4403: "You may not open this document.",
    4409: "This document was replaced; reload it.",
}

MESSAGE_AUTH = 2  # y-websocket's auth message (and jupyter-collaboration's raw message)
PERMISSION_DENIED = 0


def _read_varuint(data: bytes, offset: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        if offset >= len(data) or shift > 35:
            raise ValueError("truncated varuint")
        byte = data[offset]
        offset += 1
        value |= (byte & 0x7F) << shift
        if byte < 0x80:
            return value, offset
        shift += 7


def denied_reason(frame: bytes) -> str | None:
    """The reason of a y-websocket "permission denied" frame; None for any other frame."""
    if len(frame) < 3 or frame[0] != MESSAGE_AUTH or frame[1] != PERMISSION_DENIED:
        return None
    try:
        length, start = _read_varuint(frame, 2)
        if start + length != len(frame):
            return None
        return frame[start:].decode("utf-8")
    except (ValueError, UnicodeDecodeError):
        return None


def readable(reason: str) -> str:
    """The server's reason in words a person reads: ``"forbidden: no access"`` is "No access"."""
    slug, sep, rest = reason.partition(": ")
    if sep and slug and all(part.isalnum() for part in slug.split("-")):
        reason = rest
    reason = reason.strip()
    return reason[:1].upper() + reason[1:]


def _clip(text: str, budget: int) -> str:
    """``text`` cut to ``budget`` UTF-8 bytes once JSON-encoded (with an ellipsis if cut)."""
    if len(json.dumps(text, ensure_ascii=False).encode()) - 2 <= budget:
        return text
    while text and len(json.dumps(text + "...", ensure_ascii=False).encode()) - 2 > budget:
        text = text[:-1]
    return text + "..."


def session_payload(*, reloadable: bool, error_reason: str) -> str:
    """The docprovider's 1003 reason: ``{"reason": "unknown_session", ...}``, within 123 bytes."""
    empty = {"reason": "unknown_session", "reloadable": reloadable, "errorReason": ""}
    budget = MAX_REASON_BYTES - len(json.dumps(empty, separators=(",", ":")).encode())
    payload = {**empty, "errorReason": _clip(error_reason, budget)}
    return json.dumps(payload, ensure_ascii=False, separators=(",", ":"))


def sendable(code: int) -> bool:
    """Whether a peer may send ``code`` in a close frame (RFC 6455, section 7.4)."""
    return 1000 <= code <= 1003 or 1007 <= code <= 1014 or 3000 <= code <= 4999


def browser_close(code: int | None, reason: str | None, denied: str | None) -> tuple[int, str]:
    """The (code, reason) to close the browser's leg with, after the RTC server closed with
    ``code``/``reason`` (None: the connection dropped) having last denied with ``denied``."""
    said = (reason or "").strip() or (denied or "").strip()
    if code is None or code in UNSENDABLE:
        return GONE, "The collaboration server went away; reconnecting."
    if code == GOING_AWAY:  # the RTC server is shutting down (a restart): try again later
        return TRY_AGAIN, "The collaboration server is restarting; reconnecting."
    if code in RELOAD_DIALOG:
        text = readable(said) if said else DEFAULT_REASONS[code]
        reloadable = code == 4409 or said.lower().startswith("read-only")
        return SESSION_CLOSE, session_payload(reloadable=reloadable, error_reason=text)
    if code in PASSED_THROUGH or sendable(code):
        return code, _clip(reason or "", MAX_REASON_BYTES)
    return GONE, "The collaboration server closed the room."
