"""The ``X-Jupyter-User`` header: which Jupyter user the bridge acts for on the RTC server.

The identity comes from Jupyter's own authentication (``handler.current_user``), never from
anything the browser sends, so one Jupyter user cannot speak for another through the bridge.
"""

from __future__ import annotations

import json
import unicodedata
from typing import Any

HEADER = "X-Jupyter-User"
MAX_HEADER_BYTES = 4096
MAX_USERNAME = 255  # what the RTC server accepts in one field
FIELD_LIMITS = {"name": 255, "display_name": 255, "initials": 16, "color": 128}


class IdentityTooLarge(ValueError):
    """The username alone does not fit in the header."""


def _field(user: Any, name: str) -> Any:
    if isinstance(user, dict):
        return user.get(name)
    return getattr(user, name, None)


def _text(value: Any, limit: int) -> str | None:
    """A display field: control characters dropped (the RTC server refuses them), clipped."""
    if value is None:
        return None
    text = "".join(char for char in str(value) if unicodedata.category(char) != "Cc")
    return text[:limit] if text else None


def identity_of(user: Any) -> dict[str, str | None]:
    """The contract's identity fields of a Jupyter user (a ``jupyter_server.auth.User``, or the
    dict or string older identity providers give)."""
    if isinstance(user, str):
        user = {"username": user}
    username = str(_field(user, "username") or "")
    if not username:
        raise IdentityTooLarge("the Jupyter user has no username")
    if len(username) > MAX_USERNAME:
        raise IdentityTooLarge(f"the Jupyter username is longer than {MAX_USERNAME} characters")
    name = _text(_field(user, "name"), FIELD_LIMITS["name"]) or username[: FIELD_LIMITS["name"]]
    display_name = _text(_field(user, "display_name"), FIELD_LIMITS["display_name"]) or name
    return {
        "username": username,
        "name": name,
        "display_name": display_name,
        "initials": _text(_field(user, "initials"), FIELD_LIMITS["initials"]),
        "color": _text(_field(user, "color"), FIELD_LIMITS["color"]),
    }


def identity_header(user: Any) -> str:
    """The header's value: ASCII JSON of at most 4 KiB."""
    value = json.dumps(identity_of(user), ensure_ascii=True, separators=(",", ":"))
    if len(value) > MAX_HEADER_BYTES:
        raise IdentityTooLarge("the Jupyter username is too long to pass on")
    return value
