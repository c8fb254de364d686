"""Kernel WebSocket messages sent when written: TCP_NODELAY on Jupyter Server's kernel sockets.

Tornado leaves Nagle's algorithm on for WebSockets. A kernel answers an execute request with
several small messages back to back (``status``, ``execute_input``, ``stream``, ...): with Nagle
on, each one after the first waits until the previous segment is acknowledged, and the receiver
delays that acknowledgement (about 40 ms on Linux). Everything that reads outputs over the kernel
WebSocket sees the stall: JupyterLab, and the RTC supernode, which runs cells through it.

The bridge wraps the server's kernel WebSocket connection class (whatever it is: the ZMQ one, a
gateway's) so that every kernel socket turns the flag on as it opens. A server that does not load
the bridge gets the same with
``--ServerApp.kernel_websocket_connection_class=jupyter_rtc_bridge.kernel_sockets.NoDelayZMQChannelsWebsocketConnection``
(the supernode's own launched server does).
"""

from __future__ import annotations

import inspect
from typing import Any

from jupyter_server.services.kernels.connection.channels import ZMQChannelsWebsocketConnection


def no_delay(connection_class: type) -> type:
    """A subclass of ``connection_class`` whose WebSocket sends each message at once."""
    if getattr(connection_class, "sends_without_delay", False):
        return connection_class

    class NoDelayConnection(connection_class):  # type: ignore[misc, valid-type]
        sends_without_delay = True

        async def connect(self) -> Any:
            # The handler's WebSocket exists here: connect() is called from its open().
            self.websocket_handler.set_nodelay(True)
            result = super().connect()
            return await result if inspect.isawaitable(result) else result

    NoDelayConnection.__name__ = NoDelayConnection.__qualname__ = (
        f"NoDelay{connection_class.__name__}"
    )
    return NoDelayConnection


def install(serverapp: Any) -> None:
    """Make the server's kernel WebSockets send without delay (connections opened from now)."""
    settings = serverapp.web_app.settings
    current = settings.get("kernel_websocket_connection_class")
    if current is None:  # no kernel WebSockets configured: nothing to change
        return
    settings["kernel_websocket_connection_class"] = no_delay(current)


# Jupyter Server's own kernel WebSocket connection, sending at once: for ``--ServerApp.
# kernel_websocket_connection_class`` on a server that does not load the bridge.
NoDelayZMQChannelsWebsocketConnection = no_delay(ZMQChannelsWebsocketConnection)
