"""Whether a supernode is there to carry out what a client asks for (the web side asks before
writing anything the supernode must act on)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from django.utils import timezone

from jupyter_sync.models import SupernodeLease
from jupyter_sync.schema import JUPYTER_DATASTORE
from jupyter_sync.waiting import read_record
from tables.models import Datastore
from tables.read_sql import fetch_one


@dataclass(frozen=True)
class Freshness:
    """Whether the jupyter datastore's Jupyter tables are kept current: ``live`` while a
    supernode holds the lease; otherwise they say what Jupyter was when the last one stopped
    (``since``: when its lease lapsed; None when no supernode ever ran)."""

    live: bool
    since: datetime | None = None


def freshness() -> Freshness:
    lease = SupernodeLease.objects.filter(name=JUPYTER_DATASTORE).first()
    if lease is not None and lease.expires_at > timezone.now():
        return Freshness(live=True)
    return Freshness(live=False, since=lease.expires_at if lease is not None else None)


def supernode_problem(datastore: Datastore, *, reread: bool = True) -> str | None:
    """Why no action can be carried out now (None: a supernode holds the lease and reaches
    Jupyter). Asked before writing anything the supernode must carry out. ``reread=False``:
    ``datastore`` was read during this request (``read_record``)."""
    lease = fetch_one(SupernodeLease, name=JUPYTER_DATASTORE)  # asked by every action
    if lease is None or lease.expires_at <= timezone.now():
        return "no supernode is connected: start one with manage.py run_supernode"
    server = read_record(datastore, "status", "server", reread=reread)
    if server is not None and server.get("connected") is False:
        return "the supernode cannot reach the Jupyter Server at the moment"
    return None
