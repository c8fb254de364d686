"""The read path: documents rebuilt from the newest checkpoint plus the patches after it."""

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
    check_available(datastore, target)
    checkpoint = (
        Checkpoint.objects.filter(datastore=datastore, serial__lte=target)
        .order_by("-serial")
        .values_list("serial", "state")
        .first()
    )
    base_serial, base_state = checkpoint if checkpoint else (0, None)
    return Snapshot(
        base_serial,
        bytes(base_state) if base_state is not None else None,
        updates_between(datastore, base_serial, target),
        target,
    )


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
