"""An asyncio client for a Jupyter Server, free of Django: its REST API, and kernels over their
websocket; and a local Jupyter Server as a child process (``launcher``).

``JupyterClient`` (``rest``) wraps the REST API (status, kernelspecs, kernels, sessions,
terminals, contents) and returns Jupyter's JSON as it is. ``await client.connect_kernel(id)``
opens a ``KernelConnection`` (``kernel``): one websocket carrying the kernel's shell, iopub, stdin
and control channels in Jupyter's JSON websocket format (``frames``), with requests matched to
replies by msg_id.

Errors (``errors``): an HTTP error answer raises ``JupyterError`` (status, Jupyter's message,
URL); a server that cannot be reached, or does not answer in time, raises ``JupyterUnavailable``;
a kernel that dies (or restarts) under a pending request makes it raise ``KernelDied``. After a
restart the connection goes on with the new kernel process; after a shutdown (or a websocket
that closed) it is ``closed`` and every request raises ``KernelDied``.
"""

from jupyter_sync.jupyter.errors import (
    JupyterClientError,
    JupyterError,
    JupyterUnavailable,
    KernelConnectionClosed,
    KernelDied,
)
from jupyter_sync.jupyter.frames import decode_frame
from jupyter_sync.jupyter.kernel import ExecuteResult, KernelConnection, MessageStream
from jupyter_sync.jupyter.rest import JupyterClient

__all__ = [
    "ExecuteResult",
    "JupyterClient",
    "JupyterClientError",
    "JupyterError",
    "JupyterUnavailable",
    "KernelConnection",
    "KernelConnectionClosed",
    "KernelDied",
    "MessageStream",
    "decode_frame",
]
