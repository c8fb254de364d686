"""Loading the bridge into a Jupyter Server: check the settings, add the routes, set the page
config JupyterLab's collaboration front end reads.

A bridge with no RTC server configured stays out of the way (a warning, and ``disableRTC`` in the
page config: JupyterLab then runs without collaboration), so installing the package never breaks
a Jupyter Server. A bridge that is configured wrongly, or next to ``jupyter_server_ydoc`` (which
serves the same routes from its own in-memory rooms), refuses to start the server with one line
saying why.
"""

from __future__ import annotations

import importlib.util
import sys
from typing import Any

from jupyter_server.utils import url_path_join

from jupyter_rtc_bridge import events, forward, kernel_sockets, room, status
from jupyter_rtc_bridge.config import BridgeConfigError, CheckedSettings, RTCBridge

# Server extensions that serve the same routes from rooms of their own.
RIVALS = ("jupyter_server_ydoc", "jupyter_collaboration")

KERNEL = r"/api/kernels/(?P<kernel_id>[^/]+)"
ROUTES: list[tuple[str, type]] = [
    (r"/api/collaboration/session/(.+)", forward.CollaborationSession),
    (r"/api/collaboration/room/(.+)", room.RoomHandler),
    (r"/api/collaboration/timeline/(.+)", forward.CollaborationTimeline),
    (r"/api/collaboration/undo_redo/(.+)", forward.CollaborationUndoRedo),
    (r"/api/collaboration/fork/(.+)", forward.CollaborationFork),
    # Only these suffixes: Jupyter's own /api/kernels/<id>, /channels, /interrupt, /restart
    # stay Jupyter's.
    (KERNEL + r"/execute", forward.KernelExecute),
    (KERNEL + r"/requests/(?P<request_id>[^/]+)", forward.KernelRequest),
    (KERNEL + r"/input", forward.KernelInput),
]

PAGE_CONFIG = {"disableRTC": False, "serverSideExecution": True}
NO_RTC_PAGE_CONFIG = {"disableRTC": True, "serverSideExecution": False}


def set_page_config(serverapp: Any, values: dict[str, bool]) -> None:
    """The flags JupyterLab's page reads (``jupyter_server_ydoc`` sets them when it serves)."""
    serverapp.web_app.settings.setdefault("page_config_data", {}).update(values)


def enabled_rivals(serverapp: Any) -> list[str]:
    """The enabled server extensions that would serve the collaboration routes too."""
    enabled = serverapp.jpserver_extensions or {}
    return [
        name for name in RIVALS if enabled.get(name) and importlib.util.find_spec(name) is not None
    ]


def refuse(serverapp: Any, message: str) -> None:
    """Stop the server's start with one line (an extension's exception would only be logged)."""
    serverapp.log.critical("jupyter_rtc_bridge: %s", message)
    sys.exit(1)


def handlers(serverapp: Any, settings: CheckedSettings) -> list[tuple[str, type, dict]]:
    clients = forward.HTTPClients(settings)
    serverapp.web_app.settings["rtc_bridge_http_clients"] = clients
    # JupyterLab subscribes to the event bus for the schemas registered when it subscribes:
    # registered here, before the server serves anyone.
    serverapp.event_logger.register_event_schema(status.SCHEMA)
    reachability = status.RTCServerStatus(
        settings.server_url,
        event_logger=serverapp.event_logger,
        clients=clients,
        timeout=settings.connect_timeout,
        max_interval=settings.probe_interval,
        log=serverapp.log,
    )
    serverapp.web_app.settings["rtc_bridge_status"] = reachability
    kwargs = {"bridge": settings, "clients": clients, "status": reachability}
    routes = [
        (url_path_join(serverapp.base_url, pattern), handler, kwargs) for pattern, handler in ROUTES
    ]
    status_route = url_path_join(serverapp.base_url, status.STATUS_ROUTE)
    return [*routes, (status_route, status.StatusHandler, {"status": reachability})]


def load(serverapp: Any) -> None:
    """``_load_jupyter_server_extension``: validate, route, set the page config."""
    rivals = enabled_rivals(serverapp)
    if rivals:
        refuse(
            serverapp,
            f"{' and '.join(rivals)} is also enabled; both serve JupyterLab's collaboration "
            "routes. Disable it (jupyter server extension disable jupyter_server_ydoc) or the "
            "bridge.",
        )
    config = RTCBridge(parent=serverapp)
    if config.kernel_nodelay:
        kernel_sockets.install(serverapp)
    if not config.configured():
        serverapp.log.warning(
            "jupyter_rtc_bridge: no RTC server configured (RTCBridge.server_url or "
            "RTC_SERVER_URL); JupyterLab runs without real-time collaboration"
        )
        # The collaboration front end is installed with the bridge: without this it would call
        # routes nobody serves and fail to open every document.
        set_page_config(serverapp, NO_RTC_PAGE_CONFIG)
        return
    try:
        settings = config.checked()
    except BridgeConfigError as error:
        refuse(serverapp, str(error))
        return
    serverapp.web_app.add_handlers(".*$", handlers(serverapp, settings))
    events.register(serverapp.event_logger)
    set_page_config(serverapp, PAGE_CONFIG)
    serverapp.log.info("jupyter_rtc_bridge: collaboration routes served by %s", settings.server_url)
