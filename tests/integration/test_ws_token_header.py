"""WebSocket handshakes authenticated by ``Authorization: Token <key>``, beside ``?token=``: in
process against the ASGI application, and over a real connection to a daphne process."""

from __future__ import annotations

import json

import pytest
from channels.db import database_sync_to_async
from django.contrib.auth.models import User
from websockets.asyncio.client import connect as ws_connect

from relay.models import ApiToken
from tables import service
from tables.models import Transaction
from tables.permissions import grant
from tests.support.factories import add_todo
from tests.support.peers import JsonPeer, connect, token_for

pytest_plugins = ["tests.support.liveserver"]
pytestmark = pytest.mark.django_db(transaction=True)

db = database_sync_to_async


@pytest.fixture
async def tokens():
    def build():
        owner = User.objects.create_user("owner")
        stranger = User.objects.create_user("stranger")
        datastore = service.create_datastore("todo", "todo", owner=owner)
        grant(datastore, stranger, "viewer")
        return owner, stranger

    owner, stranger = await db(build)()
    return {"owner": await token_for(owner), "stranger": await token_for(stranger)}


def auth(key: str) -> list[tuple[bytes, bytes]]:
    return [(b"authorization", f"Token {key}".encode())]


async def refusal(path: str, headers) -> tuple[dict, int]:
    """The error message and close code of a refused JSON-protocol connection."""
    communicator = await connect(path, None, headers=headers)
    message = json.loads(await communicator.receive_from(timeout=10))
    closed = await communicator.receive_output(timeout=10)
    assert closed["type"] == "websocket.close"
    return message["content"], closed["code"]


async def test_the_header_authenticates_and_its_writes_are_authored(tokens):
    peer = await JsonPeer.joined("todo", None, headers=auth(tokens["owner"]))
    ack = await peer.commit(lambda d: add_todo(d, "a", "milk"), txid="h-1")
    assert ack["msgType"] == "transaction-ack"
    row = await db(Transaction.objects.select_related("author").get)(txid="h-1")
    assert row.author.username == "owner"
    await peer.close()


async def test_the_header_wins_over_a_query_token_that_is_not_ours(tokens):
    # JupyterLab appends Jupyter's own token to its socket URLs; a bridge forwards it as it is.
    path = "/ws/datastores/todo/?token=jupyters-own-token"
    peer = JsonPeer(await connect(path, None, headers=auth(tokens["stranger"])))
    reply = await peer.request("permissions-request")
    assert reply["content"]["role"] == "viewer"  # the header's user, not a refusal
    await peer.close()


@pytest.mark.parametrize(
    "header",
    [b"Token not-a-key", b"Token", b"Token two words", b"token "],
    ids=["unknown-key", "no-key", "spaces", "empty"],
)
async def test_a_bad_token_header_is_refused_with_4401(tokens, header):
    content, code = await refusal("/ws/datastores/todo/", [(b"authorization", header)])
    assert (content["code"], code) == ("unauthenticated", 4401)


async def test_another_scheme_is_not_ours_and_the_query_token_stands(tokens):
    headers = [(b"authorization", b"Basic dXNlcjpwYXNz")]
    peer = await JsonPeer.open("todo", tokens["owner"], headers=headers)
    assert (await peer.request("permissions-request"))["content"]["role"] == "owner"
    await peer.close()
    content, code = await refusal("/ws/datastores/todo/", headers)
    assert (content["code"], code) == ("unauthenticated", 4401)


async def test_a_header_token_skips_the_origin_check(tokens):
    foreign = [(b"host", b"rtc.example:8000"), (b"origin", b"http://elsewhere.example")]
    headers = [*auth(tokens["owner"]), *foreign]
    peer = await JsonPeer.open("todo", None, headers=headers)
    assert (await peer.request("permissions-request"))["content"]["role"] == "owner"
    await peer.close()


async def test_a_real_handshake_carries_the_header_through_daphne(live_server_process):
    def build():
        user = User.objects.create_user("ada")
        service.create_datastore("todo", "todo", owner=user)
        return ApiToken.objects.create(user=user).key

    key = await db(build)()
    url = live_server_process.datastore_ws_url("todo")
    async with ws_connect(url, additional_headers={"Authorization": f"Token {key}"}) as ws:
        await ws.send(json.dumps({"msgId": "p", "msgType": "permissions-request", "content": {}}))
        reply = json.loads(await ws.recv())
        assert (reply["parentId"], reply["content"]["role"]) == ("p", "owner")
    async with ws_connect(url, additional_headers={"Authorization": "Token wrong"}) as ws:
        reply = json.loads(await ws.recv())
        assert reply["content"]["code"] == "unauthenticated"
        await ws.wait_closed()
        assert ws.close_code == 4401
