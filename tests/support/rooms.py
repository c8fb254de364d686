"""A notebook the supernode has opened, as jupyter-collaboration's room serves it, how to
watch a room connection (still answering, or closed), and a room client over a real socket."""

from __future__ import annotations

import asyncio
import contextlib
import json

import websockets
from django.contrib.auth.models import User
from jupyter_ydoc import YNotebook
from pycrdt import Array, Doc, TransactionEvent
from rtc_client.wire import yjs_protocol
from websockets.asyncio.client import ClientConnection

from jupyter_sync.collaboration.room import RAW
from jupyter_sync.schema import JUPYTER_DATASTORE
from tables import records, service
from tables.models import Datastore
from tests.support.factories import Client
from tests.support.notebooks import code, notebook
from tests.support.peers import YPeer

DOCUMENT = "f1"
ROOM = f"/api/collaboration/room/json:notebook:{DOCUMENT}"


def open_document() -> Datastore:
    """What the supernode leaves behind once it opened a notebook: the documents record, and the
    document's datastore, whose roles follow the jupyter datastore's (one cell, then a deletion,
    so the document has a delete set that every client's sync step 2 repeats)."""
    owner = User.objects.create_user("supernode")
    jupyter = service.create_datastore(JUPYTER_DATASTORE, "jupyter", owner=owner)
    datastore = service.create_datastore(f"doc-{DOCUMENT}", "notebook", owner=owner)
    datastore.roles_from = jupyter
    datastore.save(update_fields=["roles_from"])
    writer = Client(datastore, author_id=owner.pk)
    model = YNotebook(writer.doc)
    writer.send(lambda _doc: model.set(notebook(code("c1", "x = 10"))))
    writer.send(lambda doc: doc.get("cells", type=Array)[0]["source"].__delitem__(slice(3, 6)))
    record = {
        "path": "a.ipynb",
        "type": "notebook",
        "format": "json",
        "datastore_name": datastore.name,
        "status": "open",
    }
    records.set_fields(jupyter, "documents", DOCUMENT, record)
    return Datastore.objects.get(pk=datastore.pk)


async def still_open(peer: YPeer) -> None:
    """Messages are handled in order: the answer to a step 1 sent now comes after whatever the
    server did about what was sent before (a close would come first)."""
    await peer.ws.send_to(bytes_data=yjs_protocol.sync_step1(peer.doc.get_state()))
    output = await peer.ws.receive_output(timeout=10)
    assert output["type"] == "websocket.send", output
    message = yjs_protocol.parse(output["bytes"])
    assert (message.type, message.sync_type) == (
        yjs_protocol.MessageType.SYNC,
        yjs_protocol.SyncType.STEP2,
    )


async def closed(peer: YPeer) -> dict:
    while True:
        output = await peer.ws.receive_output(timeout=10)
        if output["type"] == "websocket.close":
            return output


class RoomClient:
    """A y-websocket client of a collaboration room over a real socket, with a pycrdt document:
    what JupyterLab's provider does (sync both ways, local edits sent as updates, Ctrl+S as
    jupyter-collaboration's raw ``save``), without a browser."""

    def __init__(self, ws: ClientConnection):
        self.ws = ws
        self.doc = Doc()
        self.synced = asyncio.Event()
        self.saves: dict[int, str] = {}
        self.saved = asyncio.Event()
        self._remote = False
        self._sending: list[asyncio.Task] = []
        self.doc.observe(self._local_update)
        self.reader = asyncio.create_task(self._read())

    @classmethod
    async def join(cls, url: str, timeout: float) -> RoomClient:
        """Connect to ``url`` (room, ``sessionId`` and ``token`` in it) and wait for the sync."""
        ws = await websockets.connect(url, max_size=None, open_timeout=timeout)
        client = cls(ws)
        await ws.send(yjs_protocol.sync_step1(client.doc.get_state()))
        await asyncio.wait_for(client.synced.wait(), timeout)
        return client

    def _local_update(self, event: TransactionEvent) -> None:
        if not self._remote:
            update = yjs_protocol.sync_update(event.update)
            self._sending.append(asyncio.get_running_loop().create_task(self.ws.send(update)))

    async def flush(self) -> None:
        """Every local edit sent (they go in the order they were made)."""
        sending, self._sending = self._sending, []
        await asyncio.gather(*sending)

    async def _read(self) -> None:
        async for data in self.ws:
            if data[:1] == bytes([RAW]):
                reader = yjs_protocol.Reader(data)
                reader.var_uint()
                answer = json.loads(reader.var_string())
                self.saves[answer["responseTo"]] = answer["status"]
                self.saved.set()
                continue
            message = yjs_protocol.parse(data)
            if message.type != yjs_protocol.MessageType.SYNC:
                continue
            if message.sync_type == yjs_protocol.SyncType.STEP1:
                await self.ws.send(yjs_protocol.sync_step2(self.doc.get_update(message.payload)))
                continue
            self._remote = True
            try:
                self.doc.apply_update(message.payload)
            finally:
                self._remote = False
            if message.sync_type == yjs_protocol.SyncType.STEP2:
                self.synced.set()

    async def save(self, save_id: int, timeout: float) -> str:
        """Ctrl+S: the room's answer, ``success``, ``skipped`` or ``failed``."""
        await self.flush()
        raw = bytes([RAW]) + yjs_protocol.write_var_string("save")
        await self.ws.send(raw + yjs_protocol.write_var_uint(save_id))
        async with asyncio.timeout(timeout):
            while save_id not in self.saves:
                self.saved.clear()
                await self.saved.wait()
        return self.saves[save_id]

    async def close(self) -> None:
        await self.ws.close()
        self.reader.cancel()
        with contextlib.suppress(asyncio.CancelledError, websockets.ConnectionClosed):
            await self.reader
