"""Both relay protocols in process, against the real ASGI application and database."""

from __future__ import annotations

import base64
import json

import pytest
from channels.db import database_sync_to_async
from django.contrib.auth.models import Permission, User
from pycrdt import Map
from rtc_client.wire import yjs_protocol

from tables import records, service
from tables.models import Transaction
from tables.permissions import grant, revoke
from tests.support.factories import add_todo
from tests.support.peers import JsonPeer, YPeer, connect, token_for, unannounced

pytestmark = pytest.mark.django_db(transaction=True)

db = database_sync_to_async


@pytest.fixture
async def world():
    """A todo datastore with an owner, an editor, a viewer and a stranger, and their tokens."""

    def build():
        users = {name: User.objects.create_user(name) for name in ("owner", "ed", "vi", "x")}
        datastore = service.create_datastore("todo", "todo", owner=users["owner"])
        grant(datastore, users["ed"], "editor")
        grant(datastore, users["vi"], "viewer")
        return datastore, users

    datastore, users = await db(build)()
    tokens = {name: await token_for(user) for name, user in users.items()}
    return datastore, users, tokens


@pytest.fixture
async def jupyter_world():
    """A jupyter datastore with an editor and a service account (both editors)."""

    def build():
        editor = User.objects.create_user("ed")
        service_user = User.objects.create_user("supernode")
        service_user.user_permissions.add(Permission.objects.get(codename="write_server_state"))
        datastore = service.create_datastore("jupyter", "jupyter")
        grant(datastore, editor, "editor")
        grant(datastore, service_user, "editor")
        return datastore, editor, service_user

    return await db(build)()


@db
def stored(datastore) -> list[tuple[int, str]]:
    return list(
        Transaction.objects.filter(datastore=datastore)
        .order_by("serial")
        .values_list("serial", "txid")
    )


async def test_json_clients_share_transactions_with_serials(world):
    datastore, _, tokens = world
    alice = await JsonPeer.open("todo", tokens["owner"])
    bob = await JsonPeer.open("todo", tokens["ed"])
    assert (await alice.join())["content"]["serial"] == 0
    await bob.join()

    ack = await alice.commit(lambda d: add_todo(d, "a", "milk"), txid="alice-1")
    assert ack["msgType"] == "transaction-ack"
    assert ack["content"] == {"transactionIds": ["alice-1"], "serials": [1]}
    pushed = await bob.next_of("transaction-broadcast")
    assert [(t["id"], t["serial"]) for t in pushed["content"]["transactions"]] == [("alice-1", 1)]
    bob.apply(pushed["content"]["transactions"])
    assert bob.doc.get("items", type=Map).to_py() == {"a": {"title": "milk", "done": False}}
    assert await stored(datastore) == [(1, "alice-1")]

    # The sender does not get its own transaction back; a resend is acknowledged, stored once.
    resend = await alice.send(
        "transaction-broadcast",
        {"transactions": [{"id": "alice-1", "patch": base64.b64encode(b"\x00\x00").decode()}]},
    )
    assert (await alice.reply_to(resend))["content"]["serials"] == [1]
    assert await stored(datastore) == [(1, "alice-1")]
    assert all(m["msgType"] != "transaction-broadcast" for m in alice.pushed)
    await alice.close()
    await bob.close()


async def test_joining_late_gets_checkpoint_plus_tail(world, settings):
    settings.RTC = {**settings.RTC, "CHECKPOINT_EVERY": 3}
    _, _, tokens = world
    writer = await JsonPeer.joined("todo", tokens["owner"])
    for key in "abcde":
        await writer.commit(lambda d, key=key: add_todo(d, key, key))
    late = await JsonPeer.open("todo", tokens["vi"])
    content = (await late.join())["content"]
    assert (content["checkpointSerial"], content["serial"]) == (3, 5)
    assert [t["serial"] for t in content["transactions"]] == [4, 5]
    assert set(late.doc.get("items", type=Map)) == set("abcde")
    resumed = await late.request("history-request", {"since": 4})
    assert resumed["content"]["state"] is None
    assert [t["serial"] for t in resumed["content"]["transactions"]] == [5]
    await writer.close()
    await late.close()


async def test_both_protocols_see_each_other(world):
    datastore, _, tokens = world
    json_peer = await JsonPeer.joined("todo", tokens["owner"])
    y_peer = await YPeer.synced("todo", tokens["ed"])

    await y_peer.edit(lambda d: add_todo(d, "y", "from yjs"))
    pushed = await json_peer.next_of("transaction-broadcast")
    json_peer.apply(pushed["content"]["transactions"])
    assert json_peer.doc.get("items", type=Map)["y"]["title"].to_py() == "from yjs"

    await json_peer.commit(lambda d: add_todo(d, "j", "from json"))
    await y_peer.until(lambda: "j" in y_peer.doc.get("items", type=Map))
    # And a server-side write (admin, REST, supernode) reaches both.
    await db(records.set_fields)(datastore, "items", "s", {"title": "server", "done": True})
    await y_peer.until(lambda: "s" in y_peer.doc.get("items", type=Map))
    pushed = await json_peer.next_of("transaction-broadcast")
    assert pushed["content"]["transactions"][0]["serial"] == 3
    assert [s for s, _ in await stored(datastore)] == [1, 2, 3]
    await json_peer.close()
    await y_peer.close()


async def test_viewer_writes_are_refused_on_both_protocols(world):
    datastore, _, tokens = world
    viewer = await JsonPeer.joined("todo", tokens["vi"])
    reply = await viewer.commit(lambda d: add_todo(d, "v", "nope"), txid="v-1")
    assert reply["msgType"] == "error-reply"
    assert reply["content"]["code"] == "permission-denied"
    assert reply["content"]["transactionIds"] == ["v-1"]
    perms = (await viewer.request("permissions-request"))["content"]
    assert perms == {
        "read": True,
        "write": False,
        "role": "viewer",
        "readOnlyTables": ["items", "lists"],
    }

    y_viewer = await YPeer.synced("todo", tokens["vi"])
    await y_viewer.edit(lambda d: add_todo(d, "v", "nope"))
    await y_viewer.until(lambda: y_viewer.denied)
    assert y_viewer.denied[0].startswith("permission-denied:")
    assert await stored(datastore) == []
    await viewer.close()
    await y_viewer.close()


async def test_schema_violation_on_y_websocket_is_reported(world):
    datastore, _, tokens = world
    peer = await YPeer.synced("todo", tokens["ed"])
    await peer.edit(lambda d: d.get("items", type=Map).__setitem__("bad", 1))
    await peer.until(lambda: peer.denied)
    assert peer.denied[0].startswith("schema-violation:")
    assert await stored(datastore) == []
    await peer.close()


@pytest.mark.parametrize(
    ("user", "path", "close_code", "code"),
    [
        (None, "/ws/datastores/todo/", 4401, "unauthenticated"),
        ("bogus", "/ws/datastores/todo/", 4401, "unauthenticated"),
        ("x", "/ws/datastores/todo/", 4403, "forbidden"),
        ("owner", "/ws/datastores/nope/", 4404, "unknown-datastore"),
    ],
)
async def test_refused_json_connections_say_why(world, user, path, close_code, code):
    _, _, tokens = world
    token = "0" * 40 if user == "bogus" else tokens.get(user)
    communicator = await connect(path, token)
    message = json.loads(await communicator.receive_from(timeout=10))
    assert message["msgType"] == "error-reply" and message["content"]["code"] == code
    assert (await communicator.receive_output(timeout=10)) == {
        "type": "websocket.close",
        "code": close_code,
    }


async def test_refused_y_websocket_connection_says_why(world):
    communicator = await connect("/ws/yjs/nope", world[2]["owner"])
    message = yjs_protocol.parse(await communicator.receive_from(timeout=10))
    assert message.type is yjs_protocol.MessageType.AUTH
    assert message.reason.startswith("unknown-datastore:")
    assert (await communicator.receive_output(timeout=10))["code"] == 4404


async def test_unknown_datastore_is_never_created(world):
    await connect("/ws/yjs/made-up", world[2]["owner"])
    assert not await db(
        lambda: __import__("tables.models").models.Datastore.objects.filter(name="made-up").exists()
    )()


@db
def session_cookie(user) -> list[tuple[bytes, bytes]]:
    from django.test import Client

    client = Client()
    client.force_login(user)
    return [(b"cookie", f"sessionid={client.cookies['sessionid'].value}".encode())]


async def test_session_cookies_need_the_same_origin(world):
    _, users, tokens = world
    cookie = await session_cookie(users["owner"])
    host = [(b"host", b"rtc.example:8000")]
    same = await JsonPeer.open(
        "todo", None, headers=cookie + host + [(b"origin", b"http://rtc.example:8000")]
    )
    assert (await same.join())["msgType"] == "history-reply"
    foreign = await connect(
        "/ws/datastores/todo/", None, headers=cookie + host + [(b"origin", b"http://evil.example")]
    )
    message = json.loads(await foreign.receive_from(timeout=10))
    assert message["content"]["code"] == "forbidden"
    # A token is not ambient: any page that has one may use it.
    with_token = await JsonPeer.open(
        "todo", tokens["owner"], headers=[(b"origin", b"http://elsewhere.example")]
    )
    assert (await with_token.join())["msgType"] == "history-reply"


async def test_server_state_tables_are_for_the_service_account_only(jupyter_world):
    _, editor, service_user = jupyter_world
    peer = await JsonPeer.joined("jupyter", await token_for(editor))
    refused = await peer.commit(
        lambda d: d.get("kernels", type=Map).__setitem__("k", Map({"name": "python3"}))
    )
    assert refused["content"]["code"] == "permission-denied"
    assert "kernels" in refused["content"]["reason"]
    peer = await JsonPeer.open("jupyter", await token_for(editor))  # start over from the truth
    await peer.join()
    accepted = await peer.commit(
        lambda d: d.get("executions", type=Map).__setitem__("e", Map({"status": "requested"}))
    )
    assert accepted["msgType"] == "transaction-ack"

    supernode = await JsonPeer.joined("jupyter", await token_for(service_user))
    ok = await supernode.commit(
        lambda d: d.get("kernels", type=Map).__setitem__("k", Map({"name": "python3"}))
    )
    assert ok["msgType"] == "transaction-ack"


async def test_undo_request_reverts_my_last_change(world):
    _, _, tokens = world
    peer = await JsonPeer.joined("todo", tokens["owner"])
    await peer.commit(lambda d: add_todo(d, "a", "x"))
    reply = await peer.request("undo-request")
    assert reply["content"] == {"serial": 2, "reverts": 1}
    pushed = await peer.next_of("transaction-broadcast")  # the undo reaches the requester too
    peer.apply(pushed["content"]["transactions"])
    assert peer.doc.get("items", type=Map).to_py() == {}
    redo = await peer.request("redo-request")
    assert redo["content"] == {"serial": 3, "reverts": 2}
    nothing = await peer.request("redo-request")
    assert nothing["content"]["code"] == "nothing-to-undo"


async def test_transaction_and_serial_requests(world):
    _, _, tokens = world
    peer = await JsonPeer.joined("todo", tokens["owner"])
    await peer.commit(lambda d: add_todo(d, "a", "x"), txid="t-a")
    await peer.commit(lambda d: add_todo(d, "b", "y"), txid="t-b")
    by_serial = await peer.request("transaction-request", {"serials": [2]})
    assert [t["id"] for t in by_serial["content"]["transactions"]] == ["t-b"]
    by_id = await peer.request("transaction-request", {"transactionIds": ["t-a", "zzz"]})
    assert [t["serial"] for t in by_id["content"]["transactions"]] == [1]
    assert (await peer.request("serial-request"))["content"] == {"serial": 2}


async def test_serial_update_reports_the_stable_serial(world):
    _, _, tokens = world
    a, b = await JsonPeer.joined_together("todo", tokens["owner"], tokens["ed"])
    await a.commit(lambda d: add_todo(d, "a", "x"))
    assert (await a.request("serial-update", {"serial": 1}))["content"] == {"serial": 0}
    reply = await b.request("serial-update", {"serial": 1})
    assert reply["content"] == {"serial": 1}
    assert (await a.next_of("state-stable"))["content"] == {"serial": 1}


async def test_awareness_crosses_protocols_and_is_cleaned_up(world):
    datastore, _, tokens = world
    y_peer = await YPeer.synced("todo", tokens["owner"])
    json_peer = await JsonPeer.joined("todo", tokens["ed"])
    hello = yjs_protocol.encode_awareness([yjs_protocol.AwarenessEntry(7, 1, {"user": "ed"})])
    await json_peer.send("awareness-update", {"update": base64.b64encode(hello).decode()})
    await y_peer.until(lambda: y_peer.awareness)
    assert yjs_protocol.decode_awareness(y_peer.awareness[-1])[0].state == {"user": "ed"}

    await json_peer.close()
    await y_peer.until(lambda: len(y_peer.awareness) >= 2)
    gone = yjs_protocol.decode_awareness(y_peer.awareness[-1])
    assert [(e.client_id, e.state) for e in gone] == [(7, None)]
    assert await stored(datastore) == []  # presence is never history


async def test_a_missed_broadcast_is_filled_from_the_database(world):
    """A commit this worker never heard of reaches its clients with the next one, in order."""

    datastore, _, tokens = world
    sender, reader = await JsonPeer.joined_together("todo", tokens["owner"], tokens["ed"])
    await sender.commit(lambda d: add_todo(d, "a", "first"))
    with unannounced():  # as if written by a process whose broadcast got lost
        await db(records.set_fields)(datastore, "items", "q", {"title": "unannounced"})
    await sender.commit(lambda d: add_todo(d, "c", "third"))

    seen = []
    while len(seen) < 3:
        seen += [
            t["serial"]
            for t in (await reader.next_of("transaction-broadcast"))["content"]["transactions"]
        ]
    assert seen == [1, 2, 3]
    filled = await sender.next_of("transaction-broadcast")  # the sender gets the gap, not its own
    assert [t["serial"] for t in filled["content"]["transactions"]] == [2]


async def test_y_websocket_gets_a_batch_as_one_merged_update(world):
    """Transactions delivered together reach a y-websocket client as one sync update, without
    the ones it sent itself."""

    datastore, _, tokens = world
    reader = await YPeer.open("todo", tokens["ed"])
    sender = await YPeer.open("todo", tokens["owner"])
    await reader.handshake()
    await sender.handshake()
    with unannounced():  # delivered with the next commit, from the database
        await db(records.set_fields)(datastore, "items", "q", {"title": "unannounced"})
    await sender.edit(lambda d: add_todo(d, "c", "third"))

    message = await reader.next_message()
    assert message.sync_type is yjs_protocol.SyncType.UPDATE
    assert set(reader.doc.get("items", type=Map).keys()) == {"q", "c"}
    message = await sender.next_message()
    assert message.sync_type is yjs_protocol.SyncType.UPDATE
    assert set(sender.doc.get("items", type=Map).keys()) == {"q", "c"}
    assert b"third" not in message.payload  # its own edit is not sent back
    assert [serial for serial, _ in await stored(datastore)] == [1, 2]


async def test_undo_over_the_websocket_respects_table_policies(jupyter_world):
    """An editor cannot undo the supernode's change to a server-state table."""
    datastore, editor, _ = jupyter_world
    await db(records.set_fields)(datastore, "kernels", "k", {"name": "python3"}, origin="supernode")
    peer = await JsonPeer.joined("jupyter", await token_for(editor))
    reply = await peer.request("undo-request", {"serial": 1})
    assert reply["msgType"] == "error-reply"
    assert reply["content"]["code"] == "permission-denied"
    assert [s for s, _ in await stored(datastore)] == [1]


async def test_roles_follow_the_datastore_named_by_roles_from(world):
    """A document's roles follow the jupyter datastore's: a grant or revocation there reaches
    it on both protocols; a role granted on the document itself wins."""
    source, users, tokens = world

    def follower():
        datastore = service.create_datastore("todo-doc", "todo", owner=users["owner"])
        datastore.roles_from = source
        datastore.save(update_fields=["roles_from"])
        return datastore

    datastore = await db(follower)()
    editor = await JsonPeer.joined("todo-doc", tokens["ed"])  # an editor of the source
    assert (await editor.commit(lambda d: add_todo(d, "e", "one"), txid="e-1"))[
        "msgType"
    ] == "transaction-ack"
    await editor.close()

    viewer = await YPeer.synced("todo-doc", tokens["vi"])  # a viewer of the source
    await viewer.edit(lambda d: add_todo(d, "v", "nope"))
    await viewer.until(lambda: viewer.denied)
    assert viewer.denied[0].startswith("permission-denied:")
    await viewer.close()

    refused = await connect("/ws/datastores/todo-doc/", tokens["x"])
    assert json.loads(await refused.receive_from(timeout=10))["content"]["code"] == "forbidden"

    # A grant on the source reaches the follower; a role on the follower itself wins over it.
    await db(grant)(source, users["x"], "editor")
    await db(grant)(datastore, users["ed"], "viewer")
    newcomer = await JsonPeer.joined("todo-doc", tokens["x"])
    assert (await newcomer.commit(lambda d: add_todo(d, "x", "two"), txid="x-1"))[
        "msgType"
    ] == "transaction-ack"
    await newcomer.close()
    demoted = await JsonPeer.joined("todo-doc", tokens["ed"])
    assert (await demoted.request("permissions-request"))["content"]["role"] == "viewer"
    await demoted.close()

    # A revocation on the source takes the follower's role away too.
    await db(revoke)(source, users["x"])
    gone = await connect("/ws/yjs/todo-doc", tokens["x"])
    assert yjs_protocol.parse(await gone.receive_from(timeout=10)).reason.startswith("forbidden")
    assert [txid for _, txid in await stored(datastore)] == ["e-1", "x-1"]
