"""One place per kind of write to the jupyter datastore's records.

Each action is a ``do_*`` function (after a ``check_*`` where there is something to validate)
that decides which fields are written, with which timestamps and on whose behalf, and hands
them to a ``RecordWriter``. The two sides write differently: the web side through the tables
write path, as the caller (``WritePathWriter``: author, origin, the role's ``authorize`` hook);
the supernode into its client's live doc (``supernode.live_records.LiveRecords``), which the relay
replicates. The actions are the same for both.
"""

from __future__ import annotations

import uuid
from typing import Any, Protocol

from django.utils import timezone

from jupyter_sync.models import SupernodeLease
from jupyter_sync.schema import JUPYTER_DATASTORE, timestamp
from jupyter_sync.waiting import read_record
from tables import records
from tables.models import Datastore, Origin
from tables.permissions import Access
from tables.service import Authorizer, Status


class RecordWriter(Protocol):
    def write(self, table: str, record_id: str, fields: dict[str, Any]) -> None:
        """Set ``fields`` of the record (a new one on the web side); ``RecordRefused`` when the
        write path refuses."""
        ...


class RecordRefused(Exception):
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
        outcome = records.set_fields(
            self.access.datastore,
            table,
            record_id,
            fields,
            author_id=self.access.user_id,
            origin=Origin.REST,
            authorize=self.authorize,
        )
        if outcome.status is Status.REJECTED:
            raise RecordRefused(outcome.error_code, outcome.error)


def supernode_problem(datastore: Datastore) -> str | None:
    """Why no action can be carried out now (None: a supernode holds the lease and reaches
    Jupyter). Asked before writing anything the supernode must carry out."""
    live = SupernodeLease.objects.filter(
        name=JUPYTER_DATASTORE, expires_at__gt=timezone.now()
    ).exists()
    if not live:
        return "no supernode is connected: start one with manage.py run_supernode"
    server = read_record(datastore, "status", "server")
    if server is not None and server.get("connected") is False:
        return "the supernode cannot reach the Jupyter Server at the moment"
    return None


# --- Asked by a client (the web side) -------------------------------------------------------


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


def do_answer_input(writer: RecordWriter, execution_id: str, value: str) -> None:
    """The reply to the kernel's input request (the supernode sends it on and clears it)."""
    writer.write("executions", execution_id, {"input_reply": value})


def do_cancel_execution(writer: RecordWriter, execution_id: str) -> None:
    writer.write("executions", execution_id, {"cancel": True})


# --- Carried out by the supernode -----------------------------------------------------------


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


def do_fail_execution(writer: RecordWriter, execution_id: str, message: str) -> None:
    writer.write(
        "executions",
        execution_id,
        {"status": "error", "error": message, "input_request": None, "finished_at": timestamp()},
    )


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


def do_fail_document(writer: RecordWriter, document_id: str, message: str, status: int) -> None:
    """A document request that failed: why, and the HTTP status a client should see."""
    writer.write(
        "documents", document_id, {"status": "error", "error": message, "error_status": status}
    )
