"""Undo and redo, recorded as new transactions that revert earlier ones.

To revert transaction T, the document is rebuilt as it was just before T, T is applied under a
tracked origin, every later transaction is applied untracked, and the Yjs undo manager then undoes
T alone. The result deletes what T inserted and restores what T deleted, while keeping everything
other people did since: the CRDT's own undo, not a diff of states.

Per-author undo works on stacks derived from the history: an author's edits push onto the undo
stack (clearing redo), an undo moves its target to the redo stack, a redo moves it back.
"""

from __future__ import annotations

from pycrdt import UndoManager

from tables.conf import rtc_settings
from tables.history import doc_at, updates_between
from tables.models import Datastore, Origin, Transaction
from tables.schema import get_schema
from tables.service import Authorizer, Outcome, Proposal, Status, write_one

_TRACKED = "rtc-revert-target"


class NothingToUndo(LookupError):
    code = "nothing-to-undo"


class UndoUnsupported(ValueError):
    code = "undo-unsupported"


def inverse_update(datastore: Datastore, target: Transaction) -> bytes | None:
    """A Yjs update that reverts ``target`` in today's document (None: nothing left to revert)."""
    roots = get_schema(datastore.schema).root_types()
    if not roots:
        raise UndoUnsupported(
            f"undo needs a schema with declared roots; {datastore.schema!r} has none"
        )
    datastore.refresh_from_db(fields=["last_serial"])
    doc = doc_at(datastore, target.serial - 1)
    manager = UndoManager(
        scopes=[doc.get(name, type=kind) for name, kind in roots.items()],
        capture_timeout_millis=0,
    )
    manager.include_origin(_TRACKED)
    with doc.transaction(origin=_TRACKED):
        doc.apply_update(bytes(target.update))
    for _, update in updates_between(datastore, target.serial, datastore.last_serial):
        doc.apply_update(update)
    captured: list[bytes] = []
    subscription = doc.observe(lambda event: captured.append(event.update))
    try:
        manager.undo()
    finally:
        doc.unobserve(subscription)
    return captured[0] if captured else None


def revert(
    datastore: Datastore,
    target: Transaction,
    *,
    author_id: int | None,
    origin: str,
    authorize: Authorizer | None = None,
) -> Outcome:
    """Store the inverse of ``target`` as a new transaction (origin undo or redo).

    ``authorize`` is the write path's hook (``Access.authorizer()``): the inverse touches the
    tables ``target`` touched, so reverting someone else's change needs the right to make it.
    """
    update = inverse_update(datastore, target)
    if update is None:
        return Outcome(
            "",
            Status.NOOP,
            serial=datastore.last_serial,
            error_code=NothingToUndo.code,
            error=f"transaction {target.serial} has nothing left to revert",
        )
    proposal = Proposal(update, author_id=author_id, origin=origin, reverts_id=target.pk)
    return write_one(datastore, proposal, authorize)


def undo(
    datastore: Datastore,
    serial: int,
    *,
    author_id: int | None,
    authorize: Authorizer | None = None,
) -> Outcome:
    """Undo the transaction with this serial."""
    target = _transaction(datastore, serial)
    return revert(datastore, target, author_id=author_id, origin=Origin.UNDO, authorize=authorize)


def redo(
    datastore: Datastore,
    serial: int,
    *,
    author_id: int | None,
    authorize: Authorizer | None = None,
) -> Outcome:
    """Redo the transaction with this serial, which must have been undone."""
    target = _transaction(datastore, serial)
    undoing = (
        Transaction.objects.filter(reverts=target, origin=Origin.UNDO)
        .exclude(reverted_by__origin=Origin.REDO)
        .order_by("-serial")
        .first()
    )
    if undoing is None:
        raise NothingToUndo(f"transaction {serial} has not been undone")
    return revert(datastore, undoing, author_id=author_id, origin=Origin.REDO, authorize=authorize)


def author_stacks(
    datastore: Datastore, author_id: int | None
) -> tuple[list[Transaction], list[Transaction]]:
    """(undo stack, redo stack) of an author, newest last, from their recent history."""
    recent = list(
        Transaction.objects.filter(datastore=datastore, author_id=author_id)
        .only("pk", "serial", "origin", "reverts_id", "update", "datastore_id")
        .order_by("-serial")[: rtc_settings.UNDO_DEPTH]
    )
    undo_stack: list[Transaction] = []
    redo_stack: list[Transaction] = []
    for row in reversed(recent):
        if row.origin == Origin.UNDO:
            if any(t.pk == row.reverts_id for t in undo_stack):
                undo_stack = [t for t in undo_stack if t.pk != row.reverts_id]
                redo_stack.append(row)
        elif row.origin == Origin.REDO:
            if any(t.pk == row.reverts_id for t in redo_stack):
                redo_stack = [t for t in redo_stack if t.pk != row.reverts_id]
                undo_stack.append(row)
        else:
            undo_stack.append(row)
            redo_stack.clear()
    return undo_stack, redo_stack


def undo_last(
    datastore: Datastore, *, author_id: int | None, authorize: Authorizer | None = None
) -> Outcome:
    """Undo the author's last change, keeping everyone else's."""
    return _revert_last(datastore, Origin.UNDO, author_id=author_id, authorize=authorize)


def redo_last(
    datastore: Datastore, *, author_id: int | None, authorize: Authorizer | None = None
) -> Outcome:
    """Redo the author's last undone change."""
    return _revert_last(datastore, Origin.REDO, author_id=author_id, authorize=authorize)


def _revert_last(
    datastore: Datastore, origin: Origin, *, author_id: int | None, authorize: Authorizer | None
) -> Outcome:
    """Revert the top of the author's undo stack (origin undo) or redo stack (origin redo)."""
    undo_stack, redo_stack = author_stacks(datastore, author_id)
    stack = undo_stack if origin == Origin.UNDO else redo_stack
    if not stack:
        raise NothingToUndo(f"nothing to {origin}")
    return revert(datastore, stack[-1], author_id=author_id, origin=origin, authorize=authorize)


def undo_or_redo(
    datastore: Datastore | int,
    action: str,
    serial: int | None,
    *,
    author_id: int | None,
    authorize: Authorizer | None = None,
) -> Outcome:
    """What a client asks for (both protocols and REST): ``action`` ("undo" or "redo") the
    transaction with ``serial``, or, without one, the author's own last change. A pk reads the
    datastore afresh (a connection's copy of the row may be stale)."""
    if isinstance(datastore, int):
        datastore = Datastore.objects.get(pk=datastore)
    if serial is None:
        last = undo_last if action == "undo" else redo_last
        return last(datastore, author_id=author_id, authorize=authorize)
    one = undo if action == "undo" else redo
    return one(datastore, serial, author_id=author_id, authorize=authorize)


def _transaction(datastore: Datastore, serial: int) -> Transaction:
    try:
        return Transaction.objects.get(datastore=datastore, serial=serial)
    except Transaction.DoesNotExist:
        if 0 < serial <= datastore.history_start:
            raise NothingToUndo(f"transaction {serial} was pruned from the history") from None
        raise NothingToUndo(f"no transaction with serial {serial}") from None
