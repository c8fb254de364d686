"""Per-author undo of a notebook over REST (``POST /api/documents/<id>/undo`` and ``/redo``), end
to end: a real Jupyter Server, daphne, the supernode as its own process and two people editing
the notebook through stock y-websocket clients in its collaboration room. One person's undo
takes their change away and leaves the other's, in the same cell and in another one.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tables.management.commands.export_openapi import openapi_schema
from tables.models import Datastore, Transaction
from tests.support.collaboration_site import (
    WAIT,
    Site,
    collaboration_site,
    edited,
    join,
    stored_notebook,
)
from tests.support.nodeclient import NodeYClient
from tests.support.waiting import eventually

pytest_plugins = ["tests.support.liveserver", "tests.support.jupyter", "tests.support.nodeclient"]
pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def site(start_server, jupyter_server) -> Iterator[Site]:
    with collaboration_site(start_server, jupyter_server, ed2={}, ed3={}) as site:
        yield site


def sources(datastore: Datastore) -> list[str]:
    """The cells' sources as stored now."""
    return [cell["source"] for cell in stored_notebook(datastore)["cells"]]


def shown(client: NodeYClient) -> list[str]:
    return [cell["source"] for cell in client.get({"cells": "array"})["cells"]]


def post(site: Site, user: str, document_id: str, action: str):
    with site.http(user) as client:
        return client.post(f"/api/documents/{document_id}/{action}")


def test_undo_over_rest_takes_back_ones_own_change_and_keeps_the_others(site, node_client):
    site.with_supernode()
    opened = site.open_notebook("un/a.ipynb", "x = 1", "y = 2")
    session, room, datastore = opened.session, opened.room, opened.datastore
    file_id = session["fileId"]
    alice = join(node_client, site, "ed", room, session["sessionId"])
    bob = join(node_client, site, "ed2", room, session["sessionId"])
    alice.wait_synced()
    bob.wait_synced()

    # Alice appends to the first cell; then Bob edits the same cell and the second one.
    datastore.refresh_from_db()
    alice.insert_text(["cells", 0, "source"], None, " + 40", root_type="array")
    mine = edited(datastore, "ed", datastore.last_serial)
    eventually(lambda: shown(bob)[0] == "x = 1 + 40", WAIT, "Bob seeing Alice's edit")
    bob.insert_text(["cells", 0, "source"], 0, "# B\n", root_type="array")
    bob.insert_text(["cells", 1, "source"], None, " * 3", root_type="array")
    expected = ["# B\nx = 1 + 40", "y = 2 * 3"]
    eventually(lambda: sources(datastore) == expected, WAIT, "Bob's edits stored")
    datastore.refresh_from_db()
    before = datastore.last_serial

    # Alice undoes through REST, naming the notebook by its room id: one transaction, hers,
    # origin undo, reverting her edit; Bob's edits stay, and both windows follow.
    undone = post(site, "ed", room, "undo")
    assert undone.status_code == 201, undone.text
    body = undone.json()
    assert body == {"serial": before + 1, "reverts": mine.serial, "status": "stored"}
    added = list(Transaction.objects.filter(datastore=datastore, serial__gt=before))
    assert len(added) == 1
    assert (added[0].origin, added[0].author.username) == ("undo", "ed")
    assert added[0].reverts_id == mine.pk
    assert sources(datastore) == ["# B\nx = 1", "y = 2 * 3"]
    for window in (alice, bob):
        eventually(lambda w=window: shown(w) == ["# B\nx = 1", "y = 2 * 3"], WAIT, "undo seen")

    # Redo (by the bare record id) brings it back where it was.
    redone = post(site, "ed", file_id, "redo")
    assert redone.status_code == 201, redone.text
    row = Transaction.objects.get(datastore=datastore, serial=redone.json()["serial"])
    assert (row.origin, row.author.username, row.reverts_id) == ("redo", "ed", added[0].pk)
    assert sources(datastore) == expected
    eventually(lambda: shown(bob) == expected, WAIT, "redo seen")

    # Nothing more to redo; someone who changed nothing has nothing to undo.
    again = post(site, "ed", room, "redo")
    assert (again.status_code, again.json()["code"]) == (409, "nothing-to-undo"), again.text
    idle = post(site, "ed3", room, "undo")
    assert (idle.status_code, idle.json()["code"]) == (409, "nothing-to-undo"), idle.text

    # Bob's undo is his own last change (the second cell), not Alice's.
    bobs = post(site, "ed2", room, "undo")
    assert bobs.status_code == 201, bobs.text
    assert sources(datastore) == ["# B\nx = 1 + 40", "y = 2"]


def test_document_undo_refusals(site):
    site.with_supernode()
    opened = site.open_notebook("un2/b.ipynb", "z = 3")
    file_id, datastore = opened.session["fileId"], opened.datastore
    serial = datastore.last_serial

    viewer = post(site, "vi", f"json:notebook:{file_id}", "undo")
    assert (viewer.status_code, viewer.json()["code"]) == (403, "permission-denied"), viewer.text
    assert post(site, "stranger", file_id, "undo").status_code == 404
    unknown = post(site, "ed", "json:notebook:nope", "undo")
    assert (unknown.status_code, unknown.json()["code"]) == (404, "unknown-document")
    wrong = post(site, "ed", f"text:file:{file_id}", "undo")
    assert (wrong.status_code, wrong.json()["code"]) == (400, "wrong-type")
    bad = post(site, "ed", "yaml:notebook:x", "redo")
    assert (bad.status_code, bad.json()["code"]) == (400, "bad-document-id")
    datastore.refresh_from_db()
    assert datastore.last_serial == serial


def test_the_openapi_schema_describes_document_undo_and_redo():
    from drf_spectacular.drainage import GENERATOR_STATS

    GENERATOR_STATS.reset()
    schema = openapi_schema()
    assert not GENERATOR_STATS, "the schema generator warned"
    for action in ("undo", "redo"):
        operation = schema["paths"][f"/api/documents/{{document_id}}/{action}"]["post"]
        assert operation["operationId"] == f"documents_{action}"
        assert {"201", "400", "403", "404", "409"} <= set(operation["responses"])
        assert "requestBody" not in operation
