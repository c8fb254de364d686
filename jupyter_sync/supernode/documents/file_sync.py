"""Open documents kept in step with their files: opened from the file, saved (on request, or
automatically after changes), reloaded, followed on disk, renamed, deleted, closed.

Methods that take a document expect the caller to hold ``locks[document id]``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import posixpath
from collections import defaultdict
from typing import Any

import anyio
from channels.db import database_sync_to_async
from rtc_client import ClientClosed, RTCError

from jupyter_sync.jupyter import JupyterClientError, JupyterError, JupyterUnavailable
from jupyter_sync.paths import BadPath, checked_path
from jupyter_sync.records import (
    do_document_closed,
    do_document_conflict,
    do_document_found,
    do_document_loaded,
    do_document_opened,
    do_document_opening,
    do_document_renamed,
    do_document_saved,
    do_document_saving,
    do_fail_document,
)
from jupyter_sync.schema import DOCUMENT_FORMATS, JUPYTER_DATASTORE, timestamp
from jupyter_sync.supernode.documents.datastore import ensure_document_datastore
from jupyter_sync.supernode.documents.document import (
    FILE_HASH,
    SAVED_HASH,
    DocumentError,
    OpenDocument,
    datastore_name,
    describe,
    error_status,
    fingerprint,
)
from jupyter_sync.supernode.documents.link import SupernodeLink

logger = logging.getLogger(__name__)

LOST_SENDS = 2
"""Connections that ended with a document's content unacknowledged before opening gives up:
a message over the server's limit closes every connection it is sent on."""
STORE_TIMEOUT = 120.0
"""Seconds opening waits for the server to store the file's content (a megabyte notebook takes
a second or two; this bounds a server that never answers)."""


def file_hash(model: dict[str, Any]) -> str | None:
    """The ``hash`` of a contents model (None from a Jupyter Server older than 2.11)."""
    value = model.get("hash")
    return value if isinstance(value, str) and value else None


class FileSync:
    """The documents open now (``open``), each following its file."""

    def __init__(
        self,
        node: SupernodeLink,
        *,
        save_delay: float,
        save_max_delay: float,
        poll_interval: float,
        close_timeout: float,
    ):
        self.node = node
        self.records = node.records
        self.save_delay = save_delay
        self.save_max_delay = save_max_delay
        self.poll_interval = poll_interval
        self.close_timeout = close_timeout
        self.store_timeout = STORE_TIMEOUT
        self.open: dict[str, OpenDocument] = {}
        self.locks: defaultdict[str, asyncio.Lock] = defaultdict(asyncio.Lock)

    def fail(self, document_id: str, message: str, status: int = 502) -> None:
        logger.warning("document %s: %s", document_id, message)
        do_fail_document(self.records, document_id, message, status)

    async def ensure_open(self, document_id: str) -> OpenDocument:
        """The open document (the caller holds its lock); opens it if needed."""
        document = self.open.get(document_id)
        if document is not None:
            return document
        try:
            return await self._open(document_id)
        except Exception as error:
            self.fail(document_id, describe(error), error_status(error))
            raise

    async def _open(self, document_id: str) -> OpenDocument:
        record = self.records.record("documents", document_id)
        if record is None:
            raise DocumentError(f"no document {document_id!r}")
        try:  # the record may have been written directly, past the API's checks
            path = checked_path(record.get("path"))
        except BadPath as error:
            raise DocumentError(f"a document needs a path under the root: {error}") from None
        kind = record.get("type") or ("notebook" if path.endswith(".ipynb") else "file")
        if kind not in DOCUMENT_FORMATS:
            raise DocumentError(f"unknown document type {kind!r}")
        do_document_opening(self.records, document_id, kind)
        try:
            model = await self._read_file(path, kind)
        except JupyterError as error:
            if error.status == 404:
                raise DocumentError(
                    f"{path}: no such file on the Jupyter Server", status=404
                ) from error
            raise
        name = datastore_name(document_id)
        created = await database_sync_to_async(ensure_document_datastore)(
            name, kind, self.node.token, JUPYTER_DATASTORE
        )
        client = self.node.datastore_client(name)
        await client.start()  # closes itself if it fails
        document = OpenDocument(document_id, kind, path, client)
        recorded = record.get("last_modified")
        conflict = None
        try:
            # Opened before (a restart, a reopen): the document may have changed since it was
            # last saved (edits while no supernode ran), and the file too. One that never held
            # the file (an open that failed, its content refused) is loaded: taking its empty
            # content for edits would open it empty and save that over the file.
            saved = document.saved_hash()
            edited = not created and saved is not None and fingerprint(document.read()) != saved
            if not edited:
                size = document.load(model["content"], file_hash(model), fingerprint_later=True)
                document.disk_last_modified = model.get("last_modified")
                await self._content_stored(document, size)
            else:
                document.disk_last_modified = recorded
                document.dirty = True
                document.dirty_since = asyncio.get_running_loop().time()
                document.set_state(dirty=True)
                if model.get("last_modified") != recorded:
                    conflict = self._conflict(document, model.get("last_modified"))
                document.changed.set()
        except BaseException:
            await client.aclose()
            raise
        document.observe()
        self.open[document_id] = document
        document.autosave = asyncio.ensure_future(self._autosave(document))
        do_document_opened(
            self.records,
            document_id,
            datastore_name=name,
            file_format=DOCUMENT_FORMATS[kind],
            last_modified=document.disk_last_modified,
            conflict=conflict,
        )
        return document

    async def _content_stored(self, document: OpenDocument, size: int) -> None:
        """Wait until the server has stored what the file's content wrote: a document is
        ``open`` only once a client joining it gets the content, never open and empty.

        The server's refusal (too-large, from a server whose limits are lower than this
        process's settings say) is the open's error; so is a connection that closes each time
        the content is sent (a message over the server's limit: our consumer closes with 1009,
        daphne's own limit drops the connection, 1006), which sending it again will not change.
        The caller closes the client, so it does not send it again and again.

        The document's fingerprint (``write_fingerprint``) is worked out once the content is
        on its way, while the server stores it, and is not waited for: the document is open
        once its content is stored."""
        client = document.client
        rejections, closed, connections = (
            len(client.rejections),
            client.last_close,
            client.connections,
        )
        content = set(client.pending)

        def too_big() -> bool:
            last = client.last_close
            if last is closed or last is None:
                return False
            return last[0] == 1009 or client.connections - connections >= LOST_SENDS

        def settled() -> bool:
            refused = len(client.rejections) > rejections
            return refused or too_big() or (client.synced and not content & client.pending.keys())

        def sent() -> bool:
            return settled() or not client.connected or content <= client.in_flight

        deadline = asyncio.get_running_loop().time() + self.store_timeout
        try:
            await client.wait_for(sent, timeout=self.store_timeout)
            document.write_fingerprint()
            left = deadline - asyncio.get_running_loop().time()
            await client.wait_for(settled, timeout=max(left, 0.001))
        except TimeoutError:
            raise DocumentError(
                f"{document.path}: the server did not store its content ({size:,} bytes) "
                f"within {self.store_timeout:g} s",
                status=504,
            ) from None
        if len(client.rejections) > rejections:
            rejection = client.rejections[rejections]  # the content's, not what built on it
            raise DocumentError(
                f"{document.path} could not be opened: the server refused its content "
                f"({size:,} bytes as a document update): {rejection.code}: {rejection.reason}"
            )
        if content & client.pending.keys():
            code, reason = client.last_close or (None, "")
            raise DocumentError(
                f"{document.path} is too large to open: the server closed the connection on "
                f"its content ({size:,} bytes as a document update; close code {code}"
                + (f", {reason}" if reason else "")
                + "), a message over its limit (RTC_MAX_MESSAGE_BYTES, or daphne's "
                "--websocket-max-message-size)"
            )

    def _conflict(self, document: OpenDocument, disk_last_modified: str | None) -> dict[str, Any]:
        document.conflict_with = disk_last_modified
        return {
            "detected_at": timestamp(),
            "disk_last_modified": disk_last_modified,
            "message": (
                f"{document.path} changed on the Jupyter Server while the document had unsaved "
                "changes; both are kept (the document here, the file on disk) and automatic "
                "saving is paused. Request 'save' to keep the document, or 'reload' to take "
                "the file."
            ),
        }

    async def save(self, document: OpenDocument, *, force: bool) -> None:
        """Write the document to its file (the caller holds its lock).

        Without ``force``, a file that changed on disk since it was last read or written is not
        overwritten (see ``_disk_changed``).
        """
        jupyter = self.node.jupyter
        if not force:
            if document.conflict_with or document.missing:
                return
            current = await self._disk_model(document)
            if current is None or current.get("last_modified") != document.disk_last_modified:
                await self._disk_changed(document, current)
                return
        content = document.read()
        saved = fingerprint(content)
        document.dirty = False
        dirty_since, document.dirty_since = document.dirty_since, None
        do_document_saving(self.records, document.id)
        try:
            model = await jupyter.save_contents(
                document.path,
                {"type": document.kind, "format": document.format, "content": content},
            )
        except BaseException:
            if not document.dirty:
                document.dirty = True
                document.dirty_since = dirty_since
            raise
        document.disk_last_modified = model.get("last_modified")
        document.conflict_with = None
        document.missing = False
        state: dict[str, Any] = {SAVED_HASH: saved}
        written_hash = await self._written_hash(document, model)
        if written_hash is not None:
            state[FILE_HASH] = written_hash
        if not document.dirty:  # edits made during the save are for the next one
            state["dirty"] = False
        document.set_state(**state)  # one transaction: JupyterLab expects one hash change
        do_document_saved(self.records, document.id, document.disk_last_modified)

    async def _read_file(self, path: str, kind: str) -> dict[str, Any]:
        """The file's model with its content (a notebook as JSON, a file as text) and hash."""
        # Notebooks come in one format, and the API refuses to be told which.
        return await self.node.jupyter.get_contents(
            path, type=kind, format="text" if kind == "file" else None, hash=True
        )

    async def _written_hash(self, document: OpenDocument, saved: dict[str, Any]) -> str | None:
        """The hash of the file just written (Jupyter's answer to a save has none, so it is
        asked for); None when it cannot be had, or when the file changed again in between
        (then the poll finds that change and loads it, hash included). The save itself has
        succeeded either way."""
        try:
            model = await self.node.jupyter.get_contents(document.path, content=False, hash=True)
        except JupyterClientError as error:
            logger.warning("document %s: no hash after saving: %s", document.id, describe(error))
            return None
        if model.get("last_modified") != saved.get("last_modified"):
            return None
        return file_hash(model)

    async def _disk_model(self, document: OpenDocument) -> dict[str, Any] | None:
        """The file's model without content; None when it is gone."""
        try:
            return await self.node.jupyter.get_contents(document.path, content=False)
        except JupyterError as error:
            if error.status == 404:
                return None
            raise

    async def reload(self, document: OpenDocument) -> None:
        """Load the file into the document, over unsaved changes (the caller holds the lock)."""
        await self._apply_disk(document, await self._read_file(document.path, document.kind))

    async def _disk_changed(self, document: OpenDocument, current: dict[str, Any] | None) -> None:
        """The file is not as the supernode last left it (the caller holds the lock)."""
        if current is None:
            if not document.missing:
                document.missing = True
                self.fail(
                    document.id,
                    f"{document.path} is gone from the Jupyter Server (deleted or renamed "
                    "there); the document is kept; request 'save' to write it back",
                    404,
                )
            return
        if not document.dirty:
            model = await self._read_file(document.path, document.kind)
            if not document.dirty:  # nobody edited while the file was read
                await self._apply_disk(document, model)
                return
            current = model
        disk_last_modified = current.get("last_modified")
        if document.conflict_with != disk_last_modified:
            conflict = self._conflict(document, disk_last_modified)
            logger.warning("document %s: %s", document.id, conflict["message"])
            do_document_conflict(self.records, document.id, conflict)

    async def _apply_disk(self, document: OpenDocument, model: dict[str, Any]) -> None:
        try:
            document.load(model["content"], file_hash(model))
        except DocumentError:
            # The file grew past what the server takes: the document keeps its version, and is
            # not saved over the file (as in a conflict) nor read again until the file changes.
            document.disk_last_modified = model.get("last_modified")
            document.conflict_with = document.disk_last_modified
            raise
        document.disk_last_modified = model.get("last_modified")
        document.conflict_with = None
        document.missing = False
        do_document_loaded(self.records, document.id, document.disk_last_modified)

    async def _autosave(self, document: OpenDocument) -> None:
        """Save ``save_delay`` after the last change, at most ``save_max_delay`` after the first.

        Each change wakes it to work the deadline out again.
        """
        loop = asyncio.get_running_loop()
        while True:
            await document.changed.wait()
            document.changed.clear()
            if not document.dirty or document.conflict_with or document.missing:
                continue
            first = document.dirty_since if document.dirty_since is not None else loop.time()
            due = min(document.last_change + self.save_delay, first + self.save_max_delay)
            if loop.time() < due:
                with anyio.move_on_after(due - loop.time()):
                    await document.changed.wait()
                document.changed.set()  # look again: saved meanwhile, a new change, or due
                continue
            async with self.locks[document.id]:
                if self.open.get(document.id) is not document:
                    return
                try:
                    await self.save(document, force=False)
                except (JupyterClientError, RTCError, ClientClosed, TimeoutError) as error:
                    self.fail(
                        document.id,
                        f"saving {document.path}: {describe(error)}",
                        error_status(error),
                    )

    async def poll_loop(self) -> None:
        while True:
            await asyncio.sleep(self.poll_interval)
            for document in list(self.open.values()):
                lock = self.locks[document.id]
                if lock.locked():
                    continue  # busy: saving, renaming... looks again next time
                async with lock:
                    if self.open.get(document.id) is not document:
                        continue
                    try:
                        current = await self._disk_model(document)
                        if current is None or (
                            current.get("last_modified") != document.disk_last_modified
                        ):
                            await self._disk_changed(document, current)
                        elif document.missing:  # back where it was
                            document.missing = False
                            do_document_found(self.records, document.id)
                    except JupyterUnavailable as error:
                        logger.info("not polling files: %s", error.detail)
                        break
                    except DocumentError as error:
                        self.fail(document.id, str(error), error.status)
                    except (JupyterClientError, RTCError, ClientClosed) as error:
                        logger.warning("document %s: %s", document.id, describe(error))

    # --- Rename, delete, close ------------------------------------------------------------

    async def rename(self, document_id: str, new_path: Any) -> None:
        record = self.records.record("documents", document_id)
        if record is None:
            raise DocumentError(f"no document {document_id!r}")
        old_path = record.get("path")
        if not isinstance(new_path, str) or not new_path.strip("/"):
            raise DocumentError("a rename needs new_path")
        if not isinstance(old_path, str) or not old_path:
            raise DocumentError("a document needs a path")
        jupyter = self.node.jupyter
        await jupyter.rename_contents(old_path, new_path)
        document = self.open.get(document_id)
        if document is not None:
            document.path = new_path
            document.set_state(path=new_path)
        for session in await jupyter.sessions():
            if session.get("path") == old_path:
                await jupyter.update_session(
                    session["id"], path=new_path, name=posixpath.basename(new_path)
                )
                self.node.request_refresh()
        do_document_renamed(
            self.records,
            document_id,
            new_path,
            "open" if document is not None else record.get("status"),
        )

    async def delete(self, document_id: str) -> None:
        record = self.records.record("documents", document_id)
        if record is None:
            raise DocumentError(f"no document {document_id!r}")
        path = record.get("path")
        if isinstance(path, str) and path:
            try:
                await self.node.jupyter.delete_contents(path)
            except JupyterError as error:
                if error.status != 404:
                    raise
        await self.close(document_id, save=False)

    async def close(self, document_id: str, *, save: bool) -> None:
        document = self.open.get(document_id)
        if document is not None:
            if save and document.dirty and not document.conflict_with and not document.missing:
                await self.save(document, force=False)
            self.open.pop(document_id, None)
            await self.disconnect(document)
        do_document_closed(self.records, document_id)

    async def disconnect(self, document: OpenDocument) -> None:
        if document.autosave is not None:
            document.autosave.cancel()
        with contextlib.suppress(TimeoutError, ClientClosed, RTCError):
            await document.client.wait_acked(timeout=self.close_timeout)
        await document.client.aclose()

    async def save_and_disconnect_all(self) -> None:
        """On stop: save what can be saved, and close every document's client."""
        for document_id, document in list(self.open.items()):
            if document.dirty and not document.conflict_with and not document.missing:
                with contextlib.suppress(Exception):
                    await self.save(document, force=False)
            await self.disconnect(document)
            self.open.pop(document_id, None)

    async def abort_all(self) -> None:
        """Close the clients of the documents still open (no time was left to save them)."""
        for document in list(self.open.values()):
            await document.client.aclose()
        self.open.clear()
