"""Consumers' commits run on the process's commit threads (``tables.commit.CommitThreads``):
never behind the thread every other database call of the process shares, and, on PostgreSQL,
two datastores' commits side by side."""

from __future__ import annotations

import asyncio
import threading

import pytest
from asgiref.sync import sync_to_async as to_thread
from channels.db import database_sync_to_async as sync_to_async
from django.db import connection, transaction
from pycrdt import Doc

from tables import service
from tables.commit import acommit, commit_threads
from tables.models import Datastore, Transaction
from tables.service import Proposal, Status
from tests.support.factories import new_item
from tests.support.waiting import aeventually

pytestmark = pytest.mark.django_db(transaction=True)

WAIT = 20.0


def stored_txids(datastore: Datastore) -> list[str]:
    return list(
        Transaction.objects.filter(datastore=datastore)
        .order_by("serial")
        .values_list("txid", flat=True)
    )


async def test_a_commit_does_not_wait_for_the_shared_sync_thread():
    """Django's sync thread held by another call (a slow query, a REST view's work): a
    consumer's write is stored and answered all the same."""
    datastore = await sync_to_async(service.create_datastore)("busy", "todo")
    release = threading.Event()
    holding = asyncio.ensure_future(to_thread(release.wait, thread_sensitive=True)())
    try:
        outcome = await asyncio.wait_for(
            acommit(datastore, Proposal(new_item(Doc(), "a"), txid="a")), WAIT
        )
        assert outcome.status is Status.STORED and outcome.serial == 1
        assert not holding.done()  # the sync thread was busy all along
    finally:
        release.set()
        await holding
    assert await sync_to_async(stored_txids)(datastore) == ["a"]


def hold_the_row(datastore: Datastore, held: threading.Event, release: threading.Event) -> None:
    """Lock the datastore's row in a transaction of another connection until released: its
    next commit waits for the lock."""
    try:
        with transaction.atomic():
            Datastore.objects.select_for_update().get(pk=datastore.pk)
            held.set()
            release.wait(WAIT)
    finally:
        connection.close()


def a_commit_waits_for_a_lock() -> bool:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*) FROM pg_stat_activity "
            "WHERE datname = current_database() AND wait_event_type = 'Lock'"
        )
        return cursor.fetchone()[0] > 0


async def test_two_datastores_commit_side_by_side_on_postgresql(postgres):
    assert commit_threads.size() > 1
    slow = await sync_to_async(service.create_datastore)("slow", "todo")
    other = await sync_to_async(service.create_datastore)("other", "todo")
    held, release = threading.Event(), threading.Event()
    holder = threading.Thread(target=hold_the_row, args=(slow, held, release))
    holder.start()
    try:
        assert await asyncio.to_thread(held.wait, WAIT)
        waiting = asyncio.ensure_future(acommit(slow, Proposal(new_item(Doc(), "s"), txid="s")))
        # Its commit is under way on one commit thread, waiting for the row lock...
        await aeventually(
            a_commit_waits_for_a_lock, WAIT, "a commit waiting for the lock", off_loop=True
        )
        # ... and the other datastore's goes through on another.
        outcome = await asyncio.wait_for(
            acommit(other, Proposal(new_item(Doc(), "o"), txid="o")), WAIT
        )
        assert outcome.status is Status.STORED
        assert not waiting.done()
    finally:
        release.set()
        await asyncio.to_thread(holder.join, WAIT)
    assert (await asyncio.wait_for(waiting, WAIT)).status is Status.STORED
    assert await sync_to_async(stored_txids)(slow) == ["s"]
    assert await sync_to_async(stored_txids)(other) == ["o"]
