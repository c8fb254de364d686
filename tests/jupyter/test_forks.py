"""jupyter-collaboration's forks on this server, end to end: a real Jupyter Server, daphne, the
supernode as its own process and stock y-websocket clients in Node joining the document's room
and the fork's room as JupyterLab's docprovider does (``PUT/GET/DELETE api/collaboration/fork``).
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from jupyter_sync.document_content import content
from jupyter_sync.models import DocumentFork
from tables import history
from tables.models import Datastore, Transaction
from tests.support.collaboration_site import WAIT, Site, collaboration_site, join, stored_notebook
from tests.support.nodeclient import NodeYClient
from tests.support.waiting import eventually

pytest_plugins = ["tests.support.liveserver", "tests.support.jupyter", "tests.support.nodeclient"]
pytestmark = pytest.mark.django_db(transaction=True)

CONTENT = {"cells": "array", "meta": "map"}


@pytest.fixture
def site(start_server, jupyter_server) -> Iterator[Site]:
    with collaboration_site(start_server, jupyter_server, ed2={}) as site:
        yield site.with_supernode()


def fork(site: Site, user: str, room: str, **body):
    """``createFork``: the room joined to the URL as it is."""
    with site.http(user) as client:
        return client.put(f"/api/collaboration/fork/{room}", json=body)


def forks(site: Site, user: str, room: str):
    with site.http(user) as client:
        return client.get(f"/api/collaboration/fork/{room}")


def delete(site: Site, user: str, fork_id: str, merge: bool | str):
    with site.http(user) as client:
        return client.delete(f"/api/collaboration/fork/{fork_id}?merge={str(merge).lower()}")


def opened(site: Site, path: str, *sources: str) -> tuple[dict, str, Datastore]:
    """A notebook written and opened: its session, room and datastore."""
    notebook = site.open_notebook(path, *sources)
    return notebook.session, notebook.room, notebook.datastore


def shown(client: NodeYClient) -> dict:
    return client.get(CONTENT)


def sources(state: dict) -> list[str]:
    return [cell["source"] for cell in state["cells"]]


now = stored_notebook


def test_a_fork_is_edited_in_its_room_and_merged_as_one_transaction_next_to_root_edits(
    site, node_client
):
    session, room, root = opened(site, "fk/a.ipynb", "x = 1", "print(x)")
    root.refresh_from_db()
    branch = root.last_serial

    made = fork(site, "ed", room, title="try", description="an idea", synchronize=False)
    assert made.status_code == 201, made.text
    body = made.json()
    fork_id = body["fork_roomid"]
    assert body["fork_info"] == {
        "root_roomid": room,
        "synchronize": False,
        "title": "try",
        "description": "an idea",
        "serial": branch,
        "createdBy": "ed",
    }
    fork_store = DocumentFork.objects.get(pk=fork_id).datastore
    assert (fork_store.fork_of_id, fork_store.fork_serial) == (root.pk, branch)
    # Nothing copied: the fork's history below the branch is the root's.
    # (Counted per datastore: the supernode writes the jupyter datastore's records meanwhile.)
    assert not Transaction.objects.filter(datastore=fork_store).exists()
    for serial in range(1, branch + 1):
        assert content(history.doc_at(fork_store, serial), "notebook") == content(
            history.doc_at(root, serial), "notebook"
        )
    assert forks(site, "vi", room).json() == {fork_id: body["fork_info"]}

    # One window edits the fork in its room, another the document meanwhile.
    on_fork = join(node_client, site, "ed", fork_id, body["sessionId"])
    on_root = join(node_client, site, "ed2", room, session["sessionId"])
    on_fork.wait_synced()
    on_root.wait_synced()
    assert sources(shown(on_fork)) == ["x = 1", "print(x)"]
    on_fork.insert_text(["cells", 0, "source"], None, "  # forked", root_type="array")
    on_root.insert_text(["cells", 1, "source"], 0, "# root\n", root_type="array")
    eventually(
        lambda: Transaction.objects.filter(datastore=fork_store, author__username="ed").exists(),
        WAIT,
        "the fork's edit stored",
    )
    eventually(lambda: sources(now(root))[1] == "# root\nprint(x)", WAIT, "the root's edit stored")
    assert sources(now(root))[0] == "x = 1"  # the fork's edit stays in the fork

    root.refresh_from_db()
    before = root.last_serial
    merged = delete(site, "ed2", fork_id, merge=True)
    assert merged.status_code == 200, merged.text
    assert merged.json()["merged"] is True
    row = Transaction.objects.get(datastore=root, serial=merged.json()["serial"])
    assert (row.serial, row.origin, row.author.username) == (before + 1, "merge", "ed2")
    assert sources(now(root)) == ["x = 1  # forked", "# root\nprint(x)"]
    eventually(
        lambda: sources(shown(on_root)) == ["x = 1  # forked", "# root\nprint(x)"],
        WAIT,
        "the merge seen in the document's room",
    )
    assert not DocumentFork.objects.filter(pk=fork_id).exists()
    assert not Datastore.objects.filter(pk=fork_store.pk).exists()
    assert forks(site, "ed", room).json() == {}
    # A window still on the fork: its next edit is refused, the room closed as unknown.
    on_fork.insert_text(["cells", 0, "source"], 0, "late ", root_type="array")
    on_fork.wait_event("close", lambda event: event.get("code") == 4404)
    assert sources(now(root)) == ["x = 1  # forked", "# root\nprint(x)"]
    again = delete(site, "ed2", fork_id, merge=True)
    assert (again.status_code, again.json()["code"]) == (404, "unknown-fork")


def test_discarding_leaves_the_document_alone_and_who_may_do_what(site, node_client):
    _session, room, root = opened(site, "fk/b.ipynb", "y = 2")
    before = now(root)

    # A viewer may fork and edit their fork, but not merge it.
    made = fork(site, "vi", room)
    assert made.status_code == 201, made.text
    fork_id = made.json()["fork_roomid"]
    mine = join(node_client, site, "vi", fork_id, made.json()["sessionId"])
    mine.wait_synced()
    mine.insert_text(["cells", 0, "source"], None, "  # viewer", root_type="array")
    fork_store = DocumentFork.objects.get(pk=fork_id).datastore
    eventually(
        lambda: Transaction.objects.filter(datastore=fork_store).exists(), WAIT, "stored in fork"
    )
    refused = delete(site, "vi", fork_id, merge=True)
    assert (refused.status_code, refused.json()["code"]) == (403, "permission-denied")
    # Another viewer may read it but not edit it (their role on the document) nor discard it.
    site.add_person("vi2", "viewer")
    assert delete(site, "vi2", fork_id, merge=False).status_code == 403
    reader = join(node_client, site, "vi2", fork_id, None)
    reader.wait_synced()
    assert sources(shown(reader)) == ["y = 2  # viewer"]
    reader.insert_text(["cells", 0, "source"], 0, "!", root_type="array")
    reader.wait_event("close", lambda event: event.get("code") == 4403)

    # Strangers see nothing: the same 404 as for a document that does not exist.
    for answer in (
        fork(site, "stranger", room),
        forks(site, "stranger", room),
        delete(site, "stranger", fork_id, merge=False),
    ):
        assert answer.status_code == 404, answer.text
    stranger = join(node_client, site, "stranger", fork_id, None)
    stranger.wait_event("close", lambda event: event.get("code") in (4403, 4404))
    missing = fork(site, "ed", "json:notebook:" + "0" * 36)
    assert (missing.status_code, missing.json()["code"]) == (404, "unknown-document")
    assert fork(site, "ed", "nonsense").status_code == 400
    nested = fork(site, "ed", fork_id)
    assert (nested.status_code, nested.json()["code"]) == (400, "fork-of-fork")
    gone = delete(site, "ed", "f" * 32, merge=True)
    assert (gone.status_code, gone.json()["code"]) == (404, "unknown-fork")
    assert delete(site, "ed", fork_id, merge="maybe").status_code == 400

    # Its maker discards it: the document is as it was, no transaction added.
    root.refresh_from_db()
    serial = root.last_serial
    dropped = delete(site, "vi", fork_id, merge=False)
    assert dropped.status_code == 200, dropped.text
    assert (dropped.json()["merged"], dropped.json()["serial"]) == (False, None)
    root.refresh_from_db()
    assert root.last_serial == serial
    assert now(root) == before
    assert not Datastore.objects.filter(pk=fork_store.pk).exists()
