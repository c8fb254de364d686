"""The datastore service: the one write path every entry point uses.

    authorize (caller) -> apply to the live doc -> validate the touched paths -> authorize the
    touched tables -> look up the ids of what changed nothing (retries: duplicates) -> persist
    with the next serials, project, checkpoint (one database transaction) -> outcomes ->
    ``transactions_committed`` after commit.

``write`` commits one batch synchronously. ``commit``/``acommit`` are the group-commit entry points
(tables.commit): writes that arrive together share one database transaction, and none is answered
before its commit.
"""

from __future__ import annotations

import copy
import enum
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from functools import partial
from typing import Any

from django.core.exceptions import ValidationError
from django.db import IntegrityError
from django.db import transaction as db_transaction
from pycrdt import Doc

from tables import write_sql
from tables.conf import rtc_settings
from tables.history import new_doc
from tables.loaded import Applied, LoadedDoc, MissingDependencies, caught_up, doc_cache
from tables.models import Checkpoint, Datastore, Origin, Transaction
from tables.nesting import Depths, Measured, check_nesting
from tables.projection import get_projector
from tables.schema import Analysis, SchemaViolation, UnknownSchema, get_schema
from tables.signals import transactions_committed
from tables.storable import UnstorableText, check_analysis, check_text, storable
from tables.ydoc import MalformedUpdate, adds_nothing, unintegrated


class WriteDenied(Exception):
    """A write the caller's authorize hook refused."""

    code = "permission-denied"


class UpdateTooLarge(ValueError):
    code = "too-large"


class DatastoreNotFound(LookupError):
    code = "unknown-datastore"


class DatastoreExists(ValueError):
    code = "datastore-exists"


def check_client_update(update: bytes, within: Depths | None = None) -> Measured:
    """What every update from outside is checked for before anything decodes it: its size, and
    how deep it nests (the decoder recurses on the native stack), in the document whose
    ``within`` depths are given (``LoadedDoc.depths``), or else by itself. Raises
    UpdateTooLarge or TooDeep (a MalformedUpdate)."""
    if len(update) > rtc_settings.MAX_UPDATE_BYTES:
        raise UpdateTooLarge(
            f"update of {len(update)} bytes exceeds the limit of "
            f"{rtc_settings.MAX_UPDATE_BYTES} bytes"
        )
    return check_nesting(update, rtc_settings.MAX_NESTING, within=within)


REJECTIONS = (
    MalformedUpdate,
    MissingDependencies,
    SchemaViolation,
    WriteDenied,
    UpdateTooLarge,
    UnstorableText,
)


@dataclass(frozen=True)
class Proposal:
    """A change offered to the write path: a Yjs update, or (server-side callers) ``make``, a
    function that makes the change on the live document, whose update is then the one stored
    (``tables.records``: no copy of the document to compute it)."""

    update: bytes
    txid: str = ""
    store_id: str = ""
    author_id: int | None = None
    origin: str = Origin.CLIENT
    reverts_id: int | None = None
    make: Callable[[Doc], None] | None = None

    def with_txid(self) -> Proposal:
        if self.txid:
            return self
        return replace(self, txid=uuid.uuid4().hex)


# Called with the proposal and what it touched; returns a reason to refuse, or None.
Authorizer = Callable[[Proposal, Analysis], "str | None"]


class Status(enum.StrEnum):
    STORED = "stored"  # a new transaction with a new serial
    DUPLICATE = "duplicate"  # this transaction id was stored before, under ``serial``
    NOOP = "noop"  # changed nothing; not stored
    REJECTED = "rejected"  # refused; nothing stored, the live doc unchanged


@dataclass
class Outcome:
    txid: str
    status: Status
    serial: int | None = None
    error_code: str | None = None
    error: str | None = None
    update: bytes | None = None  # the effective update stored (STORED only)
    transaction_pk: int | None = None

    @property
    def ok(self) -> bool:
        return self.status is not Status.REJECTED


@dataclass(frozen=True)
class Committed:
    """What receivers of ``transactions_committed`` get for each stored transaction."""

    serial: int
    txid: str
    store_id: str
    author_id: int | None
    origin: str
    update: bytes
    pk: int


@dataclass
class _Accepted:
    proposal: Proposal
    applied: Applied
    outcome: Outcome
    duplicates: list[Outcome] = field(default_factory=list)


# --- Datastores -----------------------------------------------------------------------------


def get_datastore(name: str) -> Datastore:
    try:
        return Datastore.objects.get(name=name)
    except Datastore.DoesNotExist:
        raise DatastoreNotFound(f"unknown datastore {name!r}") from None


def create_datastore(name: str, schema: str, owner: Any = None) -> Datastore:
    """Create an empty datastore (raises ValidationError, UnknownSchema or DatastoreExists)."""
    get_schema(schema)
    datastore = Datastore(name=name, schema=schema, owner=owner)
    datastore.full_clean(exclude=["owner"], validate_unique=False)
    with db_transaction.atomic():
        if Datastore.objects.filter(name=name).exists():
            raise DatastoreExists(f"datastore {name!r} already exists")
        datastore.save()
    return datastore


# --- The write path -------------------------------------------------------------------------


def _as_datastore(datastore: Datastore | str) -> Datastore:
    return get_datastore(datastore) if isinstance(datastore, str) else datastore


def write(
    datastore: Datastore | str,
    batch: Sequence[tuple[Proposal, Authorizer | None]],
) -> list[Outcome]:
    """Run a batch of proposals through the write path in one database transaction."""
    datastore = _as_datastore(datastore)
    batch = [(proposal.with_txid(), authorize) for proposal, authorize in batch]
    try:
        return _write(datastore, batch, look_up_first=False)
    except IntegrityError:
        # A client gave a stored transaction's id to a different change, and the unique
        # constraint caught it: everything was rolled back. Again, every id looked up first.
        return _write(datastore, batch, look_up_first=True)


def _write(
    datastore: Datastore,
    batch: Sequence[tuple[Proposal, Authorizer | None]],
    *,
    look_up_first: bool,
) -> list[Outcome]:
    loaded = doc_cache.get(datastore)
    with loaded.lock:
        token = object()
        try:
            with db_transaction.atomic():
                locked = _lock(datastore)
                if locked is None:  # deleted since it was looked up (a fork merged meanwhile)
                    doc_cache.discard(datastore.pk)
                    return [_gone(datastore, proposal) for proposal, _ in batch]
                loaded.catch_up(locked)
                outcomes, accepted = _apply_batch(locked, loaded, batch, look_up_first)
                if accepted:
                    loaded.dirty = True
                    loaded.pending_token = token
                    committed = _persist(locked, loaded, accepted)
                    serial = locked.last_serial
                    db_transaction.on_commit(
                        lambda: _after_commit(loaded, token, serial, locked, committed)
                    )
        except BaseException:
            # The doc may hold changes the database never got: forget it, reload next time.
            doc_cache.discard(datastore.pk)
            raise
    return outcomes


def _lock(datastore: Datastore) -> Datastore | None:
    """Lock the datastore's row and read what a write changes on it, or pruning
    (``history_start``) may have changed since the caller read it; None if it was deleted. A copy
    of the caller's instance: the rest (name, schema, the fork it is of) never changes."""
    values = write_sql.lock_datastore(datastore.pk)
    if values is None:
        return None
    locked = copy.copy(datastore)
    for name, value in zip(write_sql.LOCKED_FIELDS, values, strict=True):
        setattr(locked, name, value)
    return locked


def _gone(datastore: Datastore, proposal: Proposal) -> Outcome:
    return Outcome(
        proposal.txid,
        Status.REJECTED,
        error_code=DatastoreNotFound.code,
        error=f"datastore {datastore.name!r} no longer exists",
    )


def _apply_batch(
    datastore: Datastore,
    loaded: LoadedDoc,
    batch: Sequence[tuple[Proposal, Authorizer | None]],
    look_up_first: bool = True,
) -> tuple[list[Outcome], list[_Accepted]]:
    """Apply what is new, in order. Transaction ids are looked up only for the proposals that
    turn out to change nothing (unless ``look_up_first``): a stored transaction's update is in
    the document, so a client's retry of it always changes nothing, while a change is stored
    under an id nobody used, or else the unique constraint refuses the insert (``write``)."""
    known = _known_txids(datastore, batch) if look_up_first else {}
    unchanged: list[int] = []  # NOOP outcomes whose id may be a stored transaction's
    outcomes: list[Outcome] = []
    accepted: list[_Accepted] = []
    in_batch: dict[str, _Accepted] = {}
    for proposal, authorize in batch:
        if proposal.txid in known:
            outcomes.append(Outcome(proposal.txid, Status.DUPLICATE, serial=known[proposal.txid]))
            continue
        if proposal.txid in in_batch:
            duplicate = Outcome(proposal.txid, Status.DUPLICATE)
            in_batch[proposal.txid].duplicates.append(duplicate)
            outcomes.append(duplicate)
            continue
        try:
            within = loaded.depths()
            if proposal.make is None:
                measured = check_client_update(proposal.update, within)
            check_text("the transaction's ids", [proposal.txid, proposal.store_id, proposal.origin])
        except (UpdateTooLarge, MalformedUpdate, UnstorableText) as error:  # nothing applied
            outcomes.append(
                Outcome(proposal.txid, Status.REJECTED, error_code=error.code, error=str(error))
            )
            continue
        try:
            if proposal.make is not None:
                check = partial(check_client_update, within=within)
                applied = loaded.make(proposal.make, check)
            else:
                applied = loaded.apply(proposal.update, measured)
            if applied is not None and authorize is not None:
                reason = authorize(proposal, applied.analysis)
                if reason:
                    raise WriteDenied(reason)
            if applied is not None:
                check_analysis(applied.analysis)
        except REJECTIONS as error:
            loaded.rebuild(datastore, [item.applied.update for item in accepted])
            outcomes.append(
                Outcome(proposal.txid, Status.REJECTED, error_code=error.code, error=str(error))
            )
            continue
        if applied is None:
            if not look_up_first:
                unchanged.append(len(outcomes))
            outcomes.append(
                Outcome(proposal.txid, Status.NOOP, serial=datastore.last_serial + len(accepted))
            )
            continue
        outcome = Outcome(proposal.txid, Status.STORED, update=applied.update)
        item = _Accepted(proposal, applied, outcome)
        accepted.append(item)
        in_batch[proposal.txid] = item
        outcomes.append(outcome)
    if unchanged:
        known = _known_txids(datastore, [batch[index] for index in unchanged])
        for index in unchanged:
            serial = known.get(outcomes[index].txid)
            if serial is not None:
                outcomes[index] = Outcome(outcomes[index].txid, Status.DUPLICATE, serial=serial)
    return outcomes, accepted


def _known_txids(
    datastore: Datastore, batch: Sequence[tuple[Proposal, Authorizer | None]]
) -> dict[str, int]:
    """The serials of the stored transactions among the batch's ids."""
    txids = [proposal.txid for proposal, _ in batch if storable(proposal.txid)]
    if not txids:
        return {}
    return dict(
        Transaction.objects.filter(datastore_id=datastore.pk, txid__in=txids)
        .order_by()  # the model's default ordering would add a join and a sort
        .values_list("txid", "serial")
    )


def _persist(datastore: Datastore, loaded: LoadedDoc, accepted: list[_Accepted]) -> list[Committed]:
    serial = datastore.last_serial
    rows = []
    for item in accepted:
        serial += 1
        proposal, update = item.proposal, item.applied.update
        rows.append(
            {
                "serial": serial,
                "txid": proposal.txid,
                "store_id": str(proposal.store_id)[:100],
                "author": proposal.author_id,
                "origin": proposal.origin,
                "update": update,
                "summary": [change.to_json() for change in item.applied.analysis.changes],
                "reverts": proposal.reverts_id,
                "size": len(update),
            }
        )
    pks = write_sql.insert_transactions(datastore.pk, rows)
    touched: set[tuple[str, str]] = set()
    touched_rows = []
    for row, pk, item in zip(rows, pks, accepted, strict=True):
        item.outcome.serial = row["serial"]
        item.outcome.transaction_pk = pk
        for duplicate in item.duplicates:
            duplicate.serial = row["serial"]
        for table, record_id in sorted(item.applied.analysis.touched):
            touched.add((table, record_id))
            touched_rows.append((pk, datastore.pk, table, record_id))
    if touched_rows:
        write_sql.insert_touched(touched_rows)
    projector = get_projector(datastore.schema)
    if projector is not None and touched:
        changes = [item.applied.analysis.changes for item in accepted]
        projector.project(datastore, loaded.doc, touched, changes)

    added = sum(row["size"] for row in rows)
    datastore.last_serial = serial
    datastore.size += added
    datastore.bytes_since_checkpoint += added
    # The row is locked and its values were read under the lock, so plain values are exact.
    changes: dict[str, Any] = {
        "last_serial": serial,
        "size": datastore.size,
        "bytes_since_checkpoint": datastore.bytes_since_checkpoint,
    }
    if (
        serial - datastore.checkpoint_serial >= rtc_settings.CHECKPOINT_EVERY
        or datastore.bytes_since_checkpoint >= rtc_settings.CHECKPOINT_BYTES
    ):
        state = loaded.encode_state()
        Checkpoint.objects.create(datastore=datastore, serial=serial, state=state, size=len(state))
        _prune_checkpoints(datastore)
        datastore.checkpoint_serial = serial
        datastore.bytes_since_checkpoint = 0
        changes.update(checkpoint_serial=serial, bytes_since_checkpoint=0)
    write_sql.update_datastore(datastore.pk, changes)
    return [
        Committed(
            row["serial"],
            row["txid"],
            row["store_id"],
            row["author"],
            row["origin"],
            bytes(row["update"]),
            pk,
        )
        for row, pk in zip(rows, pks, strict=True)
    ]


def _prune_checkpoints(datastore: Datastore) -> None:
    """Keep the newest checkpoints, and older ones about every ten intervals.

    Each checkpoint is a whole state, so keeping all of them grows with history x state; thinned,
    time travel to an old serial replays at most ten intervals of patches.
    """
    serials = list(
        Checkpoint.objects.filter(datastore=datastore)
        .order_by("-serial")
        .values_list("serial", flat=True)
    )
    kept = max(rtc_settings.CHECKPOINTS_KEPT, 1)
    spacing = 10 * max(rtc_settings.CHECKPOINT_EVERY, 1)
    # Older ones: the first of each stretch of ``spacing`` serials, a choice that later
    # checkpoints never change (so thinning again never removes what it kept before).
    first_of_stretch: dict[int, int] = {}
    for serial in serials[kept:]:
        stretch = serial // spacing
        first_of_stretch[stretch] = min(serial, first_of_stretch.get(stretch, serial))
    # The checkpoint at the pruned history's start is the oldest state left: never thinned
    # (older ones may still be waiting for the pruning to delete them).
    survivors = set(first_of_stretch.values()) | {datastore.history_start}
    doomed = [serial for serial in serials[kept:] if serial not in survivors]
    if doomed:
        Checkpoint.objects.filter(datastore=datastore, serial__in=doomed).delete()


def _after_commit(
    loaded: LoadedDoc, token: object, serial: int, datastore: Datastore, committed: list[Committed]
) -> None:
    with loaded.lock:
        # A later write may have taken over the doc meanwhile; only the newest one settles it.
        if loaded.pending_token is token:
            loaded.serial = serial
            loaded.dirty = False
    transactions_committed.send(sender=Datastore, datastore=datastore, transactions=committed)


def write_one(
    datastore: Datastore | str, proposal: Proposal, authorize: Authorizer | None = None
) -> Outcome:
    """Write a single proposal right away (no group commit)."""
    return write(datastore, [(proposal, authorize)])[0]


# --- Reads of the live doc ------------------------------------------------------------------


def live_state(datastore: Datastore | str) -> tuple[bytes, int]:
    """The encoded state now and its serial, from this process's up-to-date doc."""
    with caught_up(_as_datastore(datastore), atomic=True) as loaded:
        return loaded.encode_state(), loaded.serial


def live_state_vector(datastore: Datastore | str) -> tuple[bytes, int]:
    """The live document's state vector and serial (what a sync step 1 announces)."""
    with caught_up(_as_datastore(datastore)) as loaded:
        return loaded.doc.get_state(), loaded.serial


def live_adds(datastore: Datastore | str, update: bytes) -> bool:
    """Whether ``update`` would change the live document, judged without applying it (a reader's
    update is answered without touching the document, which a refused write would force to be
    rebuilt). Raises MalformedUpdate (TooDeep among them) or UpdateTooLarge."""
    check_client_update(update)
    with caught_up(_as_datastore(datastore)) as loaded:
        state_vector = loaded.doc.get_state()
        deletions = loaded.doc.get_update(state_vector)
    return not adds_nothing(update, state_vector, deletions)


def live_preview(
    datastore: Datastore | str, updates: Sequence[bytes]
) -> tuple[dict[str, Any], dict[str, Any]]:
    """The document as plain JSON now, and as it would be with ``updates``: judged on a copy, so
    the live document is never touched (what a reader's updates would do, without storing them).

    Raises MalformedUpdate (TooDeep among them), UpdateTooLarge, or MissingDependencies when an
    update depends on changes the document does not have (its effect cannot be known).
    """
    for update in updates:
        check_client_update(update)
    with caught_up(_as_datastore(datastore)) as loaded:
        before = loaded.to_python()
        state = loaded.encode_state()
        schema = loaded.schema
    copy = new_doc()
    copy.apply_update(state)
    for update in updates:
        try:
            copy.apply_update(update)
        except Exception as error:
            raise MalformedUpdate(f"cannot apply update: {error}") from None
    state_vector = copy.get_state()
    if any(unintegrated(update, state_vector) for update in updates):
        raise MissingDependencies("the update depends on changes the server does not have")
    return before, schema.to_python(copy)


def live_diff(datastore: Datastore | str, state_vector: bytes) -> tuple[bytes, int]:
    """What a peer with ``state_vector`` lacks (a Yjs update), and the serial it brings it to.

    Raises MalformedUpdate when the state vector cannot be decoded.
    """
    with caught_up(_as_datastore(datastore)) as loaded:
        try:
            return loaded.doc.get_update(state_vector), loaded.serial
        except Exception as error:
            raise MalformedUpdate(f"not a Yjs state vector: {error}") from None


def live_python(datastore: Datastore | str) -> tuple[dict[str, Any], int]:
    """The document now as plain JSON, with its serial."""
    with caught_up(_as_datastore(datastore)) as loaded:
        return loaded.to_python(), loaded.serial


__all__ = [
    "Authorizer",
    "Committed",
    "DatastoreExists",
    "DatastoreNotFound",
    "Outcome",
    "Proposal",
    "Status",
    "UnknownSchema",
    "UpdateTooLarge",
    "ValidationError",
    "WriteDenied",
    "check_client_update",
    "create_datastore",
    "get_datastore",
    "live_adds",
    "live_diff",
    "live_preview",
    "live_python",
    "live_state",
    "live_state_vector",
    "write",
    "write_one",
]
