"""Running code: ``/api/executions`` (records of the ``executions`` table), and the shapes
Jupyter front ends send, ``POST /api/kernels/<id>/execute`` with its request URL and input.

An execution is a record (``status: requested``) the supernode runs: console code on a kernel,
or a notebook cell by id (its outputs go into the notebook). A kernel asking for input sets the
record's ``input_request``; the answer is written as ``input_reply``. A cell's record keeps its
provenance (who asked, the source hash at request time, the source that ran, kernel and session,
times); ``GET /api/executions?document_id=`` lists a notebook's runs by it.
"""

from __future__ import annotations

import json
import time
from typing import Any

from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import status
from rest_framework.request import Request
from rest_framework.response import Response

from jupyter_sync.api import serializers as s
from jupyter_sync.api.base import JupyterView, restore_integers, write_path_refusals
from jupyter_sync.api.views import TAG, action_errors, error_responses
from jupyter_sync.collaboration.document_records import document_datastore
from jupyter_sync.document_ids import DocumentIdError, notebook_only, parse_document_id
from jupyter_sync.models import Cell, Document, Output
from jupyter_sync.notebook_rows import find_notebook
from jupyter_sync.records import do_answer_input, do_cancel_execution, do_new_records_in_order
from jupyter_sync.schema import EXECUTION_DONE, source_hash
from jupyter_sync.trace import mark
from tables.api.errors import APIError, conflict, not_found
from tables.api.serializers import validated
from tables.permissions import access_for
from tables.read_sql import fetch_one, fetch_values

FIELDS = tuple(s.ExecutionSerializer().fields)
PROVENANCE_FIELDS = tuple(name for name in FIELDS if name != "outputs")


def finished(record: Any) -> bool:
    return record is not None and record.get("status") in EXECUTION_DONE


def settled(record: Any) -> bool:
    """Finished, or waiting for input: either way the caller has something to do."""
    return finished(record) or bool(record and record.get("input_request"))


class ExecutionBase(JupyterView):
    def known_kernel(self, kernel_id: str) -> None:
        if self.record("kernels", kernel_id) is None:
            raise not_found("not-found", f"Unknown kernel with id: {kernel_id}")

    def notebook(self, document_id: str) -> str:
        """The record id of the notebook ``document_id`` names (a bare id or a room id,
        ``jupyter_sync.document_ids``): 400 for a malformed id, a room id of another type or a
        document that is not a notebook, 404 for an unknown one."""
        try:
            parsed = parse_document_id(document_id)
            document = self.record("documents", parsed.id)
            if document is None:
                raise not_found("unknown-document", f"no document {document_id!r}")
            parsed.check_type(document.get("type"))
            notebook_only(document.get("type"), parsed.id)
        except DocumentIdError as error:
            raise APIError(status.HTTP_400_BAD_REQUEST, error.code, str(error)) from None
        return parsed.id

    def execution(self, execution_id: str) -> dict[str, Any]:
        record = self.record("executions", execution_id)
        if record is None:
            raise not_found("unknown-execution", f"no execution {execution_id!r}")
        return record

    def readable_notebook(self, document_id: str) -> Any:
        """The notebook's own datastore, if it exists and the caller may read it."""
        # The jupyter datastore is the one the permission check read (``JupyterAccess``).
        row = fetch_one(Document, datastore=self.datastore.pk, record_id=document_id)
        datastore = document_datastore(row, self.datastore) if row is not None else None
        if datastore is None or not access_for(self.request.user, datastore).can_read:
            return None
        return datastore

    def cell_request(self, data: dict[str, Any]) -> dict[str, Any]:
        """A cell's execution fields: the notebook's record id, and ``source_hash``, the cell's
        source as committed now (the projection), which the run compares with what it runs.
        A caller's own ``source_hash`` that differs from it is refused (409 source-changed),
        as jupyter-server-documents refuses a stale one, before anything is written."""
        data["document_id"] = self.notebook(data["document_id"])
        datastore = self.readable_notebook(data["document_id"])
        notebook = find_notebook(datastore.pk) if datastore is not None else None
        cell = (
            fetch_values(Cell, ("source",), notebook=notebook.pk, cell_id=data["cell_id"])
            if notebook is not None
            else []
        )
        current = source_hash(cell[0][0]) if cell else None
        expected = data.pop("source_hash", None)
        if expected is not None and expected != current:
            raise conflict(
                "source-changed",
                f"cell {data['cell_id']!r} was edited: its source is not the one asked to run",
            )
        if current is not None:
            data["source_hash"] = current
        return data

    def outputs(self, record: dict[str, Any]) -> list[Any]:
        """The record's outputs; for a cell, the cell's outputs in the notebook's projection."""
        if not record.get("document_id"):
            return record.get("outputs") or []
        try:
            document_id = parse_document_id(record["document_id"]).id
        except DocumentIdError:
            return []
        datastore = self.readable_notebook(document_id)
        if datastore is None:
            return []
        rows = Output.objects.filter(
            cell__notebook__datastore=datastore,
            cell__cell_id=record.get("cell_id") or "",
        ).order_by("index")
        return restore_integers([row.content for row in rows])

    def body(self, execution_id: str, record: dict[str, Any]) -> dict[str, Any]:
        body = {name: record.get(name) for name in FIELDS}
        body.update(id=execution_id, outputs=self.outputs(record))
        return body

    def answer(self, execution_id: str, record: dict[str, Any]) -> Response:
        """200 once finished; 202 (Location: the record) while running or waiting for input."""
        body = self.body(execution_id, record)
        if finished(record):
            return Response(body)
        url = f"/api/executions/{execution_id}"
        return Response(body, status=status.HTTP_202_ACCEPTED, headers={"Location": url})


def bare_id(document_id: Any) -> str:
    """A record's document id as the REST API writes it (a protocol client may write a room id)."""
    try:
        return parse_document_id(str(document_id)).id
    except DocumentIdError:
        return str(document_id)


def provenance(
    executions: dict[str, Any], document_id: str, cell_id: str | None
) -> list[dict[str, Any]]:
    """The runs of a notebook's cells (or of one cell), newest request first, each saying
    whether the cell's outputs are its own: the outputs a cell shows are those of its latest
    started run (runs of a notebook start one at a time, in request order)."""
    runs = [
        {**{name: record.get(name) for name in PROVENANCE_FIELDS}, "id": execution_id}
        for execution_id, record in executions.items()
        if record.get("document_id")
        and bare_id(record["document_id"]) == document_id
        and (cell_id is None or record.get("cell_id") == cell_id)
    ]
    runs.sort(key=lambda run: (str(run.get("created_at") or ""), run["id"]), reverse=True)
    latest: dict[Any, tuple[str, str]] = {}
    for run in runs:
        if run.get("started_at"):
            key = run.get("cell_id")
            if str(run["started_at"]) > latest.get(key, ("", ""))[0]:
                latest[key] = (str(run["started_at"]), run["id"])
    for run in runs:
        run["shows_outputs"] = latest.get(run.get("cell_id"), ("", ""))[1] == run["id"]
    return runs


class ExecutionListView(ExecutionBase):
    @extend_schema(
        operation_id="jupyter_executions_list",
        tags=[TAG],
        summary="Who ran a notebook's cells, from which source, on which kernel, when",
        description="The executions of a notebook (or of one of its cells) still kept "
        "(RTC_RECORD_RETENTION), newest request first, without outputs; shows_outputs marks "
        "the run whose outputs the cell shows.",
        parameters=[s.ExecutionQuerySerializer],
        responses={200: s.ProvenanceSerializer(many=True), **error_responses(400)},
    )
    def get(self, request: Request) -> Response:
        query = validated(s.ExecutionQuerySerializer, request.query_params)
        document_id = self.notebook(query["document_id"])
        runs = provenance(self.table("executions"), document_id, query.get("cell_id"))
        return Response(runs)

    @extend_schema(
        operation_id="jupyter_executions_create",
        tags=[TAG],
        summary="Run a notebook cell (document_id, cell_id) or console code (kernel_id, code)",
        description="200 with this run's outputs once finished within RTC_API_ACTION_TIMEOUT; "
        "202 (Location: the execution) with the execution as it stands (queued, running, waiting "
        "for input) otherwise.",
        request=s.ExecutionCreateSerializer,
        responses={
            **action_errors(409),
            200: s.ExecutionSerializer,
            202: OpenApiResponse(
                s.ExecutionSerializer, description="Still running: the execution as it stands."
            ),
        },
    )
    def post(self, request: Request) -> Response:
        received = time.time()
        data = validated(s.ExecutionCreateSerializer, request.data)
        if "kernel_id" in data:
            self.known_kernel(data["kernel_id"])
        else:
            data = self.cell_request(data)
        checked = time.time()
        execution_id = self.write_record("executions", {**data, "status": "requested"})
        mark(execution_id, "api", received)
        mark(execution_id, "checked", checked)
        mark(execution_id, "committed")

        def answer(record: dict[str, Any]) -> Response:
            return self.answer(execution_id, restore_integers(record))

        return self.pending(
            "executions",
            execution_id,
            settled,
            answer,
            url=f"/api/executions/{execution_id}",
            progress=answer,  # past the wait: 202 with the record as it is (running, queued...)
        )


class NotebookRunView(ExecutionBase):
    """Run all (or the named cells) of a notebook: every execution record written in one
    transaction, in order, so the cells are queued together and run in that order, whatever
    else is asked for meanwhile; or nothing is written."""

    @extend_schema(
        operation_id="documents_run",
        tags=[TAG],
        summary="Run a notebook's code cells in order (run all), queued at once",
        description="One execution per cell, all written in one transaction (all queued, or "
        "none): they run one after another in this order on the notebook's kernel. 202 with "
        "the executions; 409 not-open when the document is not open, 400 unknown-cell or "
        "not-code-cell naming the cells.",
        request=s.RunCellsSerializer,
        responses={202: s.RunCellsAnswerSerializer, **action_errors(409)},
    )
    def post(self, request: Request, document_id: str) -> Response:
        data = validated(s.RunCellsSerializer, request.data or {})
        notebook_id = self.notebook(document_id)
        datastore = self.readable_notebook(notebook_id)
        if datastore is None:
            raise conflict("not-open", f"document {document_id!r} is not open")
        cells = {
            cell.cell_id: cell
            for cell in Cell.objects.filter(notebook__datastore=datastore).order_by("position")
        }
        wanted = data.get("cell_ids")
        if wanted is None:
            wanted = [cell_id for cell_id, cell in cells.items() if cell.cell_type == "code"]
        check_runnable(wanted, cells)
        fields = [
            {
                "document_id": notebook_id,
                "cell_id": cell_id,
                "status": "requested",
                "source_hash": source_hash(cells[cell_id].source),
            }
            for cell_id in wanted
        ]
        ids: list[str] = []
        if fields:
            self.require_supernode()
            with write_path_refusals():
                ids = do_new_records_in_order(self.writer(), "executions", fields, self.username())
        queued = [
            {"id": execution_id, "cell_id": cell_id, "url": f"/api/executions/{execution_id}"}
            for execution_id, cell_id in zip(ids, wanted, strict=True)
        ]
        return Response({"executions": queued}, status=status.HTTP_202_ACCEPTED)


def check_runnable(cell_ids: list[str], cells: dict[str, Any]) -> None:
    """Every named cell is a code cell of the notebook (400 naming the others)."""
    unknown = [cell_id for cell_id in cell_ids if cell_id not in cells]
    if unknown:
        raise APIError(
            status.HTTP_400_BAD_REQUEST, "unknown-cell", f"no such cells: {unknown[:20]}"
        )
    not_code = [cell_id for cell_id in cell_ids if cells[cell_id].cell_type != "code"]
    if not_code:
        raise APIError(
            status.HTTP_400_BAD_REQUEST,
            "not-code-cell",
            f"only code cells run; not code: {not_code[:20]}",
        )


class ExecutionDetailView(ExecutionBase):
    @extend_schema(
        operation_id="jupyter_executions_retrieve",
        tags=[TAG],
        summary="An execution: 202 while it runs (or waits for input), 200 once finished",
        responses={200: s.ExecutionSerializer, 202: s.ExecutionSerializer, **error_responses()},
    )
    def get(self, request: Request, execution_id: str) -> Response:
        return self.answer(execution_id, self.execution(execution_id))


def no_input(execution_id: str):
    return conflict("no-input-request", f"execution {execution_id!r} is not waiting for input")


def answers_input(operation_id: str, summary: str, request: type, code: int):
    """The schema of an endpoint answering a kernel's input request (``code``: its success)."""
    return extend_schema(
        operation_id=operation_id,
        tags=[TAG],
        summary=summary,
        request=request,
        responses={code: OpenApiResponse(description="Sent to the kernel."), **action_errors(409)},
    )


class ExecutionInputView(ExecutionBase):
    @answers_input(
        "jupyter_executions_input",
        "Answer the kernel's input request",
        s.InputReplySerializer,
        status.HTTP_204_NO_CONTENT,
    )
    def post(self, request: Request, execution_id: str) -> Response:
        value = validated(s.InputReplySerializer, request.data)["value"]
        if not self.execution(execution_id).get("input_request"):
            raise no_input(execution_id)
        return self.send(execution_id, value, status.HTTP_204_NO_CONTENT)

    def send(self, execution_id: str, value: str, code: int) -> Response:
        """Write the reply, and answer once the supernode has passed it on (it clears it)."""
        self.require_supernode()
        with write_path_refusals():
            do_answer_input(self.writer(), execution_id, value)
        return self.pending(
            "executions",
            execution_id,
            lambda record: finished(record) or not (record or {}).get("input_reply"),
            lambda record: Response(status=code),
            url=f"/api/executions/{execution_id}",
        )


class ExecutionCancelView(ExecutionBase):
    @extend_schema(
        operation_id="jupyter_executions_cancel",
        tags=[TAG],
        summary="Cancel an execution: one not started never runs, a running one is interrupted",
        description="200 with the execution once it ended (status cancelled, or how it ended "
        "if it finished first); 202 (Location: the execution) if it has not ended within "
        "RTC_API_ACTION_TIMEOUT. Cancelling a finished execution changes nothing.",
        request=None,
        responses={200: s.ExecutionSerializer, 202: s.ExecutionSerializer, **action_errors()},
    )
    def post(self, request: Request, execution_id: str) -> Response:
        record = self.execution(execution_id)
        if finished(record):
            return self.answer(execution_id, record)
        self.require_supernode()
        with write_path_refusals():
            do_cancel_execution(self.writer(), execution_id)
        return self.pending(
            "executions",
            execution_id,
            finished,
            lambda record: self.answer(execution_id, restore_integers(record)),
            url=f"/api/executions/{execution_id}",
            body=self.body(execution_id, record),
        )


# --- The front ends' shapes ---------------------------------------------------------------


class KernelExecuteView(ExecutionBase):
    @extend_schema(
        operation_id="jupyter_kernels_execute",
        tags=[TAG],
        summary="Run code or a notebook cell on a kernel (jupyter-server-nbmodel's shape)",
        description="Answers 202 at once, Location: /api/kernels/<id>/requests/<uid>.",
        request=s.KernelExecuteSerializer,
        responses={
            202: OpenApiResponse(description="Queued; poll the Location."),
            **error_responses(400, 409, 503),
        },
    )
    def post(self, request: Request, kernel_id: str) -> Response:
        data = validated(s.KernelExecuteSerializer, request.data)
        self.known_kernel(kernel_id)
        if "document_id" in data:
            data = self.cell_request(data)
        execution_id = self.write_record(
            "executions", {**data, "kernel_id": kernel_id, "status": "requested"}
        )
        url = f"/api/kernels/{kernel_id}/requests/{execution_id}"
        return Response({}, status=status.HTTP_202_ACCEPTED, headers={"Location": url})


class KernelRequestView(ExecutionBase):
    @extend_schema(
        operation_id="jupyter_kernels_request",
        tags=[TAG],
        summary="An execution request: 202 pending, 300 waiting for input, 200 the result",
        responses={
            200: s.KernelResultSerializer,
            202: OpenApiResponse(description="Still running."),
            300: OpenApiResponse(
                s.KernelInputRequestSerializer,
                description="The kernel asks for input: POST it to the Location.",
            ),
            **error_responses(),
        },
    )
    def get(self, request: Request, kernel_id: str, request_id: str) -> Response:
        record = self.execution(request_id)
        if finished(record):
            result = {
                "status": {"completed": "ok", "cancelled": "aborted"}.get(
                    record["status"], "error"
                ),
                "execution_count": record.get("execution_count"),
                "outputs": json.dumps(self.outputs(record)),
            }
            if record.get("error"):
                result["error"] = record["error"]
            return Response(result)
        if record.get("input_request"):
            body = {"parent_header": {}, "input_request": record["input_request"]}
            location = f"/api/kernels/{kernel_id}/input"
            return Response(
                body, status=status.HTTP_300_MULTIPLE_CHOICES, headers={"Location": location}
            )
        return Response({}, status=status.HTTP_202_ACCEPTED)


class KernelInputView(ExecutionInputView):
    @answers_input(
        "jupyter_kernels_input",
        "Answer the input request of the execution waiting on this kernel",
        s.KernelInputReplySerializer,
        status.HTTP_201_CREATED,
    )
    def post(self, request: Request, kernel_id: str) -> Response:
        value = validated(s.KernelInputReplySerializer, request.data)["input"]
        waiting = [
            execution_id
            for execution_id, record in self.table("executions").items()
            if record.get("kernel_id") == kernel_id
            and record.get("input_request")
            and not finished(record)
        ]
        if not waiting:
            raise conflict("no-input-request", f"nothing on kernel {kernel_id} waits for input")
        return self.send(waiting[0], value, status.HTTP_201_CREATED)
