"""A cheaper way out for daphne's WebSocket messages, because fan-out sends a great many.

A room of 100 readers at 50 updates a second is 5,000 frames a second from one process. Through
daphne's stock path each frame costs far more than its bytes: autobahn formats the arguments of
a debug log line (coloured type names) for every frame whether or not debug logging is on, and
Twisted registers the socket as a writer, waits for the next turn of the loop, writes, and
unregisters it again. Measured with bench/fanout.py, those two were most of the worker's CPU time.

``install()`` makes daphne build connections of ``DirectSendProtocol``, whose ``serverSend``
(what daphne calls for ``websocket.send``) frames a plain data message itself and hands it to the
socket at once when nothing is queued before it (what the socket does not take is queued in
Twisted's buffer as usual). Anything else (compression, fragmentation, masking, frame logging, a
connection that is not open, an oversize message, frames queued by autobahn, TLS) takes
autobahn's and Twisted's own path, so behaviour and ordering stay theirs.

The same protocol also sends the close reason an application gives (``websocket.close`` with
``reason``, as ASGI allows), which daphne drops: a client such as the Jupyter bridge reads why it
was closed (``read-only: ...``) from the close frame, and shows it to a person. autobahn cuts it
to the 123 bytes a close frame holds.

And it holds received messages to the documented limit, ``RTC_MAX_MESSAGE_BYTES``, whatever
daphne was started with (its own default, 1 MiB, dropped a valid 1.5 MB update), and answers
a larger one with a close frame, 1009 and a reason (``message of N bytes exceeds L bytes``, as
the consumers say it), where autobahn drops the TCP connection with no close code: a client
that sees no code takes it for a network failure and sends the same message again for ever.
"""

from __future__ import annotations

import struct
import sys
from typing import Any


def data_frame(payload: bytes, binary: bool) -> bytes:
    """One unfragmented, unmasked WebSocket data frame (RFC 6455 section 5.2), as servers send."""
    first = 0x82 if binary else 0x81  # FIN + opcode 2 (binary) or 1 (text)
    length = len(payload)
    if length < 126:
        return bytes((first, length)) + payload
    if length < 0x10000:
        return struct.pack("!BBH", first, 126, length) + payload
    return struct.pack("!BBQ", first, 127, length) + payload


def write_now(transport: Any, data: bytes) -> None:
    """Write through a plain TCP transport's socket at once if nothing is buffered before it;
    what the socket does not take (or any other case) goes to ``transport.write``."""
    if transport_idle(transport):
        try:
            sent = transport.socket.send(data)
        except (BlockingIOError, InterruptedError):
            sent = 0
        except OSError:
            sent = 0  # Twisted notices the lost connection when it writes the rest
        if sent == len(data):
            return
        data = data[sent:]
    transport.write(data)


def transport_idle(transport: Any) -> bool:
    """Whether a plain TCP transport is open and holds nothing unwritten: a frame written now
    goes straight to the socket, behind nothing."""
    return (
        transport.TLS is False
        and transport.connected
        and not transport.disconnecting
        and not transport._writeDisconnected
        and not transport._tempDataLen
        and transport.offset == len(transport.dataBuffer)
    )


class FrameSink:
    """One connection's way out for frames built once for many (``relay.hub.Room``): no ASGI
    message, no daphne or Channels call per frame, just the socket.

    ``ready()`` says whether the connection is open and its socket took everything before; a
    room holds back (and later merges) what a connection that is not ready would queue.
    """

    __slots__ = ("protocol", "transport")

    def __init__(self, protocol: Any):
        self.protocol = protocol
        self.transport = protocol.transport

    def ready(self) -> bool:
        protocol = self.protocol
        return (
            protocol.state == protocol.STATE_OPEN
            and not protocol.send_queue
            and transport_idle(self.transport)
        )

    def write(self, frame: bytes) -> None:
        """Write a whole frame (``data_frame``); what the socket does not take now waits in
        Twisted's buffer, after anything already there."""
        write_now(self.transport, frame)

    def try_write(self, frame: bytes) -> bool:
        """``write`` if ``ready()`` (checked once: this runs for every reader of every batch);
        False, nothing written, otherwise."""
        protocol = self.protocol
        transport = self.transport
        if (
            protocol.state != protocol.STATE_OPEN
            or protocol.send_queue
            or not transport_idle(transport)
        ):
            return False
        try:
            sent = transport.socket.send(frame)
        except (BlockingIOError, InterruptedError):
            sent = 0
        except OSError:
            sent = 0  # Twisted notices the lost connection when it writes the rest
        if sent != len(frame):
            transport.write(frame[sent:])
        return True


def frame_sink(scope: dict[str, Any]) -> FrameSink | None:
    """The connection's ``FrameSink``, if daphne serves it through ``DirectSendProtocol`` and
    plain frames can go out as they are (no compression, fragmentation, masking, frame logging,
    TLS); None otherwise (then frames go through ``websocket.send``)."""
    protocol = scope.get("extensions", {}).get(SINK_EXTENSION, {}).get("protocol")
    if protocol is None or not protocol.plain_frames():
        return None
    return FrameSink(protocol)


SINK_EXTENSION = "rtc.frame_sink"
"""The scope extension through which daphne's connections are handed to the consumers."""


def _direct_protocol_class() -> type:
    from daphne.ws_protocol import WebSocketProtocol
    from twisted.internet.tcp import Connection

    class DirectSendProtocol(WebSocketProtocol):
        """daphne's protocol, with plain data messages framed here and written without delay."""

        def serverSend(self, content: bytes | str, binary: bool = False) -> None:
            payload = content if binary else content.encode("utf8")
            limit = self.maxMessagePayloadSize
            if (
                self.state == self.STATE_OPEN
                and self._perMessageCompress is None
                and not self.autoFragmentSize
                and not self.maskServerFrames
                and not self.send_queue
                and not self.logFrames
                and not self.logOctets
                and not self.trackedTimings
                and not (0 < limit < len(payload))
                and isinstance(self.transport, Connection)
            ):
                write_now(self.transport, data_frame(payload, binary))
            else:
                super().serverSend(content, binary)

        def plain_frames(self) -> bool:
            """Whether a data frame built by ``data_frame`` is what autobahn would send."""
            return (
                self._perMessageCompress is None
                and not self.autoFragmentSize
                and not self.maskServerFrames
                and not self.logFrames
                and not self.logOctets
                and not self.trackedTimings
                and isinstance(self.transport, Connection)
                and self.transport.TLS is False
            )

        def _connectionMade(self) -> None:
            super()._connectionMade()  # the options daphne was started with, then ours:
            limit = message_limit()
            self.maxMessagePayloadSize = self.maxFramePayloadSize = limit

        def onOpen(self) -> None:
            super().onOpen()
            self.drop_handshake()

        def drop_handshake(self) -> None:
            """Free what the handshake parsed and autobahn keeps for the connection's life
            but never reads again: the raw request and response and the parsed headers and
            query (the request's ``headers`` and ``params`` are the same dicts). The ASGI
            scope keeps its own headers list; daphne reads only the request's ``path``."""
            self.http_request_data = self.http_response_data = b""
            for parsed in (self.http_headers, self.http_request_params):
                if isinstance(parsed, dict):
                    parsed.clear()

        def _max_message_size_exceeded(self, size: int, limit: int, _reason: str) -> None:
            """Close with 1009 and a reason, where autobahn (``failByDrop``, its default for
            servers) would drop the TCP connection with no close code at all."""
            drop, self.failByDrop = self.failByDrop, False
            try:
                self._fail_connection(1009, f"message of {size} bytes exceeds {limit} bytes")
            finally:
                self.failByDrop = drop

        def handle_reply(self, message: dict[str, Any]) -> None:
            reason = message.get("reason") if message.get("type") == "websocket.close" else None
            if reason and self.state != self.STATE_CONNECTING:
                self.sendClose(code=message.get("code") or 1000, reason=str(reason))
                return
            super().handle_reply(message)

    return DirectSendProtocol


def message_limit() -> int:
    """``RTC_MAX_MESSAGE_BYTES``: the transport's limit for a received message and frame."""
    from tables.conf import rtc_settings

    return rtc_settings.MAX_MESSAGE_BYTES


def install() -> bool:
    """Use ``DirectSendProtocol`` for daphne's WebSocket connections, if daphne is the server
    (it has imported its protocol module by the time it loads the application). True if done."""
    module = sys.modules.get("daphne.ws_protocol")
    if module is None:
        return False
    factory = module.WebSocketFactory
    if getattr(factory.protocol, "direct_send", False):
        return True
    protocol = _direct_protocol_class()
    protocol.direct_send = True
    factory.protocol = protocol
    server = sys.modules.get("daphne.server")
    if server is not None:
        _hand_protocols_to_applications(server.Server)
    return True


def _hand_protocols_to_applications(server_class: type) -> None:
    """Put each ``DirectSendProtocol`` connection in its scope's extensions (``frame_sink``),
    so that a consumer can write prebuilt frames to it."""
    if getattr(server_class, "hands_protocols", False):
        return
    create = server_class.create_application

    def create_application(self: Any, protocol: Any, scope: dict[str, Any]) -> Any:
        if getattr(protocol, "direct_send", False) and scope.get("type") == "websocket":
            # daphne builds this scope for this connection alone: extended in place, not
            # copied (every middleware's frame holds the scope it was given while it runs).
            extensions = dict(scope.get("extensions") or {})
            extensions[SINK_EXTENSION] = {"protocol": protocol}
            scope["extensions"] = extensions
        return create(self, protocol, scope)

    server_class.create_application = create_application
    server_class.hands_protocols = True
