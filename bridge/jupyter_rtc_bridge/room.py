"""The room WebSocket: a frame pipe between the browser and the RTC server's room.

- Jupyter authenticates the browser (``@ws_authenticated``) and authorizes it on ``contents``
  (``@authorized``) before the upgrade; only then is the RTC server's room opened, with the
  bridge's token and the Jupyter identity in headers. The browser's query gives only
  ``sessionId`` to the RTC server (its Jupyter ``token`` stays here).
- Backpressure: a frame is read from one leg only once the previous one was written to the
  other (tornado reads the browser's next frame only after ``on_message`` returns; the RTC leg
  is read by one task that awaits each write). Nothing queues but one frame per direction.
- Closing: when either leg closes the other is closed, the close code mapped by ``closing``;
  the pump task ends (or is cancelled) with the connection, so nothing is left running.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

from jupyter_server.auth.decorator import authorized, ws_authenticated
from jupyter_server.base.handlers import JupyterHandler
from tornado import httpclient, iostream, websocket

from jupyter_rtc_bridge import closing, upstream
from jupyter_rtc_bridge.forward import BridgeMixin
from jupyter_rtc_bridge.status import GATEWAY_DOWN

# The RTC server refuses a room after accepting it, with a close code and its reason. A handshake
# it answers 403 was never refused by it: daphne gave up on it (the room did not accept within
# daphne's connect timeout, 5 s by default, as happens right after a restart on a busy machine,
# or failed before accepting). That is "try again", never the docprovider's dialog, which would
# dispose the document and what was typed in it.
HANDSHAKE_REFUSALS = {400: 4400, 401: 4401, 404: 4404}
TOO_BIG = 1009


class ClosingCleanly(websocket.WebSocketProtocol13):
    """tornado's protocol, except for a message over the limit: tornado sends its 1009 close
    frame and then closes the socket at once, with the rest of the message unread, so the
    kernel resets the connection and the browser may never read the close frame (it sees
    1006, a network failure, and sends the same message again). Here the rest is read and
    dropped, never kept, until the browser answers the close or tornado's 5 s run out."""

    draining = False
    deferred_abort = False

    def close(self, code: int | None = None, reason: str | None = None) -> None:
        if code == TOO_BIG and not self.server_terminated:
            self.draining = True
            reason = f"message exceeds {self.params.max_message_size} bytes"  # as the server
        super().close(code, reason)

    def _abort(self) -> None:
        if self.draining and not self.deferred_abort:  # right after the close frame
            self.deferred_abort = True
            return
        super()._abort()

    async def _receive_frame(self) -> None:
        if self.draining:
            await self.stream.read_bytes(64 * 1024, partial=True)  # dropped
            return
        await super()._receive_frame()


class RoomHandler(BridgeMixin, JupyterHandler, websocket.WebSocketHandler):
    """``/api/collaboration/room/<room>`` (documents and ``JupyterLab:globalAwareness``)."""

    auth_resource = "contents"  # JupyterHandler has none; @authorized reads it

    upstream_ws: websocket.WebSocketClientConnection | None = None
    pump: asyncio.Task[None] | None = None
    denied: str | None = None  # the RTC server's last "permission denied" reason
    browser_closed = False

    # --- Limits and keepalive, on the browser's leg -----------------------------------------

    @property
    def max_message_size(self) -> int:
        """The RTC server's limit: tornado refuses a larger message (1009) from its frame
        header, before reading it, instead of buffering what the RTC server would refuse."""
        return self.bridge.room_max_message_size

    def get_websocket_protocol(self) -> websocket.WebSocketProtocol | None:
        protocol = super().get_websocket_protocol()
        if type(protocol) is websocket.WebSocketProtocol13:
            protocol.__class__ = ClosingCleanly  # the same object, one behaviour changed
        return protocol

    @property
    def ping_interval(self) -> float | None:
        return self.bridge.ping_interval or None

    @property
    def ping_timeout(self) -> float | None:
        return self.bridge.ping_interval or None

    def get_compression_options(self) -> dict[str, Any] | None:
        return None  # frames are Yjs updates: already compact, and big ones cost CPU twice

    # --- Handshake ------------------------------------------------------------------------

    @ws_authenticated
    @authorized
    async def get(self, *args: Any, **kwargs: Any) -> None:
        await super().get(*args, **kwargs)

    async def open(self, *args: Any, **kwargs: Any) -> None:
        """Open the RTC server's room before the browser's first frame is read."""
        target = upstream.websocket_url(
            self.bridge.server_url, self.request.uri or "", self.base_url
        )
        request = httpclient.HTTPRequest(
            target,
            headers=self.upstream_headers(),
            connect_timeout=self.bridge.connect_timeout,
            request_timeout=self.bridge.connect_timeout,
            follow_redirects=False,
        )
        try:
            self.upstream_ws = await websocket.websocket_connect(
                request,
                ping_interval=self.bridge.ping_interval or None,
                ping_timeout=self.bridge.ping_interval or None,
                max_message_size=self.bridge.max_message_size,
            )
        except httpclient.HTTPClientError as error:
            self.refused_handshake(error)
            return
        except (OSError, iostream.StreamClosedError, TimeoutError, websocket.WebSocketError) as err:
            self.unreachable(err)
            return
        self.upstream_answered()
        if self.browser_closed:  # the browser left while we connected
            self.upstream_ws.close(1000)
            return
        self.pump = asyncio.create_task(self.pump_from_server())

    def unreachable(self, error: BaseException) -> None:
        """Close with 1013: y-websocket tries again with backoff. The address only in the log."""
        self.log.warning("RTC server %s unreachable for a room: %r", self.bridge.server_url, error)
        self.upstream_failed()
        self.close(closing.TRY_AGAIN, "The collaboration server cannot be reached.")

    def refused_handshake(self, error: httpclient.HTTPClientError) -> None:
        if error.code == 599:
            self.unreachable(error)
            return
        if error.code in GATEWAY_DOWN:  # a proxy in front of it, answering for it
            self.unreachable(error)
            return
        self.upstream_answered()
        code = HANDSHAKE_REFUSALS.get(error.code)
        if code is None:
            self.log.warning("RTC server refused a room's handshake: HTTP %s", error.code)
            self.close(closing.TRY_AGAIN, "The collaboration server refused the room.")
            return
        self.close(*closing.browser_close(code, None, None))

    # --- Frames ---------------------------------------------------------------------------

    async def on_message(self, message: str | bytes) -> None:
        """Browser -> RTC server; tornado reads the next frame once this returns."""
        if self.upstream_ws is None:
            return
        # On a closed leg the pump sees the RTC server's close and closes the browser's leg.
        with contextlib.suppress(websocket.WebSocketClosedError, iostream.StreamClosedError):
            await self.upstream_ws.write_message(message, binary=isinstance(message, bytes))

    async def pump_from_server(self) -> None:
        """RTC server -> browser, one frame at a time; then close the browser's leg."""
        conn = self.upstream_ws
        assert conn is not None
        try:
            while True:
                message = await conn.read_message()
                if message is None:
                    break
                if isinstance(message, bytes):
                    reason = closing.denied_reason(message)
                    if reason is not None:
                        self.denied = reason
                try:
                    await self.write_message(message, binary=isinstance(message, bytes))
                except (websocket.WebSocketClosedError, iostream.StreamClosedError):
                    conn.close(1001)
                    return
        finally:
            if not self.browser_closed:
                code, why = closing.browser_close(conn.close_code, conn.close_reason, self.denied)
                self.close(code, why)

    # --- Ending ---------------------------------------------------------------------------

    def on_close(self) -> None:
        """The browser's leg closed (the browser left, or we closed it): close the other."""
        self.browser_closed = True
        if self.upstream_ws is not None:
            self.upstream_ws.close(1000)
        if self.pump is not None and not self.pump.done():
            self.pump.cancel()
