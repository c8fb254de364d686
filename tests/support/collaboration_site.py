"""A relay with the jupyter datastore and its people, as the collaboration tests stand it up
(``tests/jupyter/test_collaboration.py``, ``test_timeline.py``): an editor ``ed``, a viewer
``vi`` and a ``stranger`` with API tokens, notebooks written to the Jupyter Server's root, and
stock y-websocket clients joining collaboration rooms as JupyterLab's docprovider does.

Imported by tests and plugins alike: PYTEST_DONT_REWRITE.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

import httpx
from django.contrib.auth.models import User

from jupyter_sync.document_content import content
from jupyter_sync.models import Document
from jupyter_sync.supernode import account
from relay.models import ApiToken
from tables import history
from tables.models import Datastore, Transaction
from tables.permissions import grant
from tests.support import notebooks
from tests.support.liveserver import ServerProcess
from tests.support.nodeclient import NodeYClient
from tests.support.supernode_process import SupernodeProcess
from tests.support.waiting import eventually

WAIT = 60.0  # the supernode opening a file, on a loaded machine


def notebook(*sources: str) -> dict:
    return notebooks.notebook(*notebooks.code_cells(*sources))


def write_notebook(path: Path, *sources: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(notebook(*sources)))


@dataclass(frozen=True)
class OpenNotebook:
    """A notebook opened through ``PUT api/collaboration/session``: what a room client needs."""

    session: dict
    room: str
    datastore: Datastore


class Site:
    """A relay, the jupyter datastore with an editor, a viewer and a stranger, and (started by
    ``with_supernode``) a supernode."""

    def __init__(self, relay: ServerProcess, jupyter_server):
        self.relay = relay
        self.jupyter_server = jupyter_server
        self.root: Path = jupyter_server.root_dir
        account.ensure_service_account()
        self.jupyter = account.ensure_jupyter_datastore()
        self.tokens = {}
        for name, role in (("ed", "editor"), ("vi", "viewer"), ("stranger", None)):
            self.add_person(name, role)
        self.supernode: SupernodeProcess | None = None

    def add_person(self, name: str, role: str | None = "editor", **fields: str) -> None:
        """A user with ``role`` on the jupyter datastore (None: no role) and an API token."""
        user = User.objects.create_user(name, **fields)
        if role:
            grant(self.jupyter, user, role)
        self.tokens[name] = ApiToken.objects.create(user=user).key

    def with_supernode(self) -> Site:
        self.supernode = SupernodeProcess(
            self.relay, self.jupyter_server.url, self.jupyter_server.token
        )
        self.supernode.wait_connected()
        return self

    def http(self, user: str) -> httpx.Client:
        return httpx.Client(
            base_url=self.relay.url,
            headers={"Authorization": f"Token {self.tokens[user]}"},
            timeout=WAIT + 10,
        )

    def put_session(self, user: str, path: str, **body) -> httpx.Response:
        """What ``requestDocSession`` sends: the path URL-encoded, slashes included."""
        body = body or {"format": "json", "type": "notebook"}
        with self.http(user) as client:
            return client.put(f"/api/collaboration/session/{quote(path, safe='')}", json=body)

    def open_notebook(self, path: str, *sources: str, user: str = "ed") -> OpenNotebook:
        """A notebook of code cells written to the server's root and opened by ``user``."""
        write_notebook(self.root / path, *sources)
        session = self.put_session(user, path).json()
        record = Document.objects.get(datastore=self.jupyter, record_id=session["fileId"])
        return OpenNotebook(
            session,
            f"json:notebook:{session['fileId']}",
            Datastore.objects.get(name=record.datastore_name),
        )

    @property
    def room_url(self) -> str:
        return f"{self.relay.ws_url}/api/collaboration/room"

    def close(self) -> None:
        if self.supernode is not None:
            self.supernode.stop()


def join(node_client, site: Site, user: str, room: str, session: str | None) -> NodeYClient:
    client: NodeYClient = node_client(timeout=WAIT)
    client.connect(
        site.room_url, room, site.tokens[user], params={"sessionId": session} if session else None
    )
    return client


@contextmanager
def collaboration_site(start_server, jupyter_server, **people: dict) -> Iterator[Site]:
    """A site whose REST actions wait as long as the supernode may take to open a file, with
    ``people`` (name: ``add_person`` arguments) added to the usual three."""
    site = Site(start_server(env={"RTC_API_ACTION_TIMEOUT": str(WAIT)}), jupyter_server)
    for name, arguments in people.items():
        site.add_person(name, **arguments)
    try:
        yield site
    finally:
        site.close()


def edited(datastore: Datastore, author: str, before: int) -> Transaction:
    """The first stored transaction of ``author`` after serial ``before`` (waits for it)."""
    return eventually(
        lambda: Transaction.objects.filter(
            datastore=datastore, serial__gt=before, author__username=author
        ).first(),
        WAIT,
        f"{author}'s edit stored",
    )


def stored_notebook(datastore: Datastore, serial: int | None = None) -> dict:
    """The notebook's content as stored at ``serial`` (None: now)."""
    datastore.refresh_from_db()
    return content(history.doc_at(datastore, serial), "notebook")
