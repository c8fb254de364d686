"""Notebook cells run by id: an ``executions`` record with ``document_id`` and ``cell_id`` runs
that cell's current source on the notebook's kernel, one execution per notebook at a time, in
``created_at`` order; outputs go into the cell."""

from __future__ import annotations

import asyncio
import itertools
import logging
import posixpath
from typing import Any

from rtc_client import ClientClosed, RTCError

from jupyter_sync.document_ids import (
    DocumentId,
    DocumentIdError,
    notebook_only,
    parse_document_id,
)
from jupyter_sync.jupyter import JupyterClientError, JupyterError, KernelConnection
from jupyter_sync.records import (
    do_drop_execution,
    do_end_execution,
    do_fail_execution,
    do_note_request_source,
    do_queue_execution,
    do_start_execution,
)
from jupyter_sync.schema import source_hash
from jupyter_sync.supernode.documents.document import DocumentError, OpenDocument, describe
from jupyter_sync.supernode.documents.file_sync import FileSync
from jupyter_sync.supernode.documents.link import SupernodeLink
from jupyter_sync.supernode.executing import (
    OUTPUT_INTERVAL,
    START_GRACE,
    ExecutionEnd,
    OutputWriter,
    final_status,
    outputs_of,
    run_execution,
)
from jupyter_sync.trace import mark

logger = logging.getLogger(__name__)

# Seconds the end of a cell's execution waits for its outputs to be stored.
OUTPUTS_STORED_WAIT = 30.0


class CellQueue:
    """The executions by cell id, queued per notebook."""

    def __init__(
        self, node: SupernodeLink, files: FileSync, *, output_interval: float = OUTPUT_INTERVAL
    ):
        self.node = node
        self.records = node.records
        self.files = files
        self.output_interval = output_interval
        self.start_grace = START_GRACE
        self.tasks: set[asyncio.Task[Any]] = set()
        self._queues: dict[str, dict[str, tuple[str, int]]] = {}
        self._active: dict[str, str] = {}
        self._order = itertools.count()

    async def execute(self, execution_id: str) -> None:
        """Run the cell an ``executions`` record names (started by the supernode's loop)."""
        task = asyncio.current_task()
        if task is not None:
            self.tasks.add(task)
        self.records.follow()
        record = self.records.record("executions", execution_id)
        given = str(record.get("document_id")) if record is not None else ""
        try:  # bare, or a room id (json:notebook:<id>), as the web side takes it
            parsed: DocumentId | DocumentIdError = parse_document_id(given)
        except DocumentIdError as error:
            parsed = error
        document_id = parsed.id if isinstance(parsed, DocumentId) else given
        cell_id = record.get("cell_id") if record is not None else None
        # Join the notebook's queue before anything awaits: executions requested together are
        # all queued before the first one is picked.
        queue = self._queues.setdefault(document_id, {})
        created_at = record.get("created_at") if record is not None else None
        queue[execution_id] = (str(created_at or ""), next(self._order))
        try:
            await asyncio.sleep(0)  # let the executions started with this one join the queue
            if record is None:
                return
            do_queue_execution(self.records, execution_id)
            if not isinstance(cell_id, str) or not cell_id:
                raise DocumentError("an execution of a notebook cell needs cell_id")
            if not isinstance(parsed, DocumentId):
                raise DocumentError(str(parsed))
            async with self.files.locks[document_id]:
                document = await self.files.ensure_open(document_id)
            try:
                parsed.check_type(document.kind)
                notebook_only(document.kind, document_id)
            except DocumentIdError as error:
                raise DocumentError(str(error)) from None
            self._note_request_source(document, execution_id, cell_id)
            if not await self._wait_turn(document_id, execution_id):
                do_drop_execution(self.records, execution_id)
                return
            try:
                await self._run_cell(document, execution_id, cell_id)
            finally:
                self._active.pop(document_id, None)
        except (DocumentError, JupyterClientError, RTCError, ClientClosed, TimeoutError) as error:
            self._finish_failed(execution_id, describe(error))
        except Exception as error:
            logger.exception("execution %s failed", execution_id)
            self._finish_failed(execution_id, describe(error))
        finally:
            queue.pop(execution_id, None)
            if not queue:
                self._queues.pop(document_id, None)
            self.records.changed.notify()
            if task is not None:
                self.tasks.discard(task)

    def _note_request_source(self, document: OpenDocument, execution_id: str, cell_id: str) -> None:
        """A record written without ``source_hash`` (over the WebSocket, not through REST) gets
        the cell's as the supernode first sees it, before it waits its turn: the run compares
        it with what it runs."""
        record = self.records.record("executions", execution_id) or {}
        cell = document.cell(cell_id)
        if record.get("source_hash") or cell is None:
            return
        do_note_request_source(
            self.records, execution_id, source_hash(str(cell.get("source") or ""))
        )

    def _finish_failed(self, execution_id: str, message: str) -> None:
        do_fail_execution(self.records, execution_id, message)

    async def _wait_turn(self, document_id: str, execution_id: str) -> bool:
        """Wait until this execution is the notebook's next; False if cancelled meanwhile."""
        queue = self._queues[document_id]
        while True:
            waiter = self.records.changed.waiter()
            record = self.records.record("executions", execution_id)
            if record is None or record.get("cancel"):
                return False
            if document_id not in self._active and min(queue, key=queue.__getitem__) == (
                execution_id
            ):
                self._active[document_id] = execution_id
                return True
            await waiter.wait()

    def _known_session(self, document: OpenDocument) -> tuple[str, str] | None:
        """The session this notebook ran on last, if nothing says it changed since: its path
        is the document's, its kernel is open and not dead, and the sessions table (when it
        lists it) agrees. A session deleted or given another kernel shuts its kernel down,
        which ends the kernel's connection, so the server is asked again then."""
        if document.session is None:
            return None
        path, kernel_id, session_id = document.session
        listed = self.records.record("sessions", session_id)
        kernel = self.records.record("kernels", kernel_id)
        if (
            path != document.path
            or not self.node.kernel_open(kernel_id)
            or (kernel is not None and kernel.get("execution_state") == "dead")
            or (listed is not None and listed.get("kernel_id") not in (None, kernel_id))
            or (listed is not None and listed.get("path") not in (None, path))
        ):
            document.session = None
            return None
        return kernel_id, session_id

    async def _kernel_for(self, document: OpenDocument) -> tuple[str, str]:
        """The kernel and session ids of the notebook's session; a new session (its
        kernelspec) if it has none. The one found last time is taken without a request to
        the server while it holds (``_known_session``): one round trip less before a run."""
        async with document.kernel_lock:
            known = self._known_session(document)
            if known is None:
                known = await self._find_or_make_session(document)
                document.session = (document.path, *known)
            return known

    async def _find_or_make_session(self, document: OpenDocument) -> tuple[str, str]:
        """Ask the server for the notebook's session (a dead one is deleted); make one if none."""
        jupyter = self.node.jupyter
        for session in await jupyter.sessions():
            kernel = session.get("kernel") or {}
            if session.get("path") != document.path or not kernel.get("id"):
                continue
            if kernel.get("execution_state") != "dead":
                return kernel["id"], session["id"]
            await jupyter.delete_session(session["id"])
        spec = document.kernelspec_name()
        name = posixpath.basename(document.path)
        try:
            session = await jupyter.create_session(document.path, name=name, kernel_name=spec)
        except JupyterError:
            if spec is None:
                raise
            logger.warning("kernelspec %r failed for %s; using the default", spec, name)
            session = await jupyter.create_session(document.path, name=name)
        self.node.request_refresh()
        return session["kernel"]["id"], session["id"]

    async def _run_cell(self, document: OpenDocument, execution_id: str, cell_id: str) -> None:
        mark(execution_id, "turn")
        kernel_id, session_id = await self._kernel_for(document)
        mark(execution_id, "session")
        connection: KernelConnection = await self.node.kernel(kernel_id)
        cell = document.cell(cell_id)
        if cell is None:
            raise DocumentError(f"no cell {cell_id!r} in {document.path}")
        if cell.get("cell_type") != "code":
            raise DocumentError(f"cell {cell_id!r} is a {cell.get('cell_type')} cell, not code")
        source = str(cell.get("source") or "")
        # Provenance: the source as it runs, where, and whether it is the one asked for.
        asked = (self.records.record("executions", execution_id) or {}).get("source_hash")

        def start_record() -> None:
            do_start_execution(
                self.records,
                execution_id,
                kernel_id=kernel_id,
                session_id=session_id,
                code=source,
                source_changed=bool(asked) and asked != source_hash(source),
            )

        def started() -> None:  # with the first output, or soon after the request (run_execution)
            with document.doc.transaction():
                outputs = outputs_of(cell)
                if len(outputs):
                    del outputs[0 : len(outputs)]
                if cell.get("execution_count") is not None:
                    cell["execution_count"] = None
                cell["execution_state"] = "running"
            document.displays.forget(cell_id)
            # The record's edit after the notebook's transaction (which may be the first
            # output's, still open here): its client then sends after the notebook's, and the
            # output is not committed behind it (one commit at a time on SQLite).
            asyncio.get_running_loop().call_soon(start_record)

        # The count is written when the run ends, with execution_state going idle, never while
        # the cell runs: JupyterLab's CodeCell sets a cell idle itself when its count arrives
        # while it is running, and those writes, concurrent from every open window, reach
        # other windows as changes of execution_state that did not win, which @jupyter/ydoc's
        # YCodeCell.getChanges cannot describe (it throws, and the update's other changes are
        # not shown).
        writer = OutputWriter(
            document.doc,
            lambda: document.cell(cell_id),
            interval=self.output_interval,
            write_count=False,
            displays=document.displays,
            owner=cell_id,
        )
        end: ExecutionEnd | None = None
        try:
            end = await run_execution(
                connection,
                source,
                records=self.records,
                execution_id=execution_id,
                interrupt=lambda: self.node.jupyter.interrupt_kernel(kernel_id),
                on_output=writer.add,
                started=started,
                transaction=document.doc.transaction,
                start_grace=self.start_grace,
            )
        finally:
            count = writer.execution_count
            if end is not None and end.result.execution_count is not None:
                count = end.result.execution_count
            # The last outputs, the count and idle: one transaction.
            with document.doc.transaction():
                writer.flush()
                cell = document.cell(cell_id)
                if cell is not None:
                    cell["execution_state"] = "idle"
                    if count is not None and cell.get("execution_count") != count:
                        cell["execution_count"] = count

        result = end.result
        record = self.records.record("executions", execution_id)
        cancelled = end.interrupted or (record is not None and bool(record.get("cancel")))
        status, error = final_status(result, cancelled)
        await self._outputs_stored(document, execution_id)
        do_end_execution(self.records, execution_id, status, error, count)

    async def _outputs_stored(self, document: OpenDocument, execution_id: str) -> None:
        """Wait until the server has stored the cell's outputs: the notebook and the jupyter
        records are two datastores, so without this a client told "completed" could still read
        the outputs of the run before (the REST answer reads them from the notebook)."""
        try:
            await document.client.wait_acked(timeout=OUTPUTS_STORED_WAIT)
        except (TimeoutError, ClientClosed, RTCError) as error:
            logger.warning(
                "execution %s: its outputs may not be stored yet (%s); ending it anyway",
                execution_id,
                describe(error),
            )
