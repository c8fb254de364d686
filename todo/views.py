"""Pages of the todo example app: a live todo list in the browser, over the JSON datastore
protocol (relay/static/relay/rtc-client.js). The page only decides who may see it; the data
comes over the WebSocket, which authenticates with the same session cookie."""

from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import render
from django.urls import reverse_lazy

from tables.models import Datastore
from tables.permissions import access_for
from todo.schema import TODO

LOGIN_URL = reverse_lazy("todo:login")


@login_required(login_url=LOGIN_URL)
def index(request: HttpRequest) -> HttpResponse:
    """The todo datastores this user may read."""
    readable = [
        (datastore, access.role)
        for datastore in Datastore.objects.filter(schema=TODO.name).order_by("name")
        if (access := access_for(request.user, datastore)).can_read
    ]
    return render(request, "todo/index.html", {"datastores": readable})


@login_required(login_url=LOGIN_URL)
def todo_list(request: HttpRequest, datastore: str) -> HttpResponse:
    """One todo datastore, live: 404 if there is no such todo datastore, 403 without read access."""
    found = Datastore.objects.filter(name=datastore, schema=TODO.name).first()
    if found is None:
        raise Http404(f"no todo datastore {datastore!r}")
    access = access_for(request.user, found)
    if not access.can_read:
        raise PermissionDenied(f"no access to datastore {datastore!r}")
    config = {"datastore": found.name, "role": access.role, "canWrite": access.can_write}
    return render(
        request, "todo/list.html", {"datastore": found, "access": access, "config": config}
    )
