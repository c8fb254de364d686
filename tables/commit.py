"""Group commit: writes to a datastore that arrive together share one database transaction.

The first writer to find a datastore's queue idle becomes its leader and commits batches until
the queue is empty; everyone else waits on a future resolved after the batch's commit. Durability
comes before every answer, without one commit (and one fsync) per keystroke.

From async code (the consumers) a queue is drained on the process's commit threads, not on the
thread ``database_sync_to_async`` shares with every other database call of the process: a
commit does not wait behind an authentication query or a presence update, nor pay asgiref's
hand-over (~100-175 us a drain). One thread on SQLite, which takes one writer at a time;
several on other databases, so that datastores commit side by side (``RTC_COMMIT_THREADS``).
"""

from __future__ import annotations

import asyncio
import logging
import threading
from concurrent.futures import Future, InvalidStateError, ThreadPoolExecutor

from django.db import close_old_connections, connection

from tables.conf import rtc_settings
from tables.models import Datastore
from tables.service import Authorizer, Outcome, Proposal, write

logger = logging.getLogger(__name__)


class CommitQueue:
    def __init__(self, datastore: Datastore):
        self.datastore = datastore
        self._lock = threading.Lock()
        self._pending: list[tuple[Proposal, Authorizer | None, Future[Outcome]]] = []
        self._draining = False
        self.batches = 0  # batches committed, for tests and benchmarks

    def enqueue(self, proposal: Proposal, authorize: Authorizer | None) -> tuple[Future, bool]:
        """Queue a proposal; True in the result means the caller must ``drain``."""
        future: Future[Outcome] = Future()
        with self._lock:
            self._pending.append((proposal, authorize, future))
            lead = not self._draining
            self._draining = True
        return future, lead

    def drain(self) -> None:
        """Commit batches until nothing is pending (run by the leader, in a thread)."""
        while True:
            with self._lock:
                limit = max(rtc_settings.MAX_BATCH, 1)
                batch, self._pending = self._pending[:limit], self._pending[limit:]
                if not batch:
                    self._draining = False
                    return
            try:
                outcomes = write(self.datastore, [(p, a) for p, a, _ in batch])
            except Exception as error:
                if len(batch) == 1:
                    _answer(batch[0][2], error=error)
                    continue
                # One transaction's failure must not sink the others: each alone, in order.
                logger.warning(
                    "a batch of %d for %s failed (%r); committing its transactions one by one",
                    len(batch),
                    self.datastore.name,
                    error,
                )
                self._one_by_one(batch)
                continue
            except BaseException as error:  # interrupted: fail everything queued, then stop
                with self._lock:
                    batch += self._pending
                    self._pending = []
                    self._draining = False
                for _, _, future in batch:
                    _answer(future, error=error)
                raise
            self.batches += 1
            for (_, _, future), outcome in zip(batch, outcomes, strict=True):
                _answer(future, outcome)

    def _one_by_one(self, batch: list[tuple[Proposal, Authorizer | None, Future[Outcome]]]) -> None:
        for proposal, authorize, future in batch:
            try:
                [outcome] = write(self.datastore, [(proposal, authorize)])
            except Exception as error:
                logger.exception("transaction %s failed alone", proposal.txid or "(new)")
                _answer(future, error=error)
            else:
                self.batches += 1
                _answer(future, outcome)


def _answer(
    future: Future[Outcome], outcome: Outcome | None = None, error: BaseException | None = None
) -> None:
    """Answer a waiter, unless it stopped waiting: a writer whose wait was cancelled (its
    connection closed mid-commit) cancels the future, and setting a cancelled future raises,
    which would end the drain with the queue still marked as draining, i.e. stuck for ever."""
    try:
        if error is not None:
            future.set_exception(error)
        else:
            future.set_result(outcome)
    except InvalidStateError:
        pass


_queues: dict[int, CommitQueue] = {}
_queues_lock = threading.Lock()


def queue_for(datastore: Datastore) -> CommitQueue:
    with _queues_lock:
        queue = _queues.get(datastore.pk)
        if queue is None:
            queue = _queues[datastore.pk] = CommitQueue(datastore)
        return queue


def commit(
    datastore: Datastore, proposal: Proposal, authorize: Authorizer | None = None
) -> Outcome:
    """Group-commit one proposal from synchronous code; returns after its commit."""
    queue = queue_for(datastore)
    future, lead = queue.enqueue(proposal, authorize)
    if lead:
        queue.drain()
    return future.result()


class CommitThreads:
    """The threads ``asubmit`` drains queues on, made at first use (one process, one pool)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._executor: ThreadPoolExecutor | None = None

    @staticmethod
    def size() -> int:
        configured = rtc_settings.COMMIT_THREADS
        if configured:
            return configured
        return 1 if connection.vendor == "sqlite" else 4

    def executor(self) -> ThreadPoolExecutor:
        with self._lock:
            if self._executor is None:
                self._executor = ThreadPoolExecutor(self.size(), thread_name_prefix="rtc-commit")
            return self._executor


commit_threads = CommitThreads()


def _drain_on_commit_thread(queue: CommitQueue) -> None:
    """``queue.drain`` with the connection handling ``database_sync_to_async`` gives its calls:
    a connection past its age (or broken) is closed before and after, otherwise kept."""
    close_old_connections()
    try:
        queue.drain()
    finally:
        close_old_connections()


_drains: set[asyncio.Future] = set()


def asubmit(
    datastore: Datastore, proposal: Proposal, authorize: Authorizer | None = None
) -> asyncio.Future[Outcome]:
    """Queue one proposal now, from async code; the future resolves after its commit.

    Queuing is synchronous, so proposals keep the order in which a caller submits them even when
    it does not wait for each one (a client's updates build on each other).
    """
    queue = queue_for(datastore)
    future, lead = queue.enqueue(proposal, authorize)
    if lead:
        drained = asyncio.get_running_loop().run_in_executor(
            commit_threads.executor(), _drain_on_commit_thread, queue
        )
        _drains.add(drained)
        drained.add_done_callback(_drains.discard)
    return asyncio.wrap_future(future)


async def acommit(
    datastore: Datastore, proposal: Proposal, authorize: Authorizer | None = None
) -> Outcome:
    """Group-commit one proposal from async code; returns after its commit."""
    return await asubmit(datastore, proposal, authorize)
