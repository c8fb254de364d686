"""WebSocket routes of jupyter-collaboration's protocol (JupyterLab's collaboration front end)."""

from django.urls import re_path

from jupyter_sync.collaboration.fork_room import ForkRoomConsumer
from jupyter_sync.collaboration.room import GLOBAL_AWARENESS, GlobalAwarenessConsumer, RoomConsumer

websocket_urlpatterns = [
    re_path(rf"^api/collaboration/room/{GLOBAL_AWARENESS}/?$", GlobalAwarenessConsumer.as_asgi()),
    # The timeline's fork rooms (jupyter_sync.collaboration.timeline), before documents' rooms.
    re_path(
        r"^api/collaboration/room/(?P<room>timeline:[^/]{1,64})/?$", ForkRoomConsumer.as_asgi()
    ),
    # y-websocket joins the server URL and the room with "/"; the room is format:type:fileId.
    re_path(r"^api/collaboration/room/(?P<room>[^/]{1,300})/?$", RoomConsumer.as_asgi()),
]
