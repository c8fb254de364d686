"""The ``jupyter`` datastore: a Jupyter Server's state as tables, plus the action tables; and the
vocabulary of its records that the web side and the supernode share (names, statuses, keys, time).

Server-state tables are written only by the supernode's service account; ``executions`` and
``documents`` are where clients ask for work to be done (the supernode writes the results back).
"""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from typing import Any

from tables.schema import Table, TableSchema, list_, map_, register, text

JUPYTER_DATASTORE = "jupyter"
"""The datastore's name (one per deployment)."""

REQUEST_STATUSES = ("requested", "running", "completed", "error")
ACTIONS = (
    "refresh",
    "kernel.start",
    "kernel.shutdown",
    "kernel.interrupt",
    "kernel.restart",
    "session.create",
    "session.update",
    "session.delete",
    "terminal.create",
    "terminal.delete",
    "contents.list",
    "contents.get",
    "contents.new",
    "contents.save",
    "contents.rename",
    "contents.delete",
)
REQUEST_DONE = ("completed", "error")
EXECUTION_STATUSES = ("requested", "queued", "running", "completed", "error", "cancelled")
EXECUTION_DONE = ("completed", "error", "cancelled")
DOCUMENT_STATUSES = ("requested", "opening", "open", "saving", "closed", "error")
DOCUMENT_OPEN_STATUSES = ("opening", "open", "saving")
DOCUMENT_FORMATS = {"notebook": "json", "file": "text"}
"""Document type → the contents API format it is loaded and saved in."""


def document_datastore_name(document_id: str) -> str:
    """The datastore the supernode opens a document into: named after the document id (so a
    rename keeps it), and the only one a documents record may lead to. The record's own
    ``datastore_name`` is writable by any editor of the jupyter datastore, so it is never
    trusted to name a datastore; ``doc-`` is reserved (``RTC_RESERVED_NAMES``)."""
    return f"doc-{document_id}"


def timestamp() -> str:
    """Now, as the records' ``*_at`` fields hold it: ISO 8601 in UTC."""
    return datetime.now(UTC).isoformat()


def source_hash(source: str) -> str:
    """A cell source's fingerprint, as an execution's ``source_hash`` and a request's expected
    hash hold it: sha256 of its UTF-8, in hex (what a client can compute from the text it sees)."""
    return hashlib.sha256(source.encode("utf-8", "surrogatepass")).hexdigest()


def content_key(path: str) -> str:
    """Record id of a path in the contents table ("/" for the root, whose path is "")."""
    return path or "/"


CONTENT_FIELDS = (
    "name",
    "path",
    "type",
    "created",
    "last_modified",
    "mimetype",
    "format",
    "size",
    "writable",
)
"""The fields of a contents model a ``contents`` record keeps, in the order Jupyter answers."""


def content_fields(model: dict[str, Any], file_format: str | None) -> dict[str, Any]:
    """``CONTENT_FIELDS`` of a contents model (or of a ``contents`` record), with ``format``
    as given (a record keeps no content, so no content's format)."""
    return {name: file_format if name == "format" else model.get(name) for name in CONTENT_FIELDS}


def parent_path(path: str) -> str:
    return path.strip("/").rpartition("/")[0]


def parent_key(path: str) -> str:
    return content_key(path.rpartition("/")[0])


JUPYTER = TableSchema(
    "jupyter",
    doc="The state of a Jupyter Server, kept in sync by the supernode.",
    tables=[
        Table(
            "status",
            {
                "started": register("string"),
                "last_activity": register("string"),
                "connections": register("integer"),
                "kernels": register("integer"),
                "version": register("string"),
                "connected": register("boolean", doc="The supernode is connected to Jupyter."),
                "default_kernelspec": register("string", doc="The server's default kernelspec."),
            },
            writable_by="service",
            doc="One record, 'server': the server's /api/status.",
        ),
        Table(
            "kernelspecs",
            {
                "name": register("string"),
                "display_name": register("string"),
                "language": register("string"),
                "spec": map_(),
                "resources": map_(),
            },
            writable_by="service",
            doc="Keyed by kernelspec name.",
        ),
        Table(
            "kernels",
            {
                "name": register("string"),
                "last_activity": register("string"),
                "execution_state": register("string"),
                "connections": register("integer"),
                "reason": register("string"),
            },
            writable_by="service",
            doc="Keyed by kernel id.",
        ),
        Table(
            "sessions",
            {
                "path": register("string"),
                "name": register("string"),
                "type": register("string"),
                "kernel_id": register("string"),
                "kernel_name": register("string"),
            },
            writable_by="service",
            doc="Keyed by session id.",
        ),
        Table(
            "contents",
            {
                "name": register("string"),
                "path": register("string"),
                "type": register("string", choices=("directory", "file", "notebook")),
                "created": register("string"),
                "last_modified": register("string"),
                "mimetype": register("string"),
                "format": register("string"),
                "size": register("integer"),
                "writable": register("boolean"),
                "children": list_(doc="Names of the entries of a directory."),
            },
            writable_by="service",
            doc="Keyed by path; folders appear once a client has asked for them.",
        ),
        Table(
            "terminals",
            {"name": register("string"), "last_activity": register("string")},
            writable_by="service",
            doc="Keyed by terminal name.",
        ),
        Table(
            "executions",
            {
                "document_id": register("string"),
                "cell_id": register("string"),
                "kernel_id": register("string"),
                "session_id": register(
                    "string", doc="A cell's: the notebook's session whose kernel ran it."
                ),
                "code": text(doc="Console code; for a cell, its source as it ran."),
                "source_hash": register(
                    "string",
                    doc="A cell's: sha256 of its source when the request was accepted.",
                ),
                "source_changed": register(
                    "boolean",
                    doc="A cell's: the source that ran (code) is not the one of source_hash: "
                    "the cell was edited between the request and the run.",
                ),
                "status": register("string", choices=EXECUTION_STATUSES),
                "requested_by": register("string"),
                "outputs": list_(
                    doc="nbformat outputs; each a map, a stream's text a shared text that grows.",
                    item_texts=("text",),
                ),
                "execution_count": register("integer"),
                "error": register("string"),
                "created_at": register("string"),
                "started_at": register("string"),
                "finished_at": register("string"),
                "input_request": register(
                    "object", doc="Set by the supernode while the kernel asks for input."
                ),
                "input_reply": register("string", doc="The answer to input_request."),
                "cancel": register(
                    "boolean",
                    doc="True asks to cancel: a queued execution is dropped, a running one "
                    "interrupted; the status ends 'cancelled'.",
                ),
            },
            doc=(
                "Execution requests; the supernode runs them. With document_id and cell_id: that "
                "notebook cell's current source, outputs written into the cell. Otherwise: "
                "code on kernel_id, outputs in the record."
            ),
        ),
        Table(
            "requests",
            {
                "action": register("string", choices=ACTIONS),
                "params": register("object", doc="The action's arguments (see docs)."),
                "status": register("string", choices=REQUEST_STATUSES),
                "result": register(
                    "object",
                    doc="Jupyter's answer, e.g. the started kernel; on error, error: {status, "
                    "message} (the HTTP status a client should see).",
                ),
                "error": register("string"),
                "requested_by": register("string"),
                "created_at": register("string"),
                "finished_at": register("string"),
            },
            doc="Actions on kernels, sessions, terminals and folders; the supernode runs them.",
        ),
        Table(
            "documents",
            {
                "path": register("string"),
                "type": register("string", choices=tuple(DOCUMENT_FORMATS)),
                "format": register("string"),
                "datastore_name": register("string", doc="The document's own datastore."),
                "status": register("string", choices=DOCUMENT_STATUSES),
                "request": register(
                    "string",
                    doc="open, save, reload, rename, delete or close; cleared by the supernode "
                    "once carried out.",
                ),
                "new_path": register("string", doc="With request 'rename': the new path."),
                "requested_by": register("string"),
                "last_saved": register("string"),
                "last_modified": register(
                    "string",
                    doc="The file's last_modified when the supernode last read or wrote it.",
                ),
                "conflict": register(
                    "object",
                    doc="Set when the file and the document both changed: detected_at, "
                    "disk_last_modified, message. A 'save' (document wins) or 'reload' (file "
                    "wins) request clears it.",
                ),
                "error": register("string"),
                "error_status": register(
                    "integer",
                    doc="With error: the HTTP status a client should see (404: no such file; "
                    "400: a bad request; a 4xx Jupyter answered; 502: the supernode or Jupyter "
                    "failed).",
                ),
            },
            doc=(
                "Documents (id: a stable document id chosen by the creator). A record asks the "
                "supernode to open a file into its own datastore (datastore_name), save, reload, "
                "rename (to new_path), delete or close it; see jupyter_sync/supernode/documents/."
            ),
        ),
    ],
)
