"""What the Jupyter client raises: an HTTP error answer, an unreachable server, a kernel gone."""

from __future__ import annotations


class JupyterClientError(Exception):
    """Base of this module's errors."""


class JupyterError(JupyterClientError):
    """The server answered with an HTTP error."""

    def __init__(self, status: int, message: str, url: str):
        super().__init__(f"{status} {message} ({url})")
        self.status = status
        self.message = message
        self.url = url


class JupyterUnavailable(JupyterClientError):
    """The server could not be reached, or did not answer in time."""


class KernelDied(JupyterClientError):
    """The kernel died, restarted, or its websocket closed before the reply came."""


class KernelConnectionClosed(JupyterClientError):
    """The connection was closed here (``close()``) while a request waited."""
