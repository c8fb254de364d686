"""Whether the bridge can reach the RTC server, as its own requests find it, told to JupyterLab.

While the RTC server is down, JupyterLab's docprovider keeps what is typed in the window and
sends it when the room reconnects, but shows nothing (it reacts to one close code only, 1003, by
disposing the document), so people would type on without knowing. The bridge knows: its rooms
cannot connect, its forwarded requests get no answer.

- ``RTCServerStatus`` keeps the state from those real attempts: a failed one marks the RTC server
  unreachable, any answer marks it reachable. While it is unreachable, a cheap probe (one GET of
  the RTC server's root; any answer but a gateway's 502/503/504 counts) runs with backoff, so it
  is seen to come back with nobody doing anything.
- Each change is emitted on Jupyter Server's event bus (``SCHEMA_ID``, ``{"reachable": bool}``),
  which JupyterLab streams to every page (``serviceManager.events``) over ``/api/events/subscribe``,
  behind Jupyter's authentication; ``StatusHandler`` (``GET /api/rtc-bridge/status``) answers the
  state for a page that just loaded. The bridge's front-end extension (``labextension/``) turns
  both into a JupyterLab notification. Neither says where the RTC server is, nor how the bridge
  authenticates to it.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from jupyter_server.auth.decorator import authorized
from jupyter_server.base.handlers import APIHandler
from tornado import httpclient, iostream, web

SCHEMA_ID = "https://events.jupyter.org/jupyter_rtc_bridge/rtc_server/v1"
SCHEMA: dict[str, Any] = {
    "$id": SCHEMA_ID,
    "version": "1",
    "title": "RTC server reachability",
    "description": "Emitted by jupyter_rtc_bridge when the RTC server behind JupyterLab's "
    "collaboration stops answering the bridge, and when it answers again.",
    "type": "object",
    "required": ["reachable"],
    "properties": {
        "reachable": {
            "type": "boolean",
            "title": "Reachable",
            "description": "Whether the bridge reaches the RTC server now.",
        }
    },
}
STATUS_ROUTE = r"/api/rtc-bridge/status"
# A proxy in front of the RTC server answering for it: to the probe of its root and to a room's
# handshake (the RTC server answers neither with these; its API's own 502/503/504, forwarded,
# say what it could not do, and count as answers).
GATEWAY_DOWN = {502, 503, 504}
FIRST_PROBE = 1.0  # seconds after the first failure; then doubled up to probe_interval


class RTCServerStatus:
    """The RTC server's reachability as the bridge's requests find it, told on every change.

    Lives on the Jupyter Server's event loop: handlers call ``failed`` and ``answered`` from
    their coroutines; the probe is scheduled on that loop, one short request at a time (no task
    outlives a probe, so nothing is left pending when the server stops).
    """

    def __init__(
        self,
        server_url: str,
        *,
        event_logger: Any,
        clients: Any,
        timeout: float,
        max_interval: float,
        log: logging.Logger,
    ):
        self.server_url = server_url
        self.event_logger = event_logger
        self.clients = clients
        self.timeout = timeout
        self.max_interval = max(max_interval, FIRST_PROBE)
        self.log = log
        self.reachable = True  # until a request finds otherwise
        self._interval = FIRST_PROBE
        self._next_probe: asyncio.TimerHandle | None = None
        self._probing: asyncio.Task[None] | None = None

    def failed(self) -> None:
        """A request to the RTC server got no answer: unreachable, and probe until it is back."""
        if not self.reachable:
            return
        self.reachable = False
        self.log.warning(
            "jupyter_rtc_bridge: RTC server %s unreachable; JupyterLab shows it, and the bridge "
            "checks every %gs at most until it answers",
            self.server_url,
            self.max_interval,
        )
        self._emit()
        self._interval = FIRST_PROBE
        self._schedule_probe()

    def answered(self) -> None:
        """The RTC server answered a request: reachable."""
        if self.reachable:
            return
        self.reachable = True
        if self._next_probe is not None:
            self._next_probe.cancel()
            self._next_probe = None
        self.log.info("jupyter_rtc_bridge: RTC server %s reachable again", self.server_url)
        self._emit()

    def _emit(self) -> None:
        self.event_logger.emit(schema_id=SCHEMA_ID, data={"reachable": self.reachable})

    # --- The probe, while unreachable ---------------------------------------------------------

    def _schedule_probe(self) -> None:
        loop = asyncio.get_running_loop()
        self._next_probe = loop.call_later(self._interval, self._start_probe)
        self._interval = min(self._interval * 2, self.max_interval)

    def _start_probe(self) -> None:
        self._next_probe = None
        if self.reachable or (self._probing is not None and not self._probing.done()):
            return
        self._probing = asyncio.get_running_loop().create_task(self._probe())

    async def _probe(self) -> None:
        try:
            response = await self.clients.get().fetch(
                httpclient.HTTPRequest(
                    self.server_url + "/",
                    method="GET",
                    connect_timeout=self.timeout,
                    request_timeout=self.timeout,
                    follow_redirects=False,
                ),
                raise_error=False,
            )
            code = response.code
        except (OSError, iostream.StreamClosedError, httpclient.HTTPClientError):
            code = 599
        if self.reachable:  # a real request found it back meanwhile
            return
        if code == 599 or code in GATEWAY_DOWN:
            self._schedule_probe()
        else:
            self.answered()


class StatusHandler(APIHandler):
    """``GET /api/rtc-bridge/status``: ``{"reachable": bool}``, for a page that just loaded.

    Jupyter authenticates the request and authorizes reading its events (what this repeats);
    the answer names nothing of the RTC server.
    """

    auth_resource = "events"

    def initialize(self, status: RTCServerStatus) -> None:
        self.status = status

    @web.authenticated
    @authorized
    async def get(self) -> None:
        self.set_header("Cache-Control", "no-store")
        await self.finish({"reachable": self.status.reachable})
