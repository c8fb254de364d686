"""``JupyterClient``: the REST API of a Jupyter Server (status, kernelspecs, kernels, sessions,
terminals, contents), Jupyter's JSON returned as it is; and the door to a kernel's channels
(``connect_kernel``)."""

from __future__ import annotations

import contextlib
import ipaddress
import json
import uuid
from typing import Any
from urllib.parse import quote, urlencode, urlsplit

import httpx
from jupyter_client.session import Session
from websockets.asyncio.client import ClientConnection
from websockets.asyncio.client import connect as ws_connect
from websockets.exceptions import InvalidHandshake, InvalidStatus

from jupyter_sync.jupyter.errors import JupyterError, JupyterUnavailable
from jupyter_sync.jupyter.frames import DEFAULT_TIMEOUT, Json
from jupyter_sync.jupyter.kernel import KernelConnection


def _is_loopback(url: str) -> bool:
    host = urlsplit(url).hostname or ""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _error_message(response: httpx.Response) -> str:
    """Jupyter's JSON error body has "message" and "reason"; anything else, its status text."""
    try:
        body = response.json()
    except ValueError:
        body = None
    if isinstance(body, dict):
        for key in ("message", "reason"):
            if body.get(key):
                return str(body[key])
    return response.reason_phrase or response.text[:200]


def _step(value: str) -> str:
    """One step of a Jupyter URL path (an id, a name, a path step), quoted whole. Every URL
    this client builds goes through here: ``.``, ``..`` and empty steps are refused, since
    they would make the URL name another endpoint, with this client's token."""
    if not isinstance(value, str) or value in ("", ".", ".."):
        raise JupyterError(400, f"not a name Jupyter's URLs can hold: {value!r}", "")
    return quote(value, safe="")


class JupyterClient:
    """The REST API of the Jupyter Server at ``url`` (token auth); use with ``async with``.

    ``timeout`` bounds every HTTP request, and the websocket handshake of ``connect_kernel``.
    """

    def __init__(self, url: str, token: str | None = None, *, timeout: float = DEFAULT_TIMEOUT):
        self.url = url.rstrip("/")
        self.token = token
        self.timeout = timeout
        headers = {"Authorization": f"token {token}"} if token else {}
        self._headers = headers
        # A proxy from the environment has no business relaying loopback traffic.
        self._trust_env = not _is_loopback(self.url)
        self._http = httpx.AsyncClient(
            base_url=self.url,
            headers=headers,
            timeout=httpx.Timeout(timeout),
            trust_env=self._trust_env,
        )
        self._connections: set[KernelConnection] = set()

    async def __aenter__(self) -> JupyterClient:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close every kernel connection opened through this client, then the HTTP client."""
        for connection in list(self._connections):
            await connection.close()
        await self._http.aclose()

    # --- HTTP ----------------------------------------------------------------------------------

    async def request(
        self,
        method: str,
        path: str,
        *,
        params: dict[str, Any] | None = None,
        body: Any = None,
    ) -> Any:
        """One API call: the decoded JSON answer (None for an empty one, e.g. 204)."""
        try:
            response = await self._http.request(
                method, path, params=params, json=body if body is not None else None
            )
        except httpx.TransportError as error:  # includes timeouts
            raise JupyterUnavailable(
                f"Jupyter Server unreachable ({method} {path}: {type(error).__name__})",
                f"{self.url}{path}",
                error,
            ) from error
        if response.status_code >= 400:
            raise JupyterError(response.status_code, _error_message(response), str(response.url))
        if response.status_code == 204 or not response.content:
            return None
        try:
            return response.json()
        except ValueError:  # a proxy's page, a truncated body: Jupyter's failure, not ours
            raise JupyterError(
                response.status_code, "the answer is not JSON", str(response.url)
            ) from None

    # --- Server --------------------------------------------------------------------------------

    async def status(self) -> Json:
        return await self.request("GET", "/api/status")

    async def kernelspecs(self) -> Json:
        """``{"default": name, "kernelspecs": {name: {"name", "spec", "resources"}}}``."""
        return await self.request("GET", "/api/kernelspecs")

    # --- Kernels -------------------------------------------------------------------------------

    async def kernels(self) -> list[Json]:
        return await self.request("GET", "/api/kernels")

    async def get_kernel(self, kernel_id: str) -> Json:
        return await self.request("GET", f"/api/kernels/{_step(kernel_id)}")

    async def start_kernel(self, name: str | None = None, path: str | None = None) -> Json:
        """Start a kernel (the default kernelspec without ``name``); ``path`` is its cwd."""
        body: Json = {}
        if name is not None:
            body["name"] = name
        if path is not None:
            body["path"] = path
        return await self.request("POST", "/api/kernels", body=body)

    async def shutdown_kernel(self, kernel_id: str) -> None:
        await self.request("DELETE", f"/api/kernels/{_step(kernel_id)}")

    async def interrupt_kernel(self, kernel_id: str) -> None:
        await self.request("POST", f"/api/kernels/{_step(kernel_id)}/interrupt")

    async def restart_kernel(self, kernel_id: str) -> Json:
        return await self.request("POST", f"/api/kernels/{_step(kernel_id)}/restart")

    # --- Sessions ------------------------------------------------------------------------------

    async def sessions(self) -> list[Json]:
        return await self.request("GET", "/api/sessions")

    async def get_session(self, session_id: str) -> Json:
        return await self.request("GET", f"/api/sessions/{_step(session_id)}")

    async def create_session(
        self,
        path: str,
        *,
        name: str | None = None,
        type: str = "notebook",
        kernel_name: str | None = None,
        kernel_id: str | None = None,
    ) -> Json:
        """A session for ``path``: on ``kernel_id``, or a new kernel (``kernel_name`` or default).

        The server answers with the existing session when ``path`` already has one.
        """
        kernel: Json = {}
        if kernel_id is not None:
            kernel["id"] = kernel_id
        if kernel_name is not None:
            kernel["name"] = kernel_name
        body: Json = {"path": path, "type": type, "name": name or "", "kernel": kernel}
        return await self.request("POST", "/api/sessions", body=body)

    async def update_session(self, session_id: str, **fields: Any) -> Json:
        """PATCH the session: ``path``, ``name``, ``type``, or ``kernel={"name"|"id": ...}``."""
        return await self.request("PATCH", f"/api/sessions/{_step(session_id)}", body=fields)

    async def delete_session(self, session_id: str) -> None:
        """Delete the session and shut its kernel down."""
        await self.request("DELETE", f"/api/sessions/{_step(session_id)}")

    # --- Terminals (absent, 404, when the server has no terminals extension or terminado) -----

    async def terminals(self) -> list[Json]:
        return await self.request("GET", "/api/terminals")

    async def create_terminal(self, *, cwd: str | None = None) -> Json:
        """A new terminal: ``{"name": ..., "last_activity": ...}``."""
        return await self.request("POST", "/api/terminals", body={"cwd": cwd} if cwd else {})

    async def delete_terminal(self, name: str) -> None:
        await self.request("DELETE", f"/api/terminals/{_step(name)}")

    # --- Contents ------------------------------------------------------------------------------

    @staticmethod
    def _contents_path(path: str) -> str:
        """``/api/contents/<path>``, each step quoted. A ``.`` or ``..`` step would make the URL
        name another endpoint, with this client's token: refused here, whatever the caller
        checked (as Jupyter would refuse a path outside its root)."""
        steps = path.strip("/").split("/") if path.strip("/") else []
        if any(step in ("", ".", "..") for step in steps):
            raise JupyterError(400, f"not a path under the root: {path!r}", "/api/contents")
        return "/api/contents/" + "/".join(_step(step) for step in steps)

    async def get_contents(
        self,
        path: str,
        *,
        content: bool = True,
        type: str | None = None,
        format: str | None = None,
        hash: bool = False,
    ) -> Json:
        """The model of a file, notebook or directory (``""`` is the root directory); with
        ``hash``, the file's ``hash`` and ``hash_algorithm`` too (Jupyter Server 2.11 and
        later; an older one leaves them out)."""
        params: dict[str, Any] = {"content": int(content)}
        if hash:
            params["hash"] = 1
        if type is not None:
            params["type"] = type
        if format is not None:
            params["format"] = format
        return await self.request("GET", self._contents_path(path), params=params)

    async def save_contents(self, path: str, model: Json) -> Json:
        """Create or replace: ``model`` has ``type``, ``format`` and ``content``."""
        return await self.request("PUT", self._contents_path(path), body=model)

    async def rename_contents(self, path: str, new_path: str) -> Json:
        return await self.request("PATCH", self._contents_path(path), body={"path": new_path})

    async def delete_contents(self, path: str) -> None:
        await self.request("DELETE", self._contents_path(path))

    async def copy_contents(self, directory: str, copy_from: str) -> Json:
        """A copy of ``copy_from`` in ``directory``, named by the server (``name-Copy1.ext``)."""
        return await self.request(
            "POST", self._contents_path(directory), body={"copy_from": copy_from}
        )

    async def new_untitled(self, path: str, type: str, *, ext: str | None = None) -> Json:
        """A new untitled ``type`` ("notebook", "file", "directory") in directory ``path``."""
        body: Json = {"type": type}
        if ext is not None:
            body["ext"] = ext
        return await self.request("POST", self._contents_path(path), body=body)

    # --- Kernel websocket ----------------------------------------------------------------------

    def kernel_ws_url(self, kernel_id: str, session_id: str) -> str:
        base = "ws" + self.url.removeprefix("http")  # http -> ws, https -> wss
        query = urlencode({"session_id": session_id})
        return f"{base}/api/kernels/{_step(kernel_id)}/channels?{query}"

    async def connect_kernel(
        self,
        kernel_id: str,
        *,
        session_id: str | None = None,
        username: str = "jupyter-rtc",
        timeout: float | None = None,
    ) -> KernelConnection:
        """Open the kernel's channels websocket. Close the connection (or this client) after.

        The server answers the handshake once the kernel replied to a kernel_info_request, so
        ``timeout`` (default: the client's) includes the kernel's start-up.
        """
        session_id = session_id or str(uuid.uuid4())
        websocket = await self.open_kernel_websocket(kernel_id, session_id, timeout=timeout)
        connection = KernelConnection(
            self, kernel_id, websocket, Session(session=session_id, username=username)
        )
        self._connections.add(connection)
        return connection

    async def open_kernel_websocket(
        self, kernel_id: str, session_id: str, *, timeout: float | None = None
    ) -> ClientConnection:
        """The kernel's channels websocket, for ``connect_kernel`` and for reconnecting."""
        url = self.kernel_ws_url(kernel_id, session_id)
        try:
            return await ws_connect(
                url,
                additional_headers=self._headers,
                max_size=None,  # outputs (images, dataframes) can be large
                open_timeout=timeout if timeout is not None else self.timeout,
                proxy=True if self._trust_env else None,
            )
        except InvalidStatus as error:
            response = error.response
            message = response.reason_phrase
            with contextlib.suppress(ValueError, AttributeError):
                message = json.loads(response.body or b"").get("message") or message
            raise JupyterError(response.status_code, message, url) from error
        except (OSError, TimeoutError, InvalidHandshake) as error:
            raise JupyterUnavailable(
                f"Jupyter Server unreachable (kernel websocket: {type(error).__name__})",
                url.partition("?")[0],
                error,
            ) from error
