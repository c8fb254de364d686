"""jupyter-collaboration's forks of a document (``api/collaboration/fork/<id>``), on
``tables.forks``: the fork is a datastore branched from the document's at its newest serial,
sharing its history up to there, joined as the room ``<fork id>`` like any document's room, and
merged back as one transaction (origin ``merge``, by the person merging) or discarded.

Who may do what, decided on the root document's datastore:

- fork, list a document's forks, join a fork's room: read access (a viewer's fork is theirs to
  edit: they own its datastore; everyone else has their root role on it);
- merge: write access;
- discard: write access, or having made the fork.

A document the caller may not read is answered as one that does not exist (404), and so is a fork
of it. Forks of forks are refused (400 ``fork-of-fork``).

jupyter-collaboration's ``synchronize`` (feed the root's later changes to the fork) is not
provided: the fork shows the document as it was at the branch, and the root's later changes meet
the fork's at the merge; the answer's ``fork_info.synchronize`` is always false.
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass

from django.db import transaction

from jupyter_sync.collaboration import document_records
from jupyter_sync.document_ids import BadDocumentId, WrongType, parse_room_id
from jupyter_sync.models import Document, DocumentFork
from tables import forks as table_forks
from tables.models import Datastore
from tables.permissions import Access, access_for
from tables.pruning import HistoryPruned
from tables.service import Outcome

FORK_ID = re.compile(r"^[0-9a-f]{32}$")
DATASTORE_PREFIX = "fork."
"""A fork's datastore is ``fork.<fork id>``."""


class ForkRefused(Exception):
    """A fork request that cannot be carried out: an HTTP status, a code and why."""

    def __init__(self, status: int, code: str, detail: str):
        super().__init__(detail)
        self.status = status
        self.code = code
        self.detail = detail


def is_fork_id(value: str) -> bool:
    return bool(FORK_ID.fullmatch(value))


def unknown_fork(fork_id: str) -> ForkRefused:
    return ForkRefused(404, "unknown-fork", f"no fork {fork_id!r}")


def unknown_root(room: str) -> ForkRefused:
    return ForkRefused(404, "unknown-document", f"no open document in room {room!r}")


@dataclass(frozen=True)
class ForkInfo:
    """jupyter-collaboration's ``fork_info``, plus where the fork branched."""

    fork_id: str
    root_room: str
    title: str
    description: str
    serial: int
    created_by: str | None

    def to_json(self) -> dict:
        return {
            "root_roomid": self.root_room,
            "synchronize": False,
            "title": self.title,
            "description": self.description,
            "serial": self.serial,
            "createdBy": self.created_by,
        }


def info(row: DocumentFork) -> ForkInfo:
    return ForkInfo(
        row.id,
        row.root_room,
        row.title,
        row.description,
        row.datastore.fork_serial,
        row.created_by.get_username() if row.created_by is not None else None,
    )


# --- Checks ---------------------------------------------------------------------------------


def check_root(jupyter: Datastore, room: str, user) -> Access:
    """The user's access to the open document ``room`` names (read at least). What they may not
    read is answered as missing; a fork's id is refused as a root."""
    if is_fork_id(room):
        found = fork_for(room, user, missing=unknown_root(room))
        raise ForkRefused(
            400, "fork-of-fork", f"{found.id!r} is a fork; fork {found.root_room!r} instead"
        )
    try:
        parsed = parse_room_id(room)
    except BadDocumentId as error:
        raise ForkRefused(400, "bad-room", str(error)) from None
    record = Document.objects.filter(datastore=jupyter, record_id=parsed.id).first()
    datastore = document_records.document_datastore(record) if record is not None else None
    if record is None or datastore is None:
        raise unknown_root(room)
    access = access_for(user, datastore)
    if not access.can_read:
        raise unknown_root(room)
    try:
        parsed.check_type(record.type)
    except WrongType as error:
        raise ForkRefused(400, "wrong-type", str(error)) from None
    return access


def fork_for(fork_id: str, user, *, missing: ForkRefused | None = None) -> DocumentFork:
    """The fork, when the user may read its root (else ``missing``: 404 unknown-fork)."""
    row = (
        DocumentFork.objects.select_related("datastore", "root", "created_by")
        .filter(pk=fork_id)
        .first()
        if is_fork_id(fork_id)
        else None
    )
    if row is None or not access_for(user, row.root).can_read:
        raise missing or unknown_fork(fork_id)
    return row


# --- Actions --------------------------------------------------------------------------------


def do_create_fork(jupyter: Datastore, room: str, user, title: str, description: str) -> ForkInfo:
    """A fork of the document at its newest serial, owned by ``user``."""
    access = check_root(jupyter, room, user)
    fork_id = uuid.uuid4().hex
    try:
        with transaction.atomic():
            datastore = table_forks.do_create_fork(
                access.datastore, DATASTORE_PREFIX + fork_id, owner=user
            )
            row = DocumentFork.objects.create(
                id=fork_id,
                datastore=datastore,
                root=access.datastore,
                root_room=room,
                title=title,
                description=description,
                created_by=user if user is not None and user.is_authenticated else None,
            )
    except HistoryPruned as error:
        raise ForkRefused(410, "history-pruned", str(error)) from None
    return info(row)


def forks_of(jupyter: Datastore, room: str, user) -> list[ForkInfo]:
    """The forks of a document, oldest first."""
    access = check_root(jupyter, room, user)
    rows = DocumentFork.objects.filter(root=access.datastore).select_related(
        "datastore", "created_by"
    )
    return [info(row) for row in rows]


@dataclass(frozen=True)
class Deleted:
    fork: ForkInfo
    outcome: Outcome | None
    """The merge's write (None: discarded)."""


def do_delete_fork(fork_id: str, user, *, merge: bool) -> Deleted:
    """Merge the fork into its root (write access on the root) or discard it (write access, or
    having made it); either way the fork is gone after, unless the merge was refused."""
    row = fork_for(fork_id, user)
    root_access = access_for(user, row.root)
    made_it = user is not None and user.is_authenticated and row.created_by_id == user.pk
    if not root_access.can_write and (merge or not made_it):
        action = "merge" if merge else "discard"
        raise ForkRefused(
            403,
            "permission-denied",
            f"role {root_access.role or 'none'} may not {action} a fork of this document",
        )
    found = info(row)
    try:
        if not merge:
            table_forks.do_discard_fork(row.datastore)
            return Deleted(found, None)
        outcome = table_forks.do_merge_fork(
            row.datastore, author_id=root_access.user_id, authorize=root_access.authorizer()
        )
    except table_forks.ForkGone:
        raise unknown_fork(fork_id) from None
    return Deleted(found, outcome)
