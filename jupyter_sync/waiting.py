"""Waiting, asynchronously, until a record of a datastore satisfies a condition.

``wait_for_record`` wakes on every commit of the datastore that reaches this worker: commits made
here (``transactions_committed``) and commits made by other workers, which the relay's hub
receives over the channel layer once it has a room for the datastore. The waiter joins that room
as a silent member, so waiting costs no thread and no polling while commits flow. A periodic
re-read from the database is the fallback (a commit whose broadcast was lost, a channel layer
that does not cross processes), and everything happens under one monotonic deadline.

Used by the REST actions (a request written for the supernode, answered when it is done) and
usable for any "write a record, wait for its result" flow.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import Callable
from typing import Any

from channels.db import database_sync_to_async
from pycrdt import Map

from relay.hub import Batch, Room, get_hub
from tables.loaded import caught_up
from tables.models import Datastore
from tables.schema import jsonable

Record = dict[str, Any] | None
POLL_INTERVAL = 1.0  # seconds between fallback re-reads from the database


class WaitTimeout(TimeoutError):
    """The deadline passed first; ``record`` is the record as last read (None: absent)."""

    def __init__(self, message: str, record: Record):
        super().__init__(message)
        self.record = record


class _Waiter:
    """A room member that only notices that something was committed."""

    def __init__(self) -> None:
        self.member_id = f"wait-{uuid.uuid4().hex}"
        self.serial: int | None = None
        self.woken = asyncio.Event()

    async def send_transactions(self, batch: Batch) -> None:
        self.woken.set()

    async def send_awareness(self, update: bytes) -> None:
        pass


def read_record(datastore: Datastore, table: str, record_id: str, *, reread: bool = True) -> Record:
    """One record as JSON from this process's loaded document, caught up with the database
    (with ``reread=False``: with ``datastore`` as the caller read it, ``caught_up``)."""
    with caught_up(datastore, reread=reread) as loaded:
        record = loaded.doc.get(table, type=Map).get(record_id)
        return jsonable(record) if isinstance(record, Map) else None


_read = database_sync_to_async(read_record)


@database_sync_to_async
def _datastore(name: str) -> Datastore:
    return Datastore.objects.get(name=name)


async def _join(datastore: Datastore, waiter: _Waiter) -> Room:
    hub = get_hub()
    while True:
        room = await hub.room_for(datastore)

        async def sync(room: Room = room) -> int:
            return room.serial

        await room.admit(waiter, sync)
        if hub.rooms.get(datastore.pk) is room:
            return room
        # The room was dropped (its last member left) between finding and joining it.
        room.leave(waiter)


async def wait_for_record(
    datastore_name: str,
    table: str,
    record_id: str,
    done: Callable[[Record], bool],
    timeout: float,
    *,
    poll_interval: float = POLL_INTERVAL,
) -> Record:
    """The record (as JSON) once ``done(record)`` holds; ``record`` is None while absent.

    Checked right away, after every commit of the datastore that reaches this worker, and every
    ``poll_interval`` seconds. Raises ``WaitTimeout`` (with the last record read) after
    ``timeout`` seconds, and ``Datastore.DoesNotExist`` for an unknown datastore.
    """
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout  # the loop's clock is monotonic
    datastore = await _datastore(datastore_name)
    waiter = _Waiter()
    # Joined before the first read: a commit between the read and the wait still wakes us.
    room = await _join(datastore, waiter)
    try:
        while True:
            waiter.woken.clear()
            record = await _read(datastore, table, record_id)
            if done(record):
                return record
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise WaitTimeout(
                    f"{datastore_name}/{table}/{record_id} not done within {timeout}s", record
                )
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(min(remaining, poll_interval)):
                    await waiter.woken.wait()
    finally:
        await get_hub().leave(room, waiter)


__all__ = ["POLL_INTERVAL", "WaitTimeout", "read_record", "wait_for_record"]
