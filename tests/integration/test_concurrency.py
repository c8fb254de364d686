"""Concurrent writers: group commit, threads, and separate processes sharing the database."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import threading

import pytest
from channels.db import database_sync_to_async as sync_to_async
from django.db import connection
from pycrdt import Doc, Map

from tables import history, service
from tables.commit import acommit, commit, queue_for
from tables.models import Transaction
from tables.service import Proposal, Status
from tests.support import ROOT
from tests.support.factories import new_item
from tests.support.liveserver import database_url

pytestmark = pytest.mark.django_db(transaction=True)


def assert_gapless(datastore, expected: int) -> None:
    serials = list(
        Transaction.objects.filter(datastore=datastore)
        .order_by("serial")
        .values_list("serial", flat=True)
    )
    assert serials == list(range(1, expected + 1))
    datastore.refresh_from_db()
    assert datastore.last_serial == expected


def assert_converged(datastore, keys: set[str]) -> None:
    state, _ = service.live_python(datastore)
    assert set(state["items"]) == keys
    replayed = history.replay(datastore, datastore.last_serial).get("items", type=Map).to_py()
    assert replayed == state["items"]


async def test_group_commit_batches_concurrent_async_writers():
    datastore = await sync_to_async(service.create_datastore)("g", "todo")
    docs = [Doc() for _ in range(40)]

    async def writer(i: int):
        outcome = await acommit(datastore, Proposal(new_item(docs[i], f"k{i}"), txid=f"t{i}"))
        # Acknowledged only once committed: the row is there when the outcome arrives.
        stored = await sync_to_async(
            Transaction.objects.filter(datastore=datastore, txid=f"t{i}").exists
        )()
        return outcome, stored

    results = await asyncio.gather(*(writer(i) for i in range(40)))
    assert all(o.status is Status.STORED and stored for o, stored in results)
    assert sorted(o.serial for o, _ in results) == list(range(1, 41))
    assert queue_for(datastore).batches < 20  # writes that arrived together shared commits
    await sync_to_async(assert_gapless)(datastore, 40)
    await sync_to_async(assert_converged)(datastore, {f"k{i}" for i in range(40)})


def test_threads_writing_the_same_datastore():
    datastore = service.create_datastore("t", "todo")
    errors: list[BaseException] = []

    def writer(prefix: str):
        try:
            doc = Doc()
            for i in range(15):
                outcome = commit(datastore, Proposal(new_item(doc, f"{prefix}{i}")))
                assert outcome.status is Status.STORED, outcome
        except BaseException as error:  # reported below
            errors.append(error)
        finally:
            connection.close()

    threads = [threading.Thread(target=writer, args=(p,)) for p in "abcd"]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not errors
    assert_gapless(datastore, 60)
    assert_converged(datastore, {f"{p}{i}" for p in "abcd" for i in range(15)})


def run_writer_processes(datastore, prefixes: str, count: int) -> None:
    processes = [
        subprocess.Popen(
            [
                sys.executable,
                "-m",
                "tests.support.writer_process",
                database_url(),
                datastore.name,
                p,
                str(count),
            ],
            cwd=ROOT,
            stderr=subprocess.PIPE,
            text=True,
        )
        for p in prefixes
    ]
    for process in processes:
        _, stderr = process.communicate(timeout=120)
        assert process.returncode == 0, stderr


def test_processes_writing_the_same_datastore():
    """Each process holds its own loaded doc; serials still come out unique and gapless."""
    datastore = service.create_datastore("p", "todo")
    run_writer_processes(datastore, "xyz", 20)
    assert_gapless(datastore, 60)
    assert_converged(datastore, {f"{p}{i}" for p in "xyz" for i in range(20)})


def test_processes_on_postgresql(postgres):
    datastore = service.create_datastore("pg", "todo")
    run_writer_processes(datastore, "abcd", 25)
    assert_gapless(datastore, 100)
    assert_converged(datastore, {f"{p}{i}" for p in "abcd" for i in range(25)})


def test_a_failing_batch_reaches_its_writers_and_the_queue_recovers():
    """An error inside a batch's commit reaches its writer, and the queue takes the next write;
    a datastore deleted under the writer's feet (a fork merged meanwhile) is a refusal."""
    datastore = service.create_datastore("gone", "todo")
    doc = Doc()
    assert commit(datastore, Proposal(new_item(doc, "a"))).status is Status.STORED
    queue = queue_for(datastore)

    def broken(proposal: Proposal, analysis: object) -> str | None:
        raise RuntimeError("the policy failed")

    with pytest.raises(RuntimeError, match="the policy failed"):
        commit(datastore, Proposal(new_item(doc, "b")), broken)
    assert not queue._draining and not queue._pending
    assert commit(datastore, Proposal(new_item(Doc(), "c"))).status is Status.STORED

    type(datastore).objects.filter(pk=datastore.pk).delete()  # gone under the writer's feet
    outcome = commit(datastore, Proposal(new_item(doc, "d")))
    assert outcome.status is Status.REJECTED and outcome.error_code == "unknown-datastore"
    assert not queue._draining and not queue._pending


async def test_a_writer_that_stops_waiting_does_not_stop_the_queue():
    """A connection closed mid-commit cancels its wait; the writes after it are still stored."""
    datastore = await sync_to_async(service.create_datastore)("cancelled", "todo")
    doc = Doc()
    queue = queue_for(datastore)
    # Queued but not drained yet: the wait is cancelled before the commit answers it.
    future, lead = queue.enqueue(Proposal(new_item(doc, "a"), txid="a"), None)
    assert lead
    # Cancelling `await asubmit(...)` cancels this future (asyncio.wrap_future chains it).
    assert future.cancel()
    await sync_to_async(queue.drain)()
    assert not queue._draining
    outcome = await acommit(datastore, Proposal(new_item(doc, "b"), txid="b"))
    assert outcome.status is Status.STORED and outcome.serial == 2
    await sync_to_async(assert_gapless)(datastore, 2)
    await sync_to_async(assert_converged)(datastore, {"a", "b"})
