"""A record a user may write never leads them into a datastore they have no role on.

An editor of the ``jupyter`` datastore may write its ``documents`` and ``executions`` records
(that is how front ends ask for things). Such a record names other things: a document's
datastore, an execution's document and cell. Here an editor with no role on a private notebook
writes records naming it, the way any editor can (a transaction over REST), and tries every
place that follows such a reference: the room, the collaboration session, the documents API,
an execution's outputs. None of them shows anything of the private notebook."""

from __future__ import annotations

import base64

import pytest
from channels.db import database_sync_to_async
from channels.testing import WebsocketCommunicator
from django.contrib.auth.models import User
from jupyter_ydoc import YNotebook
from pycrdt import Map
from rest_framework.test import APIClient

from jupyter_sync.schema import JUPYTER_DATASTORE
from rtc_project.asgi import application
from tables import service
from tables.models import Datastore
from tables.permissions import access_for, grant
from tests.support.factories import Client
from tests.support.notebooks import code, notebook
from tests.support.peers import token_for

pytestmark = pytest.mark.django_db(transaction=True)

SECRET_OUTPUT = {"output_type": "stream", "name": "stdout", "text": "the secret\n"}


def build() -> tuple[Datastore, Datastore, User]:
    """The jupyter datastore with an editor; a private notebook (its owner only) with a cell
    whose output is secret; the editor's records pointing at it."""
    supernode = User.objects.create_user("supernode")
    jupyter = service.create_datastore(JUPYTER_DATASTORE, "jupyter", owner=supernode)
    alice = User.objects.create_user("alice")
    private = service.create_datastore("private-nb", "notebook", owner=alice)
    writer = Client(private, author_id=alice.pk)
    cell = {**code("c1", "print('the secret')"), "outputs": [SECRET_OUTPUT], "execution_count": 1}
    model = YNotebook(writer.doc)
    writer.send(lambda _doc: model.set(notebook(cell)))
    editor = User.objects.create_user("ed")
    grant(jupyter, editor, "editor")
    assert not access_for(editor, private).can_read

    records = Client(jupyter)

    def point_at_private(doc) -> None:
        doc.get("documents", type=Map)["d1"] = Map(
            {
                "path": "mine.ipynb",
                "type": "notebook",
                "format": "json",
                "datastore_name": private.name,
                "status": "open",
            }
        )
        doc.get("executions", type=Map)["e1"] = Map(
            {"document_id": "d1", "cell_id": "c1", "status": "completed"}
        )

    api = APIClient()
    api.force_authenticate(editor)
    update = records.change(point_at_private)
    response = api.post(
        f"/api/datastores/{JUPYTER_DATASTORE}/transactions/",
        {"patch": base64.b64encode(update).decode(), "id": "pointing"},
        format="json",
    )
    assert response.status_code == 201, response.content  # editors may write these tables
    return jupyter, private, editor


def as_user(user: User) -> APIClient:
    api = APIClient()
    api.force_authenticate(user)
    return api


def test_rest_routes_following_a_record_show_nothing_of_a_private_datastore():
    _jupyter, private, editor = build()
    api = as_user(editor)
    execution = api.get("/api/executions/e1")
    assert execution.status_code == 200, execution.content
    assert execution.json()["outputs"] == []
    assert "secret" not in execution.content.decode()
    document = api.get("/api/documents/d1")
    assert document.status_code == 200, document.content
    shown = document.json()
    assert shown["datastore_name"] == "" and shown["websockets"] is None
    assert shown["session_id"] is None
    assert private.name not in document.content.decode()


async def test_the_room_does_not_open_a_datastore_a_record_names():
    _jupyter, _private, editor = await database_sync_to_async(build)()
    token = await token_for(editor)
    room = f"/api/collaboration/room/json:notebook:d1?token={token}"
    communicator = WebsocketCommunicator(application, room)
    connected, code_or_subprotocol = await communicator.connect(timeout=10)
    closes = []
    if connected:
        while True:
            output = await communicator.receive_output(timeout=10)
            assert output["type"] != "websocket.send" or b"secret" not in output.get("bytes", b"")
            if output["type"] == "websocket.close":
                closes.append(output)
                break
    else:
        closes.append({"code": code_or_subprotocol})
    assert closes[0]["code"] == 4404, closes
    await communicator.disconnect()
