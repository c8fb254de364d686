"""Acting for Jupyter users over WebSockets: ``X-Jupyter-User`` on the handshake of a bridge's
token, in process against the ASGI application and through a real daphne process."""

from __future__ import annotations

import io
import json

import httpx
import pytest
from channels.db import database_sync_to_async
from django.contrib.auth.models import User
from django.core.management import call_command
from pycrdt import Map
from websockets.asyncio.client import connect as ws_connect

from relay.identity import BRIDGE_DATASTORE
from relay.models import JupyterIdentity
from tables import service
from tables.models import Transaction
from tests.support.peers import JsonPeer, YPeer, connect, token_for

pytest_plugins = ["tests.support.liveserver"]
pytestmark = pytest.mark.django_db(transaction=True)

db = database_sync_to_async


@db
def make_bridge(username: str = "lab") -> str:
    out = io.StringIO()
    call_command("create_bridge_token", username, stdout=out, stderr=io.StringIO())
    return out.getvalue().strip()


def identity(username: str, display_name: str = "") -> str:
    return json.dumps({"username": username, "name": username, "display_name": display_name})


def bridge_headers(token: str, jupyter_user: str | bytes) -> list[tuple[bytes, bytes]]:
    value = jupyter_user if isinstance(jupyter_user, bytes) else jupyter_user.encode()
    return [(b"authorization", f"Token {token}".encode()), (b"x-jupyter-user", value)]


@pytest.fixture
async def jupyter():
    return await db(service.create_datastore)(BRIDGE_DATASTORE, "jupyter")


async def refusal(headers, path: str = f"/ws/datastores/{BRIDGE_DATASTORE}/") -> tuple[str, int]:
    communicator = await connect(path, None, headers=headers)
    message = json.loads(await communicator.receive_from(timeout=10))
    closed = await communicator.receive_output(timeout=10)
    assert closed["type"] == "websocket.close"
    return message["content"]["code"], closed["code"]


def add_execution(record: str):
    return lambda d: d.get("executions", type=Map).__setitem__(record, Map({"status": "requested"}))


@db
def authors() -> dict[str, str]:
    return dict(Transaction.objects.values_list("txid", "author__username"))


async def test_both_protocols_run_as_the_mapped_user(jupyter):
    token = await make_bridge()
    alice = await JsonPeer.joined(
        BRIDGE_DATASTORE, None, headers=bridge_headers(token, identity("alice", "Alice"))
    )
    assert (await alice.request("permissions-request"))["content"]["role"] == "editor"
    assert (await alice.commit(add_execution("a"), txid="a-1"))["msgType"] == "transaction-ack"

    bob = await YPeer.synced(
        BRIDGE_DATASTORE, None, headers=bridge_headers(token, identity("bob", "Bob"))
    )
    await bob.edit(add_execution("b"))
    await alice.next_of("transaction-broadcast")
    stored = await authors()
    assert stored.pop("a-1") == "alice@lab"
    assert list(stored.values()) == ["bob@lab"]
    names = await db(lambda: dict(User.objects.values_list("username", "first_name")))()
    assert (names["alice@lab"], names["bob@lab"]) == ("Alice", "Bob")
    await alice.close()
    await bob.close()


@db
def session_cookie(user) -> list[tuple[bytes, bytes]]:
    from django.test import Client

    client = Client()
    client.force_login(user)
    return [(b"cookie", f"sessionid={client.cookies['sessionid'].value}".encode())]


async def test_who_may_not_name_a_jupyter_user_is_closed(jupyter):
    plain = await db(User.objects.create_user)("plain")
    alice = (b"x-jupyter-user", identity("alice").encode())
    token = await token_for(plain)
    refused = await refusal(bridge_headers(token, identity("alice")))
    assert refused == ("may-not-act-for-others", 4403)
    refused = await refusal([*bridge_headers(token, identity("alice")), alice])
    assert refused == ("may-not-act-for-others", 4403)  # the permission is decided first
    # A cookie session, even from its own origin, may not name anyone either.
    same_origin = [(b"host", b"rtc.example"), (b"origin", b"http://rtc.example")]
    refused = await refusal([*await session_cookie(plain), *same_origin, alice])
    assert refused == ("may-not-act-for-others", 4403)
    assert await refusal([alice]) == ("unauthenticated", 4401)
    bridge = await make_bridge()
    twice = [*bridge_headers(bridge, identity("alice")), alice]
    assert await refusal(twice) == ("bad-identity", 4400)
    assert not await db(JupyterIdentity.objects.exists)()


MALFORMED = {
    "not-json": b"{nope",
    "array": b'["alice"]',
    "wrong-type": b'{"username": 1}',
    "nul": b'{"username": "al\\u0000ice"}',
    "lone-surrogate": b'{"username": "\\udc00"}',
    "non-ascii": '{"username": "al\u00efce"}'.encode(),
    "oversize": b'{"username": "' + b"a" * 4100 + b'"}',
}


@pytest.mark.parametrize("value", MALFORMED.values(), ids=MALFORMED.keys())
async def test_a_malformed_identity_closes_with_4400(jupyter, value):
    token = await make_bridge()
    assert await refusal(bridge_headers(token, value)) == ("bad-identity", 4400)
    assert await db(lambda: list(User.objects.values_list("username", flat=True)))() == ["lab"]


async def test_rest_and_a_real_socket_through_daphne_are_the_same_person(live_server_process):
    def build():
        service.create_datastore(BRIDGE_DATASTORE, "jupyter")

    await db(build)()
    token = await make_bridge("hub")
    headers = {"Authorization": f"Token {token}", "X-Jupyter-User": identity("ada", "Ada L.")}
    async with httpx.AsyncClient(base_url=live_server_process.url, headers=headers) as api:
        listed = (await api.get("/api/datastores/")).json()["results"]
    assert [(item["name"], item["role"]) for item in listed] == [("jupyter", "editor")]

    url = live_server_process.datastore_ws_url(BRIDGE_DATASTORE)
    async with ws_connect(url, additional_headers=headers) as ws:
        await ws.send(json.dumps({"msgId": "p", "msgType": "permissions-request", "content": {}}))
        reply = json.loads(await ws.recv())
        assert reply["content"]["role"] == "editor"
    mapped = await db(
        lambda: list(JupyterIdentity.objects.values_list("user__username", flat=True))
    )()
    assert mapped == ["ada@hub"]

    refused = {**headers, "X-Jupyter-User": '{"username": 5}'}
    async with ws_connect(url, additional_headers=refused) as ws:
        assert json.loads(await ws.recv())["content"]["code"] == "bad-identity"
        await ws.wait_closed()
        assert ws.close_code == 4400
