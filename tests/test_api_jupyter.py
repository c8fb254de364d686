"""The Jupyter endpoints (/api/kernels, ...) against a real daphne, Jupyter Server and supernode."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import httpx
import pytest
from channels.db import database_sync_to_async
from django.contrib.auth.models import User
from django.utils import timezone
from rest_framework.authtoken.models import Token

from jupyter_sync import account
from jupyter_sync.api.waiting import wait_for_record
from jupyter_sync.jupyter import JupyterClient
from jupyter_sync.models import SupernodeLease
from tables import service
from tables.permissions import grant
from tests.test_supernode import Running

pytest_plugins = ["tests.liveserver", "tests.jupyter_fixtures"]
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
        tokens[name] = Token.objects.create(user=user).key
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


def assert_error(response: httpx.Response, status: int, code: str) -> dict:
    assert response.status_code == status, (response.status_code, response.text)
    body = response.json()
    assert body["code"] == code, body
    assert body["detail"]
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
        response = await ed.post(
            "/api/kernels", content=b"{", headers={"Content-Type": "application/json"}
        )
        assert_error(response, 400, "parse-error")
        assert await requests_table() == {}


async def test_kernels_through_the_supernode(start_server, jupyter_server):
    tokens = await accounts()
    server = await asyncio.to_thread(start_server, env=PATIENT)
    async with (
        JupyterClient(jupyter_server.url, jupyter_server.token) as jupyter,
        api(server, tokens["ed"]) as ed,
    ):
        running = Running(jupyter, server.ws_url, tokens["service"])
        try:
            await connected()
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
            body = assert_error(
                await ed.post("/api/kernels", json={"name": "cobol"}), 400, "invalid"
            )
            assert "Unknown kernelspec" in body["errors"]["name"][0]

            response = await ed.delete(f"/api/kernels/{kernel['id']}")
            assert response.status_code == 204, response.text
            assert_error(await ed.get(f"/api/kernels/{kernel['id']}"), 404, "not-found")
            assert kernel["id"] not in [k["id"] for k in await jupyter.kernels()]
            # Every action is a request record, written by the caller through the write path.
            done = await requests_table()
            assert {r["requested_by"] for r in done.values()} == {"ed"}
            assert all(r["created_at"] and r["finished_at"] for r in done.values())
        finally:
            await running.close()


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
        running = Running(jupyter, server.ws_url, tokens["service"])
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
