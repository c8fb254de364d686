"""Documents for the supernode: the Jupyter Server's notebooks and text files as collaborative
datastores, saved back to the server, and notebook cells run by id.

**Documents.** A ``documents`` record of the ``jupyter`` datastore (its id: a stable document id,
chosen by whoever creates the record) asks for work through its ``request`` field:

- ``open``: load the file through the contents API into the document's own datastore,
  ``doc-<document id>`` (schema ``notebook`` or ``file``, the layouts of jupyter_ydoc), created
  by the supernode, owned by its service account, its roles following the jupyter datastore's
  (``roles_from``: a grant or revocation there reaches the document). Then ``status`` is
  ``open`` and ``datastore_name`` names it; clients edit that datastore.
- ``save``: write the document to the file now, even over a file changed on disk (this resolves
  a conflict in favour of the document).
- ``reload``: load the file into the document now, even over unsaved changes (this resolves a
  conflict in favour of the file; the document's earlier state stays in its history).
- ``rename``: rename the file to ``new_path`` (``path`` follows, the datastore stays the same,
  a session on the old path moves with it).
- ``delete``: delete the file and close the document (``status`` ``closed``; its datastore and
  history stay).
- ``close``: save pending changes and stop following the file (``status`` ``closed``).

The supernode clears ``request`` once it has been carried out; a failure leaves ``status``
``error`` and says why in ``error`` (the next operation that succeeds sets ``open`` again).
Requests are records, so the ones pending when the supernode stops are carried out when it starts
again, and documents that were open are opened again.

Saving: every change to an open document (a client's edit, an output of a running cell) is saved
``save_delay`` seconds after the last change, and at the latest ``save_max_delay`` seconds after
the first unsaved one (a cell printing for an hour is saved on the way). Changes made while a
save is under way are saved by the next one. The document's ``state`` map holds ``dirty`` (true
while it has changes the file lacks, as in jupyter_ydoc) and ``path``.

Changes on disk: every ``poll_interval`` seconds the file's ``last_modified`` is compared with the
one the supernode last read or wrote. A changed file is loaded into the document when the
document has no unsaved changes (text is diffed, so only what changed is replaced; cells keep
their ids). When both changed, nothing is dropped: the document keeps its version, the file keeps
its own (automatic saves stop for that document), and ``conflict`` says so (``detected_at``,
``disk_last_modified``, ``message``) until a client asks to ``save`` or ``reload``. A file that
disappears (deleted or renamed by someone else) is reported as an error, and the document is not
saved back to the old path unless a client asks for ``save``.

**Executions by cell id.** An ``executions`` record with ``document_id`` and ``cell_id`` runs that
cell's source as it is when its turn comes, on the kernel of the notebook's session (created with
the notebook's kernelspec if the path has none). Executions of one notebook run one at a time, in
``created_at`` order. Outputs stream into the cell's ``outputs`` Array as they arrive; the cell's
``execution_count`` and ``execution_state`` follow. The record goes ``queued`` → ``running`` →
``completed`` | ``error`` | ``cancelled``; ``cancel: true`` drops a queued execution and
interrupts a running one. A kernel asking for input sets ``input_request`` (``prompt``,
``password``); an ``input_reply`` written by a client goes to the kernel, and both are cleared.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import hashlib
import itertools
import json
import logging
import posixpath
from collections import defaultdict
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import anyio
from channels.db import database_sync_to_async
from jupyter_ydoc import YNotebook, YUnicode
from pycrdt import Array, Doc, Map, Text
from rest_framework.authtoken.models import Token
from rtc_client import ClientClosed, DatastoreClient, RTCError

from jupyter_sync.executing import (
    OUTPUT_INTERVAL,
    Notifier,
    OutputWriter,
    final_status,
    run_execution,
)
from jupyter_sync.jupyter import (
    JupyterClientError,
    JupyterError,
    JupyterUnavailable,
    KernelConnection,
)
from tables.models import Datastore
from tables.schema import jsonable
from tables.service import DatastoreExists, create_datastore

if TYPE_CHECKING:
    from jupyter_sync.supernode import Supernode

logger = logging.getLogger(__name__)

KINDS = {"notebook": "json", "file": "text"}
"""Document type → the contents API format it is loaded and saved in."""
OPEN_STATUSES = ("opening", "open", "saving")
SAVED_HASH = "saved_hash"
"""Key in a document's ``state``: the fingerprint of what the file held when last read/written."""


def now() -> str:
    return datetime.now(UTC).isoformat()


def datastore_name(document_id: str) -> str:
    """The document's datastore: named after the document id, so a rename keeps it."""
    return f"doc-{document_id}"


class DocumentError(Exception):
    """A request that cannot be carried out; the message goes into the record's ``error``, and
    ``status`` (the HTTP status a client should see) into its ``error_status``."""

    def __init__(self, message: str, status: int = 400):
        super().__init__(message)
        self.status = status


def error_status(error: BaseException) -> int:
    """The HTTP status a client should see for a failed document request, as for ``requests``:
    the request's own fault (400, 404), Jupyter's refusal (its 4xx), or a failure (502)."""
    if isinstance(error, DocumentError):
        return error.status
    if isinstance(error, JupyterError) and 400 <= error.status < 500:
        return error.status
    return 502


def describe(error: BaseException) -> str:
    if isinstance(error, JupyterError):
        return f"Jupyter Server: {error.status} {error.message}"
    return str(error) or type(error).__name__


def ensure_document_datastore(name: str, schema: str, token: str, jupyter_datastore: str) -> bool:
    """Create the datastore ``name`` for the supernode (owner) unless it exists; its roles follow
    the jupyter datastore's (``roles_from``), so a later grant there reaches the document. True
    when it was created."""
    created = False
    datastore = Datastore.objects.filter(name=name).first()
    if datastore is None:
        owner = Token.objects.select_related("user").get(key=token).user
        try:
            datastore = create_datastore(name, schema, owner=owner)
            created = True
        except DatastoreExists:
            datastore = Datastore.objects.get(name=name)
    if datastore.schema != schema:
        raise DocumentError(f"datastore {name!r} holds a {datastore.schema}, not a {schema}")
    source = Datastore.objects.get(name=jupyter_datastore)
    if datastore.roles_from_id != source.pk:
        datastore.roles_from = source
        datastore.save(update_fields=["roles_from"])
    return created


# --- One open document ----------------------------------------------------------------------


class OpenDocument:
    """A document the supernode follows: its datastore client, and how it stands to the file."""

    def __init__(self, document_id: str, kind: str, path: str, client: DatastoreClient):
        self.id = document_id
        self.kind = kind
        self.path = path
        self.client = client
        self.disk_last_modified: str | None = None
        """The file's last_modified when the supernode last read or wrote it."""
        self.dirty = False
        """The document has changes the file lacks."""
        self.dirty_since: float | None = None
        self.last_change = 0.0
        self.changed = asyncio.Event()
        self.conflict_with: str | None = None
        """The disk last_modified the document is in conflict with (None: no conflict)."""
        self.missing = False
        self.quiet = 0
        self.kernel_lock = asyncio.Lock()
        self.autosave: asyncio.Task[None] | None = None
        self._observed: Doc | None = None
        self._subscriptions: list[Any] = []
        client.on_rejected = self._rejected

    @property
    def format(self) -> str:
        return KINDS[self.kind]

    @property
    def doc(self) -> Doc:
        return self.client.doc

    # --- Changes ------------------------------------------------------------------------

    def observe(self) -> None:
        """Follow the content roots of ``client.doc`` (again, after the client rebuilt it)."""
        doc = self.doc
        if doc is self._observed:
            return
        self._observed = doc
        if self.kind == "notebook":
            roots = [doc.get("cells", type=Array), doc.get("meta", type=Map)]
        else:
            roots = [doc.get("source", type=Text)]
        # Keep the roots and subscriptions: they live as long as these references.
        self._subscriptions = [(root, root.observe_deep(self._on_change)) for root in roots]

    def _rejected(self, _rejection: Any) -> None:
        """The client rebuilt its doc after a refusal: follow the new one, and save it."""
        self.observe()
        self.note_change()

    def _on_change(self, _events: Any) -> None:
        if self.quiet:
            return
        self.note_change()

    def note_change(self) -> None:
        loop = asyncio.get_running_loop()
        self.last_change = loop.time()
        if not self.dirty:
            self.dirty = True
            self.dirty_since = self.last_change
            loop.call_soon(self._flag_dirty)
        self.changed.set()

    def _flag_dirty(self) -> None:
        if self.dirty:
            self.set_state(dirty=True)

    def set_state(self, **values: Any) -> None:
        """Write the document's ``state`` map (not an edit of its content)."""
        state = self.doc.get("state", type=Map)
        changes = {key: value for key, value in values.items() if state.get(key) != value}
        if changes:
            with self.doc.transaction():
                for key, value in changes.items():
                    state[key] = value

    def saved_hash(self) -> str | None:
        """The fingerprint of the content last read from or written to the file."""
        value = self.doc.get("state", type=Map).get(SAVED_HASH)
        return value if isinstance(value, str) else None

    # --- Content ------------------------------------------------------------------------

    def read(self) -> Any:
        """The content as the contents API takes it: a notebook dict, or the text."""
        return _read(self.doc, self.kind, copy_first=True)

    def load(self, content: Any) -> None:
        """Make the document equal to ``content`` from the file, changing only what differs.

        Done on a copy (jupyter_ydoc's classes attach an undo manager to the doc they wrap) with
        the same client id, so its new operations follow the document's own; the difference is
        applied in one transaction. Not an edit: the document is clean afterwards.
        """
        doc = self.doc
        working = Doc(client_id=doc.client_id)
        working.apply_update(doc.get_update())
        if self.kind == "notebook":
            _set_notebook(YNotebook(working), content)
        else:
            YUnicode(working).set(str(content))
        state = working.get("state", type=Map)
        loaded = fingerprint(_read(working, self.kind, copy_first=False))
        for key, value in (("dirty", False), ("path", self.path), (SAVED_HASH, loaded)):
            if state.get(key) != value:
                state[key] = value
        update = working.get_update(doc.get_state())
        self.quiet += 1
        try:
            doc.apply_update(update)
        finally:
            self.quiet -= 1
        self.dirty = False
        self.dirty_since = None

    # --- Cells --------------------------------------------------------------------------

    def cell(self, cell_id: str) -> Map | None:
        for cell in self.doc.get("cells", type=Array):
            if isinstance(cell, Map) and cell.get("id") == cell_id:
                return cell
        return None

    def kernelspec_name(self) -> str | None:
        meta = jsonable(self.doc.get("meta", type=Map)) or {}
        kernelspec = (meta.get("metadata") or {}).get("kernelspec") or {}
        name = kernelspec.get("name") if isinstance(kernelspec, dict) else None
        return name if isinstance(name, str) and name else None


def _read(doc: Doc, kind: str, *, copy_first: bool) -> Any:
    if copy_first:  # jupyter_ydoc's classes attach an undo manager to the doc they wrap
        copied = Doc()
        copied.apply_update(doc.get_update())
        doc = copied
    return YNotebook(doc).get() if kind == "notebook" else YUnicode(doc).get()


def fingerprint(content: Any) -> str:
    """A hash of a document's content, to tell later whether it changed."""
    return hashlib.sha256(json.dumps(content, sort_keys=True).encode()).hexdigest()


def _set_notebook(notebook: YNotebook, content: dict[str, Any]) -> None:
    """``notebook.set(content)``, keeping cells and changing their sources granularly.

    jupyter_ydoc replaces a changed source whole; a text diff first leaves ``set`` only the other
    fields. Cells without ids (nbformat < 4.5) take the id of the cell at the same place, so they
    keep their identity across loads.
    """
    content = copy.deepcopy(content)
    ycells = notebook.ycells
    existing = [cell for cell in ycells if isinstance(cell, Map)]
    for index, cell in enumerate(content.get("cells") or []):
        if "id" not in cell and index < len(existing):
            old = existing[index]
            if old.get("cell_type") == cell.get("cell_type") and isinstance(old.get("id"), str):
                cell["id"] = old.get("id")
    positions = {
        cell.get("id"): index for index, cell in enumerate(ycells) if isinstance(cell, Map)
    }
    for cell in content.get("cells") or []:
        index = positions.get(cell.get("id"))
        if index is None:
            continue
        ycell = ycells[index]
        if ycell.get("cell_type") != cell.get("cell_type") or not isinstance(
            ycell.get("source"), Text
        ):
            continue
        source = cell.get("source", "")
        notebook.set_cell(index, source="".join(source) if isinstance(source, list) else source)
    notebook.set(content)


# --- The manager -----------------------------------------------------------------------------


class DocumentManager:
    """The supernode's documents: requests in the ``documents`` table, and cells run by id.

    ``run()`` belongs to the supernode's task group; ``execute(execution_id)`` is started by the
    supernode's executions loop for records with a ``document_id``.
    """

    def __init__(
        self,
        supernode: Supernode,
        *,
        save_delay: float = 2.0,
        save_max_delay: float = 30.0,
        poll_interval: float = 2.0,
        output_interval: float = OUTPUT_INTERVAL,
        close_timeout: float = 10.0,
    ):
        self.supernode = supernode
        self.save_delay = save_delay
        self.save_max_delay = save_max_delay
        self.poll_interval = poll_interval
        self.output_interval = output_interval
        self.close_timeout = close_timeout
        self.open: dict[str, OpenDocument] = {}
        self.notifier = Notifier()
        self._locks: defaultdict[str, asyncio.Lock] = defaultdict(asyncio.Lock)
        self._requests: dict[str, asyncio.Task[None]] = {}
        self._executions: set[asyncio.Task[Any]] = set()
        self._queues: dict[str, dict[str, tuple[str, int]]] = {}
        self._active: dict[str, str] = {}
        self._order = itertools.count()
        self._reattach: set[str] = set()
        self._observed: Doc | None = None
        self._subscription: Any = None

    # --- The jupyter datastore ----------------------------------------------------------

    def _observe_jupyter(self) -> None:
        client = self.supernode.client
        if client is None or client.doc is self._observed:
            return
        self._observed = client.doc
        self._subscription = client.doc.observe(lambda _event: self.notifier.notify())

    def _record(self, table: str, record_id: str) -> Map | None:
        return self.supernode.record(table, record_id)

    def _update(self, table: str, record_id: str, **fields: Any) -> None:
        self.supernode.update_record(table, record_id, **fields)

    def _fail(self, document_id: str, message: str, status: int = 502) -> None:
        logger.warning("document %s: %s", document_id, message)
        self._update("documents", document_id, status="error", error=message, error_status=status)

    # --- Lifecycle ----------------------------------------------------------------------

    async def run(self) -> None:
        """Carry out document requests and keep open documents in step with their files."""
        self._observe_jupyter()
        self._reattach = {
            document_id
            for document_id, record in self.supernode.table("documents").items()
            if isinstance(record, Map)
            and (
                record.get("status") in OPEN_STATUSES
                or (record.get("status") == "error" and record.get("datastore_name"))
            )
        }
        try:
            async with anyio.create_task_group() as group:
                group.start_soon(self._poll_loop)
                while True:
                    waiter = self.notifier.waiter()
                    self._observe_jupyter()
                    self._dispatch()
                    with anyio.move_on_after(self.poll_interval):
                        await waiter.wait()
        finally:
            with anyio.CancelScope(shield=True):
                await self._close_all()

    def _dispatch(self) -> None:
        documents = self.supernode.table("documents")
        for document_id, record in documents.items():
            if not isinstance(record, Map) or document_id in self._requests:
                continue
            request = record.get("request")
            if not request and document_id in self._reattach:
                request = "open"
            self._reattach.discard(document_id)
            if request:
                self._start_request(document_id, str(request), record.get("new_path"))
        for document_id in list(self.open):
            if document_id not in documents and document_id not in self._requests:
                self._start_request(document_id, "close", None)

    def _start_request(self, document_id: str, request: str, new_path: Any) -> None:
        task = asyncio.ensure_future(self._handle(document_id, request, new_path))
        self._requests[document_id] = task

        def done(_task: asyncio.Task[None]) -> None:
            self._requests.pop(document_id, None)
            self.notifier.notify()

        task.add_done_callback(done)

    async def _handle(self, document_id: str, request: str, new_path: Any) -> None:
        try:
            async with self._locks[document_id]:
                if request == "open":
                    await self._ensure_open(document_id)
                elif request == "save":
                    await self._save(await self._ensure_open(document_id), force=True)
                elif request == "reload":
                    await self._reload(await self._ensure_open(document_id))
                elif request == "rename":
                    await self._rename(document_id, new_path)
                elif request == "delete":
                    await self._delete(document_id)
                elif request == "close":
                    await self._close(document_id, save=True)
                else:
                    raise DocumentError(
                        f"unknown request {request!r} (open, save, reload, rename, delete, close)"
                    )
        except (DocumentError, JupyterClientError, RTCError, ClientClosed, TimeoutError) as error:
            self._fail(document_id, describe(error), error_status(error))
        except Exception as error:  # a bug must not leave the request pending for ever
            logger.exception("document %s: %s failed", document_id, request)
            self._fail(document_id, f"{request} failed: {describe(error)}")
        finally:
            record = self._record("documents", document_id)
            if record is not None and record.get("request") == request:
                self._update("documents", document_id, request=None)

    async def _close_all(self) -> None:
        """On stop: finish what can be finished quickly, and close every document's client."""
        tasks = [*self._requests.values(), *self._executions]
        for task in tasks:
            task.cancel()
        with anyio.move_on_after(self.close_timeout):
            if tasks:  # their last writes (a cell's outputs so far) go out with the rest
                await asyncio.wait(tasks)
            for document_id, document in list(self.open.items()):
                if document.dirty and not document.conflict_with and not document.missing:
                    with contextlib.suppress(Exception):
                        await self._save(document, force=False)
                await self._disconnect(document)
                self.open.pop(document_id, None)
        for document in list(self.open.values()):
            await document.client.aclose()
        self.open.clear()

    # --- Opening, saving, reloading ------------------------------------------------------

    async def _ensure_open(self, document_id: str) -> OpenDocument:
        """The open document (the caller holds its lock); opens it if needed."""
        document = self.open.get(document_id)
        if document is not None:
            return document
        try:
            return await self._open(document_id)
        except Exception as error:
            self._fail(document_id, describe(error), error_status(error))
            raise

    async def _open(self, document_id: str) -> OpenDocument:
        record = self._record("documents", document_id)
        if record is None:
            raise DocumentError(f"no document {document_id!r}")
        path = record.get("path")
        if not isinstance(path, str) or not path:
            raise DocumentError("a document needs a path")
        kind = record.get("type") or ("notebook" if path.endswith(".ipynb") else "file")
        if kind not in KINDS:
            raise DocumentError(f"unknown document type {kind!r}")
        self._update("documents", document_id, status="opening", type=kind)
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
            name, kind, self.supernode.token, self.supernode.client.datastore
        )
        client = DatastoreClient(self.supernode.server_url, name, token=self.supernode.token)
        await client.start()  # closes itself if it fails
        document = OpenDocument(document_id, kind, path, client)
        recorded = record.get("last_modified")
        conflict = None
        try:
            # Opened before (a restart, a reopen): the document may have changed since it was
            # last saved (edits while no supernode ran), and the file too.
            edited = not created and fingerprint(document.read()) != document.saved_hash()
            if not edited:
                document.load(model["content"])
                document.disk_last_modified = model.get("last_modified")
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
        self._update(
            "documents",
            document_id,
            status="open",
            datastore_name=name,
            format=KINDS[kind],
            last_modified=document.disk_last_modified,
            error=None,
            error_status=None,
            conflict=conflict,
        )
        return document

    def _conflict(self, document: OpenDocument, disk_last_modified: str | None) -> dict[str, Any]:
        document.conflict_with = disk_last_modified
        return {
            "detected_at": now(),
            "disk_last_modified": disk_last_modified,
            "message": (
                f"{document.path} changed on the Jupyter Server while the document had unsaved "
                "changes; both are kept (the document here, the file on disk) and automatic "
                "saving is paused. Request 'save' to keep the document, or 'reload' to take "
                "the file."
            ),
        }

    async def _save(self, document: OpenDocument, *, force: bool) -> None:
        """Write the document to its file (the caller holds its lock).

        Without ``force``, a file that changed on disk since it was last read or written is not
        overwritten (see ``_disk_changed``).
        """
        jupyter = self.supernode.jupyter
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
        self._update("documents", document.id, status="saving")
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
        if not document.dirty:  # edits made during the save are for the next one
            state["dirty"] = False
        document.set_state(**state)
        self._update(
            "documents",
            document.id,
            status="open",
            last_saved=now(),
            last_modified=document.disk_last_modified,
            conflict=None,
            error=None,
            error_status=None,
        )

    async def _read_file(self, path: str, kind: str) -> dict[str, Any]:
        """The file's model with its content (a notebook as JSON, a file as text)."""
        # Notebooks come in one format, and the API refuses to be told which.
        return await self.supernode.jupyter.get_contents(
            path, type=kind, format="text" if kind == "file" else None
        )

    async def _disk_model(self, document: OpenDocument) -> dict[str, Any] | None:
        """The file's model without content; None when it is gone."""
        try:
            return await self.supernode.jupyter.get_contents(document.path, content=False)
        except JupyterError as error:
            if error.status == 404:
                return None
            raise

    async def _reload(self, document: OpenDocument) -> None:
        """Load the file into the document, over unsaved changes (the caller holds the lock)."""
        await self._apply_disk(document, await self._read_file(document.path, document.kind))

    async def _disk_changed(self, document: OpenDocument, current: dict[str, Any] | None) -> None:
        """The file is not as the supernode last left it (the caller holds the lock)."""
        if current is None:
            if not document.missing:
                document.missing = True
                self._fail(
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
            self._update("documents", document.id, conflict=conflict)

    async def _apply_disk(self, document: OpenDocument, model: dict[str, Any]) -> None:
        document.load(model["content"])
        document.disk_last_modified = model.get("last_modified")
        document.conflict_with = None
        document.missing = False
        self._update(
            "documents",
            document.id,
            status="open",
            last_modified=document.disk_last_modified,
            conflict=None,
            error=None,
            error_status=None,
        )

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
            async with self._locks[document.id]:
                if self.open.get(document.id) is not document:
                    return
                try:
                    await self._save(document, force=False)
                except (JupyterClientError, RTCError, ClientClosed, TimeoutError) as error:
                    self._fail(
                        document.id,
                        f"saving {document.path}: {describe(error)}",
                        error_status(error),
                    )

    async def _poll_loop(self) -> None:
        while True:
            await asyncio.sleep(self.poll_interval)
            for document in list(self.open.values()):
                lock = self._locks[document.id]
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
                            self._update(
                                "documents",
                                document.id,
                                status="open",
                                error=None,
                                error_status=None,
                            )
                    except JupyterUnavailable as error:
                        logger.info("not polling files: %s", error)
                        break
                    except (JupyterClientError, RTCError, ClientClosed) as error:
                        logger.warning("document %s: %s", document.id, describe(error))

    # --- Rename, delete, close ------------------------------------------------------------

    async def _rename(self, document_id: str, new_path: Any) -> None:
        record = self._record("documents", document_id)
        if record is None:
            raise DocumentError(f"no document {document_id!r}")
        old_path = record.get("path")
        if not isinstance(new_path, str) or not new_path.strip("/"):
            raise DocumentError("a rename needs new_path")
        if not isinstance(old_path, str) or not old_path:
            raise DocumentError("a document needs a path")
        jupyter = self.supernode.jupyter
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
                self.supernode.refresh_requested.set()
        self._update(
            "documents",
            document_id,
            path=new_path,
            new_path=None,
            error=None,
            error_status=None,
            status="open" if document is not None else record.get("status"),
        )

    async def _delete(self, document_id: str) -> None:
        record = self._record("documents", document_id)
        if record is None:
            raise DocumentError(f"no document {document_id!r}")
        path = record.get("path")
        if isinstance(path, str) and path:
            try:
                await self.supernode.jupyter.delete_contents(path)
            except JupyterError as error:
                if error.status != 404:
                    raise
        await self._close(document_id, save=False)

    async def _close(self, document_id: str, *, save: bool) -> None:
        document = self.open.get(document_id)
        if document is not None:
            if save and document.dirty and not document.conflict_with and not document.missing:
                await self._save(document, force=False)
            self.open.pop(document_id, None)
            await self._disconnect(document)
        self._update(
            "documents",
            document_id,
            status="closed",
            conflict=None,
            error=None,
            error_status=None,
        )

    async def _disconnect(self, document: OpenDocument) -> None:
        if document.autosave is not None:
            document.autosave.cancel()
        with contextlib.suppress(TimeoutError, ClientClosed, RTCError):
            await document.client.wait_acked(timeout=self.close_timeout)
        await document.client.aclose()

    # --- Executions by cell id ----------------------------------------------------------

    async def execute(self, execution_id: str) -> None:
        """Run the cell an ``executions`` record names (started by the supernode's loop)."""
        task = asyncio.current_task()
        if task is not None:
            self._executions.add(task)
        self._observe_jupyter()
        record = self._record("executions", execution_id)
        document_id = str(record.get("document_id")) if record is not None else ""
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
            self._update("executions", execution_id, status="queued", error=None)
            if not isinstance(cell_id, str) or not cell_id:
                raise DocumentError("an execution of a notebook cell needs cell_id")
            async with self._locks[document_id]:
                document = await self._ensure_open(document_id)
            if document.kind != "notebook":
                raise DocumentError(f"{document.path} is not a notebook")
            if not await self._wait_turn(document_id, execution_id):
                self._update("executions", execution_id, status="cancelled", finished_at=now())
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
            self.notifier.notify()
            if task is not None:
                self._executions.discard(task)
            self.supernode.running.pop(execution_id, None)

    def _finish_failed(self, execution_id: str, message: str) -> None:
        self._update(
            "executions",
            execution_id,
            status="error",
            error=message,
            input_request=None,
            finished_at=now(),
        )

    async def _wait_turn(self, document_id: str, execution_id: str) -> bool:
        """Wait until this execution is the notebook's next; False if cancelled meanwhile."""
        queue = self._queues[document_id]
        while True:
            waiter = self.notifier.waiter()
            record = self._record("executions", execution_id)
            if record is None or record.get("cancel"):
                return False
            if document_id not in self._active and min(queue, key=queue.__getitem__) == (
                execution_id
            ):
                self._active[document_id] = execution_id
                return True
            await waiter.wait()

    async def _kernel_for(self, document: OpenDocument) -> str:
        """The kernel of the notebook's session; a new session (its kernelspec) if it has none."""
        jupyter = self.supernode.jupyter
        async with document.kernel_lock:
            for session in await jupyter.sessions():
                kernel = session.get("kernel") or {}
                if session.get("path") != document.path or not kernel.get("id"):
                    continue
                if kernel.get("execution_state") != "dead":
                    return kernel["id"]
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
            self.supernode.refresh_requested.set()
            return session["kernel"]["id"]

    async def _run_cell(self, document: OpenDocument, execution_id: str, cell_id: str) -> None:
        kernel_id = await self._kernel_for(document)
        connection: KernelConnection = await self.supernode.kernel(kernel_id)
        cell = document.cell(cell_id)
        if cell is None:
            raise DocumentError(f"no cell {cell_id!r} in {document.path}")
        if cell.get("cell_type") != "code":
            raise DocumentError(f"cell {cell_id!r} is a {cell.get('cell_type')} cell, not code")
        source = str(cell.get("source") or "")
        self._update(
            "executions",
            execution_id,
            status="running",
            started_at=now(),
            kernel_id=kernel_id,
            code=source,
        )
        with document.doc.transaction():
            outputs = cell.get("outputs")
            if isinstance(outputs, Array):
                if len(outputs):
                    del outputs[0 : len(outputs)]
            else:
                cell["outputs"] = Array()
            cell["execution_count"] = None
            cell["execution_state"] = "running"

        writer = OutputWriter(
            document.doc, lambda: document.cell(cell_id), interval=self.output_interval
        )
        try:
            outcome = await run_execution(
                connection,
                source,
                record=lambda: self._record("executions", execution_id),
                update=lambda **fields: self._update("executions", execution_id, **fields),
                interrupt=lambda: self.supernode.jupyter.interrupt_kernel(kernel_id),
                notifier=self.notifier,
                on_output=writer.add,
            )
        finally:
            writer.flush()
            cell = document.cell(cell_id)
            if cell is not None:
                with document.doc.transaction():
                    cell["execution_state"] = "idle"
                    if writer.execution_count is not None:
                        cell["execution_count"] = writer.execution_count

        result = outcome.result
        count = result.execution_count
        if count is None:
            count = writer.execution_count
        cell = document.cell(cell_id)
        if cell is not None and count is not None and cell.get("execution_count") != count:
            with document.doc.transaction():
                cell["execution_count"] = count
        record = self._record("executions", execution_id)
        cancelled = outcome.interrupted or (record is not None and bool(record.get("cancel")))
        status, error = final_status(result, cancelled)
        self._update(
            "executions",
            execution_id,
            status=status,
            error=error,
            execution_count=count,
            input_request=None,
            input_reply=None,
            finished_at=now(),
        )


__all__ = [
    "DocumentError",
    "DocumentManager",
    "OpenDocument",
    "datastore_name",
    "ensure_document_datastore",
]
