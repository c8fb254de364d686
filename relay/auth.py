"""WebSocket authentication: an API token (``Authorization: Token <key>`` header, or
``?token=<key>``), or the Django session cookie.

``scope["rtc_auth"]`` records how the user was authenticated ("token", "session" or None), because
the origin check applies only to cookie sessions: a cookie is sent by the browser whatever page
opened the socket, while a token has to be known by the page.

A bridge's token may add ``X-Jupyter-User`` to run the connection as the Jupyter user it acts
for (``relay.identity`` decides); a refusal is kept in ``scope["rtc_auth_refusal"]`` (close
code, error code, reason) for the consumer to close with once it has accepted.

A database that cannot be reached while the handshake is authenticated (a token, a session, a
Jupyter user looked up) is kept in ``scope["rtc_database_error"]``, the user left anonymous: the
consumer accepts and closes with 4503 (``database-unavailable``) instead of the handshake failing
with a 500 and a traceback.

The header wins over ``?token=``: a program in front of this server (the Jupyter bridge) forwards
its clients' query strings as they are, and those may carry a ``token`` of their own (JupyterLab
appends Jupyter's token to its WebSocket URLs), which means nothing here.
"""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

from channels.auth import AuthMiddleware
from channels.db import database_sync_to_async
from channels.sessions import CookieMiddleware, SessionMiddleware
from django.conf import settings
from django.contrib.auth.models import AnonymousUser

from relay import identity
from tables.outages import DATABASE_ERRORS, one_line

TOKEN_KEYWORD = "token"
JUPYTER_USER_HEADER = identity.HEADER.lower().encode()


@database_sync_to_async
def _user_for_token(key: str):
    from relay.tokens import token_for_key

    token = token_for_key(key)
    if token is None:
        return None
    return token.user if token.user.is_active else None


def _header_values(scope, name: bytes) -> list[str]:
    headers = scope.get("headers", [])
    return [value.decode("latin1") for key, value in headers if key.lower() == name]


def _header(scope, name: bytes) -> str | None:
    values = _header_values(scope, name)
    return values[0] if values else None


def header_token(scope) -> tuple[str | None, str | None]:
    """``(key, error)`` from an ``Authorization: Token <key>`` header, as REST framework reads
    it: ``(None, None)`` when there is no such header (another scheme is not ours to judge)."""
    for value in _header_values(scope, b"authorization"):
        parts = value.split()
        if not parts or parts[0].lower() != TOKEN_KEYWORD:
            continue
        if len(parts) != 2:
            return None, "invalid token header: give one key after 'Token'"
        return parts[1], None
    return None, None


def query_token(scope) -> str | None:
    keys = parse_qs(scope.get("query_string", b"").decode("latin1")).get("token")
    return keys[-1] if keys else None


def has_token(scope) -> bool:
    """Whether the handshake names a token at all (header or query), valid or not."""
    key, error = header_token(scope)
    return key is not None or error is not None or query_token(scope) is not None


class TokenAuthMiddleware:
    """An API token sets ``scope["user"]``; otherwise the session's user stands."""

    def __init__(self, inner):
        self.inner = inner

    async def __call__(self, scope, receive, send):
        scope = dict(scope)
        scope["rtc_auth_error"] = None
        scope["rtc_auth_refusal"] = None
        try:
            await self.authenticate(scope)
        except DATABASE_ERRORS as error:
            scope["rtc_database_error"] = one_line(error)
        if scope.get("rtc_database_error"):
            scope["user"] = AnonymousUser()
            scope["rtc_auth"] = None
        return await self.inner(scope, receive, send)

    async def authenticate(self, scope) -> None:
        key, error = header_token(scope)
        if key is None and error is None:
            key = query_token(scope)
        if error is not None or key is not None:
            user = None if error else await _user_for_token(key)
            if user is None:
                scope["user"] = AnonymousUser()
                scope["rtc_auth"] = None
                scope["rtc_auth_error"] = error or "invalid token"
            else:
                scope["user"] = user
                scope["rtc_auth"] = "token"
        else:
            user = scope.get("user")  # resolved by channels' AuthMiddleware, outside us
            authenticated = user is not None and user.is_authenticated
            scope["rtc_auth"] = "session" if authenticated else None
        await _act_for_jupyter_user(scope)


async def _act_for_jupyter_user(scope) -> None:
    """With ``X-Jupyter-User``: the mapped user for a bridge's token, a refusal for anyone else
    (never the header ignored)."""
    scope["rtc_auth_refusal"] = None
    values = _header_values(scope, JUPYTER_USER_HEADER)
    if not values or scope["rtc_auth_error"]:
        return
    if scope["rtc_auth"] is None:
        scope["rtc_auth_error"] = f"{identity.HEADER} needs a bridge's API token"
        return
    try:
        if scope["rtc_auth"] == "session":
            raise identity.MayNotActForOthers(
                f"a session may not act for Jupyter users ({identity.HEADER}); only a bridge's "
                "token may"
            )
        acting = await database_sync_to_async(_resolve)(scope["user"], values)
    except identity.IdentityRefused as error:
        scope["user"] = AnonymousUser()
        scope["rtc_auth_refusal"] = (error.close_code, error.code, str(error))
        return
    scope["user"] = acting


def _resolve(token_user, values: list[str]):
    """``resolve_acting_user``, the header given more than once being malformed (the permission
    still checked first)."""
    if len(values) > 1 and identity.may_act_for_others(token_user):
        raise identity.BadIdentity(f"{identity.HEADER} given more than once")
    return identity.resolve_acting_user(token_user, values[0])


class SessionAuthMiddleware(AuthMiddleware):
    """Channels' session authentication, a database error kept for the consumer to refuse."""

    async def resolve_scope(self, scope) -> None:
        try:
            await super().resolve_scope(scope)
        except DATABASE_ERRORS as error:
            scope["user"]._wrapped = AnonymousUser()
            scope["rtc_database_error"] = one_line(error)


class RTCAuthMiddlewareStack:
    """Session then token auth; token connections skip the session stack, whose wrapper runs on
    every frame sent and which a token connection has no use for."""

    def __init__(self, inner):
        self.with_token = TokenAuthMiddleware(inner)
        self.with_session = CookieMiddleware(
            SessionMiddleware(SessionAuthMiddleware(TokenAuthMiddleware(inner)))
        )

    async def __call__(self, scope, receive, send):
        if has_token(scope):
            return await self.with_token(scope, receive, send)
        return await self.with_session(scope, receive, send)


DEFAULT_PORTS = {"http": 80, "https": 443}

SiteOrigin = tuple[str, str, int]
"""``(scheme, host, port)``, lowercased, the port given even when it is the scheme's default."""


def parse_origin(scheme: str, netloc: str) -> SiteOrigin | None:
    """``(scheme, host, port)`` for a scheme and ``host[:port]`` (None: not an http(s) origin,
    or a malformed one)."""
    scheme = scheme.lower()
    if scheme not in DEFAULT_PORTS or not netloc or "@" in netloc:
        return None
    try:
        parsed = urlsplit(f"//{netloc}")
        port = parsed.port
    except ValueError:
        return None
    if not parsed.hostname:
        return None
    return scheme, parsed.hostname.lower(), port if port is not None else DEFAULT_PORTS[scheme]


def _origin_of(url: str) -> SiteOrigin | None:
    try:
        parsed = urlsplit(url.strip())
    except ValueError:
        return None
    if parsed.path or parsed.query or parsed.fragment:
        return None
    return parse_origin(parsed.scheme, parsed.netloc)


def server_scheme(scope) -> str:
    """``http`` or ``https``: how the client reached this server, decided as Django decides
    ``request.scheme``. With ``SECURE_PROXY_SSL_HEADER`` (``("HTTP_X_FORWARDED_PROTO",
    "https")``), a proxy's header when present (its first value); else the connection's own
    scheme (``wss`` is https; ASGI's default, and daphne's, whose WebSocket scope names none,
    is ``ws``)."""
    proxy_header = getattr(settings, "SECURE_PROXY_SSL_HEADER", None)
    if proxy_header:
        meta_name, secure_value = proxy_header
        name = meta_name.removeprefix("HTTP_").replace("_", "-").lower().encode()
        value = _header(scope, name)
        if value is not None:
            return "https" if value.split(",", 1)[0].strip() == secure_value else "http"
    return "https" if scope.get("scheme") in ("wss", "https") else "http"


def _trusted(origin: SiteOrigin) -> bool:
    """A ``CSRF_TRUSTED_ORIGINS`` entry, as Django's CSRF check reads them: an origin, or
    ``scheme://*.domain`` for the domain and its subdomains (same scheme and port)."""
    scheme, host, port = origin
    for entry in getattr(settings, "CSRF_TRUSTED_ORIGINS", []):
        wildcard = "://*." in entry
        trusted = _origin_of(entry.replace("://*.", "://", 1) if wildcard else entry)
        if trusted is None or (trusted[0], trusted[2]) != (scheme, port):
            continue
        if host == trusted[1] or (wildcard and host.endswith("." + trusted[1])):
            return True
    return False


def origin_allowed(scope) -> bool:
    """Same origin (Origin's scheme, host and port equal the server's: ``server_scheme`` and
    the Host header, default ports made explicit) or a CSRF-trusted origin.

    Requests without an Origin header are not from a browser page, so no cookie is at risk.
    An https page is not the origin of an http server on the same host and port, nor the
    other way round.
    """
    origin_header = _header(scope, b"origin")
    if origin_header is None:
        return True
    origin = _origin_of(origin_header)
    if origin is None:
        return False  # "null" (a sandboxed or file page), or not an origin at all
    host = _header(scope, b"host")
    if host and origin == parse_origin(server_scheme(scope), host):
        return True
    return _trusted(origin)
