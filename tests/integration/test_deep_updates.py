"""Updates nested deeper than any decoder's stack, on every way in (y-websocket, the JSON
protocol, jupyter-collaboration's room, REST), from a viewer and from an editor: refused with
``too-deep`` before anything decodes them, the connection and the process kept, and what was
accepted before still there. Run in process: an update that reached the CRDT decoder would
take the test process down (SIGSEGV), so each test fails on a server without the bound."""

from __future__ import annotations

import base64

import pytest
from channels.db import database_sync_to_async
from django.contrib.auth.models import User
from pycrdt import Map
from rest_framework.test import APIClient
from rtc_client.wire import yjs_protocol

from relay.models import ApiToken
from tables import service
from tables.models import Datastore, Transaction
from tables.permissions import grant
from tests.support.crafted import any_update, nested_arrays
from tests.support.factories import Client, add_todo
from tests.support.peers import JsonPeer, YPeer, connect, token_for
from tests.support.rooms import ROOM, closed, open_document, still_open
from tests.support.waiting import aeventually

pytestmark = pytest.mark.django_db(transaction=True)

db = database_sync_to_async
DEEP = any_update(nested_arrays(200_000))  # past the native stack of any decoder


@pytest.fixture
def people():
    """A todo datastore with one accepted item; its owner, an editor and a viewer."""
    owner = User.objects.create_user("owner")
    datastore = service.create_datastore("todo", "todo", owner=owner)
    users = {"owner": owner}
    for role in ("editor", "viewer"):
        users[role] = User.objects.create_user(role)
        grant(datastore, users[role], role)
    Client(datastore, author_id=owner.pk).send(lambda d: add_todo(d, "kept", "accepted before"))
    return users


@db
def kept() -> list[int]:
    """The serials stored, after checking the accepted item is still there."""
    state, _ = service.live_python("todo")
    assert state["items"]["kept"]["title"] == "accepted before"
    return list(Transaction.objects.order_by("serial").values_list("serial", flat=True))


@pytest.mark.parametrize("role", ["editor", "viewer"])
async def test_y_websocket(people, role):
    peer = await YPeer.synced("todo", await token_for(people[role]))
    await peer.ws.send_to(bytes_data=yjs_protocol.sync_update(DEEP))
    await peer.until(lambda: peer.denied)
    assert peer.denied[0].startswith("too-deep: "), peer.denied
    await peer.edit(lambda d: add_todo(d, "after", "after"))  # the connection goes on
    if role == "editor":

        async def stored() -> bool:
            return await kept() == [1, 2]

        await aeventually(stored, 10, "the editor's next edit stored")
    else:
        await peer.until(lambda: len(peer.denied) == 2)
        assert peer.denied[1].startswith("permission-denied: ")
        assert await kept() == [1]


@pytest.mark.parametrize("role", ["editor", "viewer"])
async def test_json_protocol(people, role):
    peer = await JsonPeer.open("todo", await token_for(people[role]))
    await peer.join()
    patch = base64.b64encode(DEEP).decode()
    msg_id = await peer.send(
        "transaction-broadcast", {"transactions": [{"id": "d", "patch": patch}]}
    )
    reply = await peer.reply_to(msg_id)
    expected = "too-deep" if role == "editor" else "permission-denied"
    assert reply["content"]["code"] == expected, reply
    assert (await peer.request("serial-request"))["content"] == {"serial": 1}
    assert await kept() == [1]


@pytest.mark.parametrize("role", ["editor", "viewer"])
def test_rest_transactions(people, role):
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {ApiToken.objects.create(user=people[role]).key}")
    body = {"patch": base64.b64encode(DEEP).decode(), "id": "deep"}
    response = client.post("/api/datastores/todo/transactions/", body, format="json")
    expected = (400, "too-deep") if role == "editor" else (403, "permission-denied")
    assert (response.status_code, response.json()["code"]) == expected, response.content
    state, _ = service.live_python("todo")
    assert state["items"]["kept"]["title"] == "accepted before"


@pytest.mark.parametrize("role", ["editor", "viewer"])
async def test_the_collaboration_room(role):
    def build() -> tuple[Datastore, User]:
        datastore = open_document()
        user = User.objects.create_user(role)
        grant(Datastore.objects.get(name="jupyter"), user, role)
        return datastore, user

    datastore, user = await db(build)()
    before = await db(lambda: Transaction.objects.filter(datastore=datastore).count())()
    peer = YPeer(await connect(ROOM, await token_for(user)))
    await peer.handshake()
    await still_open(peer)
    await peer.ws.send_to(bytes_data=yjs_protocol.sync_update(DEEP))
    close = await closed(peer)  # the room closes on a refused update, with the reason
    assert close["code"] == 4403 and close["reason"].startswith("refused: too-deep"), close
    after = await db(lambda: Transaction.objects.filter(datastore=datastore).count())()
    assert after == before
    again = YPeer(await connect(ROOM, await token_for(user)))  # the process serves on
    await again.handshake()
    await still_open(again)


def test_json_bodies_nested_past_pythons_parser_are_a_400(people):
    client = APIClient()
    client.credentials(
        HTTP_AUTHORIZATION=f"Token {ApiToken.objects.create(user=people['editor']).key}"
    )
    body = '{"patch": ' + "[" * 100_000 + "]" * 100_000 + "}"
    response = client.post(
        "/api/datastores/todo/transactions/", body, content_type="application/json"
    )
    assert (response.status_code, response.json()["code"]) == (400, "parse-error")
    assert "nested too deep" in response.json()["detail"]


def test_updates_building_on_each_others_types_stop_at_the_limit(settings):
    """Each update nests one more map in the last one: each alone is shallow, and the
    document still never gets deeper than RTC_MAX_NESTING."""
    settings.RTC = {**settings.RTC, "MAX_NESTING": 20}
    owner = User.objects.create_user("owner")
    datastore = service.create_datastore("deep", "notebook", owner=owner)
    writer = Client(datastore, author_id=owner.pk)
    outcomes = []
    for _ in range(30):

        def nest_one_more(doc):
            inner = doc.get("meta", type=Map)
            while "k" in inner:
                inner = inner["k"]
            inner["k"] = Map()

        outcome = writer.send(nest_one_more)
        outcomes.append(outcome.error_code or outcome.status.value)
        if outcome.error_code:
            break
    assert outcomes[-1] == "too-deep", outcomes
    assert len(outcomes) == 20  # the root map, then 19 maps in maps; the 20th nested is refused
    datastore.refresh_from_db()
    assert datastore.last_serial == 19
