"""A real Jupyter Server (with JupyterLab) running the bridge (``jupyter_rtc_bridge``), for tests.

``BridgedJupyter`` is ``LocalJupyterServer`` (a subprocess on 127.0.0.1 with a token, a private
root directory and private Jupyter directories, ``--allow-root`` when root) with JupyterLab and
the bridge enabled on the command line (the private config directories hold no
``jupyter_server_config.d``) and the bridge's settings given as options. ``start()`` waits until
the server answers.

``bridged_jupyter`` is a factory fixture: ``bridged_jupyter(server_url, token, **kwargs)``; every
server it started is closed at teardown.

Registered as a plugin (``pytest_plugins``) and imported by tests alike: PYTEST_DONT_REWRITE.
"""

from __future__ import annotations

import http.client
import os
import subprocess
import sys
from collections.abc import Callable, Iterator, Mapping, Sequence
from http.cookies import SimpleCookie
from typing import Any

import pytest

from jupyter_sync.jupyter.launcher import JupyterLaunchError, LocalJupyterServer

EXTENSIONS = {"jupyterlab": True, "jupyter_rtc_bridge": True}


def extensions_options(extra: Mapping[str, bool] | None = None) -> list[str]:
    """One ``--ServerApp.jpserver_extensions=<name>=<bool>`` per extension (traitlets merges
    them, and the launcher's own one for terminals)."""
    enabled = {**EXTENSIONS, **(extra or {})}
    return [f"--ServerApp.jpserver_extensions={name}={on}" for name, on in enabled.items()]


class BridgedJupyter(LocalJupyterServer):
    """A Jupyter Server with JupyterLab and the bridge pointed at ``server_url``."""

    def __init__(
        self,
        server_url: str | None,
        bridge_token: str | None,
        *,
        extensions: Mapping[str, bool] | None = None,
        env: Mapping[str, str] | None = None,
        args: Sequence[str] = (),
        **kwargs: Any,
    ):
        options = extensions_options(extensions)
        if server_url is not None:
            options.append(f"--RTCBridge.server_url={server_url}")
        if bridge_token is not None:
            options.append(f"--RTCBridge.token={bridge_token}")
        # Neither variable leaks in from the test's own environment unless given.
        clean = {"RTC_SERVER_URL": "", "RTC_BRIDGE_TOKEN": "", **(env or {})}
        super().__init__(env=clean, args=[*options, *args], **kwargs)
        self.cookies: SimpleCookie = SimpleCookie()

    def request(
        self,
        method: str,
        path: str,
        *,
        body: bytes | None = None,
        headers: Mapping[str, str] | None = None,
        token: bool = True,
        timeout: float = 60.0,
    ) -> tuple[int, dict[str, str], bytes]:
        """One HTTP request (with the Jupyter token and the cookies Jupyter set, unless
        ``token=False``): status, headers (lower-case names), body."""
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
        sent = dict(headers or {})
        if token:
            sent["Authorization"] = f"token {self.token}"
            if self.cookies:  # like a browser: Jupyter's anonymous user stays the same one
                sent["Cookie"] = "; ".join(f"{k}={v.value}" for k, v in self.cookies.items())
        if body is not None:
            sent.setdefault("Content-Type", "application/json")
        try:
            conn.request(method, path, body=body, headers=sent)
            response = conn.getresponse()
            if token:
                for cookie in response.msg.get_all("Set-Cookie") or []:
                    self.cookies.load(cookie)
            received = {name.lower(): value for name, value in response.getheaders()}
            return response.status, received, response.read()
        finally:
            conn.close()

    def run_to_exit(self, timeout: float = 60.0) -> subprocess.CompletedProcess[str]:
        """Run the server's command in the foreground: for servers that must refuse to start."""
        return subprocess.run(
            self.command(),
            cwd=self.root_dir,
            env=self.environment(),
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )

    @property
    def ws_url(self) -> str:
        return self.url.replace("http://", "ws://", 1)


def jupyter_command(*args: str) -> list[str]:
    """``jupyter <args>`` from this virtualenv."""
    sibling = os.path.join(os.path.dirname(sys.executable), "jupyter")
    return [sibling, *args] if os.path.exists(sibling) else [sys.executable, "-m", "jupyter", *args]


@pytest.fixture
def bridged_jupyter() -> Iterator[Callable[..., BridgedJupyter]]:
    """A factory of started ``BridgedJupyter`` servers, all closed at teardown."""
    servers: list[BridgedJupyter] = []

    def start(server_url: str | None, bridge_token: str | None, **kwargs: Any) -> BridgedJupyter:
        server = BridgedJupyter(server_url, bridge_token, **kwargs)
        servers.append(server)
        try:
            return server.start()
        except JupyterLaunchError as error:
            pytest.fail(f"the bridged Jupyter Server did not start: {error}", pytrace=False)

    yield start
    for server in servers:
        print(f"===== bridged Jupyter Server {server.url} log =====\n{server.log}")
        server.close()
