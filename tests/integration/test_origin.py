"""A cookie session's WebSocket must come from the server's own origin: scheme, host and port.

Both protocols' consumers in process, against the real ASGI application and session cookies.
"""

from __future__ import annotations

import json

import pytest
from channels.db import database_sync_to_async
from channels.testing import WebsocketCommunicator
from django.contrib.auth.models import User
from django.test import override_settings
from rtc_client.wire import yjs_protocol

from rtc_project.asgi import application
from tables import service
from tests.support.peers import token_for

pytestmark = pytest.mark.django_db(transaction=True)

PATHS = {"json": "/ws/datastores/todo/", "yjs": "/ws/yjs/todo"}
PROXY = ("HTTP_X_FORWARDED_PROTO", "https")


@pytest.fixture
async def cookie():
    """A session cookie of the todo datastore's owner."""

    def build():
        from django.test import Client

        owner = User.objects.create_user("owner")
        service.create_datastore("todo", "todo", owner=owner)
        client = Client()
        client.force_login(owner)
        return owner, (b"cookie", f"sessionid={client.cookies['sessionid'].value}".encode())

    owner, header = await database_sync_to_async(build)()
    return {"header": header, "owner": owner}


async def admitted(protocol: str, headers: list[tuple[bytes, bytes]], scheme: str = "") -> bool:
    """Whether the connection is let in (True) or closed as forbidden (False)."""
    communicator = WebsocketCommunicator(application, PATHS[protocol], headers=headers)
    if scheme:
        communicator.scope["scheme"] = scheme  # read when the application starts, below
    connected, _ = await communicator.connect(timeout=10)
    assert connected
    try:
        if protocol == "json":
            request = {"msgId": "c-1", "msgType": "history-request", "content": {}}
            await communicator.send_to(text_data=json.dumps(request))
            message = json.loads(await communicator.receive_from(timeout=10))
            if message["msgType"] == "error-reply":
                assert message["content"]["code"] == "forbidden", message
                return False
            assert message["msgType"] == "history-reply", message
            return True
        frame = yjs_protocol.parse(await communicator.receive_from(timeout=10))
        if frame.type is yjs_protocol.MessageType.AUTH:
            assert frame.reason.startswith("forbidden: a session cookie"), frame.reason
            return False
        assert frame.type is yjs_protocol.MessageType.SYNC
        return True
    finally:
        await communicator.disconnect()


def headers(cookie, host: str, origin: str | None, *extra: tuple[bytes, bytes]):
    found = [cookie["header"], (b"host", host.encode()), *extra]
    return found + ([(b"origin", origin.encode())] if origin is not None else [])


@pytest.mark.parametrize("protocol", ["json", "yjs"])
async def test_an_http_server_refuses_an_https_page_on_its_host_and_port(cookie, protocol):
    host = "rtc.example:8000"
    assert await admitted(protocol, headers(cookie, host, "http://rtc.example:8000"))
    assert await admitted(protocol, headers(cookie, host, "HTTP://RTC.example:8000"))
    assert not await admitted(protocol, headers(cookie, host, "https://rtc.example:8000"))
    assert not await admitted(protocol, headers(cookie, host, "http://rtc.example:8001"))
    assert not await admitted(protocol, headers(cookie, host, "http://rtc.example"))
    assert not await admitted(protocol, headers(cookie, host, "null"))
    # Default ports are the same origin whether written or not.
    assert await admitted(protocol, headers(cookie, "rtc.example", "http://rtc.example:80"))
    assert await admitted(protocol, headers(cookie, "rtc.example:80", "http://rtc.example"))
    assert not await admitted(protocol, headers(cookie, "rtc.example", "https://rtc.example"))
    # No Origin: not a browser page's request.
    assert await admitted(protocol, headers(cookie, host, None))


@pytest.mark.parametrize("protocol", ["json", "yjs"])
async def test_a_wss_connection_is_an_https_origin(cookie, protocol):
    host = "rtc.example"
    assert await admitted(protocol, headers(cookie, host, "https://rtc.example"), "wss")
    assert await admitted(protocol, headers(cookie, host, "https://rtc.example:443"), "wss")
    assert not await admitted(protocol, headers(cookie, host, "http://rtc.example"), "wss")
    assert not await admitted(protocol, headers(cookie, host, "http://rtc.example:443"), "wss")


@pytest.mark.parametrize("protocol", ["json", "yjs"])
async def test_behind_a_tls_proxy_its_header_says_https(cookie, protocol):
    host = "rtc.example"
    https = (b"x-forwarded-proto", b"https")
    # Without SECURE_PROXY_SSL_HEADER the header is anyone's to send, and means nothing.
    assert not await admitted(protocol, headers(cookie, host, "https://rtc.example", https))
    with override_settings(SECURE_PROXY_SSL_HEADER=PROXY):
        assert await admitted(protocol, headers(cookie, host, "https://rtc.example", https))
        assert not await admitted(protocol, headers(cookie, host, "http://rtc.example", https))
        # As Django reads it: the first of several values; another value is http.
        several = (b"x-forwarded-proto", b"https, http")
        assert await admitted(protocol, headers(cookie, host, "https://rtc.example", several))
        plain = (b"x-forwarded-proto", b"http")
        assert await admitted(protocol, headers(cookie, host, "http://rtc.example", plain))
        assert not await admitted(protocol, headers(cookie, host, "https://rtc.example", plain))
        # No header: the connection's own scheme.
        assert await admitted(protocol, headers(cookie, host, "http://rtc.example"))


@pytest.mark.parametrize("protocol", ["json", "yjs"])
async def test_csrf_trusted_origins_are_whole_origins(cookie, protocol):
    host = "rtc.example:8000"
    trusted = ["https://app.example", "https://*.example.org", "http://tools.example:9000"]
    with override_settings(CSRF_TRUSTED_ORIGINS=trusted):
        assert await admitted(protocol, headers(cookie, host, "https://app.example"))
        assert await admitted(protocol, headers(cookie, host, "https://app.example:443"))
        assert not await admitted(protocol, headers(cookie, host, "http://app.example"))
        assert await admitted(protocol, headers(cookie, host, "https://a.b.example.org"))
        assert await admitted(protocol, headers(cookie, host, "https://example.org"))
        assert not await admitted(protocol, headers(cookie, host, "http://a.example.org"))
        assert not await admitted(protocol, headers(cookie, host, "https://evilexample.org"))
        assert await admitted(protocol, headers(cookie, host, "http://tools.example:9000"))
        assert not await admitted(protocol, headers(cookie, host, "http://tools.example"))


async def test_a_token_is_not_ambient_whatever_the_origin(cookie):
    key = await token_for(cookie["owner"])
    communicator = WebsocketCommunicator(
        application,
        "/ws/yjs/todo",
        headers=[(b"authorization", f"Token {key}".encode()), (b"origin", b"https://elsewhere")],
    )
    assert (await communicator.connect(timeout=10))[0]
    frame = yjs_protocol.parse(await communicator.receive_from(timeout=10))
    assert frame.type is yjs_protocol.MessageType.SYNC
    await communicator.disconnect()
