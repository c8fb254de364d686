"""Documents loaded in this process, and the in-memory half of the write path.

A ``LoadedDoc`` is the live ``pycrdt.Doc`` of one datastore at a known serial. Several processes
may each hold one; the write path brings it up to the database's serial under the datastore's row
lock before applying anything, so nothing here assumes a single process.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass
from typing import Any

from django.db import transaction as db_transaction
from pycrdt import Doc

from tables.conf import rtc_settings
from tables.history import Snapshot, snapshot
from tables.models import Datastore
from tables.nesting import Depths, Measured, TooDeep, check_nesting
from tables.schema import Analysis, Schema, SchemaViolation, get_schema
from tables.ydoc import MalformedUpdate, unintegrated


class MissingDependencies(ValueError):
    """The update builds on changes this server has not seen (the client should sync first)."""

    code = "missing-dependencies"


@dataclass
class Applied:
    """An update that changed the document: the effective bytes and what the schema saw."""

    update: bytes
    analysis: Analysis


class LoadedDoc:
    def __init__(self, datastore: Datastore, snap: Snapshot):
        self.pk = datastore.pk
        self.name = datastore.name
        self.schema: Schema = get_schema(datastore.schema)
        # Held for every read or write of ``doc``; re-entrant so helpers can nest.
        self.lock = threading.RLock()
        self.last_used = time.monotonic()
        # True while the doc holds changes whose database transaction has not committed yet.
        self.dirty = False
        # Identifies the write whose commit will settle ``dirty`` (see service.write).
        self.pending_token: object | None = None
        self._events: dict[str, list[Any]] = {}
        self._updates: list[bytes] = []
        self._depths: Depths | None = None
        self._install(snap.build(), snap.serial)

    def _install(self, doc: Doc, serial: int) -> None:
        self.doc = doc
        self.serial = serial
        self.dirty = False
        self._depths = None  # measured again from the new state when next needed
        self._roots = self.schema.root_types()
        # The shared wrappers own the subscriptions: keep them alive with the doc.
        self._shared = [doc.get(root, type=kind) for root, kind in self._roots.items()]
        for root, shared in zip(self._roots, self._shared, strict=True):
            shared.observe_deep(self._collector(root))
        doc.observe(self._on_transaction)

    def _collector(self, root: str):
        def collect(events: list[Any]) -> None:
            self._events.setdefault(root, []).extend(events)

        return collect

    def _on_transaction(self, event: Any) -> None:
        self._updates.append(event.update)

    def rebuild(self, datastore: Datastore, pending: list[bytes] = ()) -> None:
        """Reload from the database (then re-apply ``pending`` accepted, uncommitted updates)."""
        snap = snapshot(datastore)
        self._install(snap.build(), snap.serial)
        for update in pending:
            self.doc.apply_update(update)
        self._events.clear()
        self._updates.clear()

    def catch_up(self, datastore: Datastore) -> None:
        """Bring the doc to ``datastore.last_serial`` (the caller holds the row lock)."""
        behind_pruning = self.serial < datastore.history_start  # the patches it needs are gone
        if self.dirty or datastore.last_serial < self.serial or behind_pruning:
            self.rebuild(datastore)
            return
        if datastore.last_serial == self.serial:
            return
        if datastore.last_serial - self.serial > rtc_settings.CHECKPOINT_EVERY and (
            datastore.checkpoint_serial > self.serial
        ):
            self.rebuild(datastore)
            return
        from tables.history import updates_between

        for _, update in updates_between(datastore, self.serial, datastore.last_serial):
            self.doc.apply_update(update)
            if self._depths is not None:  # stored before: measured, never refused
                self._depths.add(check_nesting(update, None, within=self._depths))
        self.serial = datastore.last_serial
        self._events.clear()
        self._updates.clear()

    def depths(self) -> Depths | None:
        """The depth of each item, for documents whose root types are not observed (a freeform
        schema declares none, and a root created by a remote update has no type to observe):
        their updates are measured against it before they are applied (``check_nesting``), so
        no number of updates each nesting one level deeper than the last gets past
        ``RTC_MAX_NESTING``. Documents with declared roots are bounded by ``_check_depth``.

        Measured from the whole state when first needed after a load or a rebuild, then kept up
        to date with each update applied.
        """
        if self.schema.validates:
            return None
        if self._depths is None:
            self._depths = Depths.of_state(self.doc.get_update())
        return self._depths

    def apply(self, update: bytes, measured: Measured | None = None) -> Applied | None:
        """Apply one update; None when it changed nothing. ``measured``: what
        ``check_nesting(update, limit, within=self.depths())`` found, kept for the next update.

        Raises MalformedUpdate, MissingDependencies or SchemaViolation; after any of them the doc
        may hold part of the update, so the caller must ``rebuild`` it.
        """
        self._events.clear()
        self._updates.clear()
        try:
            self.doc.apply_update(update)
        except Exception as error:
            raise MalformedUpdate(f"cannot apply update: {error}") from None
        if unintegrated(update, self.doc.get_state()):
            raise MissingDependencies(
                "the update depends on changes the server does not have; sync first"
            )
        if self._depths is not None:
            # Every struct integrated; ids the doc had before keep their depths. A refusal
            # after this point rebuilds the doc, and with it the depths.
            if measured is None:
                measured = check_nesting(update, None, within=self._depths)
            self._depths.add(measured)
        if not self._updates:
            return None
        return self._analyzed(self._updates[0] if len(self._updates) == 1 else update)

    def make(
        self, mutate: Callable[[Doc], None], check: Callable[[bytes], Measured]
    ) -> Applied | None:
        """Make a server-side change (a record written by the REST API, the admin) on the live
        doc itself, as one transaction; None when it changed nothing. ``check(update)``: what
        every update is checked for (its size, how deep it nests), raising to refuse it.

        Its update is the transaction's own, so nothing is copied: making it on a copy of the
        document costs an encoding and a decoding of the whole state (the jupyter datastore's
        is large) for a change of a few hundred bytes. Raises as ``apply`` does, and then the
        caller must ``rebuild``.
        """
        self._events.clear()
        self._updates.clear()
        with self.doc.transaction():
            mutate(self.doc)
        if not self._updates:
            return None
        update = self._updates[0]
        measured = check(update)
        if self._depths is not None:
            self._depths.add(measured)
        return self._analyzed(update)

    def _analyzed(self, effective: bytes) -> Applied:
        """What the schema says of the transaction just applied (raises when it refuses it)."""
        self._check_depth()
        new_roots = set(self.doc.keys()) - set(self._roots) if self.schema.validates else set()
        with self.doc.transaction():  # one for all its reads, not one each
            analysis = self.schema.analyze(self.doc, self._events, new_roots)
        if analysis.errors:
            raise SchemaViolation(analysis.errors)
        # Read: let go of them now rather than at the next write. A notebook's first update
        # holds every cell, and its events a Python wrapper of each: kept until the next
        # write, they cost the document several times its size.
        self._events.clear()
        self._updates.clear()
        return Applied(effective, analysis)

    def _check_depth(self) -> None:
        """Types changed at most ``RTC_MAX_NESTING`` levels down: the update itself is bounded
        (``tables.nesting``), and this bounds what updates build on each other's types, so no
        number of updates makes the document deeper than a decoder's stack."""
        limit = rtc_settings.MAX_NESTING
        for events in self._events.values():
            for event in events:
                depth = len(event.path) + 1  # the changed type's, counting its root
                if depth >= limit:  # what it holds would be deeper still
                    raise TooDeep(
                        f"a change inside {depth} levels of shared types; "
                        f"at most {limit} levels are accepted"
                    )

    def encode_state(self) -> bytes:
        return self.doc.get_update()

    def to_python(self) -> dict[str, Any]:
        return self.schema.to_python(self.doc)


class DocCache:
    """The documents loaded in this process, evicted when idle or when there are too many."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._docs: OrderedDict[int, LoadedDoc] = OrderedDict()

    def get(self, datastore: Datastore) -> LoadedDoc:
        self.evict_idle()
        with self._lock:
            loaded = self._docs.get(datastore.pk)
            if loaded is not None:
                self._docs.move_to_end(datastore.pk)
                loaded.last_used = time.monotonic()
                return loaded
        loaded = LoadedDoc(datastore, snapshot(datastore))
        with self._lock:
            # Another thread may have loaded it meanwhile: keep the first one.
            loaded = self._docs.setdefault(datastore.pk, loaded)
            self._docs.move_to_end(datastore.pk)
            while len(self._docs) > max(rtc_settings.MAX_LOADED, 1):
                self._docs.popitem(last=False)
        return loaded

    def peek(self, pk: int) -> LoadedDoc | None:
        with self._lock:
            return self._docs.get(pk)

    def discard(self, pk: int) -> None:
        with self._lock:
            self._docs.pop(pk, None)

    def evict_idle(self) -> None:
        deadline = time.monotonic() - rtc_settings.IDLE_SECONDS
        with self._lock:
            idle = [pk for pk, doc in self._docs.items() if doc.last_used < deadline]
            for pk in idle:
                self._docs.pop(pk)

    def clear(self) -> None:
        with self._lock:
            self._docs.clear()

    def __len__(self) -> int:
        return len(self._docs)


doc_cache = DocCache()


@contextmanager
def caught_up(
    datastore: Datastore, *, atomic: bool = False, reread: bool = True
) -> Iterator[LoadedDoc]:
    """This process's doc of ``datastore`` at the database's newest serial, locked for a read.

    Every live read goes through here: another process may have committed since this one last
    looked. With ``atomic`` the catch-up and the read share one database transaction. With
    ``reread=False`` the caller's row, read during the same request, stands for the newest: the
    doc is brought at least to its serial without reading the row again (a request's reads then
    see everything committed before the request, and what this process committed since).
    """
    loaded = doc_cache.get(datastore)
    with loaded.lock, db_transaction.atomic() if atomic else nullcontext():
        if reread:
            loaded.catch_up(Datastore.objects.get(pk=datastore.pk))
        elif loaded.dirty or datastore.last_serial > loaded.serial:
            loaded.catch_up(datastore)
        yield loaded
