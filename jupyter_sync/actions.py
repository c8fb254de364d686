"""What each ``requests`` record asks the Jupyter Server for.

An action takes the record's ``params`` and returns the ``result`` (Jupyter's answer); raising
puts the error into the record. The supernode refreshes the tables after every action, so a
started kernel appears in ``kernels`` the same way one started elsewhere does.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from jupyter_sync.jupyter import JupyterClient

Action = Callable[[JupyterClient, dict[str, Any]], Awaitable[dict[str, Any]]]


class BadParams(ValueError):
    """The record's params do not say what the action needs."""


def _need(params: dict[str, Any], name: str) -> str:
    value = params.get(name)
    if not isinstance(value, str) or not value:
        raise BadParams(f"params.{name} (a non-empty string) is required")
    return value


async def _kernel_start(j: JupyterClient, params: dict[str, Any]) -> dict[str, Any]:
    return {"kernel": await j.start_kernel(params.get("name"), params.get("path"))}


async def _kernel_shutdown(j: JupyterClient, params: dict[str, Any]) -> dict[str, Any]:
    await j.shutdown_kernel(_need(params, "kernel_id"))
    return {}


async def _kernel_interrupt(j: JupyterClient, params: dict[str, Any]) -> dict[str, Any]:
    await j.interrupt_kernel(_need(params, "kernel_id"))
    return {}


async def _kernel_restart(j: JupyterClient, params: dict[str, Any]) -> dict[str, Any]:
    return {"kernel": await j.restart_kernel(_need(params, "kernel_id"))}


async def _session_create(j: JupyterClient, params: dict[str, Any]) -> dict[str, Any]:
    session = await j.create_session(
        _need(params, "path"),
        name=params.get("name"),
        type=params.get("type") or "notebook",
        kernel_name=params.get("kernel_name"),
        kernel_id=params.get("kernel_id"),
    )
    return {"session": session}


async def _session_update(j: JupyterClient, params: dict[str, Any]) -> dict[str, Any]:
    fields = {k: v for k, v in params.items() if k in ("path", "name", "type", "kernel")}
    return {"session": await j.update_session(_need(params, "session_id"), **fields)}


async def _session_delete(j: JupyterClient, params: dict[str, Any]) -> dict[str, Any]:
    await j.delete_session(_need(params, "session_id"))
    return {}


async def _terminal_create(j: JupyterClient, params: dict[str, Any]) -> dict[str, Any]:
    return {"terminal": await j.create_terminal()}


async def _terminal_delete(j: JupyterClient, params: dict[str, Any]) -> dict[str, Any]:
    await j.delete_terminal(_need(params, "name"))
    return {}


async def _refresh(j: JupyterClient, params: dict[str, Any]) -> dict[str, Any]:
    return {}  # the supernode refreshes after every action


async def _contents_list(j: JupyterClient, params: dict[str, Any]) -> dict[str, Any]:
    # Listing it once makes the folder watched: the supernode keeps it in the contents table.
    path = params.get("path", "")
    if not isinstance(path, str):
        raise BadParams("params.path must be a string")
    model = await j.get_contents(path, content=True)
    if model.get("type") != "directory":
        raise BadParams(f"{path!r} is not a directory")
    return {"path": model.get("path", ""), "entries": len(model.get("content") or [])}


ACTIONS: dict[str, Action] = {
    "refresh": _refresh,
    "kernel.start": _kernel_start,
    "kernel.shutdown": _kernel_shutdown,
    "kernel.interrupt": _kernel_interrupt,
    "kernel.restart": _kernel_restart,
    "session.create": _session_create,
    "session.update": _session_update,
    "session.delete": _session_delete,
    "terminal.create": _terminal_create,
    "terminal.delete": _terminal_delete,
    "contents.list": _contents_list,
}


def directory_records(model: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """A directory model of the contents API as ``contents`` records: itself and its entries."""

    def record(entry: dict[str, Any]) -> dict[str, Any]:
        return {
            "name": entry.get("name"),
            "path": entry.get("path"),
            "type": entry.get("type"),
            "created": entry.get("created"),
            "last_modified": entry.get("last_modified"),
            "mimetype": entry.get("mimetype"),
            "format": None if entry.get("type") != "directory" else "json",
            "size": entry.get("size"),
            "writable": entry.get("writable"),
        }

    entries = model.get("content") or []
    records = {content_key(entry["path"]): record(entry) for entry in entries}
    records[content_key(model.get("path", ""))] = {
        **record(model),
        "children": sorted(entry["name"] for entry in entries),
    }
    return records


def content_key(path: str) -> str:
    """Record id of a path in the contents table ("/" for the root, whose path is "")."""
    return path or "/"


def parent_key(path: str) -> str:
    return content_key(path.rpartition("/")[0])
