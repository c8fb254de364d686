"""The room's size limit through the bridge: JupyterLab's WebSocket leg holds the RTC server's
limit (``RTC_MAX_MESSAGE_BYTES``), not tornado's 10 MiB default nor the bridge's own larger
limit for the RTC server's leg. A message just under it reaches the room (another person sees
it); one just past closes with 1009 and a reason, never a dropped connection.

The bridge's limit is 12 MiB here (past tornado's default, so that the bridge's setting is what
lets a message through), the RTC server's a little more, so that the bridge's own refusal is
what is seen.
"""

from __future__ import annotations

import pytest
from rtc_client.wire import yjs_protocol
from rtc_client.wire.yjs_protocol import SyncType
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

from tests.support.factories import bridge_token

pytest_plugins = ["tests.support.liveserver", "tests.support.bridged_jupyter"]
pytestmark = pytest.mark.django_db(transaction=True)

MIB = 1024 * 1024
MAX_MESSAGE = 12 * MIB
BRIDGE_LIMIT = {"RTC_MAX_MESSAGE_BYTES": str(MAX_MESSAGE)}  # read by the bridge as by the server
# The message is a presence state; the server's cap on one (64 KiB by default) is raised past
# it, so that only the transport's limits decide.
SERVER_LIMIT = {
    "RTC_MAX_MESSAGE_BYTES": str(MAX_MESSAGE + MIB),
    "RTC_MAX_PRESENCE_BYTES": str(MAX_MESSAGE + MIB),
}
WAIT = 60.0
ROOM = "/api/collaboration/room/JupyterLab:globalAwareness"


def presence(client_id: int, size: int) -> bytes:
    """An awareness message of exactly ``size`` bytes (its state padded)."""
    padding = size
    for _attempt in range(4):
        state = {"user": {"name": "big"}, "padding": "x" * padding}
        entry = yjs_protocol.AwarenessEntry(client_id, 1, state)
        message = yjs_protocol.awareness(yjs_protocol.encode_awareness([entry]))
        if len(message) == size:
            return message
        padding += size - len(message)
    raise AssertionError(f"no awareness message of {size} bytes")


def test_the_room_through_the_bridge_holds_the_rtc_servers_limit(start_server, bridged_jupyter):
    rtc = start_server(env=SERVER_LIMIT)
    lab = bridged_jupyter(rtc.url, bridge_token(), env=BRIDGE_LIMIT)
    url = f"ws{lab.url.removeprefix('http')}{ROOM}?token={lab.token}"
    with (
        connect(url, max_size=None, open_timeout=WAIT) as sender,
        connect(url, max_size=None, open_timeout=WAIT) as watcher,
    ):
        for client in (sender, watcher):  # joined as y-websocket joins: sync step 1, step 2
            client.send(yjs_protocol.sync_step1(b"\0"))
            while yjs_protocol.parse(client.recv(timeout=WAIT)).sync_type != SyncType.STEP2:
                pass
        sender.send(presence(7, MAX_MESSAGE))  # exactly the limit: read and relayed
        while True:
            message = yjs_protocol.parse(watcher.recv(timeout=WAIT))
            if message.type == yjs_protocol.MessageType.AWARENESS:
                entries = yjs_protocol.decode_awareness(message.payload)
                if any(entry.client_id == 7 for entry in entries):
                    break
        assert len(message.payload) > MAX_MESSAGE - 100

        sender.send(b"\0" * (MAX_MESSAGE + 1))
        with pytest.raises(ConnectionClosed):
            while True:
                sender.recv(timeout=WAIT)
        code, reason = sender.protocol.close_code, sender.protocol.close_reason
    assert (code, reason) == (1009, f"message exceeds {MAX_MESSAGE} bytes")
