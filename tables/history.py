"""The read path: documents rebuilt from the newest checkpoint plus the patches after it, and the
stored transactions as the relay sends them (a client's catch-up, lookups, gap fills)."""

from __future__ import annotations

from dataclasses import dataclass

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
    checkpoint = (
        Checkpoint.objects.filter(datastore=datastore, serial__lte=target)
        .order_by("-serial")
        .values_list("serial", "state")
        .first()
    )
    if checkpoint is None:
        return 0, None
    base_serial, base_state = checkpoint
    return base_serial, bytes(base_state) if base_state is not None else None


def updates_between(datastore: Datastore | int, after: int, upto: int) -> list[tuple[int, bytes]]:
    """``(serial, update)`` for serials in ``(after, upto]``, in order."""
    rows = (
        Transaction.objects.filter(datastore=datastore, serial__gt=after, serial__lte=upto)
        .order_by("serial")
        .values_list("serial", "update")
    )
    return [(serial, bytes(update)) for serial, update in rows]


def doc_at(datastore: Datastore, serial: int | None = None) -> Doc:
    """The document as it was right after transaction ``serial`` (time travel)."""
    return snapshot(datastore, serial).build()


def replay(datastore: Datastore, serial: int) -> Doc:
    """The document at ``serial`` rebuilt from every patch, ignoring checkpoints (for checks).

    Raises ``HistoryPruned`` once the first patches were pruned.
    """
    check_available(datastore, 0)
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
    rows = Transaction.objects.filter(datastore=datastore, serial__gt=after)
    return _stored(rows if upto is None else rows.filter(serial__lte=upto))


def find_transactions(
    datastore_pk: int, serials: list[int] | None = None, txids: list[str] | None = None
) -> tuple[list[StoredTransaction], int]:
    """The stored transactions with these serials (or else these ids), and the serial the
    history was pruned up to (what is missing at or below it is gone)."""
    rows = Transaction.objects.filter(datastore_id=datastore_pk)
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
