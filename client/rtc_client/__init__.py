"""A Python client for Jupyter RTC datastores, free of Django: see client/README.md.

``client`` is the facade (``DatastoreClient``); ``connection`` the socket and the reconnect loop;
``ordering`` the incoming transactions in serial order; ``outgoing`` the queue of local
transactions until answered; ``wire`` the wire formats of both of the server's protocols.
"""

from rtc_client.backoff import Backoff
from rtc_client.client import DatastoreClient
from rtc_client.errors import ClientClosed, ConnectionLost, RejectedTransaction, RTCError

__all__ = [
    "Backoff",
    "ClientClosed",
    "ConnectionLost",
    "DatastoreClient",
    "RTCError",
    "RejectedTransaction",
]
