"""jupyter-collaboration's document room, ``/api/collaboration/room/<format>:<type>:<fileId>``.

JupyterLab's collaboration front end (``@jupyter/docprovider``) asks ``PUT
/api/collaboration/session/<path>`` for a ``fileId`` and a ``sessionId``, then connects a stock
y-websocket ``WebsocketProvider`` to this room with ``?sessionId=`` (and ``?token=`` when its
settings append one). The room is the y-websocket relay (``relay.yjs_consumer``) onto the
document's datastore, found through the ``documents`` record whose id is the ``fileId``; only
the lookup and jupyter-collaboration's extras differ:

- The room name must be ``json:notebook:<id>`` or ``text:file:<id>`` and match the record;
  anything else closes with 4400, an unknown or not (yet) opened document with 4404 (the codes
  the front end reports as "bad request" and "could not find" before giving up).
- ``sessionId`` (``document_session``) names the datastore the client synced with. A client that
  presents another one holds state from a document that is gone (the datastore was deleted and
  made again), which must not be merged: it is refused, as jupyter-collaboration refuses a
  client of an earlier server session, but with 4409 rather than its 1003, which daphne
  (autobahn) cannot send: a server may close with 1000 or 3000-4999 only. No ``sessionId``:
  nothing claimed, accepted (stock y-websocket clients).
- Message type 2 is jupyter-collaboration's "raw" message (a string, then its arguments), not
  y-protocols' auth message. The front end sends ``save`` with a number (Ctrl+S): the document's
  record gets ``request: save`` (through the write path, as the user: a viewer's save fails),
  and once the supernode has written the file the answer is a raw JSON message ``{"type":
  "save", "responseTo": <number>, "status": "success" | "skipped" | "failed"}`` (skipped: a
  request is already under way).
- Since the front end reads type 2 as raw, y-websocket's auth message cannot tell it that an
  edit was refused: a refused update closes the connection with 4403 instead (``read-only: ...``
  for a reader; the Jupyter bridge shows JupyterLab's reload dialog), and the window cannot
  diverge in silence. A reader's sync step 2 with nothing new passes (``receive_update``), and
  so does, dropped unstored, the kernel metadata JupyterLab writes into a notebook by itself on
  opening it (``front_end_writes``).

Authentication, the Origin check for cookies, roles (the document datastore's, which follow the
jupyter datastore's through ``roles_from``), limits and fan-out are the relay's.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from urllib.parse import parse_qs

from channels.db import database_sync_to_async
from rtc_client.wire import yjs_protocol

from jupyter_sync.availability import supernode_problem
from jupyter_sync.collaboration import document_records, forks
from jupyter_sync.collaboration.front_end_writes import only_automatic_changes
from jupyter_sync.conf import jupyter_settings
from jupyter_sync.document_ids import BadDocumentId, DocumentId, WrongType, parse_room_id, room_id
from jupyter_sync.models import Document
from jupyter_sync.records import RecordWriteRejected
from jupyter_sync.schema import JUPYTER_DATASTORE
from jupyter_sync.waiting import WaitTimeout, wait_for_record
from relay.consumers import ConnectionRefusal, require_user, resolve_access
from relay.yjs_consumer import YjsConsumer
from tables import service
from tables.loaded import MissingDependencies
from tables.models import Datastore
from tables.permissions import Access, access_for
from tables.ydoc import MalformedUpdate

RAW = 2
"""jupyter-collaboration's message type for JSON strings (y-protocols' auth type, which clients
never send to a server)."""
EMPTY_UPDATE = b"\x00\x00"
"""A Yjs update with nothing in it."""
MAX_DROPPED = 32
"""A reader's updates dropped in silence on one connection, at most (each is replayed to judge
the next): past it, the next one is refused."""
SESSION_NAMESPACE = uuid.UUID("6b1f7a52-3a8e-4d0c-9a57-2f0c1e4d8b21")


def document_session(datastore: Datastore) -> str:
    """The ``sessionId`` of a document: stable while its datastore (and so its history) lives.

    jupyter-collaboration draws one per server process, because its rooms live in memory and a
    restart rebuilds every document from its file. Here the history outlives restarts and is
    shared by every worker, so a client's local state stays mergeable until the datastore itself
    is replaced; the id follows the datastore row, not the process.
    """
    return str(uuid.uuid5(SESSION_NAMESPACE, f"{datastore.pk}:{datastore.created_at.isoformat()}"))


def room_name(document_type: str, document_id: str) -> str:
    """The room jupyter-collaboration's front end joins for a document."""
    return room_id(document_type, document_id)


@dataclass(frozen=True)
class RoomTarget:
    access: Access
    session_id: str
    jupyter_access: Access
    document_id: str
    fork: bool = False
    """A fork's room (``collaboration.forks``): no file behind it to save."""


def parse_room(room: str) -> DocumentId:
    """``format:type:fileId`` → its parts (``jupyter_sync.document_ids``); ``ConnectionRefusal``
    4400 for anything else."""
    try:
        return parse_room_id(room)
    except BadDocumentId as error:
        raise ConnectionRefusal(4400, "bad-room", str(error)) from None


def _jupyter_access(user) -> Access:
    jupyter = Datastore.objects.filter(name=JUPYTER_DATASTORE).first()
    if jupyter is None:
        raise ConnectionRefusal(
            4404, "unknown-document", "no documents here: no supernode has run yet"
        )
    jupyter_access = access_for(user, jupyter)
    if not jupyter_access.can_read:
        raise ConnectionRefusal(4403, "forbidden", f"no access to datastore {JUPYTER_DATASTORE!r}")
    return jupyter_access


def _fork_target(fork_id: str, user) -> RoomTarget:
    """A fork's room: anyone who may read the forked document joins (4404 for anyone else, as
    for a fork that does not exist), with their role on the fork's datastore."""
    jupyter_access = _jupyter_access(user)
    try:
        row = forks.fork_for(fork_id, user)
    except forks.ForkRefused as error:
        raise ConnectionRefusal(4404, error.code, error.detail) from None
    access = access_for(user, row.datastore)
    if not access.can_read:
        raise ConnectionRefusal(4403, "forbidden", f"no access to fork {fork_id!r}")
    return RoomTarget(access, document_session(row.datastore), jupyter_access, "", fork=True)


def _room_target(room: str, user) -> RoomTarget:
    if forks.is_fork_id(room):
        return _fork_target(room, user)
    parsed = parse_room(room)
    document_id = parsed.id
    jupyter_access = _jupyter_access(user)
    jupyter = jupyter_access.datastore
    record = Document.objects.filter(datastore=jupyter, record_id=document_id).first()
    if record is None:
        raise ConnectionRefusal(4404, "unknown-document", f"no document with id {document_id!r}")
    try:
        parsed.check_type(record.type)
    except WrongType as error:
        raise ConnectionRefusal(4400, "wrong-type", str(error)) from None
    datastore = document_records.document_datastore(record)
    if datastore is None:
        raise ConnectionRefusal(
            4404,
            "document-not-open",
            f"document {document_id!r} is not open (status {record.status or 'requested'}); "
            "open it with PUT /api/collaboration/session/<path>",
        )
    access = access_for(user, datastore)
    if not access.can_read:
        raise ConnectionRefusal(4403, "forbidden", f"no access to document {document_id!r}")
    return RoomTarget(access, document_session(datastore), jupyter_access, document_id)


def _ask_save(target: RoomTarget, username: str) -> str | None:
    """Write ``request: save`` on the document; the reply status when it cannot be asked."""
    if target.fork:
        return "failed"  # a fork has no file; merging it saves nothing either
    row = document_records.find(target.jupyter_access.datastore, target.document_id)
    if row is None or supernode_problem(target.jupyter_access.datastore):
        return "failed"
    try:
        document_records.ask(target.jupyter_access, row, "save", username)
    except document_records.Busy:
        return "skipped"  # jupyter-collaboration's answer while a save is under way
    except RecordWriteRejected:
        return "failed"
    return None


def raw_message(message: dict) -> bytes:
    """jupyter-collaboration's raw message: type 2, then a JSON string."""
    return bytes([RAW]) + yjs_protocol.write_var_string(json.dumps(message))


class RoomConsumer(YjsConsumer):
    """``YjsConsumer`` on the datastore of the room's document."""

    # The front end reads type 2 as a raw message: dropped presence is only logged.
    tells_presence_refusals = False

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.dropped: list[bytes] = []  # a reader's updates dropped unstored (front_end_writes)

    async def datastore_access(self, user) -> Access:
        require_user(user)
        room = self.scope["url_route"]["kwargs"]["room"]
        target = await database_sync_to_async(_room_target)(room, user)
        query = parse_qs(self.scope.get("query_string", b"").decode("latin1"))
        claimed = (query.get("sessionId") or [""])[-1]
        if claimed and claimed != target.session_id:
            raise ConnectionRefusal(
                4409,
                "session-expired",
                "this document was replaced since you opened it: drop your copy and reload",
            )
        self.target = target
        return target.access

    async def reader_update_ignored(self, update: bytes) -> bool:
        """JupyterLab's own kernel metadata writes in a reader's notebook: dropped, not refused.

        Judged with the ones dropped before on this connection, which the reader's window holds
        and its later updates build on.
        """
        if self.access.datastore.schema != "notebook" or len(self.dropped) >= MAX_DROPPED:
            return False
        try:
            before, after = await database_sync_to_async(service.live_preview)(
                self.access.datastore, [*self.dropped, update]
            )
        except (MalformedUpdate, MissingDependencies, service.UpdateTooLarge):
            return False  # refused by the caller: nothing of it can be told apart
        if not only_automatic_changes(before, after):
            return False
        self.dropped.append(update)
        return True

    async def update_refused(self, code: str, reason: str) -> None:
        """Close: the front end ignores y-websocket's auth message (type 2 is its raw message
        here), so an edit refused in silence would leave the window diverged for ever. 4403 with
        a reason the bridge shows in JupyterLab's reload dialog; nothing was stored."""
        if code == service.DatastoreNotFound.code and self.target.fork:
            await self.refuse(
                ConnectionRefusal(
                    4404, "unknown-fork", "this fork was merged or discarded; nothing was saved"
                )
            )
            return
        if code == "permission-denied":
            words = "read-only: you may not edit this document; your change was not saved"
        else:
            words = f"refused: {code}; your change was not saved ({reason})"
        await self.refuse(ConnectionRefusal(4403, code, words))

    async def handle(self, text_data: str | None, bytes_data: bytes | None) -> None:
        if bytes_data is None or bytes_data[:1] != bytes([RAW]):
            await super().handle(text_data, bytes_data)
            return
        reader = yjs_protocol.Reader(bytes_data)
        try:
            reader.var_uint()
            name = reader.var_string()
            save_id = reader.var_uint() if name == "save" else None
        except yjs_protocol.ProtocolError as error:
            await self.deny("bad-message", f"raw message: {error}")
            return
        if save_id is not None:
            self.spawn(self.save(save_id))
        # Other raw messages (none is sent by the front end today) mean nothing here.

    async def save(self, save_id: int) -> None:
        """``save``: ask the supernode to write the file now, answer when it has."""
        user = self.scope.get("user")
        username = user.get_username() if user is not None and user.is_authenticated else ""
        status = await database_sync_to_async(_ask_save)(self.target, username)
        if status is None:
            try:
                record = await wait_for_record(
                    JUPYTER_DATASTORE,
                    "documents",
                    self.target.document_id,
                    lambda record: record is None or record.get("request") != "save",
                    jupyter_settings.API_ACTION_TIMEOUT,
                )
                failed = record is None or record.get("status") == "error"
                status = "failed" if failed else "success"
            except WaitTimeout:
                status = "failed"
        await self.send(
            bytes_data=raw_message({"type": "save", "responseTo": save_id, "status": status})
        )


GLOBAL_AWARENESS = "JupyterLab:globalAwareness"


class GlobalAwarenessConsumer(YjsConsumer):
    """JupyterLab's ``JupyterLab:globalAwareness`` room: presence only (who is on the server,
    which documents they have open), shared by the readers of the jupyter datastore.

    The front end's ``WebSocketAwarenessProvider`` is a y-websocket provider over an empty
    document: it is answered an empty sync so that it counts as synced, its document updates are
    dropped (nothing is stored), and no transaction of the jupyter datastore is sent to it. Its
    awareness goes through the jupyter datastore's room, to every worker.
    """

    tells_presence_refusals = False  # as in a document's room: type 2 is raw to the front end

    async def datastore_access(self, user) -> Access:
        return await resolve_access(JUPYTER_DATASTORE, user)

    async def joined(self) -> None:
        presence = self.room.presence_snapshot()
        if presence:
            await self.send(bytes_data=yjs_protocol.awareness(presence))

    async def answer_step1(self, state_vector: bytes) -> None:
        async def sync() -> int:
            await self.send(bytes_data=yjs_protocol.sync_step2(EMPTY_UPDATE))
            return self.room.serial

        await self.room.admit(self, sync)

    async def receive_update(self, update: bytes) -> None:
        pass  # an awareness room shares no document

    async def send_transactions(self, batch) -> None:
        pass
