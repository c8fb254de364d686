"""Stock Yjs clients (y-websocket's WebsocketProvider, in Node) against a real server process.

Each test starts daphne on the test database (``tests.support.liveserver``) and drives Node clients
(``tests.support.nodeclient``) over ``/ws/yjs/<datastore>?token=<key>``; what they write must
be stored by the write path (a ``Transaction`` row per change) and relayed to the other clients.
"""

from __future__ import annotations

import os
import uuid

import pytest
from django.contrib.auth.models import User
from django.test import override_settings
from pycrdt import Map, Text

from relay.models import ApiToken
from tables import history, records, service
from tables.models import Datastore, Transaction
from tables.permissions import grant
from tests.support.liveserver import ServerProcess
from tests.support.nodeclient import NodeYClient
from tests.support.waiting import eventually

pytest_plugins = ["tests.support.liveserver", "tests.support.nodeclient"]

pytestmark = pytest.mark.django_db(transaction=True)

TODO_ROOTS = {"items": "map", "lists": "map"}


def token_for(datastore: Datastore | None, username: str, role: str | None) -> str:
    """A new user with ``role`` on ``datastore`` (None: no role); their API token's key."""
    user = User.objects.create_user(username)
    if datastore is not None and role is not None:
        grant(datastore, user, role)
    return ApiToken.objects.create(user=user).key


def stored(datastore: Datastore) -> list[Transaction]:
    return list(Transaction.objects.filter(datastore=datastore).order_by("serial"))


def todo(title: str, done: bool = False) -> dict:
    """A todo item as the Node client creates it: a Y.Map with a Y.Text title."""
    return {"$map": {"title": {"$text": title}, "done": done}}


def connected(node_client, server: ServerProcess, datastore: str, token: str | None, **kw):
    client: NodeYClient = node_client(**kw)
    client.connect(server.yjs_url, datastore, token)
    client.wait_synced()
    return client


# --- Sync and storage -------------------------------------------------------------------------


def test_freeform_datastore_syncs_and_stores_each_edit(live_server_process, node_client):
    datastore = service.create_datastore("scratch", "freeform")
    key = token_for(datastore, "ada", "editor")
    client = connected(node_client, live_server_process, "scratch", key)

    client.insert_text("source", 0, "hello")
    rows = eventually(lambda: stored(datastore), what="the first edit stored")
    client.insert_text("source", 5, " world")
    client.set("meta", "kernel", {"name": "python3"})
    rows = eventually(lambda: len(stored(datastore)) == 3 and stored(datastore))

    assert [row.serial for row in rows] == [1, 2, 3]
    ada = User.objects.get(username="ada")
    assert {row.author_id for row in rows} == {ada.pk}
    assert {row.origin for row in rows} == {"client"}
    replayed = history.replay(Datastore.objects.get(pk=datastore.pk), 3)
    assert str(replayed.get("source", type=Text)) == "hello world"
    assert replayed.get("meta", type=Map).to_py() == {"kernel": {"name": "python3"}}

    # A client joining later gets everything from the server.
    late = connected(node_client, live_server_process, "scratch", key)
    assert late.get({"source": "text", "meta": "map"}) == {
        "source": "hello world",
        "meta": {"kernel": {"name": "python3"}},
    }


def test_todo_datastore_syncs_with_records_written_in_python(live_server_process, node_client):
    datastore = service.create_datastore("groceries", "todo")
    outcome = records.set_fields(datastore, "items", "milk", {"title": "Buy milk", "done": False})
    assert outcome.serial == 1
    key = token_for(datastore, "ada", "editor")
    client = connected(node_client, live_server_process, "groceries", key)
    assert client.get(TODO_ROOTS) == {
        "items": {"milk": {"title": "Buy milk", "done": False}},
        "lists": {},
    }

    client.set("items", "eggs", todo("Eggs"))
    client.insert_text(["items", "milk", "title"], 4, "oat ")
    client.set(["items", "milk"], "done", True)
    shop = {"title": {"$text": "Shop"}, "items": {"$array": ["milk", "eggs"]}}  # a Y.Array
    client.set("lists", "shop", {"$map": shop})
    eventually(lambda: len(stored(datastore)) == 5, what="four edits stored")

    state, serial = service.live_python(datastore)
    assert serial == 5
    assert state == {
        "items": {
            "milk": {"title": "Buy oat milk", "done": True},
            "eggs": {"title": "Eggs", "done": False},
        },
        "lists": {"shop": {"title": "Shop", "items": ["milk", "eggs"]}},
    }
    assert client.get(TODO_ROOTS) == state
    ada = User.objects.get(username="ada")
    assert [row.author_id for row in stored(datastore)] == [None, ada.pk, ada.pk, ada.pk, ada.pk]


def test_a_schema_violation_is_denied_and_not_stored(live_server_process, node_client):
    datastore = service.create_datastore("groceries", "todo")
    key = token_for(datastore, "ada", "editor")
    client = connected(node_client, live_server_process, "groceries", key)
    client.set("items", "a", todo("A"))
    eventually(lambda: len(stored(datastore)) == 1)

    client.set(["items", "a"], "done", "yes")
    denied = client.wait_event("permission-denied")
    assert denied["reason"].startswith("schema-violation:")
    assert "done" in denied["reason"]
    assert len(stored(datastore)) == 1  # refused before the answer was sent
    assert service.live_python(datastore)[0]["items"] == {"a": {"title": "A", "done": False}}


# --- Several clients --------------------------------------------------------------------------


def test_two_clients_see_each_others_edits_and_presence(live_server_process, node_client):
    datastore = service.create_datastore("groceries", "todo")
    ada = connected(
        node_client, live_server_process, "groceries", token_for(datastore, "ada", "editor")
    )
    bob = connected(
        node_client, live_server_process, "groceries", token_for(datastore, "bob", "owner")
    )

    ada.set("items", "a", todo("From ada"))
    bob.wait_for(lambda doc: "a" in doc["items"], TODO_ROOTS)
    bob.insert_text(["items", "a", "title"], 0, "Hi! ")
    bob.set("items", "b", todo("From bob", done=True))
    ada.wait_for(
        lambda doc: len(doc["items"]) == 2 and "Hi!" in doc["items"]["a"]["title"], ["items"]
    )
    assert ada.get(TODO_ROOTS) == bob.get(TODO_ROOTS) == service.live_python(datastore)[0]

    # Concurrent edits of the same text converge.
    ada.insert_text(["items", "b", "title"], 0, "[ada]")
    bob.insert_text(["items", "b", "title"], None, "[bob]")  # at the end

    def both(doc):
        return "[ada]" in doc["items"]["b"]["title"] and "[bob]" in doc["items"]["b"]["title"]

    final = ada.wait_for(both, ["items"])
    assert bob.wait_for(lambda doc: doc == final, ["items"]) == final
    eventually(lambda: service.live_python(datastore)[0]["items"] == final["items"])

    # Presence goes both ways, and leaves with the connection.
    ada.set_awareness({"user": {"name": "ada"}, "cursor": 3})
    bob.set_awareness({"user": {"name": "bob"}})
    bob.wait_awareness(lambda states: states.get(ada.client_id, {}).get("cursor") == 3)
    ada.wait_awareness(lambda states: states.get(bob.client_id) == {"user": {"name": "bob"}})
    ada.disconnect()
    bob.wait_awareness(lambda states: ada.client_id not in states)


def test_a_new_client_receives_presence_already_announced(live_server_process, node_client):
    datastore = service.create_datastore("scratch", "freeform")
    key = token_for(datastore, "ada", "editor")
    first = connected(node_client, live_server_process, "scratch", key)
    first.set_awareness({"user": "first"})
    second = connected(node_client, live_server_process, "scratch", key)
    second.wait_awareness(lambda states: states.get(first.client_id) == {"user": "first"})


def presence_cannot_be_taken(ada, bob, mallory) -> None:
    """Stock clients ada and bob, and mallory, who names ada's client id in its own awareness
    messages (any peer may): ada's state stays ada's for bob, and mallory holds at most
    RTC_MAX_PRESENCE_CLIENTS (4) ids."""
    ada.set_awareness({"user": "ada", "cursor": 1})
    bob.wait_awareness(lambda states: states.get(ada.client_id) == {"user": "ada", "cursor": 1})
    mallory.wait_awareness(lambda states: ada.client_id in states)
    clock = 1000
    mallory.send_awareness([(ada.client_id, clock, {"user": "mallory"})])
    mallory.send_awareness([(ada.client_id, clock + 1, None)])
    mallory.send_awareness([(id_, 1, {"user": f"ghost {id_}"}) for id_ in range(1, 11)])
    mallory.set_awareness({"user": "mallory"})  # its own, sent after the rest, relayed after it
    states = bob.wait_awareness(lambda states: mallory.client_id in states)
    assert states[ada.client_id] == {"user": "ada", "cursor": 1}
    assert len([s for s in states.values() if str(s.get("user")).startswith("ghost")]) <= 3
    assert mallory.wait_event("permission-denied")["reason"].startswith("presence-not-yours")

    # Ada's next state, with a clock far below mallory's, reaches bob: it is still hers.
    ada.set_awareness({"user": "ada", "cursor": 2})
    bob.wait_awareness(lambda states: states.get(ada.client_id) == {"user": "ada", "cursor": 2})
    reasons = [event["reason"] for event in mallory.events_named("permission-denied")]
    assert any(reason.startswith("presence-too-many-clients") for reason in reasons)
    mallory.disconnect()
    # Her own state may go first (a client removes it as it leaves), the ids she held with it
    # when her connection's end reaches the room: on another worker, a message later.
    bob.wait_awareness(
        lambda states: (
            mallory.client_id not in states
            and not [s for s in states.values() if "ghost" in str(s.get("user"))]
        )
    )
    assert bob.get_awareness()[ada.client_id] == {"user": "ada", "cursor": 2}


def test_presence_belongs_to_the_connection_that_announced_it(live_server_process, node_client):
    datastore = service.create_datastore("scratch", "freeform")
    ada, bob, mallory = (
        connected(node_client, live_server_process, "scratch", token_for(datastore, name, role))
        for name, role in (("ada", "editor"), ("bob", "viewer"), ("mallory", "editor"))
    )
    presence_cannot_be_taken(ada, bob, mallory)


# --- Writes from the server side --------------------------------------------------------------


@pytest.fixture
def redis_layer():
    """A reachable Redis (TEST_REDIS_URL, default the local one) and a channel prefix of this
    test's own; skipped (failed in CI) without Redis. Yields the server's environment, with
    this process's channel layer pointed at the same Redis and prefix meanwhile."""
    import redis

    url = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
    try:
        client = redis.Redis.from_url(url, socket_connect_timeout=2)
        client.ping()
        client.close()
    except redis.RedisError as error:
        pytest.skip(f"needs Redis at {url} (TEST_REDIS_URL): {error}")
    prefix = f"rtc-test-{uuid.uuid4().hex[:8]}"
    layers = {
        "default": {
            "BACKEND": "channels_redis.pubsub.RedisPubSubChannelLayer",
            "CONFIG": {"hosts": [url], "prefix": prefix},
        }
    }
    with override_settings(CHANNEL_LAYERS=layers):
        yield {"REDIS_URL": url, "REDIS_PREFIX": prefix}


@pytest.mark.redis
def test_a_python_write_reaches_connected_node_clients(start_server, node_client, redis_layer):
    """set_fields in this process (a command, the admin) reaches a worker's clients via Redis."""
    server = start_server(env=redis_layer)
    datastore = service.create_datastore("groceries", "todo")
    client = connected(node_client, server, "groceries", token_for(datastore, "ada", "viewer"))
    records.set_fields(datastore, "items", "milk", {"title": "Buy milk", "done": False})
    state = client.wait_for(lambda doc: "milk" in doc["items"], TODO_ROOTS)
    assert state["items"] == {"milk": {"title": "Buy milk", "done": False}}
    records.set_fields(datastore, "items", "milk", {"title": "Buy oat milk"})
    client.wait_for(lambda doc: doc["items"]["milk"]["title"] == "Buy oat milk", ["items"])
    assert client.events_named("update")


@pytest.mark.redis
def test_clients_of_two_workers_see_each_other(start_server, node_client, redis_layer):
    first, second = (start_server(env=redis_layer) for _ in range(2))
    datastore = service.create_datastore("scratch", "freeform")
    key = token_for(datastore, "ada", "editor")
    ada = connected(node_client, first, "scratch", key)
    bob = connected(node_client, second, "scratch", key)
    ada.insert_text("source", 0, "from worker 1")
    bob.wait_for(lambda doc: doc["source"] == "from worker 1", {"source": "text"})
    bob.insert_text("source", 0, "2: ")
    ada.wait_for(lambda doc: doc["source"] == "2: from worker 1", {"source": "text"})
    ada.set_awareness({"user": "ada"})
    bob.wait_awareness(lambda states: states.get(ada.client_id) == {"user": "ada"})
    ada.disconnect()
    bob.wait_awareness(lambda states: ada.client_id not in states)
    eventually(lambda: len(stored(datastore)) == 2)


@pytest.mark.redis
def test_presence_belongs_to_its_connection_across_workers(start_server, node_client, redis_layer):
    """Mallory's worker knows ada's client id is owned by a connection of the other worker."""
    first, second = (start_server(env=redis_layer) for _ in range(2))
    datastore = service.create_datastore("scratch", "freeform")
    ada = connected(node_client, first, "scratch", token_for(datastore, "ada", "editor"))
    bob = connected(node_client, first, "scratch", token_for(datastore, "bob", "viewer"))
    mallory = connected(node_client, second, "scratch", token_for(datastore, "mal", "editor"))
    presence_cannot_be_taken(ada, bob, mallory)


# --- Refusals ---------------------------------------------------------------------------------


def test_a_viewers_edit_is_denied_and_not_stored(live_server_process, node_client):
    datastore = service.create_datastore("groceries", "todo")
    records.set_fields(datastore, "items", "milk", {"title": "Buy milk", "done": False})
    viewer = connected(
        node_client, live_server_process, "groceries", token_for(datastore, "val", "viewer")
    )
    assert viewer.get(["items"])["items"] == {"milk": {"title": "Buy milk", "done": False}}

    viewer.set(["items", "milk"], "done", True)
    denied = viewer.wait_event("permission-denied")
    assert denied["reason"].startswith("permission-denied:")
    assert "viewer" in denied["reason"]
    assert len(stored(datastore)) == 1
    assert service.live_python(datastore)[0]["items"]["milk"]["done"] is False

    # The connection stays open and the viewer still receives the editors' changes.
    editor = connected(
        node_client, live_server_process, "groceries", token_for(datastore, "ed", "editor")
    )
    editor.insert_text(["items", "milk", "title"], 0, "Please: ")
    viewer.wait_for(lambda doc: doc["items"]["milk"]["title"].startswith("Please: "), ["items"])
    assert viewer.status()["connected"] is True


def test_an_unknown_datastore_closes_with_4404(live_server_process, node_client):
    key = token_for(None, "ada", None)
    client: NodeYClient = node_client()
    client.connect(live_server_process.yjs_url, "no-such-datastore", key)
    closed = client.wait_event("closed")
    assert closed["code"] == 4404
    assert client.wait_event("permission-denied")["reason"].startswith("unknown-datastore:")
    assert not Datastore.objects.filter(name="no-such-datastore").exists()


def test_a_missing_token_closes_with_4401(live_server_process, node_client):
    service.create_datastore("groceries", "todo")
    client: NodeYClient = node_client()
    client.connect(live_server_process.yjs_url, "groceries", None)
    assert client.wait_event("closed")["code"] == 4401
    assert client.wait_event("permission-denied")["reason"].startswith("unauthenticated:")


def test_an_invalid_token_closes_with_4401(live_server_process, node_client):
    service.create_datastore("groceries", "todo")
    client: NodeYClient = node_client()
    client.connect(live_server_process.yjs_url, "groceries", "not-a-token")
    assert client.wait_event("closed")["code"] == 4401


def test_a_user_without_a_role_closes_with_4403(live_server_process, node_client):
    datastore = service.create_datastore("groceries", "todo")
    client: NodeYClient = node_client()
    client.connect(live_server_process.yjs_url, "groceries", token_for(datastore, "eve", None))
    assert client.wait_event("closed")["code"] == 4403
    assert stored(datastore) == []
