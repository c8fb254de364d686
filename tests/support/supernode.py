"""A supernode running in the test's event loop, and the jupyter datastore as its peers see it.

``RunningSupernode`` runs one until ``close()`` (or the ``async with``); ``supernode_and_watcher``
is the usual set-up: a relay process, a supernode on it, and an editor's client of the jupyter
datastore to watch and ask with. The record helpers read and write that client's document.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

from channels.db import database_sync_to_async
from django.contrib.auth.models import User
from pycrdt import Map, Text
from rtc_client import DatastoreClient

from jupyter_sync.jupyter import JupyterClient
from jupyter_sync.schema import EXECUTION_DONE
from jupyter_sync.supernode import account
from jupyter_sync.supernode.node import Supernode
from relay.models import ApiToken
from tables.permissions import grant

WAIT = 30.0


class RunningSupernode:
    """A supernode running in this event loop until ``close()``.

    ``quick_documents``: documents saved and their files polled within a fraction of a second,
    for tests that follow edits to disk and back.
    """

    def __init__(
        self,
        jupyter: JupyterClient,
        server_url: str,
        token: str,
        *,
        quick_documents: bool = False,
    ):
        self.stop = asyncio.Event()
        self.supernode = Supernode(
            jupyter=jupyter, server_url=server_url, token=token, refresh_interval=0.5
        )
        self.documents = self.supernode.documents
        if quick_documents:
            self.documents.save_delay = 0.3
            self.documents.poll_interval = 0.2
        self.task = asyncio.create_task(self.supernode.run(self.stop))

    async def close(self) -> None:
        self.stop.set()
        await asyncio.wait_for(self.task, WAIT)

    async def __aenter__(self) -> RunningSupernode:
        return self

    async def __aexit__(self, *_exc: object) -> None:
        await self.close()


@database_sync_to_async
def accounts() -> tuple[str, str]:
    """The supernode's token, and an editor's (user ``ed``) for watching and asking."""
    service_token = account.ensure_service_account()
    datastore = account.ensure_jupyter_datastore()
    editor = User.objects.create_user("ed")
    grant(datastore, editor, "editor")
    return service_token, ApiToken.objects.create(user=editor).key


@contextlib.asynccontextmanager
async def supernode_and_watcher(
    start_server, jupyter_server
) -> AsyncIterator[tuple[JupyterClient, DatastoreClient]]:
    """A relay process with a supernode on it; the supernode's Jupyter client, and an editor's
    client of the jupyter datastore to watch and ask with."""
    service_token, editor_token = await accounts()
    relay = await asyncio.to_thread(start_server)
    async with (
        JupyterClient(jupyter_server.url, jupyter_server.token) as jupyter,
        DatastoreClient(relay.ws_url, "jupyter", token=editor_token) as watcher,
        RunningSupernode(jupyter, relay.ws_url, service_token),
    ):
        yield jupyter, watcher


# --- Records, as a client of the jupyter datastore sees them ----------------------------------


def table(client: DatastoreClient, name: str) -> dict:
    return client.doc.get(name, type=Map).to_py()


def record(client: DatastoreClient, name: str, record_id: str) -> dict:
    return table(client, name).get(record_id) or {}


def create(client: DatastoreClient, name: str, record_id: str, **fields: Any) -> None:
    with client.doc.transaction():
        client.doc.get(name, type=Map)[record_id] = Map(fields)


def update(client: DatastoreClient, name: str, record_id: str, **fields: Any) -> None:
    target = client.doc.get(name, type=Map)[record_id]
    with client.doc.transaction():
        for key, value in fields.items():
            target[key] = value


def request_execution(client: DatastoreClient, execution_id: str, **fields: Any) -> None:
    """An ``executions`` record as a front end writes it (``code`` a shared text)."""
    with client.doc.transaction():
        client.doc.get("executions", type=Map)[execution_id] = Map(
            {**fields, "code": Text(fields.pop("code", "")) if "code" in fields else Text("")}
        )


async def finished(client: DatastoreClient, execution_id: str, timeout: float = WAIT) -> dict:
    """The execution's record once it has ended (completed, error or cancelled)."""
    await client.wait_for(
        lambda: record(client, "executions", execution_id).get("status") in EXECUTION_DONE,
        timeout=timeout,
    )
    return record(client, "executions", execution_id)


async def end_sessions(jupyter: JupyterClient, prefix: str) -> None:
    """Delete the Jupyter sessions of paths under ``prefix`` (what a test opened)."""
    for session in await jupyter.sessions():
        if session.get("path", "").startswith(prefix):
            await jupyter.delete_session(session["id"])
