"""Where a request to the bridge goes on the RTC server, and what it carries there.

A route keeps its path, method, query and body (the RTC server serves the same routes at its
root); only Jupyter's own base URL is taken off, and Jupyter's ``token`` query parameter, a
secret of the Jupyter Server, is never passed on.
"""

from __future__ import annotations

from urllib.parse import parse_qsl, urlencode, urlsplit

JUPYTER_TOKEN_PARAM = "token"
ROOM_PARAMS = ("sessionId",)  # the only query a room's WebSocket carries upstream


def route_path(raw_path: str, base_url: str) -> str:
    """The request's path (still percent-encoded) without Jupyter's base URL: ``/api/...``."""
    base = "/" + base_url.strip("/")
    if base != "/" and (raw_path == base or raw_path.startswith(base + "/")):
        raw_path = raw_path[len(base) :]
    return raw_path if raw_path.startswith("/") else "/" + raw_path


def http_query(raw_query: str) -> str:
    """The query as sent, minus Jupyter's ``token``."""
    if not raw_query:
        return ""
    pairs = parse_qsl(raw_query, keep_blank_values=True)
    if not any(key == JUPYTER_TOKEN_PARAM for key, _ in pairs):
        return raw_query
    return urlencode([(key, value) for key, value in pairs if key != JUPYTER_TOKEN_PARAM])


def room_query(raw_query: str) -> str:
    """Only ``sessionId`` of a room's query (the browser's token and anything else stay here)."""
    pairs = parse_qsl(raw_query, keep_blank_values=True)
    return urlencode([(key, value) for key, value in pairs if key in ROOM_PARAMS])


def http_url(server_url: str, uri: str, base_url: str) -> str:
    """The RTC server's URL for a Jupyter request URI (path and query)."""
    parts = urlsplit(uri)
    query = http_query(parts.query)
    return server_url + route_path(parts.path, base_url) + (f"?{query}" if query else "")


def websocket_url(server_url: str, uri: str, base_url: str) -> str:
    """The RTC server's ``ws(s)://`` URL for a room's WebSocket request URI."""
    parts = urlsplit(uri)
    query = room_query(parts.query)
    scheme, rest = server_url.split("://", 1)
    ws_scheme = "wss" if scheme == "https" else "ws"
    path = route_path(parts.path, base_url)
    return f"{ws_scheme}://{rest}{path}" + (f"?{query}" if query else "")


def headers(token: str, identity: str) -> dict[str, str]:
    """What every request and handshake to the RTC server carries."""
    return {"Authorization": f"Token {token}", "X-Jupyter-User": identity}
