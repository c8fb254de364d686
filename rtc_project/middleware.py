"""Django's own middleware, with the hooks that touch no database run on the event loop.

Under ASGI, Django runs every hook of a ``MiddlewareMixin`` middleware through ``sync_to_async``
on its one sync thread: twelve thread hops per request for the stack in ``settings.MIDDLEWARE``,
each queued behind whatever database work that thread is doing for the WebSocket consumers at
the time. Most of those hooks only read headers and cookies, set headers, or attach lazy objects
(the session store, ``request.user``, the message storage) that load nothing until a view uses
them, and views run on the thread. Those hooks run here where the request already is, on the
event loop. A hook that can reach the database (a session being saved, messages stored in the
session, a CSRF secret kept in the session, a form body read for its CSRF token) still goes to
the sync thread, decided per request by the ``*_on_loop`` predicates below.

Each class is Django's middleware of the same name with that one difference; under WSGI (and
Django's test ``Client``) they are Django's unchanged.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from asgiref.sync import sync_to_async
from django.conf import settings
from django.contrib.auth import middleware as auth
from django.contrib.messages import middleware as messages
from django.contrib.sessions import middleware as sessions
from django.http import HttpRequest, HttpResponseBase
from django.middleware import clickjacking, common, csrf, security

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "TRACE"})


class HooksOnTheLoop:
    """Mixin for a ``MiddlewareMixin``: under ASGI, ``process_request``, ``process_response``
    and ``process_view`` run on the event loop when their predicate says they touch no database
    or file for this request, and on the sync thread (as Django runs them) otherwise."""

    def request_on_loop(self, request: HttpRequest) -> bool:
        return True

    def response_on_loop(self, request: HttpRequest, response: HttpResponseBase) -> bool:
        return True

    def view_on_loop(self, request: HttpRequest, view: Callable[..., Any]) -> bool:
        return True

    def __init__(self, get_response: Callable[..., Any]) -> None:
        super().__init__(get_response)  # type: ignore[call-arg]
        if self.async_mode and hasattr(self, "process_view"):
            # Django adapts process_view to the handler once, when it loads the middleware: an
            # async one is awaited as it is, a sync one would go through sync_to_async.
            self._process_view = self.process_view
            self.process_view = self._process_view_async

    @staticmethod
    async def _run(on_loop: bool, hook: Callable[..., Any], *args: Any) -> Any:
        """``hook(*args)`` here on the event loop, or on the sync thread as Django runs it."""
        if on_loop:
            return hook(*args)
        return await sync_to_async(hook, thread_sensitive=True)(*args)

    async def __acall__(self, request: HttpRequest) -> HttpResponseBase:
        response = None
        if hasattr(self, "process_request"):
            response = await self._run(self.request_on_loop(request), self.process_request, request)
        response = response or await self.get_response(request)
        if hasattr(self, "process_response"):
            response = await self._run(
                self.response_on_loop(request, response), self.process_response, request, response
            )
        return response

    async def _process_view_async(
        self, request: HttpRequest, view: Callable[..., Any], args: Any, kwargs: Any
    ) -> HttpResponseBase | None:
        return await self._run(
            self.view_on_loop(request, view), self._process_view, request, view, args, kwargs
        )


class SecurityMiddleware(HooksOnTheLoop, security.SecurityMiddleware):
    """Headers and the HTTPS redirect: nothing but the request and the response."""


class SessionMiddleware(HooksOnTheLoop, sessions.SessionMiddleware):
    """The session store is lazy: made on the loop, loaded on the thread by whoever reads it;
    saving it goes to the thread."""

    def response_on_loop(self, request: HttpRequest, response: HttpResponseBase) -> bool:
        session = getattr(request, "session", None)
        if session is None:
            return True
        return not (session.modified or settings.SESSION_SAVE_EVERY_REQUEST)


class CommonMiddleware(HooksOnTheLoop, common.CommonMiddleware):
    """User agents, ``APPEND_SLASH`` (a URL resolution) and ``Content-Length``."""


class CsrfViewMiddleware(HooksOnTheLoop, csrf.CsrfViewMiddleware):
    """The secret is read from the cookie; a secret kept in the session, or a token looked for
    in a form body (an unsafe request to a view that is not exempt), is the thread's work."""

    def request_on_loop(self, request: HttpRequest) -> bool:
        return not settings.CSRF_USE_SESSIONS

    def response_on_loop(self, request: HttpRequest, response: HttpResponseBase) -> bool:
        return not settings.CSRF_USE_SESSIONS

    def view_on_loop(self, request: HttpRequest, view: Callable[..., Any]) -> bool:
        if settings.CSRF_USE_SESSIONS:
            return False
        return getattr(view, "csrf_exempt", False) or request.method in SAFE_METHODS


class AuthenticationMiddleware(HooksOnTheLoop, auth.AuthenticationMiddleware):
    """``request.user`` is lazy: the user is loaded on the thread by the first reader."""


class MessageMiddleware(HooksOnTheLoop, messages.MessageMiddleware):
    """The storage is lazy; storing messages (in the cookie or the session) goes to the thread,
    and a request that neither read nor added any has nothing to store."""

    def response_on_loop(self, request: HttpRequest, response: HttpResponseBase) -> bool:
        storage = getattr(request, "_messages", None)
        return storage is None or not (storage.used or storage.added_new)


class XFrameOptionsMiddleware(HooksOnTheLoop, clickjacking.XFrameOptionsMiddleware):
    """One header."""
