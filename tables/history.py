"""The read path: documents rebuilt from the newest checkpoint plus the patches after it, and the
stored transactions as the relay sends them (a client's catch-up, lookups, gap fills).

A fork (``Datastore.fork_of``) shares its root's history up to ``fork_serial``: the serials at or
below it are the root's rows and checkpoints, read from the root, and the fork's own rows follow
with the serials after it. Every read here goes through ``_rows`` and ``_checkpoint_for``, so a
fork loads, catches up and time-travels like any datastore without a row of the root copied.
"""

from __future__ import annotations

from dataclasses import dataclass

from django.db.models import Q, QuerySet
from pycrdt import Doc

from tables.models import Checkpoint, Datastore, Transaction
from tables.pruning import check_available


def new_doc() -> Doc:
    """A server-side document: deleted content is kept so that undo can restore it."""
    return Doc(skip_gc=True, allow_multithreading=True)


@dataclass(frozen=True)
class Snapshot:
    """A checkpoint (maybe empty) plus the updates after it, up to ``serial``."""

    checkpoint_serial: int
    checkpoint_state: bytes | None
    updates: list[tuple[int, bytes]]
    serial: int

    def build(self) -> Doc:
        doc = new_doc()
        if self.checkpoint_state:
            doc.apply_update(self.checkpoint_state)
        for _, update in self.updates:
            doc.apply_update(update)
        return doc


def snapshot(datastore: Datastore, serial: int | None = None) -> Snapshot:
    """The newest checkpoint at or before ``serial`` (default: now) and the tail after it.

    Raises ``HistoryPruned`` for a serial behind the datastore's pruned history.
    """
    target = datastore.last_serial if serial is None else min(serial, datastore.last_serial)
    base_serial, base_state = _checkpoint_for(datastore, target)
    return Snapshot(
        base_serial, base_state, updates_between(datastore, base_serial, target), target
    )


def _checkpoint_for(datastore: Datastore, target: int) -> tuple[int, bytes | None]:
    """The serial and state of the newest checkpoint at or before ``target`` ((0, None): none).

    Raises ``HistoryPruned`` for a serial behind the datastore's pruned history.
    """
    check_available(datastore, target)
    root = datastore.fork_of if datastore.fork_of_id is not None else None
    if root is not None and target <= datastore.fork_serial:
        return _checkpoint_for(root, target)  # shared history: the root's own checkpoints
    checkpoint = (
        Checkpoint.objects.filter(datastore=datastore, serial__lte=target)
        .order_by("-serial")
        .values_list("serial", "state")
        .first()
    )
    if checkpoint is None:
        # A fork without a checkpoint of its own starts from its root's, at or before the branch.
        return (0, None) if root is None else _checkpoint_for(root, datastore.fork_serial)
    base_serial, base_state = checkpoint
    return base_serial, bytes(base_state) if base_state is not None else None


def _lineage(datastore: Datastore | int) -> tuple[int, int | None, int]:
    """``(pk, root pk, branch serial)``: a fork's root and where it branched (None, 0: no fork)."""
    if isinstance(datastore, Datastore):
        return datastore.pk, datastore.fork_of_id, datastore.fork_serial
    root, branch = Datastore.objects.values_list("fork_of_id", "fork_serial").get(pk=datastore)
    return datastore, root, branch


def _rows(datastore: Datastore | int, after: int, upto: int | None = None) -> QuerySet:
    """The transactions of ``datastore`` with serials in ``(after, upto]`` (no bound: ``upto``
    None), a fork's shared serials read from its root's rows."""
    pk, root, branch = _lineage(datastore)
    own = Q(datastore_id=pk, serial__gt=after)
    if upto is not None:
        own &= Q(serial__lte=upto)
    if root is None or after >= branch:
        return Transaction.objects.filter(own)
    shared_upto = branch if upto is None else min(upto, branch)
    return Transaction.objects.filter(
        own | Q(datastore_id=root, serial__gt=after, serial__lte=shared_upto)
    )


def transaction_rows(datastore: Datastore, after: int = 0) -> QuerySet:
    """The datastore's transactions after ``after`` as a query to filter further (the history
    API): a fork's include its root's up to the branch."""
    return _rows(datastore, after)


def history_datastores(datastore: Datastore) -> list[int]:
    """The datastores whose rows make up this one's history: itself, and a fork's root."""
    return [datastore.pk] if datastore.fork_of_id is None else [datastore.pk, datastore.fork_of_id]


def updates_between(datastore: Datastore | int, after: int, upto: int) -> list[tuple[int, bytes]]:
    """``(serial, update)`` for serials in ``(after, upto]``, in order."""
    rows = _rows(datastore, after, upto).order_by("serial").values_list("serial", "update")
    return [(serial, bytes(update)) for serial, update in rows]


def doc_at(datastore: Datastore, serial: int | None = None) -> Doc:
    """The document as it was right after transaction ``serial`` (time travel)."""
    return snapshot(datastore, serial).build()


def replay(datastore: Datastore, serial: int) -> Doc:
    """The document at ``serial`` rebuilt from every patch, ignoring checkpoints (for checks).

    Raises ``HistoryPruned`` once the first patches were pruned.
    """
    check_available(datastore, 0)
    if datastore.fork_of_id is not None:
        check_available(datastore.fork_of, 0)
    doc = new_doc()
    for _, update in updates_between(datastore, 0, serial):
        doc.apply_update(update)
    return doc


# --- Stored transactions, as the relay sends them ------------------------------------------------


@dataclass(frozen=True)
class StoredTransaction:
    serial: int
    txid: str
    store_id: str
    update: bytes


def _stored(rows) -> list[StoredTransaction]:
    rows = rows.order_by("serial").values_list("serial", "txid", "store_id", "update")
    return [StoredTransaction(s, txid, store_id, bytes(u)) for s, txid, store_id, u in rows]


def transactions_between(
    datastore: Datastore | int, after: int, upto: int | None = None
) -> list[StoredTransaction]:
    """The stored transactions with serials in ``(after, upto]`` (no bound: ``upto`` None)."""
    return _stored(_rows(datastore, after, upto))


def find_transactions(
    datastore_pk: int, serials: list[int] | None = None, txids: list[str] | None = None
) -> tuple[list[StoredTransaction], int]:
    """The stored transactions with these serials (or else these ids), and the serial the
    history was pruned up to (what is missing at or below it is gone)."""
    rows = _rows(datastore_pk, 0)
    rows = rows.filter(serial__in=serials) if serials is not None else rows.filter(txid__in=txids)
    found = _stored(rows)
    return found, Datastore.objects.values_list("history_start", flat=True).get(pk=datastore_pk)


def last_serial(datastore_pk: int) -> int:
    return Datastore.objects.values_list("last_serial", flat=True).get(pk=datastore_pk)


@dataclass(frozen=True)
class CatchUp:
    """What brings a client to ``serial``: a checkpoint's state (None: no checkpoint, or a resume
    that needs only the tail) and the stored transactions after it."""

    state: bytes | None
    checkpoint_serial: int | None
    serial: int
    transactions: list[StoredTransaction]


def catch_up(datastore_pk: int, since: int | None, max_tail: int) -> CatchUp:
    """A joining client's catch-up: only the transactions after ``since`` when it resumes from
    a serial still stored and at most ``max_tail`` behind, else the newest checkpoint and the
    tail after it."""
    datastore = Datastore.objects.get(pk=datastore_pk)
    last = datastore.last_serial
    resumable = since is not None and datastore.history_start <= since <= last
    if resumable and last - since <= max_tail:
        return CatchUp(None, None, last, transactions_between(datastore, since))
    base_serial, base_state = _checkpoint_for(datastore, last)
    tail = transactions_between(datastore, base_serial, last)
    return CatchUp(base_state, base_serial, last, tail)


def reverted_serial(transaction_pk: int | None) -> int | None:
    """The serial of the transaction an undo or redo transaction reverts."""
    if transaction_pk is None:
        return None
    return (
        Transaction.objects.filter(pk=transaction_pk)
        .values_list("reverts__serial", flat=True)
        .first()
    )
