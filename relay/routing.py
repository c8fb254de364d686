"""WebSocket routes of the relay."""

from django.urls import re_path

from relay.json_consumer import DatastoreConsumer
from relay.yjs_consumer import YjsConsumer

_NAME = r"(?P<datastore>[A-Za-z0-9][A-Za-z0-9._-]{0,99})"

websocket_urlpatterns = [
    re_path(rf"^ws/yjs/{_NAME}/?$", YjsConsumer.as_asgi()),
    re_path(rf"^ws/datastores/{_NAME}/?$", DatastoreConsumer.as_asgi()),
]
