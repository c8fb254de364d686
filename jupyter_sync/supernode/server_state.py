"""The Jupyter Server's state as the jupyter tables hold it: refreshed from the server
(``reconcile_table``: only what differs is written), folders someone watches, and the upkeep
that keeps the datastore small (finished records expire, old history is pruned)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from channels.db import database_sync_to_async
from django.db import DatabaseError
from pycrdt import Map

from jupyter_sync.conf import jupyter_settings
from jupyter_sync.jupyter import JupyterClient, JupyterError
from jupyter_sync.records import do_mark_server_unreachable
from jupyter_sync.schema import (
    EXECUTION_DONE,
    JUPYTER,
    JUPYTER_DATASTORE,
    content_fields,
    content_key,
    parent_key,
)
from jupyter_sync.supernode.actions import folders_touched
from jupyter_sync.supernode.live_records import LiveRecords
from jupyter_sync.supernode.reconcile import reconcile_table
from tables import pruning
from tables.models import Datastore

logger = logging.getLogger(__name__)

TABLES = JUPYTER.tables


def expired_records(table: Map, cutoff: datetime) -> list[str]:
    """Ids of the finished records of ``table`` that finished before ``cutoff``."""
    expired = []
    for record_id, record in table.items():
        if not isinstance(record, Map) or record.get("status") not in EXECUTION_DONE:
            continue
        try:
            finished_at = datetime.fromisoformat(str(record.get("finished_at")))
        except ValueError:
            continue  # not written by the supernode: left alone
        if finished_at.tzinfo is not None and finished_at < cutoff:
            expired.append(record_id)
    return expired


def server_state_records(
    status: dict, kernelspecs: dict, kernels: list, sessions: list, terminals: list | None
) -> dict[str, dict[str, dict[str, Any]]]:
    """The Jupyter Server's answers, shaped as the jupyter tables' records."""
    specs = kernelspecs.get("kernelspecs", {})
    return {
        "status": {
            "server": {
                "started": status.get("started"),
                "last_activity": status.get("last_activity"),
                "connections": status.get("connections"),
                "kernels": status.get("kernels"),
                "connected": True,
                "default_kernelspec": kernelspecs.get("default"),
            }
        },
        "kernelspecs": {
            name: {
                "name": name,
                "display_name": entry.get("spec", {}).get("display_name"),
                "language": entry.get("spec", {}).get("language"),
                "spec": entry.get("spec", {}),
                "resources": entry.get("resources", {}),
            }
            for name, entry in specs.items()
        },
        "kernels": {
            kernel["id"]: {
                "name": kernel.get("name"),
                "last_activity": kernel.get("last_activity"),
                "execution_state": kernel.get("execution_state"),
                "connections": kernel.get("connections"),
            }
            for kernel in kernels
        },
        "sessions": {
            session["id"]: {
                "path": session.get("path"),
                "name": session.get("name"),
                "type": session.get("type"),
                "kernel_id": (session.get("kernel") or {}).get("id"),
                "kernel_name": (session.get("kernel") or {}).get("name"),
            }
            for session in sessions
        },
        "terminals": {
            terminal["name"]: {
                "name": terminal["name"],
                "last_activity": terminal.get("last_activity"),
            }
            for terminal in (terminals or [])
        },
    }


def directory_records(model: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """A directory model of the contents API as ``contents`` records: itself and its entries."""

    def record(entry: dict[str, Any]) -> dict[str, Any]:
        return content_fields(entry, None if entry.get("type") != "directory" else "json")

    entries = model.get("content") or []
    records = {content_key(entry["path"]): record(entry) for entry in entries}
    records[content_key(model.get("path", ""))] = {
        **record(model),
        "children": sorted(entry["name"] for entry in entries),
    }
    return records


class ServerState:
    """Keeps the server-state tables (status, kernelspecs, kernels, sessions, terminals,
    contents) equal to the Jupyter Server; ``on_kernels`` hears the kernels it runs, and the
    event loop's time at which it was asked."""

    def __init__(
        self,
        jupyter: JupyterClient,
        records: LiveRecords,
        on_kernels: Callable[[set[str], float], None],
    ):
        self.jupyter = jupyter
        self.records = records
        self.on_kernels = on_kernels

    async def refresh(self) -> None:
        """Make the server-state tables equal to what the Jupyter Server says now."""
        j = self.jupyter
        asked = asyncio.get_running_loop().time()
        status, kernelspecs, kernels, sessions = await asyncio.gather(
            j.status(), j.kernelspecs(), j.kernels(), j.sessions()
        )
        try:
            terminals = await j.terminals()
        except JupyterError as error:
            if error.status != 404:
                raise
            terminals = None  # no terminals API on this server
        state = server_state_records(status, kernelspecs, kernels, sessions, terminals)

        def apply() -> None:
            for name, records in state.items():
                reconcile_table(self.records.table(name), TABLES[name], records)

        self.records.edit(apply)
        self.on_kernels(set(state["kernels"]), asked)
        for record in list(self.records.table("contents").values()):
            if isinstance(record, Map) and record.get("type") == "directory":
                await self.sync_directory(record.get("path") or "")

    async def sync_directory(self, path: str) -> None:
        """Keep a folder someone asked for (and its entries) in the contents table."""
        contents = self.records.table("contents")
        try:
            model = await self.jupyter.get_contents(path, content=True)
        except JupyterError as error:
            if error.status != 404:
                raise
            self.records.edit(lambda: contents.pop(content_key(path), None))
            return
        records = directory_records(model)
        gone = [
            key
            for key, record in contents.items()
            if key not in records
            and isinstance(record, Map)
            and parent_key(record.get("path") or "") == content_key(path)
            and key != content_key(path)
        ]

        def apply() -> None:
            reconcile_table(contents, TABLES["contents"], records, prune=False)
            for key in gone:
                del contents[key]

        self.records.edit(apply)

    async def sync_folders(self, action: str, params: dict, result: dict) -> None:
        """The folders an action touched, re-read if watched (a listing watches its folder)."""
        for folder in folders_touched(action, params, result):
            watched = isinstance(self.records.table("contents").get(content_key(folder)), Map)
            if watched or action in ("contents.list", "contents.get"):
                await self.sync_directory(folder)

    def mark_unreachable(self) -> None:
        do_mark_server_unreachable(self.records)

    def prune_finished(self) -> int:
        """Drop finished requests and executions older than ``RECORD_RETENTION``.

        Every REST action and execution leaves a record; without this the jupyter datastore,
        which every client loads, would only grow. The history keeps their patches.
        """
        retention = jupyter_settings.RECORD_RETENTION
        if not retention:
            return 0
        cutoff = datetime.now(UTC) - timedelta(seconds=retention)
        expired = {
            name: expired_records(self.records.table(name), cutoff)
            for name in ("requests", "executions")
        }
        count = sum(len(ids) for ids in expired.values())
        if count:

            def apply() -> None:
                for name, ids in expired.items():
                    table = self.records.table(name)
                    for record_id in ids:
                        del table[record_id]

            self.records.edit(apply)
            logger.info("removed %d finished records older than %ss", count, retention)
        return count


async def prune_server_state_history() -> pruning.PruneResult | None:
    """Prune the jupyter datastore's patches older than ``SERVER_STATE_HISTORY``.

    Server state changes all day (every execution flips a kernel's status twice), so its
    history would grow without bound; nobody travels weeks back in it. Documents keep theirs.
    """
    retention = jupyter_settings.SERVER_STATE_HISTORY
    if not retention:
        return None
    cutoff = datetime.now(UTC) - timedelta(seconds=retention)

    def prune() -> pruning.PruneResult:
        datastore = Datastore.objects.get(name=JUPYTER_DATASTORE)
        return pruning.prune_history(datastore, older_than=cutoff, keep=pruning.DEFAULT_KEEP)

    try:
        pruned = await database_sync_to_async(prune)()
    except DatabaseError as error:
        logger.warning("could not prune the jupyter datastore's history: %s", error)
        return None
    if pruned.transactions:
        logger.info(
            "pruned %d patches (%d bytes) older than %ss; history starts at serial %d",
            pruned.transactions,
            pruned.bytes,
            retention,
            pruned.history_start,
        )
    return pruned


__all__ = [
    "ServerState",
    "directory_records",
    "expired_records",
    "prune_server_state_history",
    "server_state_records",
]
