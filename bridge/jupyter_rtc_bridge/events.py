"""jupyter-collaboration's fork events on Jupyter's event bus (``/api/events/subscribe``), which
JupyterLab's fork manager listens to: one ``create`` when a fork is made through the bridge, one
``delete`` when it is merged or discarded. The RTC server has no access to Jupyter's bus, so the
bridge emits them from the RTC server's answers, as the Jupyter user who asked.
"""

from __future__ import annotations

import json
from typing import Any

FORK_EVENTS = "https://schema.jupyter.org/jupyter_collaboration/fork/v1"

FORK_INFO_FIELDS = ("root_roomid", "synchronize", "title", "description")

# The event's shape as JupyterLab's fork manager reads it (written for this bridge).
FORK_SCHEMA: dict[str, Any] = {
    "$id": FORK_EVENTS,
    "version": "1",
    "title": "Forks of collaborative documents",
    "description": "A fork of a document was made (create), or merged or discarded (delete).",
    "type": "object",
    "required": ["fork_roomid", "fork_info", "username", "action"],
    "properties": {
        "fork_roomid": {"type": "string", "description": "The fork's room id."},
        "fork_info": {
            "type": "object",
            "description": "The forked document's room, and the fork's title and description.",
            "required": list(FORK_INFO_FIELDS),
            "properties": {
                "root_roomid": {"type": "string"},
                "synchronize": {"type": "boolean"},
                "title": {"type": "string"},
                "description": {"type": "string"},
            },
        },
        "username": {"type": "string", "description": "Who made or ended the fork."},
        "action": {"enum": ["create", "delete"]},
    },
}


def register(event_logger: Any) -> None:
    """Register the fork events' schema, unless something registered it already."""
    if FORK_EVENTS not in event_logger.schemas.schema_ids:
        event_logger.register_event_schema(FORK_SCHEMA)


def fork_event(body: bytes, username: str, action: str) -> dict[str, Any] | None:
    """The event for the RTC server's answer to a fork request (None: not an answer about one)."""
    try:
        answer = json.loads(body)
        info = answer["fork_info"]
        return {
            "fork_roomid": str(answer["fork_roomid"]),
            "fork_info": {name: info[name] for name in FORK_INFO_FIELDS},
            "username": username,
            "action": action,
        }
    except (ValueError, TypeError, KeyError):
        return None
