"""One place per kind of write to the jupyter datastore's records.

Each action is a ``do_*`` function that decides which fields are written, with which
timestamps and on whose behalf, and hands them to a ``RecordWriter``; what must be validated
first is checked by the caller, which reads (``collaboration.document_records.check_*``, the
REST serializers). This module depends on tables and the schema only: both sides import it.

The two sides write differently: the web side through the tables write path, as the caller
(``WritePathWriter``: author, origin, the role's ``authorize`` hook); the supernode into its
client's live doc (``supernode.live_records.LiveRecords``), which the relay replicates. The
actions are the same for both.
"""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from typing import Any, Protocol

from jupyter_sync.schema import timestamp
from tables import records
from tables.models import Origin
from tables.permissions import Access
from tables.service import Authorizer, Status


class RecordWriter(Protocol):
    def write(self, table: str, record_id: str, fields: dict[str, Any]) -> None:
        """Set ``fields`` of the record (a new one on the web side); ``RecordWriteRejected``
        when the write path rejects the edit."""
        ...


class RecordWriteRejected(Exception):
    """The write path refused the edit (``code`` and ``detail`` as the write path says them)."""

    def __init__(self, code: str | None, detail: str | None):
        self.code = code or "refused"
        self.detail = detail or self.code
        super().__init__(self.detail)


class WritePathWriter:
    """Writes through the tables write path as ``access``'s user (a viewer is refused there as
    anywhere else); ``authorize`` narrows what may be written (default: the role's hook)."""

    def __init__(self, access: Access, authorize: Authorizer | None = None):
        self.access = access
        self.authorize = authorize or access.authorizer()

    def write(self, table: str, record_id: str, fields: dict[str, Any]) -> None:
        self.write_many(table, {record_id: fields})

    def write_many(self, table: str, fields: dict[str, dict[str, Any]]) -> None:
        """Several records (id -> fields) in one transaction: all written, or none."""
        outcome = records.set_records(
            self.access.datastore,
            table,
            fields,
            author_id=self.access.user_id,
            origin=Origin.REST,
            authorize=self.authorize,
        )
        if outcome.status is Status.REJECTED:
            raise RecordWriteRejected(outcome.error_code, outcome.error)


# --- Requests (kernels, sessions, terminals, contents) -------------------------------------


def do_new_record(
    writer: RecordWriter, table: str, fields: dict[str, Any], requested_by: str
) -> str:
    """A new record asking the supernode for work (id: a fresh uuid), stamped with who asked and
    when; its id."""
    record_id = uuid.uuid4().hex
    writer.write(
        table, record_id, {**fields, "requested_by": requested_by, "created_at": timestamp()}
    )
    return record_id


def do_new_records_in_order(
    writer: WritePathWriter, table: str, fields: list[dict[str, Any]], requested_by: str
) -> list[str]:
    """New records asking for work in this order, all in one transaction (none if refused);
    their ids. ``created_at`` rises by a microsecond from one to the next: the supernode runs a
    notebook's cells in ``created_at`` order, and these were asked for at once, in this order."""
    now = datetime.fromisoformat(timestamp())
    made = {
        uuid.uuid4().hex: {
            **values,
            "requested_by": requested_by,
            "created_at": (now + timedelta(microseconds=position)).isoformat(),
        }
        for position, values in enumerate(fields)
    }
    writer.write_many(table, made)
    return list(made)


def do_request_action(
    writer: RecordWriter, action: str, params: dict[str, Any], requested_by: str
) -> str:
    """A ``requests`` record asking for ``action``; its id."""
    return do_new_record(
        writer,
        "requests",
        {"action": action, "params": params, "status": "requested"},
        requested_by,
    )


def do_start_request(writer: RecordWriter, request_id: str) -> None:
    writer.write("requests", request_id, {"status": "running"})


def do_finish_request(writer: RecordWriter, request_id: str, result: dict[str, Any]) -> None:
    writer.write(
        "requests",
        request_id,
        {"status": "completed", "result": result, "finished_at": timestamp()},
    )


def do_fail_request(
    writer: RecordWriter, request_id: str, message: str, told: dict[str, Any]
) -> None:
    """``told``: the HTTP status a client should see, and the message (``actions.failure``)."""
    writer.write(
        "requests",
        request_id,
        {
            "status": "error",
            "error": message,
            "result": {"error": told},
            "finished_at": timestamp(),
        },
    )


# --- Executions ------------------------------------------------------------------------------
# A client asks (``do_new_record``, then ``do_answer_input``, ``do_cancel_execution``); the
# supernode carries out: queued (cells wait their turn), running, then one of the ends.


def do_answer_input(writer: RecordWriter, execution_id: str, value: str) -> None:
    """The reply to the kernel's input request (the supernode sends it on and clears it)."""
    writer.write("executions", execution_id, {"input_reply": value})


def do_cancel_execution(writer: RecordWriter, execution_id: str) -> None:
    """Ask for the execution to be dropped (queued) or interrupted (running)."""
    writer.write("executions", execution_id, {"cancel": True})


def do_queue_execution(writer: RecordWriter, execution_id: str) -> None:
    writer.write("executions", execution_id, {"status": "queued", "error": None})


def do_note_request_source(writer: RecordWriter, execution_id: str, digest: str) -> None:
    """The cell's source hash when the supernode took the request, for a record written without
    one (the REST API writes it with the record)."""
    writer.write("executions", execution_id, {"source_hash": digest})


def do_start_execution(writer: RecordWriter, execution_id: str, **ran: Any) -> None:
    """Running from now; ``ran``: what it runs when the record did not say (a cell's
    ``kernel_id`` and ``code``)."""
    writer.write(
        "executions", execution_id, {"status": "running", "started_at": timestamp(), **ran}
    )


def do_ask_input(writer: RecordWriter, execution_id: str, prompt: str, password: bool) -> None:
    """The kernel waits for input: a client answers with ``do_answer_input``."""
    writer.write(
        "executions",
        execution_id,
        {"input_request": {"prompt": prompt, "password": password}, "input_reply": None},
    )


def do_clear_input(writer: RecordWriter, execution_id: str) -> None:
    """The reply went to the kernel."""
    writer.write("executions", execution_id, {"input_request": None, "input_reply": None})


def do_drop_execution(writer: RecordWriter, execution_id: str) -> None:
    """Cancelled before it ran."""
    writer.write("executions", execution_id, {"status": "cancelled", "finished_at": timestamp()})


def do_end_execution(
    writer: RecordWriter,
    execution_id: str,
    status: str,
    error: str | None,
    execution_count: int | None,
) -> None:
    """An execution that ran to its end (completed, error or cancelled)."""
    writer.write(
        "executions",
        execution_id,
        {
            "status": status,
            "error": error,
            "execution_count": execution_count,
            "input_request": None,
            "input_reply": None,
            "finished_at": timestamp(),
        },
    )


def do_fail_execution(writer: RecordWriter, execution_id: str, message: str) -> None:
    writer.write(
        "executions",
        execution_id,
        {"status": "error", "error": message, "input_request": None, "finished_at": timestamp()},
    )


def do_abandon_execution(writer: RecordWriter, execution_id: str, reason: str) -> None:
    """Left queued or running by a supernode that stopped (or crashed): an end, not 'running'."""
    writer.write(
        "executions",
        execution_id,
        {"status": "error", "error": reason, "finished_at": timestamp()},
    )


# --- Server state the supernode follows between two refreshes --------------------------------


def do_set_kernel_state(writer: RecordWriter, kernel_id: str, state: str) -> None:
    """``execution_state`` as the kernel's status messages say it (``dead``: its connection
    ended)."""
    writer.write("kernels", kernel_id, {"execution_state": state})


def do_mark_server_unreachable(writer: RecordWriter) -> None:
    """The supernode cannot reach the Jupyter Server (a refresh restores ``connected``)."""
    writer.write("status", "server", {"connected": False})


# --- Documents -------------------------------------------------------------------------------
# A client creates the record or asks for a ``request``; the supernode carries it out, clears
# it, and keeps ``status`` (opening, open, saving, closed, error) and the file's facts.

DOCUMENT_CLEAN = {"error": None, "error_status": None}
"""No failure to report any more: the fields a success clears."""


def do_create_document(
    writer: RecordWriter,
    document_id: str,
    path: str,
    document_type: str,
    file_format: str,
    requested_by: str,
) -> None:
    """A new document record asking the supernode to open ``path``."""
    writer.write(
        "documents",
        document_id,
        {
            "path": path,
            "type": document_type,
            "format": file_format,
            "status": "requested",
            "request": "open",
            "requested_by": requested_by,
        },
    )


def do_ask_document(
    writer: RecordWriter,
    document_id: str,
    request: str,
    requested_by: str,
    *,
    new_path: str | None = None,
    document_type: str | None = None,
) -> None:
    """Ask for ``request`` on a document (``new_path`` for a rename; ``document_type`` when the
    record has none yet)."""
    fields: dict[str, Any] = {"request": request, "requested_by": requested_by}
    if request == "rename":
        fields["new_path"] = new_path
    if document_type:
        fields["type"] = document_type
    writer.write("documents", document_id, fields)


def do_clear_document_request(writer: RecordWriter, document_id: str) -> None:
    """The request was carried out (or failed, and ``error`` says why)."""
    writer.write("documents", document_id, {"request": None})


def do_document_opening(writer: RecordWriter, document_id: str, document_type: str) -> None:
    writer.write("documents", document_id, {"status": "opening", "type": document_type})


def do_document_opened(
    writer: RecordWriter,
    document_id: str,
    *,
    datastore_name: str,
    file_format: str,
    last_modified: str | None,
    conflict: dict[str, Any] | None,
) -> None:
    """Open in ``datastore_name``; ``conflict`` when the document and the file both changed
    while it was closed."""
    writer.write(
        "documents",
        document_id,
        {
            "status": "open",
            "datastore_name": datastore_name,
            "format": file_format,
            "last_modified": last_modified,
            **DOCUMENT_CLEAN,
            "conflict": conflict,
        },
    )


def do_document_saving(writer: RecordWriter, document_id: str) -> None:
    writer.write("documents", document_id, {"status": "saving"})


def do_document_saved(writer: RecordWriter, document_id: str, last_modified: str | None) -> None:
    """The file holds the document (any conflict resolved in the document's favour)."""
    writer.write(
        "documents",
        document_id,
        {
            "status": "open",
            "last_saved": timestamp(),
            "last_modified": last_modified,
            "conflict": None,
            **DOCUMENT_CLEAN,
        },
    )


def do_document_loaded(writer: RecordWriter, document_id: str, last_modified: str | None) -> None:
    """The document holds the file (any conflict resolved in the file's favour)."""
    writer.write(
        "documents",
        document_id,
        {"status": "open", "last_modified": last_modified, "conflict": None, **DOCUMENT_CLEAN},
    )


def do_document_conflict(writer: RecordWriter, document_id: str, conflict: dict[str, Any]) -> None:
    """The document and its file both changed: both kept until a client decides."""
    writer.write("documents", document_id, {"conflict": conflict})


def do_document_found(writer: RecordWriter, document_id: str) -> None:
    """A file reported missing is back where it was."""
    writer.write("documents", document_id, {"status": "open", **DOCUMENT_CLEAN})


def do_document_renamed(
    writer: RecordWriter, document_id: str, new_path: str, status: str | None
) -> None:
    """The file (and the document's ``path``) moved to ``new_path``; ``status`` stays as given."""
    writer.write(
        "documents",
        document_id,
        {"path": new_path, "new_path": None, **DOCUMENT_CLEAN, "status": status},
    )


def do_document_closed(writer: RecordWriter, document_id: str) -> None:
    writer.write("documents", document_id, {"status": "closed", "conflict": None, **DOCUMENT_CLEAN})


def do_fail_document(writer: RecordWriter, document_id: str, message: str, status: int) -> None:
    """A document request that failed: why, and the HTTP status a client should see."""
    writer.write(
        "documents", document_id, {"status": "error", "error": message, "error_status": status}
    )
