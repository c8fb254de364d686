"""JupyterLab's collaboration protocol and the documents API, end to end: a real Jupyter Server,
a real daphne relay, the supernode as its own process (``manage.py run_supernode``), HTTP through
httpx and stock y-websocket clients in Node (``tests.support.nodeclient``), as JupyterLab's
``@jupyter/docprovider`` uses them: ``PUT /api/collaboration/session/<path>``, then a
``WebsocketProvider`` on ``/api/collaboration/room`` with the room ``<format>:<type>:<fileId>``
and ``?sessionId=``. What only the database or the disk shows is awaited with deadlines.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

import httpx
import pytest
from django.contrib.auth.models import User

from jupyter_sync.models import Document
from tables.models import Datastore, Transaction
from tables.service import live_state_vector
from tables.ydoc import decode_state_vector
from tests.support.collaboration_site import WAIT, Site, join, write_notebook
from tests.support.nodeclient import NodeYClient
from tests.support.waiting import eventually

pytest_plugins = ["tests.support.liveserver", "tests.support.jupyter", "tests.support.nodeclient"]
pytestmark = pytest.mark.django_db(transaction=True)

NOTEBOOK_ROOTS = {"cells": "array", "meta": "map", "state": "map"}


def disk_source(path: Path, index: int) -> str | None:
    try:
        source = json.loads(path.read_text())["cells"][index]["source"]
    except (FileNotFoundError, ValueError, LookupError):  # not there, or being written
        return None
    return "".join(source) if isinstance(source, list) else source


@pytest.fixture
def site(start_server, jupyter_server) -> Iterator[Site]:
    # Opening a file takes the supernode a moment; on a loaded machine, a long moment.
    relay = start_server(env={"RTC_API_ACTION_TIMEOUT": str(WAIT)})
    site = Site(relay, jupyter_server)
    try:
        yield site
    finally:
        site.close()


def cell_sources(client: NodeYClient) -> list[tuple[str, str]]:
    cells = client.get({"cells": "array"})["cells"]
    return [(cell.get("id"), cell.get("source")) for cell in cells]


def closed_with(client: NodeYClient, code: int) -> dict:
    return client.wait_event("close", lambda event: event.get("code") == code)


# --- The JupyterLab flow -----------------------------------------------------------------------


def test_jupyterlab_opens_a_notebook_edits_a_cell_and_the_edit_is_stored_and_saved(
    site, node_client
):
    site.with_supernode()
    path = site.root / "collab1" / "a.ipynb"
    write_notebook(path, "x = 1", "print(x)")

    first = site.put_session("ed", "collab1/a.ipynb")
    assert first.status_code == 201, first.text
    session = first.json()
    assert set(session) == {"format", "type", "fileId", "sessionId"}
    assert (session["format"], session["type"]) == ("json", "notebook")
    again = site.put_session("ed", "collab1/a.ipynb")
    assert again.status_code == 200, again.text
    assert again.json() == session

    record = Document.objects.get(datastore=site.jupyter, record_id=session["fileId"])
    assert (record.path, record.status, record.type) == ("collab1/a.ipynb", "open", "notebook")
    datastore = Datastore.objects.get(name=record.datastore_name)

    room = f"json:notebook:{session['fileId']}"
    lab = join(node_client, site, "ed", room, session["sessionId"])
    lab.wait_synced()
    assert cell_sources(lab) == [("c1", "x = 1"), ("c2", "print(x)")]

    before = datastore.last_serial
    lab.insert_text(["cells", 0, "source"], None, "0", root_type="array")
    stored = eventually(
        lambda: list(Transaction.objects.filter(datastore=datastore, serial__gt=before)),
        WAIT,
        "the edit stored",
    )
    editor = User.objects.get(username="ed")
    assert (stored[0].author_id, stored[0].origin) == (editor.pk, "client")
    eventually(lambda: disk_source(path, 0) == "x = 10", WAIT, "the edit saved to the .ipynb")

    # Ctrl+S: jupyter-collaboration's raw "save" message, answered once the file is written.
    saved_before = eventually(
        lambda: Document.objects.get(pk=record.pk).last_saved, WAIT, "the autosave recorded"
    )
    lab.send_save(7)
    reply = json.loads(lab.wait_event("raw")["message"])
    assert reply == {"type": "save", "responseTo": 7, "status": "success"}
    assert Document.objects.get(pk=record.pk).last_saved > saved_before

    # The documents API tells the same document, with both protocols' URLs.
    with site.http("ed") as client:
        shown = client.get(f"/api/documents/{session['fileId']}").json()
    assert shown["status"] == "open" and shown["path"] == "collab1/a.ipynb"
    assert shown["session_id"] == session["sessionId"]
    sockets = shown["websockets"]
    assert sockets["collaboration"] == f"{site.room_url}/{room}"
    assert sockets["yjs"] == f"{site.relay.ws_url}/ws/yjs/{datastore.name}"
    assert sockets["datastore"] == f"{site.relay.ws_url}/ws/datastores/{datastore.name}/"

    # A second client on /ws/yjs sees the edit: one document, two routes.
    other: NodeYClient = node_client(timeout=WAIT)
    other.connect(site.relay.yjs_url, datastore.name, site.tokens["ed"])
    other.wait_synced()
    assert cell_sources(other)[0] == ("c1", "x = 10")


def test_jupyterlab_windows_follow_cells_run_on_the_server_and_no_update_breaks_them(
    site, node_client
):
    """Two JupyterLab windows (a YNotebook of @jupyter/ydoc each, which sets a cell idle when
    its count arrives, as JupyterLab's CodeCell does) while cells run server-side: both see the
    outputs, the count and the state back to idle, and computing the changes of every update
    they receive (getChanges) throws nothing.

    A count written while the cell was still running made each window set it idle itself;
    the two windows' concurrent writes meant one of them received a change of
    ``execution_state`` that did not win, which getChanges cannot describe (it read
    ``oldValue`` of nothing). The cell waiting for input holds the run open until whatever the
    windows wrote has gone round, so the end of the run cannot hide it."""
    site.with_supernode()
    write_notebook(
        site.root / "collab-run" / "a.ipynb",
        "print(6 * 7)",
        'print("asking")\nname = input("name? ")\nprint("hi", name)',
    )
    session = site.put_session("ed", "collab-run/a.ipynb").json()
    room = f"json:notebook:{session['fileId']}"
    datastore = Document.objects.get(record_id=session["fileId"]).datastore_name
    windows: list[NodeYClient] = []
    for _ in range(2):
        window = node_client(timeout=WAIT, notebook=True)
        window.connect(
            site.room_url, room, site.tokens["ed"], params={"sessionId": session["sessionId"]}
        )
        window.wait_synced()
        windows.append(window)

    def cell_ran(index: int, count: int):
        def check(doc: dict) -> bool:
            cell = doc["cells"][index]
            return (
                cell["execution_count"] == count
                and cell["execution_state"] == "idle"
                and bool(cell["outputs"])
            )

        return check

    def all_round() -> bool:
        """Each window holds everything the server stored (its writes included)."""
        server = decode_state_vector(live_state_vector(datastore)[0])
        return all(decode_state_vector(w.state_vector()) == server for w in windows)

    with site.http("ed") as client:
        response = client.post("/api/executions", json={"document_id": room, "cell_id": "c1"})
        assert response.status_code == 200, response.text
        assert response.json()["execution_count"] == 1
        for window in windows:
            done = window.wait_for(cell_ran(0, 1), {"cells": "array"}, timeout=WAIT)
            assert done["cells"][0]["outputs"] == [
                {"output_type": "stream", "name": "stdout", "text": "42\n"}
            ]

        response = client.post("/api/executions", json={"document_id": room, "cell_id": "c2"})
        assert response.status_code == 202, response.text  # waiting for input
        execution_id = response.json()["id"]
        for window in windows:  # the run under way, as the windows see it
            window.wait_for(
                lambda doc: doc["cells"][1]["outputs"], {"cells": "array"}, timeout=WAIT
            )
        eventually(all_round, WAIT, "the windows and the server holding the same state")
        answer = client.post(f"/api/executions/{execution_id}/input", json={"value": "Ada"})
        assert answer.status_code == 204, answer.text
        finished = eventually(
            lambda: (
                (got := client.get(f"/api/executions/{execution_id}")).status_code == 200 and got
            ),
            WAIT,
            "the run finished",
        )
        assert finished.json()["execution_count"] == 2, finished.json()
    for window in windows:
        done = window.wait_for(cell_ran(1, 2), {"cells": "array"}, timeout=WAIT)
        assert done["cells"][1]["outputs"][-1]["text"] == "asking\nhi Ada\n"
        counts = [
            event["executionCount"]["newValue"]
            for event in window.events_named("cell-change")
            if "executionCount" in event
        ]
        assert counts[-1] == 2, counts  # JupyterLab's model told the count
    eventually(all_round, WAIT, "the windows and the server holding the same state")
    for window in windows:
        errors = window.events_named("error")
        assert not errors, errors[0]


def test_who_may_join_a_room_and_what_a_refused_room_says(site, node_client):
    site.with_supernode()
    write_notebook(site.root / "collab2" / "b.ipynb", "y = 2")
    session = site.put_session("ed", "collab2/b.ipynb").json()
    room = f"json:notebook:{session['fileId']}"
    datastore = Datastore.objects.get(name=f"doc-{session['fileId']}")

    # A viewer may join a document that is open, and read it, but not write: an edit closes
    # the connection (4403, "read-only: ..."), so the window cannot silently diverge.
    viewed = site.put_session("vi", "collab2/b.ipynb")
    assert viewed.status_code == 200 and viewed.json() == session
    viewer = join(node_client, site, "vi", room, session["sessionId"])
    viewer.wait_synced()
    assert cell_sources(viewer) == [("c1", "y = 2")]
    serial = Datastore.objects.get(pk=datastore.pk).last_serial
    viewer.send_save(1)
    assert json.loads(viewer.wait_event("raw")["message"])["status"] == "failed"
    viewer.insert_text(["cells", 0, "source"], None, "#", root_type="array")
    assert closed_with(viewer, 4403)["reason"].startswith("read-only:")
    viewer.disconnect()  # a stock provider would reconnect, resend the edit, and be closed again
    assert Datastore.objects.get(pk=datastore.pk).last_serial == serial

    # ...nor open one (opening is a write): refused, nothing written.
    write_notebook(site.root / "collab2" / "c.ipynb", "z = 3")
    refused = site.put_session("vi", "collab2/c.ipynb")
    assert refused.status_code == 403, refused.text
    assert refused.json()["code"] == "permission-denied" and refused.json()["message"]
    assert not Document.objects.filter(path="collab2/c.ipynb").exists()

    # A stranger is told nothing over HTTP (404, as for any datastore), refused on the socket.
    assert site.put_session("stranger", "collab2/b.ipynb").status_code == 404
    stranger = join(node_client, site, "stranger", room, session["sessionId"])
    closed_with(stranger, 4403)

    # Unknown documents, malformed rooms, and state from another incarnation of the document.
    unknown = join(node_client, site, "ed", "json:notebook:nosuchdocument", None)
    closed_with(unknown, 4404)
    wrong_type = join(node_client, site, "ed", f"text:file:{session['fileId']}", None)
    closed_with(wrong_type, 4400)
    malformed = join(node_client, site, "ed", "notebook-without-format", None)
    closed_with(malformed, 4400)
    stale = join(node_client, site, "ed", room, "an-earlier-session")
    closed_with(stale, 4409)
    assert "replaced" in stale.wait_event("permission-denied")["reason"]

    # No token, no cookie: 4401.
    anonymous: NodeYClient = node_client(timeout=WAIT)
    anonymous.connect(site.room_url, room, None)
    closed_with(anonymous, 4401)


def test_bad_paths_and_bodies_get_clear_errors_and_write_nothing(site):
    site.with_supernode()
    for path in ("../outside.ipynb", "collab3/../../outside.ipynb", "/", "a//b.ipynb"):
        answer = site.put_session("ed", path)
        assert answer.status_code == 400, (path, answer.text)
        assert answer.json()["code"] == "invalid"
        assert "root" in answer.json()["message"] or "empty" in answer.json()["message"]

    missing = site.put_session("ed", "collab3/nothing.ipynb")
    assert missing.status_code == 404, missing.text
    assert missing.json()["code"] == "no-such-file"
    assert "no such file" in missing.json()["message"]

    write_notebook(site.root / "collab3" / "d.ipynb", "w = 4")
    wrong_format = site.put_session("ed", "collab3/d.ipynb", format="text", type="notebook")
    assert wrong_format.status_code == 400
    assert "format" in wrong_format.json()["errors"]
    unknown_type = site.put_session("ed", "collab3/d.ipynb", format="json", type="whiteboard")
    assert unknown_type.status_code == 400
    assert "type" in unknown_type.json()["errors"]
    assert not Document.objects.filter(path="collab3/d.ipynb").exists()


def test_without_a_supernode_nothing_is_asked_and_the_answer_says_why(site):
    write_notebook(site.root / "collab4" / "e.ipynb", "v = 5")
    answer = site.put_session("ed", "collab4/e.ipynb")
    assert answer.status_code == 503, answer.text
    assert answer.json()["code"] == "supernode-unavailable"
    assert "supernode" in answer.json()["message"]
    with site.http("ed") as client:
        opened = client.post("/api/documents", json={"path": "collab4/e.ipynb"})
    assert opened.status_code == 503
    assert not Document.objects.filter(path="collab4/e.ipynb").exists()


def test_the_documents_api_opens_and_carries_out_requests(site):
    site.with_supernode()
    path = site.root / "collab5" / "f.ipynb"
    write_notebook(path, "u = 6")
    (site.root / "collab5" / "notes.txt").write_text("one\n")
    with site.http("ed") as client:
        opened = client.post("/api/documents", json={"path": "collab5/f.ipynb"})
        assert opened.status_code == 201, opened.text
        document = opened.json()
        assert document["status"] == "open" and document["type"] == "notebook"
        assert opened.headers["Location"] == document["url"]
        again = client.post("/api/documents", json={"path": "/collab5/f.ipynb"})
        assert again.status_code == 200 and again.json()["id"] == document["id"]

        text = client.post("/api/documents", json={"path": "collab5/notes.txt"})
        assert text.status_code == 201 and text.json()["type"] == "file"
        assert text.json()["websockets"]["collaboration"].endswith(
            f"/text:file:{text.json()['id']}"
        )

        listed = client.get("/api/documents", params={"path": "collab5/f.ipynb"}).json()
        assert [item["id"] for item in listed["results"]] == [document["id"]]

        saved = client.post(f"/api/documents/{document['id']}/save")
        assert saved.status_code == 200, saved.text
        assert saved.json()["last_saved"]

        renamed = client.post(
            f"/api/documents/{document['id']}/rename", json={"new_path": "collab5/g.ipynb"}
        )
        assert renamed.status_code == 200, renamed.text
        assert renamed.json()["path"] == "collab5/g.ipynb"
        assert (site.root / "collab5" / "g.ipynb").exists() and not path.exists()
        assert renamed.json()["datastore_name"] == document["datastore_name"]

        bad_rename = client.post(
            f"/api/documents/{document['id']}/rename", json={"new_path": "../x.ipynb"}
        )
        assert bad_rename.status_code == 400 and "new_path" in bad_rename.json()["errors"]

        closed = client.post(f"/api/documents/{document['id']}/close")
        assert closed.status_code == 200 and closed.json()["status"] == "closed"

        unknown = client.post("/api/documents/nosuchdocument/save")
        assert unknown.status_code == 404 and unknown.json()["code"] == "unknown-document"

    with site.http("vi") as client:
        assert client.get(f"/api/documents/{document['id']}").status_code == 200
        refused = client.post(f"/api/documents/{document['id']}/save")
        assert refused.status_code == 403 and refused.json()["code"] == "permission-denied"
    with site.http("stranger") as client:
        assert client.get("/api/documents").status_code == 404
        assert client.get(f"/api/documents/{document['id']}").status_code == 404


def test_the_global_awareness_room_shares_presence_and_nothing_else(site, node_client):
    """JupyterLab's collaborators panel: ``JupyterLab:globalAwareness``, awareness only."""
    room = "JupyterLab:globalAwareness"
    serial = Datastore.objects.get(pk=site.jupyter.pk).last_serial
    ada = join(node_client, site, "ed", room, None)
    bob = join(node_client, site, "vi", room, None)
    ada.wait_synced()
    bob.wait_synced()
    ada.set_awareness({"user": {"name": "ed"}, "documents": ["collab6/a.ipynb"]})
    seen = bob.wait_awareness(lambda states: ada.client_id in states)
    assert seen[ada.client_id]["documents"] == ["collab6/a.ipynb"]

    # The provider's document is not the jupyter datastore: nothing comes in, nothing is stored.
    ada.set(["stray"], "key", "value")
    assert ada.get(["status", "documents"]) == {"status": {}, "documents": {}}
    # Frames are handled in order: once this later awareness arrives, the edit was handled.
    ada.set_awareness({"user": {"name": "ed"}, "documents": []})
    bob.wait_awareness(lambda states: states.get(ada.client_id, {}).get("documents") == [])
    assert Datastore.objects.get(pk=site.jupyter.pk).last_serial == serial
    assert bob.get(["stray"]) == {"stray": {}}

    stranger = join(node_client, site, "stranger", room, None)
    closed_with(stranger, 4403)


def test_past_the_timeout_open_answers_202_and_the_session_504(site, start_server):
    """A relay whose wait is over at once (RTC_API_ACTION_TIMEOUT=0): the supernode is there,
    but the answer cannot wait for it."""
    site.with_supernode()
    impatient = start_server(env={"RTC_API_ACTION_TIMEOUT": "0"})
    write_notebook(site.root / "collab7" / "h.ipynb", "t = 7")
    write_notebook(site.root / "collab7" / "i.ipynb", "t = 8")
    headers = {"Authorization": f"Token {site.tokens['ed']}"}
    with httpx.Client(base_url=impatient.url, headers=headers, timeout=WAIT) as client:
        opened = client.post("/api/documents", json={"path": "collab7/h.ipynb"})
        assert opened.status_code == 202, opened.text
        body = opened.json()
        assert body["request"] == "open" and body["websockets"] is None
        assert opened.headers["Location"] == body["url"]
        assert body["url"] == f"{impatient.url}/api/documents/{body['id']}"

        session = client.put(
            f"/api/collaboration/session/{quote('collab7/i.ipynb', safe='')}",
            json={"format": "json", "type": "notebook"},
        )
        assert session.status_code == 504, session.text
        assert session.json()["code"] == "timeout"
        assert "collab7/i.ipynb" in session.json()["message"]
