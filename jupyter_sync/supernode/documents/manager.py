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

import anyio

from jupyter_sync.supernode.documents.cell_queue import CellQueue
from jupyter_sync.supernode.documents.dispatch import RequestDispatch
from jupyter_sync.supernode.documents.document import OpenDocument
from jupyter_sync.supernode.documents.file_sync import FileSync
from jupyter_sync.supernode.documents.link import SupernodeLink
from jupyter_sync.supernode.executing import OUTPUT_INTERVAL


class DocumentManager:
    """The supernode's documents: requests in the ``documents`` table (``RequestDispatch``), the
    files they follow (``FileSync``), and cells run by id (``CellQueue``).

    ``run()`` belongs to the supernode's task group; ``execute(execution_id)`` is started by the
    supernode's executions loop for records with a ``document_id``.
    """

    def __init__(
        self,
        node: SupernodeLink,
        *,
        save_delay: float = 2.0,
        save_max_delay: float = 30.0,
        poll_interval: float = 2.0,
        output_interval: float = OUTPUT_INTERVAL,
        close_timeout: float = 10.0,
    ):
        self.records = node.records
        self.files = FileSync(
            node,
            save_delay=save_delay,
            save_max_delay=save_max_delay,
            poll_interval=poll_interval,
            close_timeout=close_timeout,
        )
        self.requests = RequestDispatch(node, self.files)
        self.cells = CellQueue(node, self.files, output_interval=output_interval)

    @property
    def open(self) -> dict[str, OpenDocument]:
        return self.files.open

    @property
    def save_delay(self) -> float:
        return self.files.save_delay

    @save_delay.setter
    def save_delay(self, value: float) -> None:
        self.files.save_delay = value

    @property
    def poll_interval(self) -> float:
        return self.files.poll_interval

    @poll_interval.setter
    def poll_interval(self, value: float) -> None:
        self.files.poll_interval = value

    async def run(self) -> None:
        """Carry out document requests and keep open documents in step with their files."""
        self.records.follow()
        self.requests.reopen_after_restart()
        try:
            async with anyio.create_task_group() as group:
                group.start_soon(self.files.poll_loop)
                while True:
                    waiter = self.records.changed.waiter()
                    self.records.follow()
                    self.requests.dispatch()
                    with anyio.move_on_after(self.files.poll_interval):
                        await waiter.wait()
        finally:
            with anyio.CancelScope(shield=True):
                await self._close_all()

    async def execute(self, execution_id: str) -> None:
        """Run the cell an ``executions`` record names (started by the supernode's loop)."""
        await self.cells.execute(execution_id)

    async def _close_all(self) -> None:
        """On stop: finish what can be finished quickly, and close every document's client."""
        tasks = [*self.requests.tasks.values(), *self.cells.tasks]
        for task in tasks:
            task.cancel()
        with anyio.move_on_after(self.files.close_timeout):
            if tasks:  # their last writes (a cell's outputs so far) go out with the rest
                await asyncio.wait(tasks)
            await self.files.save_and_disconnect_all()
        await self.files.abort_all()


__all__ = ["DocumentManager"]
