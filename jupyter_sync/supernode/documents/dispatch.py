"""Document requests: each ``documents`` record's ``request`` (open, save, reload, rename, delete,
close) carried out once, one at a time per document, and cleared when done or failed."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from pycrdt import Map
from rtc_client import ClientClosed, RTCError

from jupyter_sync.jupyter import JupyterClientError
from jupyter_sync.records import do_clear_document_request
from jupyter_sync.schema import DOCUMENT_OPEN_STATUSES
from jupyter_sync.supernode.documents.document import DocumentError, describe, error_status
from jupyter_sync.supernode.documents.file_sync import FileSync
from jupyter_sync.supernode.documents.link import SupernodeLink

logger = logging.getLogger(__name__)


class RequestDispatch:
    """Starts a task per pending request (``tasks``, by document id)."""

    def __init__(self, node: SupernodeLink, files: FileSync):
        self.records = node.records
        self.files = files
        self.tasks: dict[str, asyncio.Task[None]] = {}
        self._reattach: set[str] = set()

    def reopen_after_restart(self) -> None:
        """Documents that were open when the supernode stopped are opened again."""
        self._reattach = {
            document_id
            for document_id, record in self.records.table("documents").items()
            if isinstance(record, Map)
            and (
                record.get("status") in DOCUMENT_OPEN_STATUSES
                or (record.get("status") == "error" and record.get("datastore_name"))
            )
        }

    def dispatch(self) -> None:
        documents = self.records.table("documents")
        for document_id, record in documents.items():
            if not isinstance(record, Map) or document_id in self.tasks:
                continue
            request = record.get("request")
            if not request and document_id in self._reattach:
                request = "open"
            self._reattach.discard(document_id)
            if request:
                self._start_request(document_id, str(request), record.get("new_path"))
        for document_id in list(self.files.open):
            if document_id not in documents and document_id not in self.tasks:
                self._start_request(document_id, "close", None)

    def _start_request(self, document_id: str, request: str, new_path: Any) -> None:
        task = asyncio.ensure_future(self._handle(document_id, request, new_path))
        self.tasks[document_id] = task

        def done(_task: asyncio.Task[None]) -> None:
            self.tasks.pop(document_id, None)
            self.records.changed.notify()

        task.add_done_callback(done)

    async def _handle(self, document_id: str, request: str, new_path: Any) -> None:
        try:
            async with self.files.locks[document_id]:
                if request == "open":
                    await self.files.ensure_open(document_id)
                elif request == "save":
                    await self.files.save(await self.files.ensure_open(document_id), force=True)
                elif request == "reload":
                    await self.files.reload(await self.files.ensure_open(document_id))
                elif request == "rename":
                    await self.files.rename(document_id, new_path)
                elif request == "delete":
                    await self.files.delete(document_id)
                elif request == "close":
                    await self.files.close(document_id, save=True)
                else:
                    raise DocumentError(
                        f"unknown request {request!r} (open, save, reload, rename, delete, close)"
                    )
        except (DocumentError, JupyterClientError, RTCError, ClientClosed, TimeoutError) as error:
            self.files.fail(document_id, describe(error), error_status(error))
        except Exception as error:  # a bug must not leave the request pending for ever
            logger.exception("document %s: %s failed", document_id, request)
            self.files.fail(document_id, f"{request} failed: {describe(error)}")
        finally:
            record = self.records.record("documents", document_id)
            if record is not None and record.get("request") == request:
                do_clear_document_request(self.records, document_id)
