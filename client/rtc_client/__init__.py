"""A Python client for Jupyter RTC datastores, free of Django: see client/README.md."""

from rtc_client.client import (
    Backoff,
    ClientClosed,
    ConnectionLost,
    DatastoreClient,
    Rejection,
    RTCError,
)

__all__ = [
    "Backoff",
    "ClientClosed",
    "ConnectionLost",
    "DatastoreClient",
    "RTCError",
    "Rejection",
]
