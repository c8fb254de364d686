"""Helpers that build real Yjs updates from independent pycrdt documents (clients)."""

from __future__ import annotations

import itertools
from collections.abc import Callable

from pycrdt import Doc, Map, Text

from tables import service
from tables.models import Datastore
from tables.service import Outcome, Proposal

_txids = itertools.count(1)


class Client:
    """An independent peer: its own Doc, sending the diff of each local change."""

    def __init__(self, datastore: Datastore, *, author_id: int | None = None):
        self.datastore = datastore
        self.author_id = author_id
        self.doc = Doc()
        state, _ = service.live_state(datastore)
        self.doc.apply_update(state)

    def change(self, mutate: Callable[[Doc], None]) -> bytes:
        """The update of one local transaction (what a Yjs client sends)."""
        updates: list[bytes] = []
        subscription = self.doc.observe(lambda event: updates.append(event.update))
        with self.doc.transaction():
            mutate(self.doc)
        self.doc.unobserve(subscription)
        return updates[0] if updates else b"\x00\x00"

    def send(self, mutate: Callable[[Doc], None], **kwargs) -> Outcome:
        update = self.change(mutate)
        proposal = Proposal(update, txid=f"tx-{next(_txids)}", author_id=self.author_id, **kwargs)
        return service.write_one(self.datastore, proposal)

    def receive(self) -> None:
        state, _ = service.live_state(self.datastore)
        self.doc.apply_update(state)

    def table(self, name: str) -> Map:
        return self.doc.get(name, type=Map)


def add_todo(doc: Doc, item_id: str, title: str, done: bool = False) -> None:
    doc.get("items", type=Map)[item_id] = Map({"title": Text(title), "done": done})


def new_item(doc: Doc, key: str) -> bytes:
    """The update of one transaction of ``doc`` adding the todo item ``key``, titled ``key``."""
    before = doc.get_state()
    with doc.transaction():
        add_todo(doc, key, key)
    return doc.get_update(before)


def edit_many(datastore: Datastore, count: int, author_id: int | None = None) -> Client:
    """``count`` transactions: item "a", then one "x" appended to its title each time."""
    client = Client(datastore, author_id=author_id)
    client.send(lambda d: add_todo(d, "a", ""))
    for i in range(count - 1):
        client.send(lambda d, i=i: d.get("items", type=Map)["a"]["title"].insert(i, "x"))
    datastore.refresh_from_db()
    return client


def owned_datastore(name: str, schema: str = "todo", username: str = "ada") -> str:
    """A datastore owned by a new user; returns that user's API token (for live-server tests)."""
    from django.contrib.auth.models import User

    from relay.models import ApiToken

    user = User.objects.create_user(username)
    service.create_datastore(name, schema, owner=user)
    return ApiToken.objects.create(user=user).key


def bridge_token(username: str = "jupyterlab-bridge") -> str:
    """The JupyterLab bridge's API token, made as an operator makes it (``manage.py
    create_bridge_token``: allowed to act for Jupyter users), with the ``jupyter`` datastore in
    place so that each Jupyter user gets their role on first use."""
    import io

    from django.core.management import call_command

    from jupyter_sync.supernode import account

    account.ensure_service_account()
    account.ensure_jupyter_datastore()
    out = io.StringIO()
    call_command("create_bridge_token", username, stdout=out, stderr=io.StringIO())
    return out.getvalue().strip()
