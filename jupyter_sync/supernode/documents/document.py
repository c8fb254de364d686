"""One document the supernode follows: its datastore client, its content as the contents API
takes it, and how it stands to the file (dirty, in conflict, missing)."""

from __future__ import annotations

import asyncio
import copy
import hashlib
import json
from typing import Any

from jupyter_ydoc import YNotebook, YUnicode
from pycrdt import Array, Doc, Map, Text
from rtc_client import DatastoreClient

from jupyter_sync.jupyter import JupyterError
from jupyter_sync.schema import DOCUMENT_FORMATS, document_datastore_name
from jupyter_sync.supernode.outputs import Displays
from tables.conf import rtc_settings
from tables.schema import jsonable

SAVED_HASH = "saved_hash"
"""Key in a document's ``state``: the fingerprint of what the file held when last read/written."""
FILE_HASH = "hash"
"""Key in a document's ``state``: the Jupyter contents model's ``hash`` of the file as last read or
written (jupyter_ydoc's ``hash``). JupyterLab takes a change of it as "saved by someone else" and
keeps the new value, which it compares with the file's own hash when it saves."""


datastore_name = document_datastore_name  # the document's datastore (jupyter_sync.schema)

MESSAGE_OVERHEAD = 512
"""Bytes a transaction-broadcast message adds around one patch (ids, JSON keys), rounded up."""


def check_update_size(path: str, size: int) -> None:
    """Refuse, before sending it, a change of the file's ``size`` bytes that the server would
    refuse: over ``RTC_MAX_UPDATE_BYTES`` it answers too-large, over ``RTC_MAX_MESSAGE_BYTES``
    (the patch goes in base64, in JSON) it closes the connection with 1009, and sent again it
    would be refused again. Said here, it is the document's error rather than an open and empty
    document."""
    limit = rtc_settings.MAX_UPDATE_BYTES
    if size > limit:
        raise DocumentError(
            f"{path} is too large to open: its content is a {size:,}-byte document update, "
            f"over the limit of {limit:,} bytes (RTC_MAX_UPDATE_BYTES)"
        )
    message = 4 * ((size + 2) // 3) + MESSAGE_OVERHEAD
    limit = rtc_settings.MAX_MESSAGE_BYTES
    if message > limit:
        raise DocumentError(
            f"{path} is too large to open: its content ({size:,} bytes as a document update) "
            f"needs a {message:,}-byte message, over the limit of {limit:,} bytes "
            "(RTC_MAX_MESSAGE_BYTES)"
        )


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
        self.session: tuple[str, str, str] | None = None
        """(path, kernel id, session id) of the notebook's session as last found or made: the
        next run takes it without asking the server while its kernel is open (cell_queue)."""
        self.displays = Displays()
        """The outputs its cells showed with a display id, for updates from any cell."""
        self.autosave: asyncio.Task[None] | None = None
        self._loaded: Doc | None = None
        """What ``load`` built, until ``write_fingerprint`` has read it."""
        self._observed: Doc | None = None
        self._subscriptions: list[Any] = []
        client.on_rejected = self._rejected

    @property
    def format(self) -> str:
        return DOCUMENT_FORMATS[self.kind]

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

    def load(
        self, content: Any, file_hash: str | None = None, *, fingerprint_later: bool = False
    ) -> int:
        """Make the document equal to ``content`` from the file, changing only what differs
        (``file_hash``, the contents model's ``hash``, goes into ``state`` with it); returns
        the size of the update that took.

        Done on a copy (jupyter_ydoc's classes attach an undo manager to the doc they wrap) with
        the same client id, so its new operations follow the document's own; the difference is
        applied in one transaction. Not an edit: the document is clean afterwards. A difference
        the server would refuse as too large is a DocumentError, and the document is left as it
        was (``check_update_size``).

        The fingerprint of what was loaded (``saved_hash``) goes into the same transaction,
        unless ``fingerprint_later``: then ``write_fingerprint()`` writes it in a transaction
        of its own, so that a big notebook's content is on its way to the server while the
        fingerprint (a read of the whole document) is worked out. Until then the document has
        no ``saved_hash``, which only means "load it from the file" when it is opened again.
        """
        doc = self.doc
        working = Doc(client_id=doc.client_id)
        working.apply_update(doc.get_update())
        if self.kind == "notebook":
            _set_notebook(YNotebook(working), content)
        else:
            YUnicode(working).set(str(content))
        state = working.get("state", type=Map)
        values: dict[str, Any] = {"dirty": False, "path": self.path}
        if not fingerprint_later:
            values[SAVED_HASH] = fingerprint(_read(working, self.kind, copy_first=False))
        if file_hash is not None:
            values[FILE_HASH] = file_hash
        for key, value in values.items():
            if state.get(key) != value:
                state[key] = value
        update = working.get_update(doc.get_state())
        check_update_size(self.path, len(update))
        self.quiet += 1
        try:
            doc.apply_update(update)
        finally:
            self.quiet -= 1
        self.dirty = False
        self.dirty_since = None
        self._loaded = working if fingerprint_later else None
        return len(update)

    def write_fingerprint(self) -> None:
        """``saved_hash`` of what ``load(..., fingerprint_later=True)`` loaded, in a transaction
        of its own; nothing if the document was edited since (it is not what the file holds)."""
        loaded, self._loaded = self._loaded, None
        if loaded is None or self.dirty:
            return
        self.quiet += 1
        try:
            self.set_state(**{SAVED_HASH: fingerprint(_read(loaded, self.kind, copy_first=False))})
        finally:
            self.quiet -= 1

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
    if kind != "notebook":
        return YUnicode(doc).get()
    content = YNotebook(doc).get()
    metadata = content.get("metadata") or {}
    for key, empty in FILLED_IN_METADATA.items():
        if metadata.get(key) == empty:
            del metadata[key]
    return content


# What jupyter_ydoc's ``YNotebook.set`` fills into a notebook's metadata when the file has none
# (as jupyter-collaboration's documents hold it, so JupyterLab sees what it is used to). Empty,
# they say nothing: dropped again on reading, so saving a notebook never adds them to its file.
FILLED_IN_METADATA = {
    "language_info": {"name": ""},
    "kernelspec": {"name": "", "display_name": ""},
}


def fingerprint(content: Any) -> str:
    """A hash of a document's content, to tell later whether it changed."""
    return hashlib.sha256(json.dumps(content, sort_keys=True).encode()).hexdigest()


def _set_notebook(notebook: YNotebook, content: dict[str, Any]) -> None:
    """``notebook.set(content)``, keeping cells and changing their sources granularly.

    jupyter_ydoc replaces a changed source whole; a text diff first leaves ``set`` only the other
    fields. Cells without ids (nbformat < 4.5) take the id of the cell at the same place, so they
    keep their identity across loads.
    """
    ycells = notebook.ycells
    if not len(ycells):
        # A document that holds no cells yet (a first open): nothing to keep, nothing to
        # diff, and jupyter_ydoc copies each cell it creates, so ``content`` is not copied.
        notebook.set(content)
        return
    content = copy.deepcopy(content)
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
