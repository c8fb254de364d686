"""Roles in jupyter-collaboration's room: a reader's edit closes the connection with 4403 and a
``read-only:`` reason, and nothing is stored; a reader's sync with nothing new passes. In process
against the ASGI application, and through a real daphne process (the close reason is in the
close frame, which daphne alone would drop)."""

from __future__ import annotations

import io
import json

import pytest
from channels.db import database_sync_to_async
from django.contrib.auth.models import User
from django.core.management import call_command
from pycrdt import Array, Doc, Map, Text
from rtc_client.wire import yjs_protocol
from websockets.asyncio.client import connect as ws_connect

from jupyter_sync.schema import JUPYTER_DATASTORE
from tables import service
from tables.models import Datastore, Transaction
from tables.permissions import grant
from tests.support.peers import YPeer, connect, token_for
from tests.support.rooms import ROOM, closed, open_document, still_open
from tests.support.waiting import aeventually

pytest_plugins = ["tests.support.liveserver"]
pytestmark = pytest.mark.django_db(transaction=True)

db = database_sync_to_async


@pytest.fixture
async def room():
    def build():
        datastore = open_document()
        jupyter = Datastore.objects.get(name=JUPYTER_DATASTORE)
        users = {name: User.objects.create_user(name) for name in ("ed", "vi")}
        grant(jupyter, users["ed"], "editor")
        grant(jupyter, users["vi"], "viewer")
        return datastore, users

    datastore, users = await db(build)()
    return datastore, {name: await token_for(user) for name, user in users.items()}


@db
def stored(datastore: Datastore) -> tuple[int, int, dict]:
    datastore.refresh_from_db()
    state, _ = service.live_python(datastore)
    return Transaction.objects.filter(datastore=datastore).count(), datastore.last_serial, state


async def stored_with(datastore: Datastore, condition) -> tuple[int, int, dict] | None:
    """What ``stored`` gives once its document satisfies ``condition`` and no commit ran
    between its reads (as many transactions as the last serial); None until then."""
    found = await stored(datastore)
    count, serial, state = found
    return found if count == serial and condition(state) else None


def source(doc: Doc) -> str:
    return str(doc.get("cells", type=Array)[0]["source"])


async def test_a_viewers_sync_with_nothing_new_passes_and_an_edit_closes_4403(room):
    datastore, tokens = room
    before = await stored(datastore)
    viewer = YPeer(await connect(ROOM, tokens["vi"]))
    await viewer.handshake()  # its step 2 is empty: it had nothing
    assert source(viewer.doc) == "x ="
    await viewer.close()

    again = YPeer(await connect(ROOM, tokens["vi"]))
    again.doc = viewer.doc  # reconnecting: its step 2 repeats the document's deletions
    await again.handshake()
    await still_open(again)
    assert await stored(datastore) == before

    await again.edit(lambda doc: doc.get("cells", type=Array)[0]["source"].insert(0, "#"))
    close = await closed(again)
    assert close["code"] == 4403
    assert close["reason"].startswith("read-only:") and "not saved" in close["reason"]
    assert await stored(datastore) == before


def set_metadata(doc: Doc, key: str, value: dict) -> None:
    """As ``@jupyter/ydoc``'s ``setMetadata``: one key of the notebook's metadata map."""
    doc.get("meta", type=Map)["metadata"][key] = value


async def test_jupyterlabs_own_kernel_metadata_from_a_viewer_is_dropped_not_stored(room):
    """JupyterLab writes kernelspec and language_info when a kernel connects, in a viewer's
    window too: dropped in silence (the room stays open), never stored; anything else the
    viewer changes alongside them is refused as any edit."""
    datastore, tokens = room
    before = await stored(datastore)
    viewer = YPeer(await connect(ROOM, tokens["vi"]))
    await viewer.handshake()
    kernelspec = {"name": "python3", "display_name": "Python 3 (ipykernel)", "language": "python"}
    await viewer.edit(lambda doc: set_metadata(doc, "kernelspec", kernelspec))
    await viewer.edit(lambda doc: set_metadata(doc, "language_info", {"name": "python"}))
    await still_open(viewer)
    assert await stored(datastore) == before

    def both(doc: Doc) -> None:
        set_metadata(doc, "language_info", {"name": "python", "version": "3"})
        set_metadata(doc, "title", "mine")

    await viewer.edit(both)
    close = await closed(viewer)
    assert close["code"] == 4403 and close["reason"].startswith("read-only:")
    assert await stored(datastore) == before


async def test_an_editor_passes_and_a_refused_edit_in_the_room_closes_too(room):
    datastore, tokens = room
    editor = YPeer(await connect(ROOM, tokens["ed"]))
    await editor.handshake()
    await editor.edit(lambda doc: doc.get("cells", type=Array)[0]["source"].insert(3, " 1"))
    await still_open(editor)
    # y-websocket acknowledges nothing: the edit is stored when its commit is done.
    count, serial, _ = await aeventually(
        lambda: stored_with(datastore, lambda state: state["cells"][0]["source"] == "x = 1"),
        what="the editor's edit stored",
    )

    await editor.edit(lambda doc: doc.get("stray", type=Map).__setitem__("k", Text("v")))
    close = await closed(editor)
    assert close["code"] == 4403
    assert close["reason"].startswith("refused: schema-violation")
    assert (await stored(datastore))[:2] == (count, serial)


async def test_the_generic_y_websocket_route_keeps_its_auth_message(room):
    datastore, tokens = room
    before = await stored(datastore)
    viewer = await YPeer.synced(datastore.name, tokens["vi"])
    await still_open(viewer)  # the no-op step 2 said nothing
    assert viewer.denied == []
    await viewer.edit(lambda doc: doc.get("cells", type=Array)[0]["source"].insert(0, "#"))
    await viewer.until(lambda: viewer.denied)
    assert viewer.denied == [f"permission-denied: role viewer may not write to {datastore.name!r}"]
    await still_open(viewer)
    assert await stored(datastore) == before


async def test_a_bridged_viewer_is_closed_with_the_reason_through_daphne(start_server):
    def build():
        datastore = open_document()
        out = io.StringIO()
        call_command("create_bridge_token", "lab", stdout=out, stderr=io.StringIO())
        return datastore, out.getvalue().strip()

    datastore, token = await db(build)()
    before = await stored(datastore)
    server = start_server(env={"RTC_BRIDGE_ROLE": "viewer"})
    headers = {
        "Authorization": f"Token {token}",
        "X-Jupyter-User": json.dumps({"username": "vera", "display_name": "Vera"}),
    }
    url = f"{server.ws_url}{ROOM}"
    async with ws_connect(url, additional_headers=headers) as ws:
        doc = Doc()
        await ws.send(yjs_protocol.sync_step1(doc.get_state()))
        while True:
            message = yjs_protocol.parse(await ws.recv())
            if message.type is yjs_protocol.MessageType.SYNC:
                if message.sync_type is yjs_protocol.SyncType.STEP1:
                    await ws.send(yjs_protocol.sync_step2(doc.get_update(message.payload)))
                else:
                    doc.apply_update(message.payload)
                    break
        assert source(doc) == "x ="
        state = doc.get_state()
        source_text = doc.get("cells", type=Array)[0]["source"]
        source_text.insert(0, "#")
        await ws.send(yjs_protocol.sync_update(doc.get_update(state)))
        await ws.wait_closed()
        assert ws.close_code == 4403
        assert ws.close_reason.startswith("read-only:")
    assert await stored(datastore) == before
    vera = await db(User.objects.get)(jupyter_identity__jupyter_username="vera")
    assert await db(lambda: list(vera.datastore_roles.values_list("role", flat=True)))() == [
        "viewer"
    ]
