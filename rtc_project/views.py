"""The front page: what this server is and where to go from here (``/``)."""

from __future__ import annotations

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

from jupyter_sync.availability import supernode_problem
from jupyter_sync.schema import JUPYTER_DATASTORE
from tables.models import Datastore


def supernode_state() -> str:
    """One line on the supernode, for the people running the server."""
    jupyter = Datastore.objects.filter(name=JUPYTER_DATASTORE).first()
    if jupyter is None:
        return "no supernode has run yet: start one with manage.py run_supernode"
    return supernode_problem(jupyter) or "connected to its Jupyter Server"


def front_page(request: HttpRequest) -> HttpResponse:
    """Links to what runs here; JupyterLab's address only when one was configured
    (JUPYTERLAB_URL: a public address, never a token)."""
    jupyterlab_url = (settings.JUPYTERLAB_URL or "").split("?", 1)[0].split("#", 1)[0]
    context = {"jupyterlab_url": jupyterlab_url, "supernode": supernode_state()}
    return render(request, "rtc_project/front_page.html", context)
