"""What the documents side needs from the supernode, and nothing more: the Jupyter client, the
jupyter datastore's live records, kernels, a table refresh, and clients for other datastores."""

from __future__ import annotations

from typing import Protocol

from rtc_client import DatastoreClient

from jupyter_sync.jupyter import JupyterClient, KernelConnection
from jupyter_sync.supernode.live_records import LiveRecords


class SupernodeLink(Protocol):
    jupyter: JupyterClient
    records: LiveRecords
    token: str
    """The service account's API token: the owner of the documents' datastores."""

    async def kernel(self, kernel_id: str) -> KernelConnection:
        """The kernel's one shared connection."""
        ...

    def kernel_open(self, kernel_id: str) -> bool:
        """The supernode holds an open connection to the kernel: the server runs it (the
        connection ends when the kernel is shut down, with its session, or found gone)."""
        ...

    def request_refresh(self) -> None:
        """Re-read the server state soon (a session was made or moved)."""
        ...

    def datastore_client(self, name: str) -> DatastoreClient:
        """A relay client for datastore ``name``, as the service account (not started)."""
        ...
