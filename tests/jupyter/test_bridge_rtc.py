"""The bridge between real parts: a Jupyter Server running JupyterLab and the bridge
(``tests.support.bridged_jupyter``), a real RTC server (daphne, ``tests.support.liveserver``), the
supernode as its own process pointed at that same Jupyter Server (as a deployment runs it), and
stock y-websocket clients in Node talking to the Jupyter Server only, with Jupyter's token, as
JupyterLab's docprovider does.
"""

from __future__ import annotations

import json
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

import httpx
import pytest
import websockets.exceptions
import websockets.sync.client
from jupyter_rtc_bridge.status import SCHEMA_ID

from relay.models import JupyterIdentity
from tables.models import Datastore, Transaction
from tables.permissions import grant
from tests.support.bridged_jupyter import BridgedJupyter
from tests.support.factories import bridge_token
from tests.support.liveserver import ServerProcess
from tests.support.nodeclient import NodeYClient
from tests.support.notebooks import code_cells, notebook, write_json
from tests.support.supernode_process import SupernodeProcess
from tests.support.waiting import eventually

pytest_plugins = [
    "tests.support.liveserver",
    "tests.support.nodeclient",
    "tests.support.bridged_jupyter",
]
pytestmark = pytest.mark.django_db(transaction=True)

WAIT = 60.0  # the supernode opening a file, on a loaded machine
BIG = 64 * 1024 * 1024  # daphne's limit on a WebSocket message and frame (its default: 1 MiB)
SESSION_BODY = json.dumps({"format": "json", "type": "notebook"}).encode()


def write_notebook(path: Path, *sources: str) -> None:
    write_json(path, notebook(*code_cells(*sources), metadata={}))


@dataclass
class Stack:
    rtc: ServerProcess
    lab: BridgedJupyter
    token: str  # the bridge's RTC token
    access_log: Path

    def session(self, path: str, *, token: bool = True) -> tuple[int, dict, bytes]:
        """``PUT api/collaboration/session/<path>`` on JupyterLab's origin, as the docprovider."""
        return self.lab.request(
            "PUT",
            f"/api/collaboration/session/{quote(path, safe='')}",
            body=SESSION_BODY,
            token=token,
        )

    def open_notebook(self, path: str, *sources: str) -> dict:
        write_notebook(self.lab.root_dir / path, *sources)
        status, _headers, body = self.session(path)
        assert status in (200, 201), body
        return json.loads(body)

    @property
    def room_url(self) -> str:
        return f"{self.lab.ws_url}/api/collaboration/room"

    def join(self, node_client, room: str, session: str | None, token: str | None = "lab"):
        """A WebsocketProvider on the bridge's room, with Jupyter's token as ``?token=``."""
        client: NodeYClient = node_client(timeout=WAIT)
        params = {"sessionId": session} if session else None
        client.connect(self.room_url, room, self.lab.token if token == "lab" else token, params)
        return client

    def jupyter_user(self) -> dict:
        """Who Jupyter says the token's holder is (``/api/me``)."""
        status, _headers, body = self.lab.request("GET", "/api/me")
        assert status == 200, body
        return json.loads(body)["identity"]

    def reached_rtc(self) -> str:
        """daphne's access log: every request that reached the RTC server."""
        return self.access_log.read_text() if self.access_log.exists() else ""


@pytest.fixture
def stack(start_server, bridged_jupyter) -> Iterator[Stack]:
    work = Path(tempfile.mkdtemp(prefix="rtc-bridge-"))
    access_log = work / "access.log"
    big_frames = ("--websocket-max-message-size", str(BIG), "--websocket-max-frame-size", str(BIG))
    rtc = start_server(
        env={
            "RTC_API_ACTION_TIMEOUT": str(WAIT),
            "RTC_MAX_UPDATE_BYTES": str(BIG),
            "RTC_MAX_MESSAGE_BYTES": str(BIG),
        },
        args=("--access-log", str(access_log), *big_frames),
    )
    token = bridge_token()
    lab = bridged_jupyter(rtc.url, token)
    supernode = SupernodeProcess(rtc, lab.url, lab.token, wait=WAIT)
    try:
        supernode.wait_connected()
        yield Stack(rtc=rtc, lab=lab, token=token, access_log=access_log)
    finally:
        supernode.stop()
        access_log.unlink(missing_ok=True)
        work.rmdir()


def closed_with(client: NodeYClient, code: int) -> dict:
    return client.wait_event("close", lambda event: event.get("code") == code)


# --- HTTP ---------------------------------------------------------------------------------------


def test_the_session_through_the_bridge_is_what_the_rtc_server_answers(stack):
    write_notebook(stack.lab.root_dir / "b1" / "a.ipynb", "x = 1")
    status, headers, body = stack.session("b1/a.ipynb")
    assert status == 201, body
    assert headers["content-type"].startswith("application/json")
    session = json.loads(body)
    assert set(session) == {"format", "type", "fileId", "sessionId"}
    assert "location" not in headers  # nothing naming the RTC server comes back

    again = stack.session("b1/a.ipynb")
    assert (again[0], json.loads(again[2])) == (200, session)
    # The bridge acted for the Jupyter user, under Jupyter's names for them.
    me = stack.jupyter_user()
    mapped = JupyterIdentity.objects.get(jupyter_username=me["username"])
    assert mapped.bridge.username == "jupyterlab-bridge"
    assert (mapped.name, mapped.display_name) == (me["name"], me["display_name"])

    # The RTC server answers the same to the bridge's token acting for that Jupyter user.
    direct = httpx.put(
        f"{stack.rtc.url}/api/collaboration/session/{quote('b1/a.ipynb', safe='')}",
        content=SESSION_BODY,
        headers={
            "Authorization": f"Token {stack.token}",
            "Content-Type": "application/json",
            "X-Jupyter-User": json.dumps({"username": me["username"]}),
        },
        timeout=WAIT,
    )
    assert (direct.status_code, direct.json()) == (200, session)

    # Errors pass through as the RTC server words them.
    missing = stack.session("b1/nothing.ipynb")
    assert missing[0] == 404 and json.loads(missing[2])["code"] == "no-such-file"


def test_unauthenticated_requests_are_refused_by_jupyter_and_never_reach_the_rtc_server(stack):
    write_notebook(stack.lab.root_dir / "b2" / "a.ipynb", "x = 1")
    assert stack.session("b2/a.ipynb", token=False)[0] == 403
    wrong = stack.lab.request(
        "PUT",
        "/api/collaboration/session/b2%2Fa.ipynb",
        body=SESSION_BODY,
        token=False,
        headers={"Authorization": "token not-the-token"},
    )
    assert wrong[0] == 403
    assert stack.lab.request("GET", "/api/kernels/k/requests/r", token=False)[0] == 403
    for token in ("", "?token=not-the-token"):
        with pytest.raises(websockets.exceptions.InvalidStatus) as refused:
            websockets.sync.client.connect(f"{stack.room_url}/json:notebook:x{token}")
        assert refused.value.response.status_code == 403

    assert stack.session("b2/a.ipynb")[0] == 201  # the one that reaches it
    eventually(lambda: "collaboration/session" in stack.reached_rtc(), WAIT, "the access log")
    lines = [line for line in stack.reached_rtc().splitlines() if "/api/" in line]
    assert len(lines) == 1 and "PUT /api/collaboration/session/b2%2Fa.ipynb" in lines[0], lines


def test_kernel_routes_go_to_the_rtc_server_and_jupyters_own_stay_jupyters(stack):
    status, _headers, body = stack.lab.request(
        "POST", "/api/kernels", body=json.dumps({"name": "python3"}).encode()
    )
    assert status == 201, body
    kernel_id = json.loads(body)["id"]
    try:
        # Jupyter's own kernel model, not the RTC server's.
        status, _headers, body = stack.lab.request("GET", f"/api/kernels/{kernel_id}")
        assert status == 200 and json.loads(body)["id"] == kernel_id
        # /execute is the RTC server's (Jupyter Server has none): its JSON errors have "code".
        status, _headers, body = stack.lab.request(
            "POST", f"/api/kernels/{kernel_id}/execute", body=b'{"code": 1}'
        )
        assert status == 400 and "code" in json.loads(body), body
        status, _headers, body = stack.lab.request(
            "GET", f"/api/kernels/{kernel_id}/requests/nosuchrequest"
        )
        assert status == 404 and "code" in json.loads(body), body
        # The kernel's channels are Jupyter's: the socket opens.
        channels = f"{stack.lab.ws_url}/api/kernels/{kernel_id}/channels?token={stack.lab.token}"
        with websockets.sync.client.connect(channels) as socket:
            assert socket.protocol.state.name == "OPEN"
    finally:
        stack.lab.request("DELETE", f"/api/kernels/{kernel_id}")


def test_jupyterlabs_executor_runs_a_cell_by_room_id_for_editors_and_not_for_viewers(
    stack, node_client
):
    """What jupyter-docprovider's server-side executor sends through the bridge: the room id as
    document_id, in a text/plain body. An editor's cell runs and its output reaches the room;
    once the person is a viewer on the jupyter datastore, the same request is a 403."""
    session = stack.open_notebook("b8/a.ipynb", "print(6 * 7)", "print('viewer')")
    room = f"json:notebook:{session['fileId']}"
    ada = stack.join(node_client, room, session["sessionId"])
    ada.wait_synced()
    status, _headers, body = stack.lab.request(  # Jupyter's own sessions API
        "POST",
        "/api/sessions",
        body=json.dumps(
            {"path": "b8/a.ipynb", "type": "notebook", "name": "a", "kernel": {"name": "python3"}}
        ).encode(),
    )
    assert status == 201, body
    kernel_id = json.loads(body)["kernel"]["id"]

    def execute(cell_id: str, document_id: str = room) -> tuple[int, dict, bytes]:
        return stack.lab.request(
            "POST",
            f"/api/kernels/{kernel_id}/execute",
            body=json.dumps({"cell_id": cell_id, "document_id": document_id}).encode(),
            headers={"Content-Type": "text/plain;charset=UTF-8"},
        )

    try:
        # The RTC server knows the kernel once the supernode's refresh saw it (a 404 until
        # then, and a 404 writes nothing).
        status, _headers, body = eventually(
            lambda: (answer := execute("c1"))[0] != 404 and answer, WAIT, "the kernel known"
        )
        assert status == 202, body
        cells = {"cells": "array"}
        done = ada.wait_for(
            lambda doc: doc["cells"][0]["outputs"] and doc["cells"][0]["execution_count"],
            cells,
            timeout=WAIT,
        )
        assert done["cells"][0]["outputs"] == [
            {"output_type": "stream", "name": "stdout", "text": "42\n"}
        ]
        status, _headers, body = execute("c1", f"text:file:{session['fileId']}")
        assert status == 400 and json.loads(body)["code"] == "wrong-type", body

        # The same person made a viewer: refused, and the cell never runs.
        me = stack.jupyter_user()
        person = JupyterIdentity.objects.get(jupyter_username=me["username"]).user
        grant(Datastore.objects.get(name="jupyter"), person, "viewer")
        status, _headers, body = execute("c2")
        assert status == 403 and json.loads(body)["code"] == "permission-denied", body
        assert ada.get(cells)["cells"][1]["outputs"] == []
    finally:
        stack.lab.request("DELETE", f"/api/kernels/{kernel_id}")


# --- The room -----------------------------------------------------------------------------------


def test_clients_sync_a_notebook_through_the_bridge_room(stack, node_client):
    session = stack.open_notebook("b3/a.ipynb", "x = 1", "print(x)")
    room = f"json:notebook:{session['fileId']}"
    ada = stack.join(node_client, room, session["sessionId"])
    bob = stack.join(node_client, room, session["sessionId"])
    ada.wait_synced()
    bob.wait_synced()
    cells = {"cells": "array"}
    assert [cell["source"] for cell in ada.get(cells)["cells"]] == ["x = 1", "print(x)"]

    ada.insert_text(["cells", 0, "source"], None, "0", root_type="array")
    bob.wait_for(lambda doc: doc["cells"][0]["source"] == "x = 10", cells)
    # Stored as the Jupyter user's edit (the handshake carried X-Jupyter-User).
    # (Jupyter gives each cookie-less token connection an anonymous user of its own.)
    authors = Transaction.objects.filter(datastore__name=f"doc-{session['fileId']}").values(
        "author_id"
    )
    assert JupyterIdentity.objects.filter(
        user_id__in=authors, bridge__username="jupyterlab-bridge"
    ).exists()
    bob.insert_text(["cells", 1, "source"], 0, "#", root_type="array")
    ada.wait_for(lambda doc: doc["cells"][1]["source"] == "#print(x)", cells)

    # Awareness goes both ways; Ctrl+S (a raw "save" message) is answered through the pipe.
    ada.set_awareness({"user": {"name": "ada"}})
    bob.wait_awareness(lambda states: states.get(ada.client_id, {}).get("user") == {"name": "ada"})
    ada.send_save(3)
    assert json.loads(ada.wait_event("raw")["message"])["responseTo"] == 3

    # A browser that vanishes (no close frame) makes the bridge close its leg to the RTC server.
    def room_disconnects() -> int:
        return stack.reached_rtc().count(f"WSDISCONNECT /api/collaboration/room/{room}")

    assert room_disconnects() == 0
    ada.process.kill()
    eventually(lambda: room_disconnects() == 1, WAIT, "the bridge closing ada's RTC leg")

    # The global awareness room too.
    one = stack.join(node_client, "JupyterLab:globalAwareness", None)
    two = stack.join(node_client, "JupyterLab:globalAwareness", None)
    one.wait_synced()
    two.wait_synced()
    one.set_awareness({"current": "b3/a.ipynb"})
    two.wait_awareness(lambda states: states.get(one.client_id) == {"current": "b3/a.ipynb"})


def test_close_codes_are_what_the_docprovider_understands(stack, node_client):
    session = stack.open_notebook("b4/a.ipynb", "y = 2")
    room = f"json:notebook:{session['fileId']}"

    unknown = stack.join(node_client, "json:notebook:nosuchdocument", None)
    closed_with(unknown, 4404)
    malformed = stack.join(node_client, "notebook-without-format", None)
    closed_with(malformed, 4400)

    stale = stack.join(node_client, room, "an-earlier-session")
    closed = closed_with(stale, 1003)
    payload = json.loads(closed["reason"])
    assert payload["reason"] == "unknown_session" and payload["reloadable"] is True
    assert payload["errorReason"]


def test_a_bridge_whose_token_the_rtc_server_refuses_closes_rooms_with_the_dialog(
    stack, bridged_jupyter, node_client
):
    impostor = bridged_jupyter(stack.rtc.url, "not-a-token-of-the-rtc-server")
    client: NodeYClient = node_client(timeout=WAIT)
    client.connect(f"{impostor.ws_url}/api/collaboration/room", "json:notebook:x", impostor.token)
    payload = json.loads(closed_with(client, 1003)["reason"])
    assert payload["reason"] == "unknown_session" and payload["reloadable"] is False


def test_a_room_handshake_daphne_rejects_is_a_reconnect_not_the_dialog(
    stack, bridged_jupyter, node_client
):
    """daphne answers a handshake 403 when it gives up on it (the room did not accept within
    its connect timeout, as right after a restart on a busy machine): the RTC server refused
    nothing, so the browser tries again instead of getting the dialog that disposes the
    document. A path no route serves is the same 403 from the same daphne, on demand."""
    elsewhere = bridged_jupyter(f"{stack.rtc.url}/no-such-prefix", stack.token)
    client: NodeYClient = node_client(timeout=WAIT)
    client.connect(f"{elsewhere.ws_url}/api/collaboration/room", "json:notebook:x", elsewhere.token)
    closed = client.wait_event("close")
    assert closed["code"] == 1013, closed
    assert str(stack.rtc.port) not in closed.get("reason", "")
    eventually(lambda: "WSREJECT /no-such-prefix/" in stack.reached_rtc(), WAIT, "the 403")


def test_the_rtc_server_down_is_a_503_and_a_reconnect_and_nothing_typed_is_lost(stack, node_client):
    session = stack.open_notebook("b5/a.ipynb", "z = 3")
    room = f"json:notebook:{session['fileId']}"
    cells = {"cells": "array"}
    ada = stack.join(node_client, room, session["sessionId"])
    bob = stack.join(node_client, room, session["sessionId"])
    ada.wait_synced()
    bob.wait_synced()

    stack.rtc.kill()  # a crash: the bridge's connections to it drop
    closed = ada.wait_event("close")
    assert closed["code"] in (1011, 1013), closed
    ada.insert_text(["cells", 0, "source"], None, "3", root_type="array")  # typed while down

    status, headers, body = stack.session("b5/a.ipynb")
    assert status == 503 and headers["content-type"].startswith("application/json")
    answer = json.loads(body)
    assert set(answer) == {"message", "reason"} and "cannot be reached" in answer["message"]
    assert str(stack.rtc.port) not in body.decode()
    late = stack.join(node_client, room, session["sessionId"])
    assert late.wait_event("close")["code"] == 1013  # y-websocket tries again with backoff

    stack.rtc.restart()
    # The providers reconnect on their own; what ada typed meanwhile reaches bob and the late one.
    bob.wait_for(lambda doc: doc["cells"][0]["source"] == "z = 33", cells, timeout=WAIT)
    late.wait_for(lambda doc: doc["cells"][0]["source"] == "z = 33", cells, timeout=WAIT)
    assert stack.session("b5/a.ipynb")[0] == 200


STATUS = "/api/rtc-bridge/status"


def reachability(stack: Stack) -> dict:
    """The bridge's status route, as JupyterLab's page reads it at load."""
    status, headers, body = stack.lab.request("GET", STATUS)
    assert status == 200, body
    assert headers["content-type"].startswith("application/json")
    text = body.decode()
    for secret in (stack.rtc.url, f":{stack.rtc.port}", stack.token):
        assert secret not in text
    return json.loads(text)


def next_reachability_event(events: websockets.sync.client.ClientConnection) -> dict:
    """The next event of the bridge's schema on Jupyter's event bus (other schemas skipped)."""
    deadline = time.monotonic() + WAIT
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise AssertionError(f"no event of {SCHEMA_ID} within {WAIT}s")
        try:
            event = json.loads(events.recv(timeout=remaining))
        except TimeoutError:
            continue
        if event.get("schema_id") == SCHEMA_ID:
            return event


def test_the_rtc_server_down_and_back_is_told_on_jupyters_event_bus_and_status_route(stack):
    assert stack.lab.request("GET", STATUS, token=False)[0] == 403
    wrong = {"Authorization": "token not-the-token"}
    assert stack.lab.request("GET", STATUS, token=False, headers=wrong)[0] == 403
    assert reachability(stack) == {"reachable": True}
    write_notebook(stack.lab.root_dir / "b7" / "a.ipynb", "w = 7")

    # JupyterLab's page listens on Jupyter's event bus, with Jupyter's token.
    subscribe = f"{stack.lab.ws_url}/api/events/subscribe"
    with pytest.raises(websockets.exceptions.InvalidStatus) as refused:
        websockets.sync.client.connect(subscribe)
    assert refused.value.response.status_code == 403
    with websockets.sync.client.connect(f"{subscribe}?token={stack.lab.token}") as events:
        stack.rtc.kill()
        assert reachability(stack) == {"reachable": True}  # nothing asked it yet
        assert stack.session("b7/a.ipynb")[0] == 503  # a request that finds it down
        down = next_reachability_event(events)
        assert down["reachable"] is False
        assert stack.lab.token not in json.dumps(down) and str(stack.rtc.port) not in str(down)
        assert reachability(stack) == {"reachable": False}

        stack.rtc.restart()
        # Nobody asks anything: the bridge's own probe finds it back, and says so.
        assert next_reachability_event(events)["reachable"] is True
        assert reachability(stack) == {"reachable": True}
    assert stack.session("b7/a.ipynb")[0] in (200, 201)


def test_frames_bigger_than_tornados_default_limit_pass_both_ways(stack, node_client):
    """11 MiB in one frame (tornado's default limit is 10 MiB). daphne's own default is 1 MiB a
    message, and this RTC server's own limits are 8 MiB an update and 16 MiB a message, so the
    RTC server here is started with larger ones (``big_frames``, ``RTC_MAX_*``)."""
    session = stack.open_notebook("b6/a.ipynb", "")
    room = f"json:notebook:{session['fileId']}"
    ada = stack.join(node_client, room, session["sessionId"])
    bob = stack.join(node_client, room, session["sessionId"])
    ada.wait_synced()
    bob.wait_synced()
    big = "x" * (11 * 1024 * 1024)  # tornado's default is 10 MiB a message
    ada.insert_text(["cells", 0, "source"], 0, big, root_type="array")
    bob.wait_for(lambda doc: len(doc["cells"][0]["source"]) == len(big), {"cells": "array"})
    assert not ada.events_named("permission-denied")
    assert ada.status()["connected"] and bob.status()["connected"]


# --- The timeline -------------------------------------------------------------------------------


def test_the_timeline_through_the_bridge_restores_as_the_jupyter_user(stack, node_client):
    session = stack.open_notebook("b9/t.ipynb", "x = 1")
    room = f"json:notebook:{session['fileId']}"
    datastore = Datastore.objects.get(name=f"doc-{session['fileId']}")
    lab = stack.join(node_client, room, session["sessionId"])
    lab.wait_synced()
    before = Datastore.objects.get(pk=datastore.pk).last_serial
    lab.insert_text(["cells", 0, "source"], None, "0", root_type="array")
    edit = eventually(
        lambda: Transaction.objects.filter(
            datastore=datastore, serial__gt=before, origin="client"
        ).first(),
        WAIT,
        "the edit stored",
    )

    # What requestDocumentTimeline and requestUndoRedo send, on JupyterLab's origin. (The fork
    # room itself is its maker's: a Node client, without Jupyter's cookie, is another anonymous
    # Jupyter user, so it is joined directly in test_timeline.py.)
    status, _headers, body = stack.lab.request(
        "GET", "/api/collaboration/timeline/b9/t.ipynb?format=json&&type=notebook"
    )
    assert status == 200, body
    timeline = json.loads(body)
    assert timeline["roomId"] == room and edit.serial in timeline["serials"]
    fork = timeline["forkRoom"]

    def undo_redo(action: str, steps: int) -> tuple[int, dict]:
        status, _headers, body = stack.lab.request(
            "PUT",
            f"/api/collaboration/undo_redo/{quote(room, safe='')}"
            f"?action={action}&&steps={steps}&&forkRoom={fork}",
        )
        return status, json.loads(body)

    before_edit = timeline["serials"].index(edit.serial) - 1
    status, moved = undo_redo("undo", len(timeline["serials"]) - 1 - before_edit)
    assert (status, moved["serial"]) == (200, timeline["serials"][before_edit]), moved

    status, restored = undo_redo("restore", 0)
    assert (status, restored["code"]) == (200, 200), restored
    row = Transaction.objects.get(datastore=datastore, serial=restored["restoredBy"])
    person = JupyterIdentity.objects.get(jupyter_username=stack.jupyter_user()["username"]).user
    assert (row.origin, row.author_id) == ("restore", person.pk)
    lab.wait_for(lambda doc: doc["cells"][0]["source"] == "x = 1", {"cells": "array"})
    path = stack.lab.root_dir / "b9" / "t.ipynb"

    def saved() -> str | None:
        try:
            return "".join(json.loads(path.read_text())["cells"][0]["source"])
        except (ValueError, LookupError):  # being written
            return None

    eventually(lambda: saved() == "x = 1", WAIT, "the restored notebook saved")


# --- Forks --------------------------------------------------------------------------------------


def fork_events(socket: websockets.sync.client.ClientConnection, count: int) -> list[dict]:
    """The next ``count`` fork events on Jupyter's event bus (others skipped)."""
    found: list[dict] = []
    while len(found) < count:
        event = json.loads(socket.recv(timeout=WAIT))
        if event.get("schema_id") == "https://schema.jupyter.org/jupyter_collaboration/fork/v1":
            found.append(event)
    return found


def test_forks_through_the_bridge_are_the_jupyter_users_and_announced_on_the_event_bus(
    stack, node_client
):
    session = stack.open_notebook("b10/f.ipynb", "x = 1")
    room = f"json:notebook:{session['fileId']}"
    datastore = Datastore.objects.get(name=f"doc-{session['fileId']}")
    root_window = stack.join(node_client, room, session["sessionId"])
    root_window.wait_synced()
    bus_url = f"{stack.lab.ws_url}/api/events/subscribe?token={stack.lab.token}"
    with websockets.sync.client.connect(bus_url) as bus:
        # What the fork manager sends: the room joined as it is, a JSON body.
        status, _headers, body = stack.lab.request(
            "PUT", f"/api/collaboration/fork/{room}", body=b'{"title": "t", "synchronize": false}'
        )
        assert status == 201, body
        made = json.loads(body)
        fork_id = made["fork_roomid"]
        status, _headers, body = stack.lab.request("GET", f"/api/collaboration/fork/{room}")
        assert (status, list(json.loads(body))) == (200, [fork_id])

        # Edited in its room through the bridge's room route, like a document.
        on_fork = stack.join(node_client, fork_id, made["sessionId"])
        on_fork.wait_synced()
        on_fork.insert_text(["cells", 0, "source"], None, "  # fork", root_type="array")
        fork_store = Datastore.objects.get(name=f"fork.{fork_id}")
        eventually(
            lambda: Transaction.objects.filter(datastore=fork_store).exists(), WAIT, "fork edited"
        )

        # The query string reaches the RTC server; the merge is the Jupyter user's.
        status, _headers, body = stack.lab.request(
            "DELETE", f"/api/collaboration/fork/{fork_id}?merge=true"
        )
        assert status == 200, body
        row = Transaction.objects.get(datastore=datastore, serial=json.loads(body)["serial"])
        username = stack.jupyter_user()["username"]
        person = JupyterIdentity.objects.get(jupyter_username=username).user
        assert (row.origin, row.author_id) == ("merge", person.pk)
        root_window.wait_for(
            lambda doc: doc["cells"][0]["source"] == "x = 1  # fork", {"cells": "array"}
        )
        created, deleted = fork_events(bus, 2)
    info = {"root_roomid": room, "synchronize": False, "title": "t", "description": ""}
    for event, action in ((created, "create"), (deleted, "delete")):
        assert (event["action"], event["fork_roomid"], event["username"]) == (
            action,
            fork_id,
            username,
        )
        assert event["fork_info"] == info
    status, _headers, body = stack.lab.request(
        "DELETE", f"/api/collaboration/fork/{fork_id}?merge=false"
    )
    assert (status, json.loads(body)["code"]) == (404, "unknown-fork")
