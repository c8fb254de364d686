"""jupyter-collaboration's timeline on this server's history, end to end: a real Jupyter Server,
daphne, the supernode as its own process and stock y-websocket clients in Node used as
JupyterLab's timeline uses them (``GET api/collaboration/timeline/<path>``, the same Y document
switched to the fork room, ``PUT api/collaboration/undo_redo/<room>``, and after a restore
switched back to the document's room). What the clients show is compared with
``tables.history.doc_at`` at the slider's serial.
"""

from __future__ import annotations

from collections.abc import Iterator
from urllib.parse import quote

import pytest

from jupyter_sync.models import TimelineFork
from jupyter_sync.supernode import account
from tables.models import Transaction
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

CONTENT = {"cells": "array", "meta": "map"}


@pytest.fixture
def site(start_server, jupyter_server) -> Iterator[Site]:
    people = {"ed2": {"first_name": "Second Editor"}}
    with collaboration_site(start_server, jupyter_server, **people) as site:
        yield site


def timeline(site: Site, user: str, path: str, query: str = "format=json&&type=notebook"):
    """``requestDocumentTimeline``: the path joined as it is, ``&&`` between the parameters."""
    with site.http(user) as client:
        return client.get(f"/api/collaboration/timeline/{path}?{query}")


def undo_redo(site: Site, user: str, room: str, action: str, steps: int, fork: str):
    """``requestUndoRedo``: the room URL-encoded, the fork room as it came."""
    with site.http(user) as client:
        return client.put(
            f"/api/collaboration/undo_redo/{quote(room, safe='')}"
            f"?action={action}&&steps={steps}&&forkRoom={fork}"
        )


def shown(client: NodeYClient) -> dict:
    return client.get(CONTENT)


state_at = stored_notebook


def test_the_timeline_shows_each_point_and_a_restore_brings_it_back_as_one_transaction(
    site, node_client
):
    site.with_supernode()
    opened = site.open_notebook("tl/a.ipynb", "x = 1", "print(x)")
    session, room, datastore = opened.session, opened.room, opened.datastore
    lab1 = join(node_client, site, "ed", room, session["sessionId"])
    lab2 = join(node_client, site, "ed2", room, session["sessionId"])
    lab1.wait_synced()
    lab2.wait_synced()

    # Four edits by two people, each its own transaction.
    datastore.refresh_from_db()
    edits = []
    lab1.insert_text(["cells", 0, "source"], None, "0", root_type="array")
    edits.append(edited(datastore, "ed", datastore.last_serial))
    new_cell = {
        "id": "c3",
        "cell_type": "markdown",
        "source": {"$text": "# notes"},
        "metadata": {"$map": {}},
    }
    lab2.array_insert("cells", None, [{"$map": new_cell}], root_type="array")
    edits.append(edited(datastore, "ed2", edits[-1].serial))
    lab1.array_delete("cells", 1, root_type="array")
    edits.append(edited(datastore, "ed", edits[-1].serial))
    lab2.insert_text(["cells", 1, "source"], None, "\nmore", root_type="array")
    edits.append(edited(datastore, "ed2", edits[-1].serial))
    live = eventually(
        lambda: shown(lab1) if shown(lab1) == state_at(datastore) else None,
        WAIT,
        "the first window up to date",
    )
    assert [cell["id"] for cell in live["cells"]] == ["c1", "c3"]

    # The timeline: one point per transaction kept, in order, with times and authors.
    answer = timeline(site, "ed", "tl/a.ipynb")
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert (body["roomId"], body["sessionId"]) == (room, session["sessionId"])
    assert body["forkRoom"].startswith("timeline:")
    rows = list(
        Transaction.objects.filter(datastore=datastore, serial__lte=body["serials"][-1])
        .order_by("serial")
        .values_list("serial", "created_at", "author__username", "author__first_name")
    )
    assert body["serials"] == [serial for serial, *_ in rows] == list(range(1, len(rows) + 1))
    assert body["timestamps"] == [created.timestamp() for _, created, *_ in rows]
    assert body["timestamps"] == sorted(body["timestamps"])
    by_serial = dict(zip(body["serials"], body["authors"], strict=True))
    assert [by_serial[edit.serial] for edit in edits] == [
        "ed",
        "Second Editor",
        "ed",
        "Second Editor",
    ]
    last = len(body["serials"]) - 1

    # The first window joins the fork room with its own Y document, as the front end does: it
    # shows the newest point, then each move.
    fork = body["forkRoom"]
    lab1.switch_room(site.room_url, fork, site.tokens["ed"], {"sessionId": session["sessionId"]})
    lab1.wait_synced()
    assert shown(lab1) == state_at(datastore, body["serials"][-1])

    position = last
    for action, steps in (("undo", 1), ("undo", 3), ("redo", 2), ("undo", last), ("redo", 1)):
        moved = undo_redo(site, "ed", room, action, steps, fork)
        assert moved.status_code == 200, moved.text
        position = max(0, min(last, position - steps if action == "undo" else position + steps))
        serial = body["serials"][position]
        assert moved.json()["position"] == position and moved.json()["serial"] == serial
        expected = state_at(datastore, serial)
        eventually(
            lambda expected=expected: shown(lab1) == expected,
            WAIT,
            f"the fork room at serial {serial}",
        )

    # To the point where the second person's cell was added; the second window, on the
    # document's room, still shows the live document.
    target = edits[1].serial
    moved = undo_redo(site, "ed", room, "redo", target - body["serials"][position], fork)
    assert moved.json()["serial"] == target
    eventually(lambda: shown(lab1) == state_at(datastore, target), WAIT, "the fork at the target")
    assert shown(lab2) == live

    # Someone else's fork is not theirs to move or restore; a viewer may look but not restore.
    assert undo_redo(site, "ed2", room, "undo", 1, fork).status_code == 404
    viewer_fork = timeline(site, "vi", "tl/a.ipynb").json()["forkRoom"]
    refused = undo_redo(site, "vi", room, "restore", 0, viewer_fork)
    assert refused.status_code == 403, refused.text
    assert refused.json()["code"] == "permission-denied"

    # Restore: one transaction, origin restore, by the person; the history before it unchanged.
    datastore.refresh_from_db()
    before = list(
        Transaction.objects.filter(datastore=datastore).values_list("serial", "update", "origin")
    )
    restored = undo_redo(site, "ed", room, "restore", 0, fork)
    assert restored.status_code == 200, restored.text
    reply = restored.json()
    assert reply["code"] == 200 and reply["serial"] == target
    row = Transaction.objects.get(datastore=datastore, serial=reply["restoredBy"])
    assert (row.origin, row.author.username) == ("restore", "ed")
    # Appended: only the supernode's own bookkeeping (an autosave's state) may come between.
    assert row.serial > before[-1][0]
    between = Transaction.objects.filter(
        datastore=datastore, serial__gt=before[-1][0], serial__lt=row.serial
    )
    assert set(between.values_list("author__username", flat=True)) <= {account.SERVICE_USERNAME}
    after = Transaction.objects.filter(datastore=datastore, serial__lte=before[-1][0])
    assert list(after.values_list("serial", "update", "origin")) == before
    assert state_at(datastore, row.serial) == state_at(datastore, target)
    assert not TimelineFork.objects.filter(pk=fork.removeprefix("timeline:")).exists()
    eventually(lambda: shown(lab2) == state_at(datastore, target), WAIT, "the restore seen")

    # The front end reconnects the same Y document to the document's room: it holds the fork's
    # operations, which the restore included, so it adds nothing.
    lab1.switch_room(site.room_url, room, site.tokens["ed"], {"sessionId": session["sessionId"]})
    lab1.wait_synced()
    assert shown(lab1) == state_at(datastore, target)
    lab1.insert_text(["cells", 0, "source"], 0, "# ", root_type="array")
    mine = edited(datastore, "ed", row.serial)
    assert list(
        Transaction.objects.filter(
            datastore=datastore, serial__gt=row.serial, author__username="ed"
        )
    ) == [mine]
    assert state_at(datastore)["cells"][0]["source"].startswith("# ")


def test_timeline_refusals(site, node_client):
    site.with_supernode()
    opened = site.open_notebook("tl2/b.ipynb", "y = 2")
    room, datastore = opened.room, opened.datastore

    outside = timeline(site, "ed", "..%2Fb.ipynb")
    assert outside.status_code == 400, outside.text
    assert "new_path" in outside.json()["errors"]
    missing = timeline(site, "ed", "tl2/none.ipynb")
    assert (missing.status_code, missing.json()["code"]) == (404, "unknown-document")
    wrong = timeline(site, "ed", "tl2/b.ipynb", "format=text&&type=file")
    assert (wrong.status_code, wrong.json()["code"]) == (400, "wrong-type"), wrong.text
    assert timeline(site, "stranger", "tl2/b.ipynb").status_code == 404
    bad = undo_redo(site, "ed", room, "sideways", 1, "timeline:" + "0" * 32)
    assert bad.status_code == 400
    assert undo_redo(site, "ed", room, "undo", 1, "timeline:" + "0" * 32).status_code == 404

    # The fork room is its owner's: anyone else is closed with 4404.
    fork = timeline(site, "ed", "tl2/b.ipynb").json()["forkRoom"]
    other = join(node_client, site, "ed2", fork, None)
    other.wait_event("close", lambda event: event.get("code") == 4404)
    owner = join(node_client, site, "ed", fork, None)
    owner.wait_synced()
    assert shown(owner)["cells"][0]["source"] == "y = 2"
    # Its edits are not stored: a read-only view.
    datastore.refresh_from_db()
    serial = datastore.last_serial
    owner.insert_text(["cells", 0, "source"], None, "0", root_type="array")
    assert undo_redo(site, "ed", room, "undo", 1, fork).status_code == 200
    datastore.refresh_from_db()
    assert not Transaction.objects.filter(
        datastore=datastore, serial__gt=serial, author__username="ed"
    ).exists()
