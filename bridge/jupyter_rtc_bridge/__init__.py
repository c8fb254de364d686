"""jupyter_rtc_bridge: a Jupyter Server extension serving JupyterLab's collaboration routes
(``@jupyter/docprovider``, the collaboration UI, the server-side cell executor) from a Jupyter
RTC server, on the Jupyter Server's own origin and behind its own authentication.

Configure with ``--RTCBridge.server_url=<http(s) URL>`` and ``--RTCBridge.token=<token>`` (or
``RTC_SERVER_URL`` / ``RTC_BRIDGE_TOKEN``). Nothing here imports Django or the RTC server's code.
"""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"


def _jupyter_server_extension_points() -> list[dict[str, str]]:
    return [{"module": "jupyter_rtc_bridge"}]


def _load_jupyter_server_extension(serverapp: Any) -> None:
    from jupyter_rtc_bridge.extension import load

    load(serverapp)
