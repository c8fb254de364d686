"""WebSocket authentication: API token in the query string, or the Django session cookie.

``scope["rtc_auth"]`` records how the user was authenticated ("token", "session" or None), because
the origin check applies only to cookie sessions: a cookie is sent by the browser whatever page
opened the socket, while a token has to be known by the page.
"""

from __future__ import annotations

from urllib.parse import parse_qs, urlparse

from channels.auth import AuthMiddlewareStack
from channels.db import database_sync_to_async
from django.conf import settings
from django.contrib.auth.models import AnonymousUser


@database_sync_to_async
def _user_for_token(key: str):
    from rest_framework.authtoken.models import Token

    try:
        token = Token.objects.select_related("user").get(key=key)
    except Token.DoesNotExist:
        return None
    return token.user if token.user.is_active else None


class TokenAuthMiddleware:
    """``?token=<key>`` sets ``scope["user"]``; otherwise the session's user stands."""

    def __init__(self, inner):
        self.inner = inner

    async def __call__(self, scope, receive, send):
        scope = dict(scope)
        query = parse_qs(scope.get("query_string", b"").decode("latin1"))
        keys = query.get("token")
        scope["rtc_auth_error"] = None
        if keys:
            user = await _user_for_token(keys[-1])
            if user is None:
                scope["user"] = AnonymousUser()
                scope["rtc_auth"] = None
                scope["rtc_auth_error"] = "invalid token"
            else:
                scope["user"] = user
                scope["rtc_auth"] = "token"
        else:
            user = scope.get("user")  # resolved by channels' AuthMiddleware, outside us
            authenticated = user is not None and user.is_authenticated
            scope["rtc_auth"] = "session" if authenticated else None
        return await self.inner(scope, receive, send)


class RTCAuthMiddlewareStack:
    """Session then token auth; token connections skip the session stack, whose wrapper runs on
    every frame sent and which a token connection has no use for."""

    def __init__(self, inner):
        self.with_token = TokenAuthMiddleware(inner)
        self.with_session = AuthMiddlewareStack(TokenAuthMiddleware(inner))

    async def __call__(self, scope, receive, send):
        if "token" in parse_qs(scope.get("query_string", b"").decode("latin1")):
            return await self.with_token(scope, receive, send)
        return await self.with_session(scope, receive, send)


def _header(scope, name: bytes) -> str | None:
    for key, value in scope.get("headers", []):
        if key.lower() == name:
            return value.decode("latin1")
    return None


def origin_allowed(scope) -> bool:
    """Same-origin (Origin's host:port equals the Host header) or a CSRF-trusted origin.

    Requests without an Origin header are not from a browser page, so no cookie is at risk.
    """
    origin = _header(scope, b"origin")
    if origin is None:
        return True
    if origin in getattr(settings, "CSRF_TRUSTED_ORIGINS", []):
        return True
    host = _header(scope, b"host")
    parsed = urlparse(origin)
    return bool(host) and parsed.netloc.lower() == host.lower()
