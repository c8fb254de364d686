"""What the Jupyter client raises: an HTTP error answer, an unreachable server, a kernel gone.

A message (``str(error)``) never names the Jupyter Server's address: it reaches API clients
through request and execution records, and the address is internal. ``detail`` adds the URL
and the cause, for this process's log only.
"""

from __future__ import annotations


class JupyterClientError(Exception):
    """Base of this module's errors."""

    url: str = ""

    @property
    def detail(self) -> str:
        """The message with the URL and the cause: for the log, never for clients."""
        return str(self)


class JupyterError(JupyterClientError):
    """The server answered with an HTTP error."""

    def __init__(self, status: int, message: str, url: str):
        super().__init__(f"{status} {message}")
        self.status = status
        self.message = message
        self.url = url

    @property
    def detail(self) -> str:
        return f"{self} ({self.url})"


class JupyterUnavailable(JupyterClientError):
    """The server could not be reached, or did not answer in time."""

    def __init__(self, message: str, url: str = "", cause: BaseException | None = None):
        super().__init__(message)
        self.url = url
        self.cause = cause

    @property
    def detail(self) -> str:
        return f"{self} ({self.url}: {self.cause!r})"


class KernelDied(JupyterClientError):
    """The kernel died, restarted, or its websocket closed before the reply came."""


class KernelConnectionClosed(JupyterClientError):
    """The connection was closed here (``close()``) while a request waited."""
