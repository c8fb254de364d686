"""A document's history as jupyter-collaboration's timeline shows it: points on a slider, a fork
room showing the document at the chosen point, and restoring that point.

- **Opening** (``open_timeline``) answers the points (the datastore's transactions, in serial
  order, with their times and authors) and makes a fork (``TimelineFork``) at the newest one.
  A long history is sampled: at most ``MAX_POINTS`` points, spread evenly over the serials kept,
  the newest always last (a slider has a few hundred pixels; each point still shows the exact
  state at its serial). Cost: one indexed read of the points' rows.
- **Moving** (``move``) turns the fork's view into the document at another point: the view
  (the state at ``base_serial`` plus the fork's operations) and ``history.doc_at(serial)`` are
  built from checkpoints, and the operations that make the first equal to the second
  (``jupyter_sync.document_content``) are added to the fork and sent to its room. A Yjs document
  cannot go back, so the way back is new operations, as jupyter-collaboration's undo manager
  makes them; but computed from the two states, so a step costs O(state + one checkpoint
  interval), whatever the history between the points.
- **Restoring** (``restore``) writes one transaction (origin ``restore``, the person as
  author) on the live document: the fork's operations, which the person's window holds and sends
  back when it reconnects to the document (jupyter-collaboration's front end reconnects the same
  Y document), followed by what makes the content equal to the chosen point. The window then
  sends nothing new; the history before is unchanged.
"""

from __future__ import annotations

import threading
import uuid
from collections import OrderedDict
from dataclasses import dataclass
from datetime import timedelta

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.db import transaction
from django.utils import timezone
from pycrdt import Doc, merge_updates

from jupyter_sync.collaboration import document_records
from jupyter_sync.collaboration.room import document_session
from jupyter_sync.document_content import make_content_equal
from jupyter_sync.document_ids import BadDocumentId, parse_room_id, room_id
from jupyter_sync.models import Document, TimelineFork
from tables import history, service
from tables.models import Datastore, Origin, Transaction
from tables.permissions import Access, access_for
from tables.pruning import HistoryPruned

MAX_POINTS = 1000
"""Points on the slider at most; a longer history is sampled evenly."""
FORK_ROOM_PREFIX = "timeline:"
"""Fork rooms are ``timeline:<fork id>`` in ``/api/collaboration/room/``."""
FORK_IDLE = timedelta(days=1)
"""A fork neither moved nor restored for this long is deleted (when the next one is made)."""
ACTIONS = ("undo", "redo", "restore")


class TimelineRefused(Exception):
    """A timeline request that cannot be carried out: an HTTP status, a code and why."""

    def __init__(self, status: int, code: str, detail: str):
        super().__init__(detail)
        self.status = status
        self.code = code
        self.detail = detail


def unknown_fork(fork_id: str) -> TimelineRefused:
    return TimelineRefused(404, "unknown-fork", f"no timeline fork {fork_id!r} of yours")


def group_name(fork_id: str) -> str:
    """The channel-layer group of a fork room's connections, on every worker."""
    return f"rtc-timeline.{fork_id}"


def fork_room(fork_id: str) -> str:
    return f"{FORK_ROOM_PREFIX}{fork_id}"


def fork_id_of(room: str) -> str | None:
    """The fork id in a fork room's name, or None when it is not one."""
    if not room.startswith(FORK_ROOM_PREFIX):
        return None
    fork_id = room[len(FORK_ROOM_PREFIX) :]
    return fork_id if len(fork_id) == 32 and fork_id.isalnum() else None


# --- Points --------------------------------------------------------------------------------------


def serial_at(fork: TimelineFork, position: int) -> int:
    """The serial of a point: every serial when they fit, else spread evenly, the last one
    ``base_serial``."""
    if fork.points <= 1:
        return fork.base_serial
    span = fork.base_serial - fork.first_serial
    return fork.first_serial + (position * span) // (fork.points - 1)


@dataclass(frozen=True)
class Point:
    serial: int
    timestamp: float
    author: str | None


def points(fork: TimelineFork) -> list[Point]:
    """The slider's points, oldest first: each one's serial, time and author."""
    serials = [serial_at(fork, position) for position in range(fork.points)]
    rows = Transaction.objects.filter(datastore_id=fork.datastore_id)
    if fork.points == fork.base_serial - fork.first_serial + 1:
        rows = rows.filter(serial__gte=fork.first_serial, serial__lte=fork.base_serial)
    else:
        rows = rows.filter(serial__in=serials)
    found = {
        serial: Point(serial, created.timestamp(), first_name or username)
        for serial, created, username, first_name in rows.values_list(
            "serial", "created_at", "author__username", "author__first_name"
        )
    }
    return [found[serial] for serial in serials if serial in found]


# --- Opening -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Timeline:
    """What ``GET api/collaboration/timeline/<path>`` answers."""

    room_id: str
    fork_room: str
    session_id: str
    points: list[Point]


def document_for(
    jupyter: Datastore, path: str, document_type: str, user
) -> tuple[Document, Access]:
    """The open document of ``path`` and the user's access to its datastore (read at least)."""
    row = document_records.find_by_path(jupyter, path)
    datastore = document_records.document_datastore(row) if row is not None else None
    if row is None or datastore is None:
        raise TimelineRefused(404, "unknown-document", f"{path} is not open here")
    if row.type != document_type:
        raise TimelineRefused(
            400, "wrong-type", f"{path} is open as a {row.type}, not a {document_type}"
        )
    access = access_for(user, datastore)
    if not access.can_read:
        raise TimelineRefused(403, "permission-denied", f"no access to {path}")
    return row, access


def open_timeline(jupyter: Datastore, path: str, document_type: str, user) -> Timeline:
    """The document's points, and a fork at the newest one for ``user`` to move."""
    row, access = document_for(jupyter, path, document_type, user)
    fork = start_fork(access.datastore, row.record_id, user)
    return Timeline(
        room_id=room_id(row.type, row.record_id),
        fork_room=fork_room(fork.id),
        session_id=document_session(access.datastore),
        points=points(fork),
    )


def start_fork(
    datastore: Datastore, document_id: str, user, max_points: int = MAX_POINTS
) -> TimelineFork:
    """A fork of the document as it is now (its newest point), with at most ``max_points``
    points; idle forks are dropped."""
    datastore.refresh_from_db(fields=["last_serial", "history_start"])
    base = datastore.last_serial
    first = min(datastore.history_start + 1, base)
    count = min(base - first + 1 if base else 0, max_points)
    TimelineFork.objects.filter(updated_at__lt=timezone.now() - FORK_IDLE).delete()
    return TimelineFork.objects.create(
        id=uuid.uuid4().hex,
        datastore=datastore,
        document_id=document_id,
        user=user if user is not None and user.is_authenticated else None,
        base_serial=base,
        first_serial=first,
        points=count,
        position=max(count - 1, 0),
        client_id=Doc().client_id,
    )


# --- The fork's view -----------------------------------------------------------------------------


def fork_for(fork_id: str, user, *, lock: bool = False) -> TimelineFork:
    """The user's fork (404 for anyone else's: they are private), readable by them still."""
    rows = TimelineFork.objects.select_related("datastore")
    if lock:
        rows = rows.select_for_update()
    user_id = user.pk if user is not None and user.is_authenticated else None
    fork = rows.filter(pk=fork_id, user_id=user_id).first()
    if fork is None or not access_for(user, fork.datastore).can_read:
        raise unknown_fork(fork_id)
    return fork


class _Views:
    """The views last made in this process, by fork id with their version: a move builds on
    the one it made before instead of the base state plus every operation since (a worker that
    did not make it, or made an older version, builds it again)."""

    def __init__(self, size: int = 16):
        self.size = size
        self.docs: OrderedDict[str, tuple[int, Doc]] = OrderedDict()
        self.lock = threading.Lock()

    def take(self, fork: TimelineFork) -> Doc | None:
        with self.lock:
            found = self.docs.pop(fork.id, None)
        return found[1] if found is not None and found[0] == fork.version else None

    def keep(self, fork: TimelineFork, doc: Doc) -> None:
        with self.lock:
            self.docs[fork.id] = (fork.version, doc)
            while len(self.docs) > self.size:
                self.docs.popitem(last=False)


_views = _Views()


def view_doc(fork: TimelineFork) -> Doc:
    """The fork's view: the state at its base plus its operations, made under its client id so
    that further operations follow its own."""
    doc = Doc(client_id=fork.client_id, allow_multithreading=True)
    try:
        base = history.snapshot(fork.datastore, fork.base_serial)
    except HistoryPruned as error:
        raise TimelineRefused(410, "history-pruned", str(error)) from None
    if base.checkpoint_state:
        doc.apply_update(base.checkpoint_state)
    for _, update in base.updates:
        doc.apply_update(update)
    if fork.ops:
        doc.apply_update(bytes(fork.ops))
    return doc


def view_state(fork_id: str, user) -> tuple[bytes, int]:
    """The fork room's state for a joining connection, and the version it is at."""
    fork = fork_for(fork_id, user)
    return view_doc(fork).get_update(), fork.version


def state_at(fork: TimelineFork, serial: int) -> Doc:
    try:
        return history.doc_at(fork.datastore, serial)
    except HistoryPruned as error:
        raise TimelineRefused(410, "history-pruned", str(error)) from None


# --- Moving --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Moved:
    position: int
    serial: int
    version: int
    update: bytes | None
    """What the room's connections receive (None: the view did not change)."""


def move(fork_id: str, user, action: str, steps: int) -> Moved:
    """``steps`` points back (undo) or forward (redo), within the slider's ends; the room's
    connections get the operations that make their view the document at the new point."""
    with transaction.atomic():
        fork = fork_for(fork_id, user, lock=True)
        last = max(fork.points - 1, 0)
        wanted = fork.position - steps if action == "undo" else fork.position + steps
        position = max(0, min(last, wanted))
        serial = serial_at(fork, position)
        if position == fork.position:
            return Moved(position, serial, fork.version, None)
        doc = _views.take(fork) or view_doc(fork)
        before = doc.get_state()
        make_content_equal(doc, state_at(fork, serial), fork.datastore.schema)
        update = doc.get_update(before)
        fork.ops = merge_updates(bytes(fork.ops), update) if fork.ops else update
        fork.position = position
        fork.version += 1
        fork.save(update_fields=["ops", "position", "version", "updated_at"])
        moved = Moved(position, serial, fork.version, update)
        transaction.on_commit(lambda: committed(fork, doc, moved))
    return moved


def committed(fork: TimelineFork, doc: Doc, moved: Moved) -> None:
    _views.keep(fork, doc)
    announce(fork.id, moved)


def announce(fork_id: str, moved: Moved) -> None:
    """Tell the fork room's connections, on every worker (``ForkRoomConsumer.timeline_moved``)."""
    layer = get_channel_layer()
    if layer is None or moved.update is None:
        return
    async_to_sync(layer.group_send)(
        group_name(fork_id),
        {"type": "timeline.moved", "version": moved.version, "update": moved.update},
    )


# --- Restoring -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Restored:
    outcome: service.Outcome
    position: int
    serial: int
    """The serial whose state the document now has."""


def restore(fork_id: str, room: str, user) -> Restored:
    """Make the live document equal to the fork's point in one transaction (origin
    ``restore``, authored by ``user``). The fork is done
    with afterwards (jupyter-collaboration's front end opens a new timeline)."""
    fork = fork_for(fork_id, user)
    try:
        parsed = parse_room_id(room)
    except BadDocumentId:
        raise unknown_fork(fork_id) from None
    if parsed.id != fork.document_id:
        raise unknown_fork(fork_id)
    access = access_for(user, fork.datastore)
    if not access.can_write:
        raise TimelineRefused(
            403, "permission-denied", f"role {access.role or 'none'} may not restore a version"
        )
    serial = serial_at(fork, fork.position)
    target = state_at(fork, serial)
    live, _ = service.live_state(fork.datastore)
    working = Doc(allow_multithreading=True)
    working.apply_update(live)
    before = working.get_state()
    if fork.ops:
        working.apply_update(bytes(fork.ops))
    make_content_equal(working, target, fork.datastore.schema)
    proposal = service.Proposal(
        working.get_update(before),
        author_id=access.user_id,
        origin=Origin.RESTORE,
    )
    outcome = service.write_one(fork.datastore, proposal, access.authorizer())
    if outcome.ok:
        TimelineFork.objects.filter(pk=fork.pk).delete()
    return Restored(outcome, fork.position, serial)
