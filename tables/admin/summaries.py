"""Readable lines for ``Transaction.summary``, the changes a transaction made."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

# A one-line transaction summary shows this many changes, then "(+N more)".
SUMMARY_CHANGES_SHOWN = 3
VALUE_PREVIEW_CHARS = 60


def _preview(value: Any) -> str:
    text = repr(value)
    if len(text) > VALUE_PREVIEW_CHARS:
        return f"{text[:VALUE_PREVIEW_CHARS]}…"
    return text


def _location(root: str, path: Sequence[Any]) -> str:
    """``items['a'].title`` for root ``items`` and path ``['a', 'title']``."""
    where = root
    for position, part in enumerate(path):
        if position > 0 and isinstance(part, str) and part.isidentifier():
            where += f".{part}"
        else:
            where += f"[{part!r}]"
    return where


def _map_line(change: dict[str, Any]) -> str:
    root, path, key = change.get("root", "?"), change.get("path") or [], change.get("key")
    action, old, new = change.get("action"), change.get("old"), change.get("new")
    if not path:
        verb = {"add": "added", "delete": "deleted", "update": "replaced"}.get(action, action)
        return f"{root}: {verb} {key!r}"
    where = _location(root, [*path, key])
    if action == "add":
        return f"{where}: set to {_preview(new)}"
    if action == "delete":
        return f"{where}: deleted (was {_preview(old)})"
    return f"{where}: {_preview(old)} → {_preview(new)}"


def _span_line(change: dict[str, Any]) -> str:
    where = _location(change.get("root", "?"), change.get("path") or [])
    unit = "char" if change.get("kind") == "text" else "item"
    parts = [
        f"inserted {_preview(value)} at {index}" for index, value in change.get("inserted", [])
    ]
    parts += [
        f"deleted {count} {unit}{'s' if count != 1 else ''} at {index}"
        for index, count in change.get("deleted", [])
    ]
    return f"{where}: {', '.join(parts) or 'changed'}"


def change_line(change: Any) -> str:
    """One readable line for one entry of ``Transaction.summary``."""
    if not isinstance(change, dict):
        return str(change)
    return _map_line(change) if change.get("kind") == "map" else _span_line(change)


def summary_lines(summary: Any) -> list[str]:
    return [change_line(change) for change in summary or []]


def summary_one_line(summary: Any) -> str:
    lines = summary_lines(summary)
    shown = "; ".join(lines[:SUMMARY_CHANGES_SHOWN])
    hidden = len(lines) - SUMMARY_CHANGES_SHOWN
    return f"{shown} (+{hidden} more)" if hidden > 0 else shown or "—"
