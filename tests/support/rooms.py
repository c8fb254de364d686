"""A notebook the supernode has opened, as jupyter-collaboration's room serves it, and how to
watch a room connection: still answering, or closed."""

from __future__ import annotations

from django.contrib.auth.models import User
from jupyter_ydoc import YNotebook
from pycrdt import Array
from rtc_client.wire import yjs_protocol

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
