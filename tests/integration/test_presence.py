"""Presence belongs to the connection that announced it, within caps per connection.

Both protocols in process, against the real ASGI application: a connection owns the awareness
client ids it announced first; it cannot change or remove another's, and cannot hold more than
``RTC_MAX_PRESENCE_CLIENTS`` ids or a state over ``RTC_MAX_PRESENCE_BYTES``.
"""

from __future__ import annotations

import base64
import logging

import pytest
from channels.db import database_sync_to_async
from django.contrib.auth.models import User
from rtc_client.wire import yjs_protocol
from rtc_client.wire.yjs_protocol import AwarenessEntry

from relay.hub import get_hub
from tables import service
from tables.permissions import grant
from tests.support.peers import JsonPeer, YPeer, connect, token_for

pytestmark = pytest.mark.django_db(transaction=True)

db = database_sync_to_async


@pytest.fixture
async def tokens():
    """A todo datastore with an owner, two editors and a viewer; their tokens."""

    def build():
        users = {name: User.objects.create_user(name) for name in ("owner", "ed", "mal", "vi")}
        datastore = service.create_datastore("todo", "todo", owner=users["owner"])
        grant(datastore, users["ed"], "editor")
        grant(datastore, users["mal"], "editor")
        grant(datastore, users["vi"], "viewer")
        return datastore, users

    datastore, users = await db(build)()
    return {name: await token_for(user) for name, user in users.items()} | {"pk": datastore.pk}


def awareness(*entries: tuple[int, int, object]) -> bytes:
    return yjs_protocol.encode_awareness([AwarenessEntry(*entry) for entry in entries])


async def y_announce(peer: YPeer, *entries: tuple[int, int, object]) -> None:
    await peer.ws.send_to(bytes_data=yjs_protocol.awareness(awareness(*entries)))


async def json_announce(peer: JsonPeer, *entries: tuple[int, int, object]) -> dict | None:
    """Send an awareness-update; its error-reply if one comes before a query's answer (the
    server answers in order, so none after)."""
    update = base64.b64encode(awareness(*entries)).decode()
    await peer.send("awareness-update", {"update": update})
    reply = await peer.request("awareness-query")
    errors = [m for m in peer.pushed if m["msgType"] == "error-reply"]
    peer.pushed = [m for m in peer.pushed if m["msgType"] != "error-reply"]
    assert reply["msgType"] == "awareness-update"
    return errors[-1] if errors else None


async def states_seen(peer: JsonPeer) -> dict[int, object]:
    """The states the server gives a new look (an awareness-query)."""
    reply = await peer.request("awareness-query")
    update = base64.b64decode(reply["content"]["update"])
    return {e.client_id: e.state for e in yjs_protocol.decode_awareness(update)}


async def next_awareness(peer: JsonPeer) -> list[AwarenessEntry]:
    message = await peer.next_of("awareness-update")
    return yjs_protocol.decode_awareness(base64.b64decode(message["content"]["update"]))


async def y_until_denied(peer: YPeer) -> str:
    await peer.until(lambda: peer.denied)
    return peer.denied.pop(0)


def records(pk: int) -> dict:
    return get_hub().rooms[pk].presence.records


async def y_query(peer: YPeer) -> dict[int, object]:
    """query-awareness, answered after everything the peer sent before it was handled (a
    connection's frames are handled in order): the states the server holds then."""
    seen = len(peer.awareness)
    await peer.ws.send_to(bytes_data=bytes([yjs_protocol.MessageType.QUERY_AWARENESS]))
    await peer.until(lambda: len(peer.awareness) > seen)
    return {e.client_id: e.state for e in yjs_protocol.decode_awareness(peer.awareness[-1])}


async def test_a_connection_cannot_overwrite_or_remove_anothers_presence(tokens):
    ada = await YPeer.synced("todo", tokens["ed"])
    watcher = await JsonPeer.joined("todo", tokens["owner"])
    await y_announce(ada, (100, 1, {"user": "ada"}))
    assert [(e.client_id, e.state) for e in await next_awareness(watcher)] == [
        (100, {"user": "ada"})
    ]
    mallory = await YPeer.synced("todo", tokens["mal"])  # nothing is relayed to it after this

    # A higher clock for ada's id, and removals of it (with ada's clock or a higher one):
    # dropped, relayed to no one, and said to the sender.
    await y_announce(mallory, (100, 9, {"user": "mallory"}))
    await y_announce(mallory, (100, 1, None))
    await y_announce(mallory, (100, 10, None))
    assert await y_query(mallory) == {100: {"user": "ada"}}
    assert await states_seen(watcher) == {100: {"user": "ada"}}
    assert [reason.split(":")[0] for reason in mallory.denied] == ["presence-not-yours"] * 2
    assert mallory.denied[0].startswith("presence-not-yours: client id 100 was announced")

    # Ada's next state (a lower clock than mallory's) is the next thing the watcher sees.
    await y_announce(ada, (100, 2, {"user": "ada", "cursor": 4}))
    assert [(e.client_id, e.clock, e.state) for e in await next_awareness(watcher)] == [
        (100, 2, {"user": "ada", "cursor": 4})
    ]
    assert await states_seen(watcher) == {100: {"user": "ada", "cursor": 4}}
    late = await JsonPeer.joined("todo", tokens["vi"])
    assert await states_seen(late) == {100: {"user": "ada", "cursor": 4}}

    # The same from the JSON protocol: an error-reply naming the ids.
    error = await json_announce(late, (100, 50, {"user": "late"}))
    assert error["content"]["code"] == "presence-not-yours"
    assert error["content"]["clientIds"] == [100]
    assert await states_seen(watcher) == {100: {"user": "ada", "cursor": 4}}

    # An echo (stock providers send back what they receive, and a removal when a state times
    # out on their side) changes nothing and is dropped in silence; the sockets stay open.
    assert await json_announce(late, (100, 2, {"user": "ada", "cursor": 4})) is None
    assert await json_announce(late, (100, 2, None)) is None
    await y_announce(mallory, (7, 1, {"user": "mallory"}))
    assert [e.client_id for e in await next_awareness(watcher)] == [7]

    # Leaving releases what it announced, and tells the others.
    await ada.close()
    assert [(e.client_id, e.state) for e in await next_awareness(watcher)] == [(100, None)]
    assert await states_seen(watcher) == {7: {"user": "mallory"}}
    assert not [r for r in records(tokens["pk"]).values() if r.state is not None and r.owner == ""]
    # An echo of ada's last state still in flight claims nothing; ada back, renewing, does.
    assert await json_announce(late, (100, 2, {"user": "ada", "cursor": 4})) is None
    assert await states_seen(watcher) == {7: {"user": "mallory"}}
    ada = await YPeer.synced("todo", tokens["ed"])
    await y_announce(ada, (100, 3, {"user": "ada", "back": True}))
    assert await y_query(ada) == {7: {"user": "mallory"}, 100: {"user": "ada", "back": True}}


async def test_caps_per_connection_bound_the_presence_kept(tokens):
    flooder = await YPeer.synced("todo", tokens["mal"])
    watcher = await JsonPeer.joined("todo", tokens["owner"])
    cap = 4  # RTC_MAX_PRESENCE_CLIENTS's default

    await y_announce(flooder, *((client_id, 1, {"n": client_id}) for client_id in range(1, 1001)))
    assert [e.client_id for e in await next_awareness(watcher)] == [1, 2, 3, 4]
    assert len(await states_seen(watcher)) == cap
    assert len(records(tokens["pk"])) == cap
    denied = await y_until_denied(flooder)
    assert denied.startswith("presence-too-many-clients: a connection may announce at most 4")
    # Renewing its own ids is fine; a fifth is not, even one at a time.
    await y_announce(flooder, (4, 2, {"n": "four"}), (5000, 1, {"n": 5000}))
    assert (await y_until_denied(flooder)).startswith("presence-too-many-clients")
    assert [(e.client_id, e.state) for e in await next_awareness(watcher)] == [(4, {"n": "four"})]
    assert len(records(tokens["pk"])) == cap

    # A state over the byte cap is dropped; the one before stays.
    big = {"blob": "x" * 65_536}  # RTC_MAX_PRESENCE_BYTES's default, and a little JSON
    await y_announce(flooder, (1, 2, big))
    assert (await y_until_denied(flooder)).startswith("presence-too-large: a state may have")
    states = await states_seen(watcher)
    assert states[1] == {"n": 1} and len(states) == cap
    error = await json_announce(watcher, (77, 1, big))
    assert error["content"]["code"] == "presence-too-large"
    assert 77 not in records(tokens["pk"])

    await flooder.close()
    gone = await next_awareness(watcher)
    assert sorted((e.client_id, e.state) for e in gone) == [(c, None) for c in range(1, 5)]
    assert not any(r.state is not None for r in records(tokens["pk"]).values())


async def test_a_viewer_announces_itself_and_keeps_its_presence(tokens):
    viewer = await JsonPeer.joined("todo", tokens["vi"])
    editor = await YPeer.synced("todo", tokens["ed"])
    assert await json_announce(viewer, (300, 1, {"user": "vi"})) is None
    await editor.until(lambda: editor.awareness)
    assert yjs_protocol.decode_awareness(editor.awareness[-1])[0].state == {"user": "vi"}

    await y_announce(editor, (300, 5, {"user": "not vi"}))
    assert await y_query(editor) == {300: {"user": "vi"}}
    assert await states_seen(viewer) == {300: {"user": "vi"}}
    assert editor.denied[0].startswith("presence-not-yours")
    assert await json_announce(viewer, (300, 2, {"user": "vi", "cursor": 1})) is None
    await editor.until(lambda: len(editor.awareness) >= 3)
    assert [
        (e.client_id, e.state) for e in yjs_protocol.decode_awareness(editor.awareness[-1])
    ] == [(300, {"user": "vi", "cursor": 1})]
    # The viewer may remove its own state.
    assert await json_announce(viewer, (300, 2, None)) is None
    await editor.until(lambda: len(editor.awareness) >= 4)
    assert yjs_protocol.decode_awareness(editor.awareness[-1])[0].state is None
    assert await states_seen(viewer) == {}


async def test_the_global_awareness_room_keeps_presence_to_its_owner(caplog):
    """JupyterLab's rooms cannot be told over y-websocket's auth message (type 2 is raw there):
    dropped entries are logged, and still dropped."""

    def build():
        datastore = service.create_datastore("jupyter", "jupyter")
        users = [User.objects.create_user(name) for name in ("ada", "mal", "bob")]
        for user in users:
            grant(datastore, user, "editor")
        return users

    ada, mal, bob = [await token_for(user) for user in await db(build)()]
    path = "/api/collaboration/room/JupyterLab:globalAwareness"
    first, second, third = [YPeer(await connect(path, token)) for token in (ada, mal, bob)]
    for peer in (first, second, third):
        await peer.handshake()  # an empty sync, and membership of the jupyter datastore's room
    await y_announce(first, (41, 1, {"user": "ada"}))
    await third.until(lambda: third.awareness)
    await second.until(lambda: second.awareness)
    with caplog.at_level(logging.INFO, logger="relay.consumers"):
        await y_announce(second, (41, 8, {"user": "mal"}))
        assert await y_query(second) == {41: {"user": "ada"}}
        await y_announce(first, (41, 2, {"user": "ada", "documents": []}))
        await third.until(lambda: len(third.awareness) >= 2)
    assert [(e.client_id, e.state) for e in yjs_protocol.decode_awareness(third.awareness[-1])] == [
        (41, {"user": "ada", "documents": []})
    ]
    assert any("presence-not-yours" in r.getMessage() for r in caplog.records)
    assert not [
        e
        for update in third.awareness
        for e in yjs_protocol.decode_awareness(update)
        if e.state == {"user": "mal"}
    ]
    late = YPeer(await connect(path, bob))
    await late.until(lambda: late.awareness)
    assert [(e.client_id, e.state) for e in yjs_protocol.decode_awareness(late.awareness[0])] == [
        (41, {"user": "ada", "documents": []})
    ]
    assert any("presence-not-yours" in r.getMessage() for r in caplog.records)
