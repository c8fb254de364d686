"""The Jupyter endpoints (/api/kernels, ...) against a real daphne, Jupyter Server and supernode."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from datetime import timedelta

import httpx
import pytest
from channels.db import database_sync_to_async
from django.contrib.auth.hashers import make_password
from django.contrib.auth.models import User
from django.utils import timezone
from pycrdt import Array
from rtc_client import DatastoreClient

from jupyter_sync.jupyter import JupyterClient, launcher
from jupyter_sync.models import SupernodeLease
from jupyter_sync.schema import source_hash
from jupyter_sync.supernode import account
from jupyter_sync.waiting import wait_for_record
from relay.models import ApiToken
from tables import records, service
from tables.permissions import access_for, grant
from tables.service import Status
from tests.support.notebooks import code, disk_source, notebook, write_json
from tests.support.supernode import RunningSupernode, end_sessions
from tests.support.waiting import aeventually

pytest_plugins = ["tests.support.liveserver", "tests.support.jupyter"]
pytestmark = pytest.mark.django_db(transaction=True)

WAIT = 60.0
# Actions wait this long for the supernode (a loaded machine starts kernels slowly).
PATIENT = {"RTC_API_ACTION_TIMEOUT": "60", "RTC_API_RATE_USER": ""}


@database_sync_to_async
def accounts() -> dict[str, str]:
    """Tokens: the supernode's, an editor's, a viewer's and a stranger's (no role)."""
    tokens = {"service": account.ensure_service_account()}
    datastore = account.ensure_jupyter_datastore()
    for name, role in (("ed", "editor"), ("vi", "viewer"), ("x", None)):
        user = User.objects.create_user(name)
        if role:
            grant(datastore, user, role)
        tokens[name] = ApiToken.objects.create(user=user).key
    return tokens


def api(server, token: str) -> httpx.AsyncClient:
    return httpx.AsyncClient(
        base_url=server.url, headers={"Authorization": f"Token {token}"}, timeout=WAIT + 30
    )


async def connected() -> None:
    """Until the supernode has read the Jupyter Server once (status.connected)."""
    await wait_for_record(
        "jupyter",
        "status",
        "server",
        lambda record: bool(record and record.get("connected")),
        WAIT,
        poll_interval=0.05,
    )


async def requests_table() -> dict:
    state, _ = await database_sync_to_async(service.live_python)("jupyter")
    return state["requests"]


@contextlib.asynccontextmanager
async def supernode_behind_api(
    start_server, jupyter_server, env: dict[str, str] = PATIENT
) -> AsyncIterator[tuple[JupyterClient, httpx.AsyncClient, httpx.AsyncClient]]:
    """A relay process (patient actions, unless ``env`` says otherwise) with a supernode on it,
    connected to Jupyter; the supernode's Jupyter client and REST clients as the editor and the
    viewer."""
    tokens = await accounts()
    server = await asyncio.to_thread(start_server, env=env)
    async with (
        JupyterClient(jupyter_server.url, jupyter_server.token) as jupyter,
        api(server, tokens["ed"]) as ed,
        api(server, tokens["vi"]) as vi,
        RunningSupernode(jupyter, server.ws_url, tokens["service"]),
    ):
        await connected()
        yield jupyter, ed, vi


def assert_error(response: httpx.Response, status: int, code: str) -> dict:
    assert response.status_code == status, (response.status_code, response.text)
    body = response.json()
    assert body["code"] == code, body
    assert body["detail"]
    if response.url.path.startswith("/api/") and "/datastores/" not in response.url.path:
        assert body["message"] == body["detail"]  # where Jupyter clients read it
    return body


async def test_without_a_supernode_actions_answer_503_and_write_nothing(start_server):
    tokens = await accounts()
    server = await asyncio.to_thread(start_server)
    async with api(server, tokens["ed"]) as ed:
        body = assert_error(await ed.post("/api/kernels", json={}), 503, "supernode-unavailable")
        assert "no supernode" in body["detail"]
        assert_error(await ed.delete("/api/kernels/k1"), 503, "supernode-unavailable")
        assert_error(await ed.post("/api/kernels/refresh"), 503, "supernode-unavailable")
        assert await requests_table() == {}
        # Reads answer from the model, which says nobody keeps it current.
        assert (await ed.get("/api/kernels")).json() == []
        status = (await ed.get("/api/status")).json()
        assert status["supernode"] is False and status["connected"] is False


async def test_roles_decide_who_reads_and_who_acts(start_server):
    tokens = await accounts()
    server = await asyncio.to_thread(start_server)
    async with api(server, tokens["vi"]) as vi, api(server, tokens["x"]) as x:
        assert (await vi.get("/api/kernels")).status_code == 200
        assert_error(await vi.post("/api/kernels", json={}), 403, "permission-denied")
        assert_error(await vi.delete("/api/kernels/k1"), 403, "permission-denied")
        # A stranger learns nothing, as for any datastore they have no role on.
        assert_error(await x.get("/api/kernels"), 404, "unknown-datastore")
        assert_error(await x.post("/api/kernels", json={}), 404, "unknown-datastore")
        async with httpx.AsyncClient(base_url=server.url) as anonymous:
            response = await anonymous.get("/api/kernels")
            assert response.status_code == 401
            assert response.headers["WWW-Authenticate"] == "Token"
        assert await requests_table() == {}


async def test_bad_input_is_a_400_with_field_messages(start_server):
    tokens = await accounts()
    server = await asyncio.to_thread(start_server)
    async with api(server, tokens["ed"]) as ed:
        body = assert_error(await ed.post("/api/kernels", json={"name": 3}), 400, "invalid")
        assert body["errors"] == {"name": ["Not a string."]}
        body = assert_error(await ed.post("/api/kernels", json={"nmae": "x"}), 400, "invalid")
        assert body["errors"] == {"nmae": ["Unknown field."]}
        assert_error(await ed.post("/api/kernels", json=[1]), 400, "invalid")
        body = {"path": "p", "kernel": {"name": 5}}
        body = assert_error(await ed.post("/api/sessions", json=body), 400, "invalid")
        assert body["errors"] == {"kernel.name": ["Not a string."]}
        body = assert_error(await ed.get("/api/kernels/a%00b"), 400, "invalid")
        assert body["errors"] == {"kernel_id": ["NUL characters are not allowed."]}
        response = await ed.post(
            "/api/kernels", content=b"{", headers={"Content-Type": "application/json"}
        )
        assert_error(response, 400, "parse-error")
        assert await requests_table() == {}


async def test_kernels_through_the_supernode(start_server, jupyter_server):
    async with supernode_behind_api(start_server, jupyter_server) as (jupyter, ed, _vi):
        status = (await ed.get("/api/status")).json()
        assert status["supernode"] is True and status["connected"] is True
        specs = (await ed.get("/api/kernelspecs")).json()
        assert specs["default"] == "python3"
        assert specs["kernelspecs"]["python3"]["spec"]["language"] == "python"
        assert (await ed.get("/api/kernelspecs/python3")).json()["name"] == "python3"
        assert_error(await ed.get("/api/kernelspecs/cobol"), 404, "unknown-kernelspec")

        response = await ed.post("/api/kernels", json={"name": "python3"})
        assert response.status_code == 201, response.text
        kernel = response.json()
        assert response.headers["Location"] == f"/api/kernels/{kernel['id']}"
        assert kernel["name"] == "python3"
        # Answered once the kernels table has it: the next read sees it.
        listed = (await ed.get("/api/kernels")).json()
        assert kernel["id"] in [item["id"] for item in listed]
        assert (await jupyter.get_kernel(kernel["id"]))["id"] == kernel["id"]
        one = (await ed.get(f"/api/kernels/{kernel['id']}")).json()
        assert one["id"] == kernel["id"] and one["name"] == "python3"

        response = await ed.post(f"/api/kernels/{kernel['id']}/interrupt")
        assert response.status_code == 204, response.text
        response = await ed.post(f"/api/kernels/{kernel['id']}/restart")
        assert response.status_code == 200, response.text
        assert response.json()["id"] == kernel["id"]
        response = await ed.post("/api/kernels/refresh")
        assert response.status_code == 200, response.text
        assert kernel["id"] in [item["id"] for item in response.json()]

        # Jupyter's refusals come back as its status, never a 500.
        assert_error(await ed.delete("/api/kernels/no-such-kernel"), 404, "not-found")
        assert_error(await ed.post("/api/kernels/no-such-kernel/interrupt"), 404, "not-found")
        body = assert_error(await ed.post("/api/kernels", json={"name": "cobol"}), 400, "invalid")
        assert "Unknown kernelspec" in body["errors"]["name"][0]

        response = await ed.delete(f"/api/kernels/{kernel['id']}")
        assert response.status_code == 204, response.text
        assert_error(await ed.get(f"/api/kernels/{kernel['id']}"), 404, "not-found")
        assert kernel["id"] not in [k["id"] for k in await jupyter.kernels()]
        # Every action is a request record, written by the caller through the write path.
        done = await requests_table()
        assert {r["requested_by"] for r in done.values()} == {"ed"}
        assert all(r["created_at"] and r["finished_at"] for r in done.values())


@database_sync_to_async
def hold_lease(holder: str | None) -> None:
    """A lease held by nobody running (None: released), so requests wait unanswered."""
    SupernodeLease.objects.filter(name="jupyter").delete()
    if holder:
        SupernodeLease.objects.create(
            name="jupyter", holder=holder, expires_at=timezone.now() + timedelta(minutes=5)
        )


async def test_past_the_timeout_202_then_the_record_answers_the_result(
    start_server, jupyter_server
):
    tokens = await accounts()
    server = await asyncio.to_thread(start_server, env={"RTC_API_ACTION_TIMEOUT": "0.3"})
    await hold_lease("away")
    async with (
        JupyterClient(jupyter_server.url, jupyter_server.token) as jupyter,
        api(server, tokens["ed"]) as ed,
        api(server, tokens["vi"]) as vi,
    ):
        response = await ed.post("/api/kernels", json={"name": "python3"})
        assert response.status_code == 202, response.text
        url = response.headers["Location"]
        assert response.json()["url"] == url and url.startswith("/api/requests/")
        pending = await vi.get(url)  # a viewer may follow it too
        assert pending.status_code == 202
        assert pending.json()["status"] == "requested"
        assert pending.json()["action"] == "kernel.start"
        assert_error(await ed.get("/api/requests/nope"), 404, "unknown-request")

        await hold_lease(None)
        running = RunningSupernode(jupyter, server.ws_url, tokens["service"])
        try:
            record_id = url.rsplit("/", 1)[1]
            await wait_for_record(
                "jupyter",
                "requests",
                record_id,
                lambda record: record["status"] == "completed",
                WAIT,
                poll_interval=0.05,
            )
            answer = await ed.get(url)
            assert answer.status_code == 200
            kernel_id = answer.json()["result"]["kernel"]["id"]
            assert kernel_id in [k["id"] for k in await jupyter.kernels()]
            await jupyter.shutdown_kernel(kernel_id)
        finally:
            await running.close()


async def test_sessions_and_terminals_through_the_supernode(start_server, jupyter_server):
    async with supernode_behind_api(start_server, jupyter_server) as (jupyter, ed, _vi):
        body = {
            "path": "api-sessions/x.ipynb",
            "type": "notebook",
            "kernel": {"name": "python3"},
        }
        response = await ed.post("/api/sessions", json=body)
        assert response.status_code == 201, response.text
        session = response.json()
        assert response.headers["Location"] == f"/api/sessions/{session['id']}"
        assert session["path"] == "api-sessions/x.ipynb" and session["kernel"]["id"]
        listed = {item["id"]: item for item in (await ed.get("/api/sessions")).json()}
        assert listed[session["id"]]["kernel"]["id"] == session["kernel"]["id"]
        assert listed[session["id"]]["notebook"]["path"] == "api-sessions/x.ipynb"
        one = (await ed.get(f"/api/sessions/{session['id']}")).json()
        assert one["kernel"]["name"] == "python3"

        response = await ed.patch(
            f"/api/sessions/{session['id']}", json={"path": "api-sessions/y.ipynb"}
        )
        assert response.status_code == 200, response.text
        assert response.json()["path"] == "api-sessions/y.ipynb"
        assert (await ed.get(f"/api/sessions/{session['id']}")).json()["path"] == (
            "api-sessions/y.ipynb"
        )
        response = await ed.post("/api/sessions/refresh")
        assert session["id"] in [item["id"] for item in response.json()]

        assert_error(await ed.patch("/api/sessions/nope", json={"name": "n"}), 404, "not-found")
        assert_error(await ed.delete("/api/sessions/nope"), 404, "not-found")
        response = await ed.post(
            "/api/sessions", json={"path": "api-sessions/z.ipynb", "kernel": {"id": "nope"}}
        )
        assert_error(response, 404, "not-found")
        assert_error(await ed.post("/api/sessions", json={"type": "notebook"}), 400, "invalid")

        response = await ed.delete(f"/api/sessions/{session['id']}")
        assert response.status_code == 204, response.text
        assert_error(await ed.get(f"/api/sessions/{session['id']}"), 404, "not-found")
        assert session["id"] not in [item["id"] for item in await jupyter.sessions()]

        # Terminals (jupyter_server brings jupyter_server_terminals and terminado).
        assert launcher.terminals_available()
        assert (await ed.get("/api/terminals")).json() == []
        response = await ed.post("/api/terminals", json={})
        assert response.status_code == 200, response.text
        name = response.json()["name"]
        assert name in [item["name"] for item in (await ed.get("/api/terminals")).json()]
        assert (await ed.get(f"/api/terminals/{name}")).json()["name"] == name
        assert (await ed.delete(f"/api/terminals/{name}")).status_code == 204
        assert_error(await ed.get(f"/api/terminals/{name}"), 404, "not-found")
        assert_error(await ed.get("/api/terminals/1"), 404, "not-found")
        assert (await ed.post("/api/terminals/refresh")).status_code == 200


async def test_contents_through_the_model_and_the_supernode(start_server, jupyter_server):
    folder = jupyter_server.root_dir / "api-contents"
    folder.mkdir(exist_ok=True)
    (folder / "a.txt").write_text("hello")
    async with supernode_behind_api(start_server, jupyter_server) as (_jupyter, ed, vi):
        response = await vi.get("/api/contents/api-contents")  # viewers read
        assert response.status_code == 200, response.text
        listing = response.json()
        assert listing["type"] == "directory"
        assert [entry["name"] for entry in listing["content"]] == ["a.txt"]
        # Asked once, the folder is watched: the next answers come from the model.
        asked = len(await requests_table())
        again = (await ed.get("/api/contents/api-contents")).json()
        assert [entry["path"] for entry in again["content"]] == ["api-contents/a.txt"]
        brief = (await ed.get("/api/contents/api-contents/a.txt?content=0")).json()
        assert brief["type"] == "file" and brief["content"] is None
        assert len(await requests_table()) == asked

        text = (await vi.get("/api/contents/api-contents/a.txt")).json()
        assert text["content"] == "hello" and text["format"] == "text"
        assert_error(await ed.get("/api/contents/api-contents/nope.txt"), 404, "not-found")
        assert_error(await ed.get("/api/contents/x?content=2"), 400, "invalid")

        model = {"type": "file", "format": "text", "content": "B"}
        assert_error(
            await vi.put("/api/contents/api-contents/b.txt", json=model),
            403,
            "permission-denied",
        )
        response = await ed.put("/api/contents/api-contents/b.txt", json=model)
        assert response.status_code == 201, response.text
        assert (folder / "b.txt").read_text() == "B"
        response = await ed.put("/api/contents/api-contents/b.txt", json={**model, "content": "BB"})
        assert response.status_code == 200, response.text
        assert (folder / "b.txt").read_text() == "BB"
        names = [e["name"] for e in (await ed.get("/api/contents/api-contents")).json()["content"]]
        assert names == ["a.txt", "b.txt"]

        response = await ed.post("/api/contents/api-contents", json={"type": "file", "ext": ".txt"})
        assert response.status_code == 201, response.text
        untitled = response.json()["path"]
        assert response.headers["Location"] == f"/api/contents/{untitled}"
        assert (jupyter_server.root_dir / untitled).exists()
        response = await ed.post(
            "/api/contents/api-contents", json={"copy_from": "api-contents/a.txt"}
        )
        assert response.status_code == 201, response.text
        assert (jupyter_server.root_dir / response.json()["path"]).read_text() == "hello"
        assert_error(
            await ed.post("/api/contents/api-contents", json={"copy_from": "a", "ext": ".x"}),
            400,
            "invalid",
        )

        response = await ed.patch(
            "/api/contents/api-contents/b.txt", json={"path": "api-contents/c.txt"}
        )
        assert response.status_code == 200, response.text
        assert response.json()["path"] == "api-contents/c.txt"
        assert (folder / "c.txt").read_text() == "BB" and not (folder / "b.txt").exists()
        assert_error(
            await ed.patch("/api/contents/api-contents/b.txt", json={"path": "x.txt"}),
            404,
            "not-found",
        )
        assert (await ed.delete("/api/contents/api-contents/c.txt")).status_code == 204
        assert not (folder / "c.txt").exists()
        names = [e["name"] for e in (await ed.get("/api/contents/api-contents")).json()["content"]]
        assert "c.txt" not in names and "b.txt" not in names

        (folder / "d.txt").write_text("made elsewhere")
        response = await ed.post("/api/contents-refresh/api-contents")
        assert response.status_code == 200, response.text
        assert "d.txt" in [entry["name"] for entry in response.json()["content"]]
        root = (await ed.get("/api/contents")).json()
        assert "api-contents" in [entry["name"] for entry in root["content"]]


@database_sync_to_async
def open_document(document_id: str, path: str) -> None:
    datastore = service.get_datastore("jupyter")
    records.set_fields(datastore, "documents", document_id, {"path": path, "request": "open"})


async def test_executions_console_and_cells_with_input_in_both_front_ends_shapes(
    start_server, jupyter_server
):
    write_json(
        jupyter_server.root_dir / "api-exec" / "n.ipynb",
        notebook(
            code("ask", 'name = input("name? ")\nprint("hi", name)'),
            code("six", "print(6 * 7)"),
            code("count", 'runs = globals().get("runs", 0) + 1\nprint("run", runs)'),
        ),
    )
    async with supernode_behind_api(start_server, jupyter_server) as (jupyter, ed, vi):
        kernel_id = (await ed.post("/api/kernels", json={"name": "python3"})).json()["id"]

        # Console code: answered with its outputs once it finished.
        response = await ed.post(
            "/api/executions", json={"kernel_id": kernel_id, "code": "print('hi')\n1+1"}
        )
        assert response.status_code == 200, response.text
        done = response.json()
        assert done["status"] == "completed" and done["execution_count"] == 1
        assert done["outputs"][0] == {"output_type": "stream", "name": "stdout", "text": "hi\n"}
        assert done["outputs"][1]["data"]["text/plain"] == "2"
        assert done["requested_by"] == "ed"
        again = await vi.get(f"/api/executions/{done['id']}")
        assert again.status_code == 200 and again.json()["outputs"] == done["outputs"]
        response = await ed.post("/api/executions", json={"kernel_id": kernel_id, "code": "1/0"})
        assert response.json()["status"] == "error"
        assert "ZeroDivisionError" in response.json()["error"]

        body = {"kernel_id": "nope", "code": "1"}
        assert_error(await ed.post("/api/executions", json=body), 404, "not-found")
        body = {"document_id": "nope", "cell_id": "c"}
        assert_error(await ed.post("/api/executions", json=body), 404, "unknown-document")
        body = {"kernel_id": kernel_id, "cell_id": "c"}
        assert_error(await ed.post("/api/executions", json=body), 400, "invalid")
        body = {"kernel_id": kernel_id, "code": "1"}
        assert_error(await vi.post("/api/executions", json=body), 403, "permission-denied")
        assert_error(await ed.get("/api/executions/nope"), 404, "unknown-execution")

        # jupyter-server-nbmodel's shape, console code: 202, then the request URL.
        response = await ed.post(
            f"/api/kernels/{kernel_id}/execute", json={"code": "print(5)", "metadata": {}}
        )
        assert response.status_code == 202, response.text
        location = response.headers["Location"]
        assert location.startswith(f"/api/kernels/{kernel_id}/requests/")
        await execution_done(location.rsplit("/", 1)[1])
        result = await ed.get(location)
        assert result.status_code == 200, result.text
        assert result.json()["status"] == "ok"
        assert json.loads(result.json()["outputs"])[0]["text"] == "5\n"
        assert_error(
            await ed.post("/api/kernels/nope/execute", json={"code": "1"}), 404, "not-found"
        )
        assert_error(await ed.post(f"/api/kernels/{kernel_id}/execute", json={}), 400, "invalid")
        # JupyterLab's fetch labels its JSON bodies text/plain, as Jupyter Server reads them:
        # JSON all the same; a body that is not JSON is a 400, never a 415.
        plain = {"Content-Type": "text/plain;charset=UTF-8"}
        response = await ed.post(
            f"/api/kernels/{kernel_id}/execute", content=b'{"code": "print(6)"}', headers=plain
        )
        assert response.status_code == 202, response.text
        await execution_done(response.headers["Location"].rsplit("/", 1)[1])
        response = await ed.post(f"/api/kernels/{kernel_id}/execute", content=b"{", headers=plain)
        assert_error(response, 400, "parse-error")
        body = {"input": "x"}
        assert_error(
            await ed.post(f"/api/kernels/{kernel_id}/input", json=body), 409, "no-input-request"
        )

        # Notebook cells, on the kernel of the notebook's session.
        await open_document("nb", "api-exec/n.ipynb")
        await wait_for_record(
            "jupyter",
            "documents",
            "nb",
            lambda record: record.get("status") == "open" and not record.get("request"),
            WAIT,
            poll_interval=0.05,
        )
        session = await ed.post(
            "/api/sessions", json={"path": "api-exec/n.ipynb", "kernel": {"name": "python3"}}
        )
        nb_kernel = session.json()["kernel"]["id"]
        shape = {"code": "", "metadata": {"cell_id": "ask", "document_id": "nb"}}
        response = await ed.post(f"/api/kernels/{nb_kernel}/execute", json=shape)
        assert response.status_code == 202, response.text
        location = response.headers["Location"]
        await wait_for_record(
            "jupyter",
            "executions",
            location.rsplit("/", 1)[1],
            lambda record: bool(record.get("input_request")),
            WAIT,
            poll_interval=0.05,
        )
        asking = await ed.get(location)
        assert asking.status_code == 300, asking.text
        assert asking.json()["input_request"] == {"prompt": "name? ", "password": False}
        assert asking.headers["Location"] == f"/api/kernels/{nb_kernel}/input"
        body = {"input": "x"}
        assert_error(
            await vi.post(f"/api/kernels/{nb_kernel}/input", json=body),
            403,
            "permission-denied",
        )
        response = await ed.post(f"/api/kernels/{nb_kernel}/input", json={"input": "Ada"})
        assert response.status_code == 201, response.text
        await execution_done(location.rsplit("/", 1)[1])
        result = (await ed.get(location)).json()
        assert result["status"] == "ok"
        assert "hi Ada" in json.loads(result["outputs"])[-1]["text"]

        # jupyter-collaboration's shape; and /api/executions for a cell.
        shape = {"cell_id": "six", "document_id": "nb"}
        response = await ed.post(f"/api/kernels/{nb_kernel}/execute", json=shape)
        assert response.status_code == 202, response.text
        response = await ed.post("/api/executions", json={"document_id": "nb", "cell_id": "six"})
        assert response.status_code == 200, response.text
        assert response.json()["status"] == "completed"
        assert response.json()["kernel_id"] == nb_kernel
        # Each answer carries its own run's outputs, not the run before's.
        for run in (1, 2):
            cell = {"document_id": "nb", "cell_id": "count"}
            response = await ed.post("/api/executions", json=cell)
            assert response.status_code == 200, response.text
            assert response.json()["outputs"] == [
                {"output_type": "stream", "name": "stdout", "text": f"run {run}\n"}
            ], response.json()

        # Input through /api/executions: 202 while it waits, then the answer.
        response = await ed.post("/api/executions", json={"document_id": "nb", "cell_id": "ask"})
        assert response.status_code == 202, response.text
        waiting = response.json()
        assert waiting["input_request"]["prompt"] == "name? "
        assert response.headers["Location"] == f"/api/executions/{waiting['id']}"
        response = await ed.post(f"/api/executions/{waiting['id']}/input", json={"value": "Bo"})
        assert response.status_code == 204, response.text
        await execution_done(waiting["id"])
        final = (await ed.get(f"/api/executions/{waiting['id']}")).json()
        assert final["status"] == "completed"
        body = {"value": "late"}
        response = await ed.post(f"/api/executions/{waiting['id']}/input", json=body)
        assert_error(response, 409, "no-input-request")
        await end_sessions(jupyter, "api-exec/")
        await jupyter.shutdown_kernel(kernel_id)


async def document_open(document_id: str) -> None:
    await wait_for_record(
        "jupyter",
        "documents",
        document_id,
        lambda record: record.get("status") == "open" and not record.get("request"),
        WAIT,
        poll_interval=0.05,
    )


async def test_cells_are_named_by_bare_or_room_document_ids_and_bad_ones_are_400s(
    start_server, jupyter_server
):
    """JupyterLab's server-side executor sends the room id (json:notebook:<fileId>) as
    document_id, in a text/plain body; the bare id works as before; every other spelling is a
    400 that says why, and nothing is run."""
    write_json(
        jupyter_server.root_dir / "api-ids" / "n.ipynb", notebook(code("c", "print(40 + 2)"))
    )
    (jupyter_server.root_dir / "api-ids" / "t.txt").write_text("text\n")
    async with supernode_behind_api(start_server, jupyter_server) as (jupyter, ed, vi):
        await open_document("nbid", "api-ids/n.ipynb")
        await open_document("txid", "api-ids/t.txt")
        await document_open("nbid")
        await document_open("txid")
        session = await ed.post(
            "/api/sessions", json={"path": "api-ids/n.ipynb", "kernel": {"name": "python3"}}
        )
        kernel_id = session.json()["kernel"]["id"]
        plain = {"Content-Type": "text/plain;charset=UTF-8"}

        # The room id, as JupyterLab sends it: run, and stored under the record's own id.
        body = json.dumps({"cell_id": "c", "document_id": "json:notebook:nbid"}).encode()
        response = await ed.post(f"/api/kernels/{kernel_id}/execute", content=body, headers=plain)
        assert response.status_code == 202, response.text
        location = response.headers["Location"]
        await execution_done(location.rsplit("/", 1)[1])
        result = (await ed.get(location)).json()
        assert result["status"] == "ok", result
        assert json.loads(result["outputs"]) == [
            {"output_type": "stream", "name": "stdout", "text": "42\n"}
        ]
        record = (await ed.get(f"/api/executions/{location.rsplit('/', 1)[1]}")).json()
        assert record["document_id"] == "nbid"
        # /api/executions takes both forms too.
        for document_id in ("json:notebook:nbid", "nbid"):
            body = {"document_id": document_id, "cell_id": "c"}
            response = await ed.post("/api/executions", json=body)
            assert response.status_code == 200, response.text
            assert response.json()["status"] == "completed"
            assert response.json()["outputs"][0]["text"] == "42\n"

        refusals = [
            ("json:notebook", 400, "bad-document-id"),
            ("notebook:json:nbid", 400, "bad-document-id"),
            ("text:notebook:nbid", 400, "bad-document-id"),
            ("text:file:nbid", 400, "wrong-type"),
            ("json:notebook:txid", 400, "wrong-type"),
            ("txid", 400, "not-a-notebook"),
            ("text:file:txid", 400, "not-a-notebook"),
            ("json:notebook:nosuch", 404, "unknown-document"),
            ("nosuch", 404, "unknown-document"),
        ]
        executions_before = await executions_table()
        for document_id, code_, error in refusals:
            body = {"cell_id": "c", "document_id": document_id}
            response = await ed.post(f"/api/kernels/{kernel_id}/execute", json=body)
            assert_error(response, code_, error)
            response = await ed.post("/api/executions", json=body)
            assert_error(response, code_, error)
        body = {"cell_id": "c", "document_id": "json:notebook:nbid"}
        response = await vi.post(f"/api/kernels/{kernel_id}/execute", json=body)
        assert_error(response, 403, "permission-denied")
        assert await executions_table() == executions_before  # nothing was written

        # The documents endpoints take both forms as well.
        for document_id in ("nbid", "json:notebook:nbid"):
            response = await ed.get(f"/api/documents/{document_id}")
            assert response.status_code == 200, response.text
            assert response.json()["id"] == "nbid"
        assert_error(await ed.get("/api/documents/text:file:nbid"), 400, "wrong-type")
        assert_error(await ed.get("/api/documents/json:nb"), 400, "bad-document-id")
        response = await ed.post("/api/documents/text:file:txid/save")
        assert response.status_code == 200, response.text
        await end_sessions(jupyter, "api-ids/")


async def executions_table() -> dict:
    state, _ = await database_sync_to_async(service.live_python)("jupyter")
    return state.get("executions") or {}


async def execution_done(execution_id: str) -> None:
    await wait_for_record(
        "jupyter",
        "executions",
        execution_id,
        lambda record: record.get("status") in ("completed", "error", "cancelled"),
        WAIT,
        poll_interval=0.05,
    )


@database_sync_to_async
def server_status(**fields) -> None:
    """The status record as a supernode would leave it."""
    records.set_fields(service.get_datastore("jupyter"), "status", "server", fields)


# An action waits this long before answering with the execution as it stands: long enough for
# a running cell to have printed, short enough not to wait out PATIENT's minute.
SHORT_WAIT = {**PATIENT, "RTC_API_ACTION_TIMEOUT": "10"}


async def test_an_execution_is_cancelled_through_the_api(start_server, jupyter_server):
    async with supernode_behind_api(start_server, jupyter_server, SHORT_WAIT) as (jupyter, ed, vi):
        # Started on Jupyter (the API's kernel start is tested above, patiently), known to the
        # API once the supernode's refresh has put it in the kernels table.
        kernel_id = (await jupyter.start_kernel("python3"))["id"]
        await wait_for_record("jupyter", "kernels", kernel_id, bool, WAIT, poll_interval=0.05)
        code = "import time\nprint('started', flush=True)\ntime.sleep(120)"
        response = await ed.post("/api/executions", json={"kernel_id": kernel_id, "code": code})
        assert response.status_code == 202, response.text
        # Past the wait, the answer is the record as it is: running, with what it printed.
        assert response.json()["status"] == "running", response.json()
        assert response.json()["outputs"][0]["text"] == "started\n", response.json()
        execution_id = response.json()["id"]
        await wait_for_record(
            "jupyter",
            "executions",
            execution_id,
            lambda record: bool(record and record.get("outputs")),
            WAIT,
            poll_interval=0.05,
        )
        cancel = f"/api/executions/{execution_id}/cancel"
        assert_error(await vi.post(cancel), 403, "permission-denied")
        assert_error(await ed.post("/api/executions/nope/cancel"), 404, "unknown-execution")
        response = await ed.post(cancel)
        assert response.status_code == 200, response.text
        assert response.json()["status"] == "cancelled"
        assert "KeyboardInterrupt" in response.json()["error"]
        # Again: it has ended, nothing changes.
        again = await ed.post(cancel)
        assert again.status_code == 200 and again.json() == response.json()
        # The kernel was interrupted, not lost.
        response = await ed.post("/api/executions", json={"kernel_id": kernel_id, "code": "7"})
        assert response.json()["status"] == "completed", response.text
        await jupyter.shutdown_kernel(kernel_id)


async def test_a_supernode_that_cannot_reach_jupyter_answers_503_too(start_server):
    tokens = await accounts()
    server = await asyncio.to_thread(start_server)
    await hold_lease("away")
    await server_status(connected=False, kernels=0)
    async with api(server, tokens["ed"]) as ed:
        body = assert_error(await ed.post("/api/kernels", json={}), 503, "supernode-unavailable")
        assert "cannot reach the Jupyter Server" in body["detail"]
        status = (await ed.get("/api/status")).json()
        assert status["supernode"] is True and status["connected"] is False
        assert await requests_table() == {}


async def test_browsers_need_the_csrf_token_and_requests_are_throttled(start_server):
    await accounts()
    await database_sync_to_async(
        # Staff, to log in through the admin's page (staff has no say on datastore roles).
        lambda: User.objects.filter(username="ed").update(
            password=make_password("pw"), is_staff=True
        )
    )()
    server = await asyncio.to_thread(
        start_server, env={"RTC_API_RATE_USER": "5/min", "RTC_API_ACTION_TIMEOUT": "0.2"}
    )
    await hold_lease("away")
    async with httpx.AsyncClient(base_url=server.url) as browser:
        page = await browser.get("/admin/login/")
        csrf = page.cookies["csrftoken"]
        response = await browser.post(
            "/admin/login/?next=/admin/",
            data={"username": "ed", "password": "pw", "csrfmiddlewaretoken": csrf},
            headers={"Referer": f"{server.url}/admin/login/"},
        )
        assert "sessionid" in browser.cookies, response.text[:500]
        assert (await browser.get("/api/kernels")).status_code == 200
        # A session without the CSRF token may read, not act.
        body = assert_error(await browser.post("/api/kernels", json={}), 403, "permission-denied")
        assert "CSRF" in body["detail"]
        headers = {"X-CSRFToken": browser.cookies["csrftoken"], "Referer": f"{server.url}/"}
        response = await browser.post("/api/kernels", json={}, headers=headers)
        assert response.status_code == 202, response.text  # written; nobody acts on it here
        for _ in range(5):
            response = await browser.get("/api/kernels")
        assert_error(response, 429, "throttled")
        assert response.headers["Retry-After"]


def test_record_edits_take_the_callers_authorize_hook():
    """records.set_fields refuses what the caller's policy refuses, as the write path would."""
    datastore = account.ensure_jupyter_datastore(username=_service_user())
    editor, viewer = User.objects.create_user("ed"), User.objects.create_user("vi")
    grant(datastore, editor, "editor")
    grant(datastore, viewer, "viewer")
    as_editor = access_for(editor, datastore).authorizer()
    outcome = records.set_fields(
        datastore, "kernels", "k", {"name": "python3"}, authorize=as_editor
    )
    assert outcome.error_code == "permission-denied" and "supernode" in outcome.error
    fields = {"action": "refresh", "status": "requested"}
    ok = records.set_fields(datastore, "requests", "r", fields, authorize=as_editor)
    assert ok.status is Status.STORED
    as_viewer = access_for(viewer, datastore).authorizer()
    refused = records.set_fields(datastore, "requests", "r2", fields, authorize=as_viewer)
    assert refused.error_code == "permission-denied"
    state, _ = service.live_python(datastore)
    assert set(state["requests"]) == {"r"} and state["kernels"] == {}


def _service_user() -> str:
    account.ensure_service_account()
    return account.SERVICE_USERNAME


@pytest.mark.redis
async def test_two_workers_answer_actions_the_supernode_carries_out_through_the_other(
    postgres, redis_url, start_server, jupyter_server
):
    tokens = await accounts()
    url, prefix = redis_url
    env = {**PATIENT, "REDIS_URL": url, "REDIS_PREFIX": prefix}
    first = await asyncio.to_thread(start_server, env=env, name="worker-1")
    second = await asyncio.to_thread(start_server, env=env, name="worker-2")
    async with (
        JupyterClient(jupyter_server.url, jupyter_server.token) as jupyter,
        api(first, tokens["ed"]) as ed,
    ):
        # The supernode's writes commit on worker 2; the REST request waits on worker 1.
        running = RunningSupernode(jupyter, second.ws_url, tokens["service"])
        try:
            await connected()
            response = await ed.post("/api/kernels", json={"name": "python3"})
            assert response.status_code == 201, response.text
            kernel_id = response.json()["id"]
            assert kernel_id in [item["id"] for item in (await ed.get("/api/kernels")).json()]
            assert (await ed.delete(f"/api/kernels/{kernel_id}")).status_code == 204
        finally:
            await running.close()


async def test_a_notebook_saved_through_rest_keeps_its_integers(start_server, jupyter_server):
    """Yjs keeps JSON numbers as doubles: ``nbformat: 4`` came back ``4.0``, which Jupyter's
    validator refused (502, and an empty file left behind)."""
    folder = jupyter_server.root_dir / "api-ints"
    folder.mkdir(exist_ok=True)
    saved = notebook(code("c1", "1 + 1"))
    saved["cells"][0]["execution_count"] = 4
    saved["cells"][0]["outputs"] = [
        {
            "output_type": "execute_result",
            "execution_count": 4,
            "data": {"text/plain": "2"},
            "metadata": {"width": 640},
        }
    ]
    saved["metadata"]["custom"] = {"count": 3, "ratio": 0.5}
    async with supernode_behind_api(start_server, jupyter_server) as (_jupyter, ed, _vi):
        model = {"type": "notebook", "format": "json", "content": saved}
        response = await ed.put("/api/contents/api-ints/n.ipynb", json=model)
        assert response.status_code == 201, response.text
        on_disk = json.loads((folder / "n.ipynb").read_text())
        assert on_disk["nbformat"] == 4 and isinstance(on_disk["nbformat"], int)
        cell = on_disk["cells"][0]
        assert cell["execution_count"] == 4 and isinstance(cell["execution_count"], int)
        assert cell["outputs"][0]["metadata"] == {"width": 640}
        assert on_disk["metadata"]["custom"] == {"count": 3, "ratio": 0.5}
        response = await ed.put("/api/contents/api-ints/n.ipynb", json=model)  # over it
        assert response.status_code == 200, response.text
        answer = (await ed.get("/api/contents/api-ints/n.ipynb")).json()
        assert answer["content"]["nbformat"] == 4
        assert "4.0" not in json.dumps(answer["content"]["nbformat"])

        broken = {**saved, "cells": [{"cell_type": "code", "source": "x"}]}
        response = await ed.put(
            "/api/contents/api-ints/broken.ipynb",
            json={"type": "notebook", "format": "json", "content": broken},
        )
        assert_error(response, 400, "invalid")
        assert "not a valid notebook" in response.text
        assert not (folder / "broken.ipynb").exists()


def as_json(body: object) -> dict:
    """A request body as ASCII JSON (lone surrogates escaped, as a browser may send them)."""
    return {"content": json.dumps(body), "headers": {"Content-Type": "application/json"}}


async def test_paths_that_leave_the_root_are_refused_before_anything_is_asked(start_server):
    """A ``..`` step sent encoded arrives decoded: through the supernode's token it would name
    another Jupyter endpoint (its status, identity, config). Every route taking a path refuses
    it, and NUL, lone surrogates and backslashes, with 400, and asks the supernode nothing."""
    tokens = await accounts()
    server = await asyncio.to_thread(start_server)
    escapes = ("%2e%2e/api/status", "a/%2E%2E/%2e%2e/api/me", "%2E/x", "a//b", "a%5Cb")
    async with api(server, tokens["ed"]) as ed, api(server, tokens["vi"]) as vi:
        for path in escapes:
            assert_error(await vi.get(f"/api/contents/{path}"), 400, "bad-path")
            model = {"type": "file", "format": "text", "content": "x"}
            assert_error(await ed.put(f"/api/contents/{path}", json=model), 400, "bad-path")
            assert_error(await ed.delete(f"/api/contents/{path}"), 400, "bad-path")
            assert_error(await ed.post(f"/api/contents/{path}", json={}), 400, "bad-path")
            assert_error(await ed.post(f"/api/contents-refresh/{path}"), 400, "bad-path")
            renamed = await ed.patch(f"/api/contents/{path}", json={"path": "y"})
            assert_error(renamed, 400, "bad-path")
        body = assert_error(await vi.get("/api/contents/a%00b"), 400, "invalid")  # any URL's NUL
        assert list(body["errors"]) == ["path"]
        for bad in ("../api/config/x", "a/../../b", "", "a\\b", "a\x00b", "\ud800"):
            field = ["body"] if bad in ("a\x00b", "\ud800") else ["path"]  # any body's
            body = assert_error(
                await ed.patch("/api/contents/a", **as_json({"path": bad})), 400, "invalid"
            )
            assert list(body["errors"]) == field
            body = assert_error(
                await ed.post("/api/sessions", **as_json({"path": bad})), 400, "invalid"
            )
            assert list(body["errors"]) == field
            copy = {"copy_from": bad}
            body = assert_error(await ed.post("/api/contents/a", **as_json(copy)), 400, "invalid")
            assert list(body["errors"]) == (field if field == ["body"] else ["copy_from"])
        body = assert_error(await ed.post("/api/kernels", json={"path": ".."}), 400, "invalid")
        assert list(body["errors"]) == ["path"]
        assert await requests_table() == {}


@database_sync_to_async
def editor_token(name: str) -> str:
    """A second editor of the jupyter datastore (and so of its documents)."""
    user = User.objects.create_user(name)
    grant(service.get_datastore("jupyter"), user, "editor")
    return ApiToken.objects.create(user=user).key


async def set_source(doc: DatastoreClient, cell_id: str, source: str) -> None:
    """Edit a cell as a collaborator does, and wait until the server has stored it."""
    cells = doc.doc.get("cells", type=Array)
    text = next(cell for cell in cells if cell.get("id") == cell_id)["source"]
    with doc.doc.transaction():
        text.clear()
        text += source
    await doc.wait_acked(timeout=WAIT)


async def supernode_has(path, index: int, source: str) -> None:
    """Until the supernode's copy of the notebook holds ``source`` (it saved it to the file)."""
    await aeventually(lambda: disk_source(path, index) == source, WAIT, f"{source!r} saved")


async def test_executions_keep_who_ran_which_source_on_which_kernel(start_server, jupyter_server):
    """Provenance: each run of a cell says who asked, the source it ran, the kernel and session,
    when; an edit between the request and the run is flagged; a stale source hash is a 409 that
    writes nothing; the executions of a cell answer who produced its outputs."""
    flag = jupyter_server.root_dir / "api-prov" / "go"
    gate = f"import os, time\nwhile not os.path.exists({str(flag)!r}):\n    time.sleep(0.05)"
    nb_path = jupyter_server.root_dir / "api-prov" / "p.ipynb"
    write_json(nb_path, notebook(code("gate", gate), code("target", "print('v1')")))
    tokens = await accounts()
    tokens["al"] = await editor_token("al")
    server = await asyncio.to_thread(start_server, env=PATIENT)
    async with (
        JupyterClient(jupyter_server.url, jupyter_server.token) as jupyter,
        api(server, tokens["ed"]) as ed,
        api(server, tokens["vi"]) as vi,
        api(server, tokens["al"]) as al,
        RunningSupernode(jupyter, server.ws_url, tokens["service"]),
    ):
        await connected()
        await open_document("pv", "api-prov/p.ipynb")
        await document_open("pv")
        async with DatastoreClient(server.ws_url, "doc-pv", token=tokens["ed"]) as doc:
            # ed runs the cell as it is, naming the source it means.
            v1 = {
                "document_id": "pv",
                "cell_id": "target",
                "source_hash": source_hash("print('v1')"),
            }
            response = await ed.post("/api/executions", json=v1)
            assert response.status_code == 200, response.text
            first = response.json()
            sessions = [s for s in await jupyter.sessions() if s["path"] == "api-prov/p.ipynb"]
            assert len(sessions) == 1
            kernel_id, session_id = sessions[0]["kernel"]["id"], sessions[0]["id"]
            assert first["requested_by"] == "ed" and first["code"] == "print('v1')"
            assert first["source_hash"] == v1["source_hash"] and first["source_changed"] is False
            assert (first["kernel_id"], first["session_id"]) == (kernel_id, session_id)
            assert first["created_at"] <= first["started_at"] <= first["finished_at"]

            # al edits it, then runs it in jupyter-server-nbmodel's shape.
            await set_source(doc, "target", "print('v2')")
            await supernode_has(nb_path, 1, "print('v2')")
            before = set(await executions_table())
            # A hash of the source before the edit: 409, nothing written, in both shapes.
            assert_error(await al.post("/api/executions", json=v1), 409, "source-changed")
            shape = {"metadata": {"cell_id": "target", "document_id": "pv"}, "code": ""}
            stale = {**shape, "source_hash": v1["source_hash"]}
            response = await al.post(f"/api/kernels/{kernel_id}/execute", json=stale)
            assert_error(response, 409, "source-changed")
            assert set(await executions_table()) == before
            fresh = {**shape, "source_hash": source_hash("print('v2')")}
            response = await al.post(f"/api/kernels/{kernel_id}/execute", json=fresh)
            assert response.status_code == 202, response.text
            second_id = response.headers["Location"].rsplit("/", 1)[1]
            await execution_done(second_id)
            second = (await al.get(f"/api/executions/{second_id}")).json()
            assert second["requested_by"] == "al" and second["code"] == "print('v2')"
            assert second["source_changed"] is False and second["kernel_id"] == kernel_id
            assert second["started_at"] >= first["finished_at"]

            # Edited between the request and the run: queued behind a running cell, then edited.
            gate_run = await ed.post(
                f"/api/kernels/{kernel_id}/execute",
                json={**shape, "metadata": {"cell_id": "gate", "document_id": "pv"}},
            )
            assert gate_run.status_code == 202, gate_run.text
            gate_id = gate_run.headers["Location"].rsplit("/", 1)[1]
            await wait_for_record(
                "jupyter", "executions", gate_id, lambda r: r.get("status") == "running", WAIT
            )
            response = await ed.post(f"/api/kernels/{kernel_id}/execute", json=shape)
            assert response.status_code == 202, response.text
            third_id = response.headers["Location"].rsplit("/", 1)[1]
            await wait_for_record(
                "jupyter", "executions", third_id, lambda r: r.get("status") == "queued", WAIT
            )
            await set_source(doc, "target", "print('v3')")
            await supernode_has(nb_path, 1, "print('v3')")
            flag.write_text("")
            await execution_done(gate_id)
            await execution_done(third_id)
            third = (await ed.get(f"/api/executions/{third_id}")).json()
            assert third["status"] == "completed", third
            assert third["source_hash"] == source_hash("print('v2')")
            assert third["code"] == "print('v3')" and third["source_changed"] is True
            assert third["outputs"] == [{"output_type": "stream", "name": "stdout", "text": "v3\n"}]

            # Who produced the cell's outputs, from which source, on which kernel: the query.
            response = await vi.get(
                "/api/executions", params={"document_id": "json:notebook:pv", "cell_id": "target"}
            )
            assert response.status_code == 200, response.text
            runs = response.json()
            assert [run["id"] for run in runs] == [third_id, second_id, first["id"]]
            assert [run["shows_outputs"] for run in runs] == [True, False, False]
            latest = runs[0]
            assert latest["requested_by"] == "ed" and latest["code"] == "print('v3')"
            assert latest["kernel_id"] == kernel_id and latest["session_id"] == session_id
            assert latest["source_changed"] is True and latest["finished_at"]
            assert "outputs" not in latest
            everything = (await vi.get("/api/executions", params={"document_id": "pv"})).json()
            assert {run["cell_id"] for run in everything} == {"gate", "target"}
            assert_error(await vi.get("/api/executions"), 400, "invalid")
            response = await vi.get("/api/executions", params={"document_id": "nope"})
            assert_error(response, 404, "unknown-document")
            # The saved notebook carries no trace of the records.
            on_disk = json.loads(nb_path.read_text())
            assert "execution" not in json.dumps(on_disk["cells"][1]["metadata"])
        await end_sessions(jupyter, "api-prov/")


async def test_run_all_queues_the_code_cells_in_order_in_one_transaction(
    start_server, jupyter_server
):
    """Run all: an execution per code cell, all written in one transaction, in the notebook's
    order, and run in that order (each cell needs the one before); a named list runs in its own
    order; unknown and markdown cells are 400s and a viewer's 403, and nothing is written."""
    from tables.models import TouchedRecord

    nb_path = jupyter_server.root_dir / "api-runall" / "r.ipynb"
    markdown = {"id": "m", "cell_type": "markdown", "source": "# notes", "metadata": {}}
    write_json(
        nb_path,
        notebook(
            code("a", "import time\ntime.sleep(0.3)\nseen = ['a']"),
            markdown,
            code("b", "seen.append('b')"),
            code("c", "print(seen)"),
        ),
    )
    async with supernode_behind_api(start_server, jupyter_server) as (jupyter, ed, vi):
        await open_document("ra", "api-runall/r.ipynb")
        await document_open("ra")

        before = set(await executions_table())
        assert_error(await vi.post("/api/documents/ra/run"), 403, "permission-denied")
        body = {"cell_ids": ["a", "nope"]}
        assert_error(await ed.post("/api/documents/ra/run", json=body), 400, "unknown-cell")
        body = {"cell_ids": ["a", "m"]}
        assert_error(await ed.post("/api/documents/ra/run", json=body), 400, "not-code-cell")
        body = {"cell_ids": ["a", "a"]}
        assert_error(await ed.post("/api/documents/ra/run", json=body), 400, "invalid")
        assert set(await executions_table()) == before

        response = await ed.post("/api/documents/json:notebook:ra/run")
        assert response.status_code == 202, response.text
        queued = response.json()["executions"]
        assert [run["cell_id"] for run in queued] == ["a", "b", "c"]
        ids = [run["id"] for run in queued]

        @database_sync_to_async
        def first_serials() -> dict[str, int]:
            touched = TouchedRecord.objects.filter(
                datastore__name="jupyter", table="executions", record_id__in=ids
            ).values_list("record_id", "transaction__serial")
            first: dict[str, int] = {}
            for record_id, serial in touched:
                first[record_id] = min(serial, first.get(record_id, serial))
            return first

        serials = await first_serials()
        assert set(serials) == set(ids) and len(set(serials.values())) == 1, serials
        for execution_id in ids:
            await execution_done(execution_id)
        runs = [(await ed.get(f"/api/executions/{i}")).json() for i in ids]
        assert [run["status"] for run in runs] == ["completed"] * 3, runs
        assert runs[2]["outputs"] == [
            {"output_type": "stream", "name": "stdout", "text": "['a', 'b']\n"}
        ]
        assert runs[0]["finished_at"] <= runs[1]["started_at"]
        assert runs[1]["finished_at"] <= runs[2]["started_at"]

        # A named list runs in its own order: c before b now.
        response = await ed.post("/api/documents/ra/run", json={"cell_ids": ["c", "b"]})
        assert response.status_code == 202, response.text
        again = [run["id"] for run in response.json()["executions"]]
        for execution_id in again:
            await execution_done(execution_id)
        printed = (await ed.get(f"/api/executions/{again[0]}")).json()["outputs"]
        assert printed == [{"output_type": "stream", "name": "stdout", "text": "['a', 'b']\n"}]
        await end_sessions(jupyter, "api-runall/")
