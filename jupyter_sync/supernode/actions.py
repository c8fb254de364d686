"""What each ``requests`` record asks the Jupyter Server for.

An action takes the record's ``params`` and returns the ``result`` (Jupyter's answer); raising
puts the error into the record. The supernode refreshes the tables after every action, so a
started kernel appears in ``kernels`` the same way one started elsewhere does.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from jupyter_sync.jupyter import JupyterClient, JupyterError, JupyterUnavailable
from jupyter_sync.schema import parent_path

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
    cwd = params.get("cwd")
    if cwd is not None and not isinstance(cwd, str):
        raise BadParams("params.cwd must be a string")
    return {"terminal": await j.create_terminal(cwd=cwd or None)}


async def _terminal_delete(j: JupyterClient, params: dict[str, Any]) -> dict[str, Any]:
    await j.delete_terminal(_need(params, "name"))
    return {}


async def _refresh(j: JupyterClient, params: dict[str, Any]) -> dict[str, Any]:
    return {}  # the supernode refreshes after every action


def _path(params: dict[str, Any], name: str = "path") -> str:
    value = params.get(name, "")
    if not isinstance(value, str):
        raise BadParams(f"params.{name} must be a string")
    return value


def _choice(params: dict[str, Any], name: str, choices: tuple[str, ...]) -> str | None:
    value = params.get(name)
    if value is not None and value not in choices:
        raise BadParams(f"params.{name} must be one of {', '.join(choices)}")
    return value


async def _contents_get(j: JupyterClient, params: dict[str, Any]) -> dict[str, Any]:
    model = await j.get_contents(
        _path(params),
        content=bool(params.get("content", True)),
        type=_choice(params, "type", ("file", "directory", "notebook")),
        format=_choice(params, "format", ("text", "base64", "json")),
    )
    return {"model": model}


async def _contents_new(j: JupyterClient, params: dict[str, Any]) -> dict[str, Any]:
    """In directory ``path``: a new untitled ``type`` (with ``ext``), or a copy of ``copy_from``."""
    if params.get("copy_from") is not None:
        model = await j.copy_contents(_path(params), _path(params, "copy_from"))
    else:
        kind = _choice(params, "type", ("file", "directory", "notebook")) or "file"
        ext = params.get("ext")
        if ext is not None and not isinstance(ext, str):
            raise BadParams("params.ext must be a string")
        model = await j.new_untitled(_path(params), kind, ext=ext)
    return {"model": model}


async def _contents_save(j: JupyterClient, params: dict[str, Any]) -> dict[str, Any]:
    model = params.get("model")
    if not isinstance(model, dict):
        raise BadParams("params.model (an object: type, format, content) is required")
    path = _path(params)
    try:
        await j.get_contents(path, content=False)
        created = False
    except JupyterError as error:
        if error.status != 404:
            raise
        created = True
    return {"model": await j.save_contents(path, model), "created": created}


async def _contents_rename(j: JupyterClient, params: dict[str, Any]) -> dict[str, Any]:
    return {"model": await j.rename_contents(_path(params), _need(params, "new_path"))}


async def _contents_delete(j: JupyterClient, params: dict[str, Any]) -> dict[str, Any]:
    await j.delete_contents(_need(params, "path"))
    return {}


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
    "contents.get": _contents_get,
    "contents.new": _contents_new,
    "contents.save": _contents_save,
    "contents.rename": _contents_rename,
    "contents.delete": _contents_delete,
}


def folders_touched(action: str, params: dict[str, Any], result: dict[str, Any]) -> list[str]:
    """Folders whose entries an action changed (or, for a listing, that it asked to watch):
    the supernode re-reads those it keeps in the contents table."""
    if action == "contents.list":
        return [params.get("path") or ""]
    if action == "contents.get":
        model = result.get("model") or {}
        return [model.get("path") or ""] if model.get("type") == "directory" else []
    paths = [params.get("path"), params.get("new_path"), (result.get("model") or {}).get("path")]
    if action == "contents.new":
        return [params.get("path") or ""]
    if action in ("contents.save", "contents.rename", "contents.delete"):
        return sorted({parent_path(path) for path in paths if isinstance(path, str)})
    return []


def failure(error: Exception) -> dict[str, Any]:
    """How a failed action is told in its record's ``result``: the HTTP status a client should
    see (Jupyter's own for its refusals, 502 when Jupyter itself failed, 503 unreachable, 504
    no answer in time, 400 bad params) and the message."""
    if isinstance(error, JupyterError):
        code = error.status if 400 <= error.status < 500 else 502
        return {"status": code, "message": error.message}
    if isinstance(error, JupyterUnavailable):
        return {"status": 503, "message": str(error)}
    if isinstance(error, TimeoutError):
        return {"status": 504, "message": str(error) or "no answer in time"}
    if isinstance(error, BadParams):
        return {"status": 400, "message": str(error)}
    return {"status": 502, "message": str(error) or type(error).__name__}
