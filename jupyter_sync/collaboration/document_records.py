"""``documents`` records written on a user's behalf: open a path, ask for a request.

The REST API and jupyter-collaboration's endpoints both come here. Everything is written through
the write path with the caller's ``authorize`` hook (``Access.authorizer()`` for the jupyter
datastore), so a viewer is refused there as anywhere else, and the supernode, a peer of the relay,
sees the change like any client's. Records are read from their projection (``Document`` rows),
which the write path keeps equal to the committed records.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from jupyter_sync.models import Document
from jupyter_sync.paths import BadPath, checked_path
from jupyter_sync.records import WritePathWriter, do_ask_document, do_create_document
from jupyter_sync.schema import DOCUMENT_FORMATS, JUPYTER_DATASTORE, document_datastore_name
from tables.models import Datastore
from tables.permissions import Access
from tables.read_sql import fetch_one

REQUESTS = ("save", "reload", "rename", "close", "delete")
"""What a client may ask of a document once it has one (``open`` is asked by opening it)."""
DOCUMENT_ID_NAMESPACE = uuid.UUID("0f7c2b0e-5f4b-4d55-8a8e-4c7b9b1f6a10")


InvalidDocumentPath = BadPath  # the name callers here have used


def normalize_path(path: str) -> str:
    """The contents API path for a document: ``jupyter_sync.paths.checked_path``. Jupyter
    Server refuses paths outside its root too, but only the supernode would hear it; refusing
    here gives the caller the reason and writes nothing."""
    return checked_path(path)


def document_type_for(path: str, requested: str | None) -> str:
    """The document type: the one asked for, else from the name (``.ipynb``: notebook)."""
    if requested:
        return requested
    return "notebook" if path.endswith(".ipynb") else "file"


def new_document_id(path: str, taken: set[str]) -> str:
    """A document id for ``path``: derived from the path, so that two clients opening the same
    new file at once write the same record rather than two; another one (still derived, so
    still shared) when a renamed document holds that id."""
    for attempt in range(1000):
        seed = path if attempt == 0 else f"{path}\n{attempt}"
        candidate = uuid.uuid5(DOCUMENT_ID_NAMESPACE, seed).hex
        if candidate not in taken:
            return candidate
    raise RuntimeError(f"no free document id for {path!r}")  # 1000 renames away: not plausible


def jupyter_records(jupyter: Datastore):
    return Document.objects.filter(datastore=jupyter)


def document_datastore(row: Document, jupyter: Datastore | None = None) -> Datastore | None:
    """The datastore a documents record leads to: the one the supernode opened it into
    (``doc-<id>``, its roles those of the jupyter datastore), once the record says it is there.
    A record naming any other datastore (any editor may write one) leads nowhere: a record
    must never let someone read or act on a datastore they have no role on. ``jupyter``: the
    jupyter datastore's row, when the caller has read it (one statement then, not a join)."""
    name = document_datastore_name(row.record_id)
    if row.datastore_name != name:
        return None
    if jupyter is None or jupyter.name != JUPYTER_DATASTORE:
        return Datastore.objects.filter(name=name, roles_from__name=JUPYTER_DATASTORE).first()
    found = fetch_one(Datastore, name=name)
    return found if found is not None and found.roles_from_id == jupyter.pk else None


def find(jupyter: Datastore, document_id: str) -> Document | None:
    return jupyter_records(jupyter).filter(record_id=document_id).first()


def find_by_path(jupyter: Datastore, path: str) -> Document | None:
    """The record for ``path``: an open one first, then any (a closed one is opened again)."""
    rows = list(jupyter_records(jupyter).filter(path=path).order_by("record_id"))
    rows.sort(key=lambda row: row.status not in ("open", "opening", "saving"))
    return rows[0] if rows else None


@dataclass(frozen=True)
class Opened:
    document_id: str
    created: bool
    """A new record was written (no document for this path before)."""
    requested: bool
    """``request: open`` was written: the supernode has work to do."""


@dataclass(frozen=True)
class OpenTarget:
    document_id: str
    existing: Document | None
    """The record for the path, if there is one (None: ``document_id`` is a new id)."""


def check_open_document(jupyter: Datastore, path: str) -> OpenTarget:
    """The document opening ``path`` reaches: its record, else a new id (reads only)."""
    existing = find_by_path(jupyter, path)
    if existing is not None:
        return OpenTarget(existing.record_id, existing)
    taken = set(jupyter_records(jupyter).values_list("record_id", flat=True))
    return OpenTarget(new_document_id(path, taken), None)


def open_document(
    access: Access, path: str, document_type: str, username: str, file_format: str | None = None
) -> Opened:
    """Find the document for ``path`` or create its record, asking the supernode to open it
    unless it is open already (``path``: normalized by the caller)."""
    target = check_open_document(access.datastore, path)
    existing = target.existing
    if existing is None:
        file_format = file_format or DOCUMENT_FORMATS[document_type]
        do_create_document(
            WritePathWriter(access), target.document_id, path, document_type, file_format, username
        )
        return Opened(target.document_id, created=True, requested=True)
    if existing.status in ("open", "saving") and existing.datastore_name:
        return Opened(existing.record_id, created=False, requested=False)
    if existing.request != "open":  # else already asked for; the supernode is on it
        do_ask_document(
            WritePathWriter(access),
            existing.record_id,
            "open",
            username,
            document_type=None if existing.type else document_type,
        )
    return Opened(existing.record_id, created=False, requested=True)


class Busy(Exception):
    """The document has a request the supernode has not carried out yet."""


def check_document_request(document: Document) -> None:
    """A document takes one request at a time (``Busy``)."""
    if document.request:
        raise Busy(f"document {document.record_id!r} is still carrying out {document.request!r}")


def ask(
    access: Access, document: Document, request: str, username: str, new_path: str | None = None
) -> None:
    """Write ``request`` (and ``new_path`` for a rename) on the document's record."""
    check_document_request(document)
    do_ask_document(
        WritePathWriter(access), document.record_id, request, username, new_path=new_path
    )
