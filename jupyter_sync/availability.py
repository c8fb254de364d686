"""Whether a supernode is there to carry out what a client asks for (the web side asks before
writing anything the supernode must act on)."""

from __future__ import annotations

from django.utils import timezone

from jupyter_sync.models import SupernodeLease
from jupyter_sync.schema import JUPYTER_DATASTORE
from jupyter_sync.waiting import read_record
from tables.models import Datastore


def supernode_problem(datastore: Datastore) -> str | None:
    """Why no action can be carried out now (None: a supernode holds the lease and reaches
    Jupyter). Asked before writing anything the supernode must carry out."""
    live = SupernodeLease.objects.filter(
        name=JUPYTER_DATASTORE, expires_at__gt=timezone.now()
    ).exists()
    if not live:
        return "no supernode is connected: start one with manage.py run_supernode"
    server = read_record(datastore, "status", "server")
    if server is not None and server.get("connected") is False:
        return "the supernode cannot reach the Jupyter Server at the moment"
    return None
