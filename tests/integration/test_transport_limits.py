"""The size limits the docs promise, through the real transport: daphne started as scripts/run
starts it (its WebSocket message and frame limits set to ``RTC_MAX_MESSAGE_BYTES``), on both
protocols. A valid update just under ``RTC_MAX_UPDATE_BYTES`` is stored; a message just under
``RTC_MAX_MESSAGE_BYTES`` reaches the server, which answers it; a message just past closes the
connection with 1009 and a reason, so that a client does not send it again for ever.

The limits are set smaller than the defaults to keep the test quick, but above daphne's own
default of 1 MiB, which used to drop a 1.5 MB update with no close code.
"""

from __future__ import annotations

import json

import pytest
from django.contrib.auth.models import User
from pycrdt import Doc, Text
from rtc_client.wire import json_protocol, yjs_protocol
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

from relay.models import ApiToken
from tables import service
from tables.models import Datastore
from tests.support.waiting import eventually

pytest_plugins = ["tests.support.liveserver"]
pytestmark = pytest.mark.django_db(transaction=True)

MAX_UPDATE = 1_572_864  # 1.5 MiB: past daphne's default message limit
MAX_MESSAGE = 2 * MAX_UPDATE  # the defaults' ratio: an update at the limit fits in base64 JSON
LIMITS = {"RTC_MAX_UPDATE_BYTES": str(MAX_UPDATE), "RTC_MAX_MESSAGE_BYTES": str(MAX_MESSAGE)}
WAIT = 60.0


def update_of(size: int, client_id: int) -> bytes:
    """A valid update (one text insertion) of exactly ``size`` bytes."""
    length = size
    for _attempt in range(4):
        doc = Doc(client_id=client_id)
        doc["t"] = text = Text()
        text += "x" * length
        update = doc.get_update()
        if len(update) == size:
            return update
        length += size - len(update)
    raise AssertionError(f"no update of {size} bytes")


# daphne's own default, as a deployer who runs plain `daphne rtc_project.asgi:application` gets
# it (the last option given wins): the server applies RTC_MAX_MESSAGE_BYTES itself.
DAPHNE_DEFAULTS = (
    "--websocket-max-message-size",
    "1048576",
    "--websocket-max-frame-size",
    "1048576",
)


@pytest.fixture(params=["as-scripts-run", "plain-daphne"])
def server(request, start_server):
    owner = User.objects.create_user("owner")
    service.create_datastore("big", "freeform", owner=owner)
    args = DAPHNE_DEFAULTS if request.param == "plain-daphne" else ()
    running = start_server(env=LIMITS, args=args)
    running.token = ApiToken.objects.create(user=owner).key
    return running


def last_serial() -> int:
    return Datastore.objects.get(name="big").last_serial


def closed(ws) -> tuple[int | None, str]:
    """The close code and reason, once the server closed the connection (anything it sent
    before is skipped)."""
    with pytest.raises(ConnectionClosed):
        while True:
            ws.recv(timeout=WAIT)
    return ws.protocol.close_code, ws.protocol.close_reason


def test_y_websocket_limits(server):
    url = f"{server.ws_url}/ws/yjs/big?token={server.token}"
    with connect(url, max_size=None, open_timeout=WAIT) as ws:
        ws.send(yjs_protocol.sync_update(update_of(MAX_UPDATE - 16, 1)))
        eventually(lambda: last_serial() == 1, timeout=WAIT, what="the update stored")

        # A message just under the message limit reaches the server: an update too large for
        # the write path, refused as such (y-websocket's auth message), the connection open.
        message = yjs_protocol.sync_update(update_of(MAX_MESSAGE - 16, 2))
        assert MAX_MESSAGE - 16 < len(message) <= MAX_MESSAGE
        ws.send(message)
        while True:
            answer = yjs_protocol.parse(ws.recv(timeout=WAIT))
            if answer.type == yjs_protocol.MessageType.AUTH:
                break
        assert answer.reason.startswith("too-large"), answer.reason

        ws.send(b"\0" * (MAX_MESSAGE + 1))
        code, reason = closed(ws)
    assert (code, reason) == (
        1009,
        f"message of {MAX_MESSAGE + 1} bytes exceeds {MAX_MESSAGE} bytes",
    )
    assert last_serial() == 1


def transaction(msg_id: str, update: bytes) -> str:
    content = {"transactions": [json_protocol.transaction_json(f"{msg_id}-t", "s", update)]}
    return json_protocol.make_message(msg_id, "transaction-broadcast", content)


def reply_to(ws, msg_id: str) -> dict:
    while True:
        answer = json.loads(ws.recv(timeout=WAIT))
        if answer.get("parentId") == msg_id:
            return answer


def test_json_protocol_limits(server):
    url = f"{server.ws_url}/ws/datastores/big/?token={server.token}"
    with connect(url, max_size=None, open_timeout=WAIT) as ws:
        ws.send(transaction("c-1", update_of(MAX_UPDATE - 16, 1)))
        answer = reply_to(ws, "c-1")
        assert answer["msgType"] == "transaction-ack", answer
        assert last_serial() == 1

        # A message just under the message limit reaches the server: a transaction too large
        # for the write path, refused as such, the connection open.
        message = transaction("c-2", update_of((MAX_MESSAGE - 200) * 3 // 4, 2))
        assert MAX_MESSAGE - 200 < len(message) <= MAX_MESSAGE
        ws.send(message)
        answer = reply_to(ws, "c-2")
        assert "too-large" in json.dumps(answer), answer

        ws.send(b"\0" * (MAX_MESSAGE + 1))
        code, reason = closed(ws)
    assert (code, reason) == (
        1009,
        f"message of {MAX_MESSAGE + 1} bytes exceeds {MAX_MESSAGE} bytes",
    )
    assert last_serial() == 1
