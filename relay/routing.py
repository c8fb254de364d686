"""WebSocket routes of the relay, and the refusal of a path no route serves."""

from __future__ import annotations

import logging

from django.urls import re_path

from relay.json_consumer import DatastoreConsumer
from relay.yjs_consumer import YjsConsumer

logger = logging.getLogger(__name__)

_NAME = r"(?P<datastore>[A-Za-z0-9][A-Za-z0-9._-]{0,99})"

websocket_urlpatterns = [
    re_path(rf"^ws/yjs/{_NAME}/?$", YjsConsumer.as_asgi()),
    re_path(rf"^ws/datastores/{_NAME}/?$", DatastoreConsumer.as_asgi()),
]


async def refuse_unknown_path(scope, receive, send) -> None:
    """Refuse the handshake (daphne answers 403), with one log line: without this, channels'
    router raises for a path it has no route for, and every attempt is a 500 and a traceback."""
    message = await receive()
    if message["type"] != "websocket.connect":
        return
    logger.warning("Not Found (WebSocket): %s", scope.get("path"))
    await send({"type": "websocket.close", "code": 1000})


unknown_path = re_path(r"", refuse_unknown_path)
"""The last route of the WebSocket router (rtc_project/asgi.py)."""
