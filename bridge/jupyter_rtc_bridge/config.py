"""The bridge's settings (``--RTCBridge.<name>=...``, or the environment), checked at start.

The token and the server's address are secrets of the Jupyter Server process: they live here and
in the requests the bridge makes, never in anything a browser is sent.
"""

from __future__ import annotations

import os
from urllib.parse import urlsplit, urlunsplit

from traitlets import Bool, Float, Int, Unicode, default
from traitlets.config import Configurable

MIB = 1024 * 1024
ROOM_MAX_MESSAGE_SIZE = 16 * MIB  # the RTC server's default RTC_MAX_MESSAGE_BYTES


class BridgeConfigError(ValueError):
    """A setting is missing or wrong; the message is one line naming the option."""


class RTCBridge(Configurable):
    """Where the RTC server is, how the bridge authenticates to it, and the limits it keeps."""

    server_url = Unicode(
        help="The RTC server's http(s) URL, e.g. https://rtc.example.org (env RTC_SERVER_URL)."
    ).tag(config=True)

    token = Unicode(
        help="The RTC server API token the bridge acts with (env RTC_BRIDGE_TOKEN). "
        "It needs the permission relay.act_for_jupyter_users on the RTC server."
    ).tag(config=True)

    connect_timeout = Float(10.0, help="Seconds to connect to the RTC server.").tag(config=True)

    request_timeout = Float(
        300.0, help="Seconds an HTTP request to the RTC server may take (an execution waits)."
    ).tag(config=True)

    max_message_size = Int(
        256 * MIB,
        help="The largest message from the RTC server (a document's whole state may be one) "
        "and HTTP body, in bytes (>= 64 MiB).",
    ).tag(config=True)

    room_max_message_size = Int(
        help="The largest WebSocket message a browser may send to a room, in bytes: the RTC "
        "server's own limit (env RTC_MAX_MESSAGE_BYTES, as the RTC server reads it; default "
        "16 MiB, its default), so that nothing it would refuse is read into memory first. A "
        "larger one closes the room with 1009."
    ).tag(config=True)

    ping_interval = Float(30.0, help="Seconds between WebSocket pings on both legs (0: none).").tag(
        config=True
    )

    kernel_nodelay = Bool(
        True,
        help="Send kernel WebSocket messages at once (TCP_NODELAY on Jupyter Server's kernel "
        "sockets): tornado leaves Nagle's algorithm on, which holds a kernel's back-to-back "
        "messages ~40 ms each for JupyterLab and the supernode alike. Applies whether or not an "
        "RTC server is configured.",
    ).tag(config=True)

    probe_interval = Float(
        10.0,
        help="While the RTC server is unreachable, the most seconds between two checks of "
        "whether it is back (the first after 1 s, then doubling).",
    ).tag(config=True)

    @default("server_url")
    def _server_url_default(self) -> str:
        return os.environ.get("RTC_SERVER_URL", "")

    @default("room_max_message_size")
    def _room_max_message_size_default(self) -> int:
        raw = os.environ.get("RTC_MAX_MESSAGE_BYTES", "").strip()
        return int(raw) if raw.isdigit() and int(raw) > 0 else ROOM_MAX_MESSAGE_SIZE

    @default("token")
    def _token_default(self) -> str:
        return os.environ.get("RTC_BRIDGE_TOKEN", "")

    def configured(self) -> bool:
        """Whether anything names an RTC server (an unconfigured bridge stays out of the way)."""
        return bool(self.server_url.strip())

    def checked(self) -> CheckedSettings:
        """The settings, validated; ``BridgeConfigError`` (one line) when they are not usable."""
        url = check_server_url(self.server_url)
        token = self.token.strip()
        if not token:
            raise BridgeConfigError(
                "RTCBridge.token (env RTC_BRIDGE_TOKEN) is not set: the bridge needs an API "
                "token of the RTC server"
            )
        if any(ch.isspace() for ch in token) or not token.isprintable():
            raise BridgeConfigError("RTCBridge.token (env RTC_BRIDGE_TOKEN) is not a token")
        if self.max_message_size < 64 * MIB:
            raise BridgeConfigError("RTCBridge.max_message_size must be at least 64 MiB")
        if self.probe_interval <= 0:
            raise BridgeConfigError("RTCBridge.probe_interval must be positive")
        if self.room_max_message_size < 1:
            raise BridgeConfigError("RTCBridge.room_max_message_size must be positive")
        return CheckedSettings(
            server_url=url,
            token=token,
            connect_timeout=self.connect_timeout,
            request_timeout=self.request_timeout,
            max_message_size=self.max_message_size,
            room_max_message_size=self.room_max_message_size,
            ping_interval=self.ping_interval,
            probe_interval=self.probe_interval,
        )


class CheckedSettings:
    """Validated settings, as the handlers use them."""

    def __init__(
        self,
        *,
        server_url: str,
        token: str,
        connect_timeout: float,
        request_timeout: float,
        max_message_size: int,
        room_max_message_size: int = ROOM_MAX_MESSAGE_SIZE,
        ping_interval: float,
        probe_interval: float = 10.0,
    ):
        self.server_url = server_url
        self.token = token
        self.connect_timeout = connect_timeout
        self.request_timeout = request_timeout
        self.max_message_size = max_message_size
        self.room_max_message_size = room_max_message_size
        self.ping_interval = ping_interval
        self.probe_interval = probe_interval

    def __repr__(self) -> str:  # never the token, should this end up in a log
        return f"<CheckedSettings server_url={self.server_url!r}>"


def check_server_url(value: str) -> str:
    """``value`` as a base URL without a trailing slash, or ``BridgeConfigError`` saying why."""
    name = "RTCBridge.server_url (env RTC_SERVER_URL)"
    value = value.strip()
    if not value:
        raise BridgeConfigError(f"{name} is not set")
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https"):
        raise BridgeConfigError(f"{name} must be an http:// or https:// URL, not {value!r}")
    if parts.username is not None or parts.password is not None:
        raise BridgeConfigError(f"{name} must not carry credentials; use RTCBridge.token")
    if parts.query or parts.fragment:
        raise BridgeConfigError(f"{name} must not have a query or a fragment: {value!r}")
    try:
        port = parts.port
    except ValueError:
        raise BridgeConfigError(f"{name} has a bad port: {value!r}") from None
    if not parts.hostname or port == 0:
        raise BridgeConfigError(f"{name} has no host: {value!r}")
    return urlunsplit((parts.scheme, parts.netloc, parts.path.rstrip("/"), "", ""))
