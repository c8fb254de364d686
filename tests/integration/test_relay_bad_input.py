"""Bad input on both protocols: a clear error, the connection kept or closed as documented,
nothing stored, and nothing already accepted lost."""

from __future__ import annotations

import base64
import json
import os

import pytest
from channels.db import database_sync_to_async
from django.contrib.auth.models import User
from pycrdt import Map
from rtc_client.wire import yjs_protocol

from tables import service
from tables.models import Transaction
from tests.support.factories import add_todo
from tests.support.peers import JsonPeer, YPeer, token_for
from tests.support.waiting import aeventually

pytestmark = pytest.mark.django_db(transaction=True)

db = database_sync_to_async


@pytest.fixture
async def owner_token():
    def build():
        owner = User.objects.create_user("owner")
        service.create_datastore("todo", "todo", owner=owner)
        return owner

    return await token_for(await db(build)())


@db
def stored_serials() -> list[int]:
    return list(Transaction.objects.order_by("serial").values_list("serial", flat=True))


async def healthy(peer: JsonPeer) -> None:
    """The connection still answers, and the accepted transaction is still there."""
    assert (await peer.request("serial-request"))["content"] == {"serial": 1}
    state, _ = await db(service.live_python)("todo")
    assert state["items"]["kept"]["title"] == "accepted before"


async def json_peer_with_one_accepted(token: str) -> JsonPeer:
    peer = await JsonPeer.open("todo", token)
    await peer.join()
    assert (await peer.commit(lambda d: add_todo(d, "kept", "accepted before")))["content"][
        "serials"
    ] == [1]
    return peer


BAD_JSON_FRAMES = [
    ("not json", "bad-json"),
    ("[1, 2, 3]", "bad-json"),
    ('"a string"', "bad-json"),
    ("{}", "bad-message"),
    ('{"msgType": 42}', "bad-message"),
    ('{"msgType": "serial-request", "msgId": 7}', "bad-message"),
    ('{"msgType": "serial-request", "content": []}', "bad-message"),
    ('{"msgType": "launch-missiles"}', "unknown-message-type"),
    ('{"msgType": "history-request", "content": {"since": "yesterday"}}', "bad-message"),
    ('{"msgType": "history-request", "content": {"since": -1}}', "bad-message"),
    ('{"msgType": "transaction-broadcast", "content": {"transactions": "all"}}', "bad-message"),
    ('{"msgType": "transaction-broadcast", "content": {"transactions": []}}', "bad-message"),
    (
        '{"msgType": "transaction-broadcast", "content": {"transactions": [{"id": 1}]}}',
        "bad-message",
    ),
    (
        '{"msgType": "transaction-broadcast", "content": {"transactions": '
        '[{"id": "x", "patch": "%%% not base64"}]}}',
        "bad-message",
    ),
    ('{"msgType": "transaction-request", "content": {"serials": ["1"]}}', "bad-message"),
    ('{"msgType": "transaction-request", "content": {}}', "bad-message"),
    ('{"msgType": "serial-update", "content": {"serial": true}}', "bad-message"),
    ('{"msgType": "awareness-update", "content": {"update": "AQID"}}', "bad-message"),
    ("[" * 100_000, "too-deep"),
    ('{"msgType": "serial-request", "content": {"a": ' + "[" * 200 + "]" * 200 + "}}", "too-deep"),
    ('{"msgType": "serial-update", "content": {"serial": ' + "9" * 5000 + "}}", "bad-json"),
    (
        '{"msgType": "transaction-request", "content": {"serials": [9223372036854775808]}}',
        "out-of-range",
    ),
    (
        '{"msgType": "transaction-request", "content": {"serials": [-9223372036854775808]}}',
        "out-of-range",
    ),
    ('{"msgType": "history-request", "content": {"since": 9223372036854775808}}', "out-of-range"),
    ('{"msgType": "serial-update", "content": {"serial": 1180591620717411303424}}', "out-of-range"),
    ('{"msgType": "undo-request", "content": {"serial": 18446744073709551616}}', "out-of-range"),
    (
        '{"msgType": "transaction-broadcast", "content": {"transactions": '
        '[{"id": "x", "storeId": 9223372036854775808, "patch": "AA=="}]}}',
        "out-of-range",
    ),
    (
        '{"msgType": "transaction-broadcast", "content": {"transactions": '
        '[{"id": "x", "storeId": "' + "s" * 101 + '", "patch": "AA=="}]}}',
        "bad-message",
    ),
]


@pytest.mark.parametrize(("frame", "code"), BAD_JSON_FRAMES)
async def test_bad_json_frames_get_a_clear_error(owner_token, frame, code):
    peer = await json_peer_with_one_accepted(owner_token)
    await peer.ws.send_to(text_data=frame)
    error = await peer.next_of("error-reply")
    assert error["content"]["code"] == code, error
    assert error["content"]["reason"]
    await healthy(peer)
    assert await stored_serials() == [1]


@pytest.mark.parametrize(
    "patch",
    [os.urandom(64), b"\x01\x02", b"\x05" * 10, b"\x01\x01\xff\xff\xff\xff\x0f\x00"],
    ids=["random", "truncated", "garbage", "corrupt"],
)
async def test_corrupt_yjs_patches_are_refused(owner_token, patch):
    peer = await json_peer_with_one_accepted(owner_token)
    msg_id = await peer.send(
        "transaction-broadcast",
        {"transactions": [{"id": "bad", "patch": base64.b64encode(patch).decode()}]},
    )
    reply = await peer.reply_to(msg_id)
    assert reply["msgType"] == "error-reply", reply
    assert reply["content"]["code"] in {"malformed-update", "missing-dependencies"}
    assert reply["content"]["transactionId"] == "bad"
    await healthy(peer)
    assert await stored_serials() == [1]


async def test_binary_frame_on_the_json_protocol(owner_token):
    peer = await json_peer_with_one_accepted(owner_token)
    await peer.ws.send_to(bytes_data=os.urandom(32))
    assert (await peer.next_of("error-reply"))["content"]["code"] == "bad-message"
    await healthy(peer)


async def test_oversized_frames_close_the_connection(owner_token, settings):
    peer = await json_peer_with_one_accepted(owner_token)
    settings.RTC = {**settings.RTC, "MAX_MESSAGE_BYTES": 1000}
    big = json.dumps({"msgType": "serial-request", "content": {"pad": "x" * 2000}})
    await peer.ws.send_to(text_data=big)
    assert (await peer.next_of("error-reply"))["content"]["code"] == "too-large"
    assert (await peer.ws.receive_output(timeout=10)) == {"type": "websocket.close", "code": 1009}
    other = await JsonPeer.open("todo", owner_token)  # the server is fine for everyone else
    assert (await other.join())["content"]["serial"] == 1


async def test_floods_are_rate_limited_then_closed(owner_token, settings):
    settings.RTC = {**settings.RTC, "RATE_LIMIT": 1, "RATE_BURST": 5}
    peer = await JsonPeer.open("todo", owner_token)
    for _ in range(20):
        await peer.send("serial-request")
    codes = []
    while True:
        output = await peer.ws.receive_output(timeout=10)
        if output["type"] == "websocket.close":
            assert output["code"] == 4429
            break
        message = json.loads(output["text"])
        if message["msgType"] == "error-reply":
            codes.append(message["content"]["code"])
    assert codes[0] == "rate-limited" and codes[-1] == "rate-limited"
    other = await JsonPeer.open("todo", owner_token)
    assert (await other.join())["msgType"] == "history-reply"


# --- y-websocket ----------------------------------------------------------------------------


async def y_peer_with_one_accepted(token: str) -> YPeer:
    peer = await YPeer.open("todo", token)
    await peer.handshake()
    await peer.edit(lambda d: add_todo(d, "kept", "accepted before"))

    async def stored_one() -> bool:
        return await stored_serials() == [1]

    await aeventually(stored_one, 10, "the accepted edit stored")
    return peer


async def y_healthy(peer: YPeer) -> None:
    """The connection still syncs: a fresh step 1 gets a step 2."""
    await peer.ws.send_to(bytes_data=yjs_protocol.sync_step1(peer.doc.get_state()))
    while (await peer.next_message()).sync_type is not yjs_protocol.SyncType.STEP2:
        pass
    state, _ = await db(service.live_python)("todo")
    assert state["items"]["kept"]["title"] == "accepted before"


@pytest.mark.parametrize(
    ("frame", "reason"),
    [
        (os.urandom(1) + b"\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\x01", "bad-message"),
        (b"\x09", "bad-message: unknown message type"),
        (b"\x00\x07\x00", "bad-message: unknown sync message type"),
        (b"\x00\x02\x50\x01\x02", "bad-message: message announces 80 bytes"),
        (b"\x01\x05\x01\x01\x01\x03zz", "bad-message"),
        (yjs_protocol.sync_update(b"\x01\x01\xff\xff\xff\xff\x0f\x00"), "malformed-update"),
        (yjs_protocol.sync_update(os.urandom(40)), "malformed-update"),
        (yjs_protocol.sync_step1(b"\xff\xff"), "bad-message"),
    ],
    ids=["random", "type", "sync-type", "truncated", "awareness", "corrupt", "noise", "sv"],
)
async def test_bad_y_websocket_frames_get_a_clear_error(owner_token, frame, reason):
    peer = await y_peer_with_one_accepted(owner_token)
    await peer.ws.send_to(bytes_data=frame)
    await peer.until(lambda: peer.denied)
    assert peer.denied[0].startswith(reason.split(":")[0]), peer.denied
    if ":" in reason:
        assert peer.denied[0].startswith(reason), peer.denied
    await y_healthy(peer)
    assert await stored_serials() == [1]


async def test_text_frame_on_y_websocket(owner_token):
    peer = await y_peer_with_one_accepted(owner_token)
    await peer.ws.send_to(text_data="hello")
    await peer.until(lambda: peer.denied)
    assert peer.denied[0] == "bad-message: y-websocket frames are binary"
    await y_healthy(peer)


async def test_oversized_y_frame_closes(owner_token, settings):
    peer = await y_peer_with_one_accepted(owner_token)
    settings.RTC = {**settings.RTC, "MAX_MESSAGE_BYTES": 100}
    await peer.edit(lambda d: d.get("items", type=Map)["kept"]["title"].insert(0, "x" * 500))
    await peer.until(lambda: peer.denied)
    assert peer.denied[0].startswith("too-large")
    assert (await peer.ws.receive_output(timeout=10))["code"] == 1009
    assert await stored_serials() == [1]


async def test_y_websocket_floods_close_the_connection(owner_token, settings):
    settings.RTC = {**settings.RTC, "RATE_LIMIT": 1, "RATE_BURST": 3}
    peer = await YPeer.open("todo", owner_token)
    for _ in range(10):
        await peer.ws.send_to(bytes_data=bytes([yjs_protocol.MessageType.QUERY_AWARENESS]))
    while True:
        output = await peer.ws.receive_output(timeout=10)
        if output["type"] == "websocket.close":
            break
    assert output["code"] == 4429
