"""HTTP routes forwarded to the RTC server: status, body and content type come back unchanged.

Handlers are Jupyter's ``APIHandler``: Jupyter authenticates the request and ``@authorized``
checks the action on the route's resource before anything is sent; errors are Jupyter's JSON
``{"message", "reason"}``. Only the content type of the RTC server's answer is passed back, never
headers such as ``Location`` that would name the RTC server.
"""

from __future__ import annotations

import asyncio
import errno
from typing import Any

from jupyter_server.auth.decorator import authorized
from jupyter_server.base.handlers import APIHandler
from tornado import httpclient, iostream, web

from jupyter_rtc_bridge import events, upstream
from jupyter_rtc_bridge.config import CheckedSettings
from jupyter_rtc_bridge.identity import IdentityTooLarge, identity_header
from jupyter_rtc_bridge.status import RTCServerStatus

UNREACHABLE = "The collaboration server cannot be reached"
BODY_METHODS = {"POST", "PUT", "PATCH"}


class HTTPClients:
    """One tornado HTTP client per event loop, made on first use (not at import or load time,
    when the server's loop may not run yet)."""

    def __init__(self, settings: CheckedSettings):
        self.settings = settings
        self._clients: dict[int, httpclient.AsyncHTTPClient] = {}

    def get(self) -> httpclient.AsyncHTTPClient:
        loop = id(asyncio.get_running_loop())
        client = self._clients.get(loop)
        if client is None:
            client = httpclient.AsyncHTTPClient(
                force_instance=True,
                max_clients=200,  # an execution waits for its answer: many may be in flight
                max_body_size=self.settings.max_message_size,
            )
            self._clients[loop] = client
        return client

    def close(self) -> None:
        for client in self._clients.values():
            client.close()
        self._clients.clear()


class BridgeMixin:
    """What every bridge handler has: the settings, and the identity it acts for."""

    status: RTCServerStatus | None = None

    def initialize(
        self,
        bridge: CheckedSettings,
        clients: HTTPClients | None = None,
        status: RTCServerStatus | None = None,
    ) -> None:
        self.bridge = bridge
        self.clients = clients
        self.status = status

    def upstream_failed(self) -> None:
        """A request to the RTC server got no answer (JupyterLab is told: ``status``)."""
        if self.status is not None:
            self.status.failed()

    def upstream_answered(self) -> None:
        """The RTC server answered (its own 5xx too: they say what it could not do)."""
        if self.status is not None:
            self.status.answered()

    def upstream_headers(self) -> dict[str, str]:
        try:
            identity = identity_header(self.current_user)  # type: ignore[attr-defined]
        except IdentityTooLarge as error:
            raise web.HTTPError(400, str(error), reason="Bad Identity") from None
        return upstream.headers(self.bridge.token, identity)


class ForwardHandler(BridgeMixin, APIHandler):
    """Forwards the request as it is; subclasses say which methods, on which resource."""

    auth_resource = "contents"

    async def forward(self) -> httpclient.HTTPResponse | None:
        """Send the request on and answer with the RTC server's answer (returned too; None when
        the RTC server could not be reached)."""
        request = self.request
        target = upstream.http_url(self.bridge.server_url, request.uri or "", self.base_url)
        headers = self.upstream_headers()
        for name in ("Content-Type", "Accept"):
            if name in request.headers:
                headers[name] = request.headers[name]
        body: bytes | None = None
        if request.method in BODY_METHODS:
            body = request.body or b""
        assert self.clients is not None
        try:
            response = await self.clients.get().fetch(
                httpclient.HTTPRequest(
                    target,
                    method=request.method or "GET",
                    headers=headers,
                    body=body,
                    connect_timeout=self.bridge.connect_timeout,
                    request_timeout=self.bridge.request_timeout,
                    follow_redirects=False,
                    allow_nonstandard_methods=True,
                ),
                raise_error=False,
            )
        except (OSError, iostream.StreamClosedError, httpclient.HTTPClientError) as error:
            self.unreachable(error)
            return None
        if response.code == 599:  # tornado's "no answer" (timeout, reset)
            self.unreachable(response.error or TimeoutError())
            return None
        self.upstream_answered()
        self.set_status(response.code, response.reason or "Unknown")
        content_type = response.headers.get("Content-Type")
        if content_type:
            self.set_header("Content-Type", content_type)
        else:
            self.clear_header("Content-Type")
        if response.code not in (204, 304) and response.body:
            self.write(response.body)
        await self.finish()
        return response

    def unreachable(self, error: BaseException) -> None:
        """503 in Jupyter's error format; the RTC server's address only in the server's log."""
        self.log.warning("RTC server %s unreachable: %r", self.bridge.server_url, error)
        self.upstream_failed()
        timed_out = isinstance(error, TimeoutError) or getattr(error, "code", None) == 599
        refused = isinstance(error, ConnectionRefusedError) or (
            isinstance(error, OSError) and error.errno == errno.ECONNREFUSED
        )
        why = "no answer in time" if timed_out else "connection refused" if refused else "no answer"
        raise web.HTTPError(503, f"{UNREACHABLE} ({why}).", reason="RTC Server Unavailable")

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        # APIHandler.write_error, but on a response that may already carry upstream headers.
        self.clear_header("Content-Type")
        super().write_error(status_code, **kwargs)


class CollaborationSession(ForwardHandler):
    """``PUT /api/collaboration/session/<path>``."""

    @authorized
    async def put(self, path: str) -> None:
        await self.forward()


class CollaborationTimeline(ForwardHandler):
    """``GET /api/collaboration/timeline/<path>``."""

    @authorized
    async def get(self, path: str) -> None:
        await self.forward()


class CollaborationUndoRedo(ForwardHandler):
    """``PUT /api/collaboration/undo_redo/<room>``."""

    @authorized
    async def put(self, room: str) -> None:
        await self.forward()


class CollaborationFork(ForwardHandler):
    """``PUT|GET|DELETE /api/collaboration/fork/<id>``; a fork made (201) or ended (200) is
    announced on Jupyter's event bus, as jupyter-collaboration does (``events``)."""

    @authorized
    async def get(self, fork: str) -> None:
        await self.forward()

    @authorized
    async def put(self, fork: str) -> None:
        self.announce(await self.forward(), 201, "create")

    @authorized
    async def delete(self, fork: str) -> None:
        self.announce(await self.forward(), 200, "delete")

    def announce(self, response: httpclient.HTTPResponse | None, code: int, action: str) -> None:
        if response is None or response.code != code:
            return
        username = getattr(self.current_user, "username", "") or ""
        event = events.fork_event(response.body or b"", username, action)
        if event is not None:
            self.event_logger.emit(schema_id=events.FORK_EVENTS, data=event)


class KernelExecute(ForwardHandler):
    """``POST /api/kernels/<id>/execute``: running code is Jupyter's ``execute`` on kernels."""

    auth_resource = "kernels"

    @authorized("execute")
    async def post(self, kernel_id: str) -> None:
        await self.forward()


class KernelRequest(ForwardHandler):
    """``GET /api/kernels/<id>/requests/<uid>``."""

    auth_resource = "kernels"

    @authorized
    async def get(self, kernel_id: str, request_id: str) -> None:
        await self.forward()


class KernelInput(ForwardHandler):
    """``POST /api/kernels/<id>/input``: a reply to a running cell's ``input()``."""

    auth_resource = "kernels"

    @authorized("execute")
    async def post(self, kernel_id: str) -> None:
        await self.forward()
