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
from pycrdt import Doc, Map
from rest_framework.test import APIClient
from rtc_client.wire import yjs_protocol

from relay.models import ApiToken
from tables import history, service
from tables.loaded import doc_cache
from tables.models import Datastore, Transaction
from tables.permissions import grant
from tests.support.crafted import any_update, nested_arrays
from tests.support.factories import Client, add_todo
from tests.support.peers import JsonPeer, YPeer, connect, token_for
from tests.support.rooms import ROOM, closed, open_document, still_open
from tests.support.waiting import aeventually, eventually

pytest_plugins = ["tests.support.liveserver", "tests.support.nodeclient"]
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
    assert (response.status_code, response.json()["code"]) == (400, "too-deep")
    assert "nests more than" in response.json()["detail"]


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


def innermost(doc) -> Map:
    inner = doc.get("m", type=Map)
    while "k" in inner:
        inner = inner["k"]
    return inner


def nest_one_more(doc) -> None:
    innermost(doc)["k"] = Map()


def test_a_freeform_datastore_never_gets_deeper_than_the_limit():
    """Two clients of a freeform datastore (whose roots nothing observes) each nest a map in
    the last one in turn: each update is one level deep by itself, and the one that would put
    a map at depth 101 is refused as too-deep before it reaches the live document, leaving it
    and the stored history as they were, and the next writer's change is stored."""
    datastore = service.create_datastore("scratch", "freeform")
    writers = [Client(datastore), Client(datastore)]
    outcomes = []
    for step in range(150):
        writer = writers[step % 2]
        writer.receive()
        live = doc_cache.get(datastore)
        doc, state = live.doc, service.live_state(datastore)
        outcome = writer.send(nest_one_more)
        outcomes.append(outcome.error_code or outcome.status.value)
        if outcome.error_code:
            break
    assert outcomes[-1] == "too-deep", outcomes
    assert "101 levels deep" in outcome.error
    assert len(outcomes) == 100  # maps at depths 2 to 100 stored: "m" is the first level
    assert doc_cache.get(datastore).doc is doc  # refused before it was applied: no rebuild
    assert service.live_state(datastore) == state and state[1] == 99
    assert Transaction.objects.filter(datastore=datastore).count() == 99
    stored = history.replay(Datastore.objects.get(pk=datastore.pk), 99)
    live = Doc()
    live.apply_update(state[0])
    assert stored.get("m", type=Map).to_py() == live.get("m", type=Map).to_py()
    assert str(stored.get("m", type=Map).to_py()).count("{") == 100  # "m" and 99 maps in it
    # The other writer goes on.
    other = writers[len(outcomes) % 2]
    other.receive()
    after = other.send(lambda d: d.get("n", type=Map).__setitem__("x", 1))
    assert (after.status, after.serial) == (service.Status.STORED, 100)


def test_the_bound_holds_across_writes_from_other_processes():
    """A document loaded here measures updates against what other processes stored since: it
    follows their writes when it catches up."""
    datastore = service.create_datastore("scratch", "freeform")
    writer = Client(datastore)
    for _ in range(10):
        assert writer.send(nest_one_more).status is service.Status.STORED
    stale = doc_cache.get(datastore)
    doc_cache.clear()  # another "process": writes go to a fresh doc from now on
    for _ in range(89):
        assert writer.send(nest_one_more).status is service.Status.STORED
    doc_cache._docs[datastore.pk] = stale  # as a second worker would still hold it
    outcome = writer.send(nest_one_more)
    assert (outcome.error_code, stale.serial) == ("too-deep", 99), outcome


def test_a_stock_yjs_client_still_loads_a_freeform_datastore_nested_to_the_limit(
    live_server_process, node_client
):
    """The case that used to break every browser: a Yjs client of a freeform datastore nests
    a map in the last one, 150 times, one update each. The update past the limit is refused
    (too-deep), the connection goes on, and a fresh stock client loads the datastore."""
    datastore = service.create_datastore("scratch", "freeform")
    key = ApiToken.objects.create(user=User.objects.create_user("ada")).key
    grant(datastore, User.objects.get(username="ada"), "editor")
    clients = []
    for _ in range(2):
        client = node_client()
        client.connect(live_server_process.yjs_url, "scratch", key)
        client.wait_synced()
        clients.append(client)
    writer, other = clients

    def stored() -> int:
        return Transaction.objects.filter(datastore=datastore).count()

    path: str | list[str] = "m"
    for level in range(2, 152):  # the root map "m" is level 1
        writer.set(path, "k", {"$map": {}})
        path = [path, "k"] if isinstance(path, str) else [*path, "k"]
        eventually(
            lambda level=level: stored() == level - 1 or writer.events_named("permission-denied"),
            what=f"the map at level {level} stored or refused",
        )
        if writer.events_named("permission-denied"):
            break
    denied = writer.events_named("permission-denied")
    assert denied, "150 updates nesting maps 151 levels deep were all stored"
    assert denied[0]["reason"].startswith("too-deep: "), denied
    assert (level, stored()) == (101, 99)

    other.set("n", "x", 1)  # the writer's connection goes on: it gets what others write
    writer.wait_for(lambda doc: doc["n"] == {"x": 1}, {"n": "map"})
    assert stored() == 100

    fresh = node_client()
    fresh.connect(live_server_process.yjs_url, "scratch", key)
    fresh.wait_synced()
    loaded = fresh.get({"m": "map", "n": "map"})
    assert loaded["n"] == {"x": 1}
    levels, inner = 1, loaded["m"]
    while inner:
        levels, inner = levels + 1, inner["k"]
    assert levels == 100
