"""Group commit: writes to a datastore that arrive together share one database transaction.

The first writer to find a datastore's queue idle becomes its leader and commits batches until
the queue is empty; everyone else waits on a future resolved after the batch's commit. Durability
comes before every answer, without one commit (and one fsync) per keystroke.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from concurrent.futures import Future, InvalidStateError

from channels.db import database_sync_to_async

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


_drains: set[asyncio.Task] = set()


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
        task = asyncio.get_running_loop().create_task(database_sync_to_async(queue.drain)())
        _drains.add(task)
        task.add_done_callback(_drains.discard)
    return asyncio.wrap_future(future)


async def acommit(
    datastore: Datastore, proposal: Proposal, authorize: Authorizer | None = None
) -> Outcome:
    """Group-commit one proposal from async code; returns after its commit."""
    return await asubmit(datastore, proposal, authorize)
