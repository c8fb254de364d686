"""Pruning old history: patches older than a cutoff dropped behind a checkpoint.

Patches are kept for ever by default (history, time travel, undo). A datastore that changes all
day, such as the jupyter datastore's server state, would then grow without bound, so its old
patches can be pruned: the newest checkpoint that is old enough becomes the oldest state kept
(``Datastore.history_start``), and the patches at or before it are deleted.

Moving the horizon is one short write under the datastore's row lock; the rows behind it are then
deleted in batches with a pause between them, so writers wait at most for one batch. Reads
respect the horizon from the moment it moves: a join or resume from before it gets the
checkpoint, time travel before it raises ``HistoryPruned``, and undo cannot reach behind it. The
horizon never passes the serial a fork of the datastore branched at (``tables.forks``): the fork
reads the history up to it.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import datetime

from django.db import transaction as db
from django.db.models import F, Min, Sum

from tables.models import Checkpoint, Datastore, TouchedRecord, Transaction

# Rows deleted per database transaction: short transactions, bounded memory.
BATCH = 2000
# Seconds between two batches. SQLite has one writer at a time and wakes a waiting one by polling,
# so back-to-back batches would starve every writer until the end (bench/prune.py).
PAUSE = 0.05
# The newest patches are never pruned by default: resumes and gap fills ask for recent serials.
DEFAULT_KEEP = 1000


class HistoryPruned(LookupError):
    """The serial asked for is behind the datastore's pruned history."""

    code = "history-pruned"

    def __init__(self, datastore: Datastore, serial: int):
        super().__init__(
            f"the history of {datastore.name!r} before serial {datastore.history_start} was "
            f"pruned; serial {serial} is no longer available"
        )
        self.history_start = datastore.history_start


def check_available(datastore: Datastore, serial: int) -> None:
    """Raise ``HistoryPruned`` when the state at ``serial`` can no longer be rebuilt."""
    if serial < datastore.history_start:
        raise HistoryPruned(datastore, serial)


@dataclass(frozen=True)
class PruneResult:
    datastore: str
    history_start: int
    transactions: int
    bytes: int


def prune_history(
    datastore: Datastore, *, older_than: datetime, keep: int = DEFAULT_KEEP
) -> PruneResult:
    """Drop the patches committed before ``older_than``, keeping at least the newest ``keep``.

    The horizon moves to the newest checkpoint written before ``older_than`` (a checkpoint is
    written in the same database transaction as the patch at its serial); with no such
    checkpoint nothing is pruned. Running it again finishes a run that was interrupted.
    """
    horizon = _move_horizon(datastore.pk, older_than, max(keep, 0))
    count, size = _delete_behind(datastore.pk, horizon)
    datastore.refresh_from_db(fields=["history_start", "size"])
    return PruneResult(datastore.name, horizon, count, size)


def _move_horizon(pk: int, older_than: datetime, keep: int) -> int:
    with db.atomic():
        datastore = Datastore.objects.select_for_update().get(pk=pk)
        upto = datastore.last_serial - keep
        # A fork reads this history up to where it branched: the horizon stays at or before it.
        branched = datastore.forks.aggregate(lowest=Min("fork_serial"))["lowest"]
        if branched is not None:
            upto = min(upto, branched)
        newest = (
            Checkpoint.objects.filter(
                datastore=datastore,
                created_at__lt=older_than,
                serial__gt=datastore.history_start,
                serial__lte=upto,
            )
            .order_by("-serial")
            .values_list("serial", flat=True)
            .first()
        )
        if newest is not None:
            datastore.history_start = newest
            datastore.save(update_fields=["history_start"])
        return datastore.history_start


def _delete_behind(pk: int, horizon: int) -> tuple[int, int]:
    """Delete patches at or before ``horizon`` and checkpoints before it, batch by batch."""
    count = size = 0
    while True:
        with db.atomic():
            pks = list(
                Transaction.objects.filter(datastore_id=pk, serial__lte=horizon)
                .order_by("serial")
                .values_list("pk", flat=True)[:BATCH]
            )
            if not pks:
                break
            batch = Transaction.objects.filter(pk__in=pks)
            batch_size = batch.aggregate(total=Sum("size"))["total"] or 0
            TouchedRecord.objects.filter(transaction_id__in=pks).delete()
            # Kept undo/redo transactions lose the link to what they reverted, not themselves.
            Transaction.objects.filter(reverts_id__in=pks).update(reverts=None)
            batch.only("pk").delete()
            Datastore.objects.filter(pk=pk).update(size=F("size") - batch_size)
        count += len(pks)
        size += batch_size
        time.sleep(PAUSE)  # a waiting writer's turn
    Checkpoint.objects.filter(datastore_id=pk, serial__lt=horizon).delete()
    return count, size
