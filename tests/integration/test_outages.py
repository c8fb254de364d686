"""Outages and strays against real daphne processes: a database that cannot be reached, a
WebSocket path no route serves, Redis going away and coming back. Each is answered clearly (a
JSON 503, a close with 4503, a refused handshake) and logged as one line without a traceback,
and the server serves on."""

from __future__ import annotations

import asyncio
import base64
import json

import httpx
import pytest
from channels.db import database_sync_to_async
from pycrdt import Doc
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from jupyter_sync.jupyter.launcher import free_port
from tests.support.factories import add_todo, owned_datastore
from tests.support.liveserver import ServerProcess
from tests.support.socket_peers import Peer
from tests.support.waiting import aeventually

pytest_plugins = ["tests.support.liveserver", "tests.support.redis_server"]

LAYER_DOWN = "the channel layer cannot be reached"
LAYER_BACK = "the channel layer is back"


def log_since(server: ServerProcess, mark: int) -> str:
    return server.log[mark:]


# --- a WebSocket path with no route ------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
async def test_a_websocket_path_with_no_route_is_refused_in_one_line(live_server_process):
    server = live_server_process
    mark = len(server.log)
    for _ in range(2):
        with pytest.raises(InvalidStatus) as refused:
            async with connect(f"{server.ws_url}/ws/nope"):
                pass
        assert refused.value.response.status_code == 403
    log = await aeventually(
        lambda: log_since(server, mark).count("WSREJECT") == 2 and log_since(server, mark),
        what="both refusals in the server's log",
    )
    assert log.count("Not Found (WebSocket): /ws/nope") == 2, log
    assert "Traceback" not in log and "ERROR" not in log, log
    server.check_alive()


# --- a database that cannot be reached ---------------------------------------------------------


@pytest.fixture
def no_database_server():
    """A server whose DATABASE_URL names a port nothing listens on."""
    database = f"postgres://postgres@127.0.0.1:{free_port()}/nowhere"
    with ServerProcess(database=database, name="no-database") as server:
        yield server.start()


async def closed_with(ws) -> tuple[list, int | None, str]:
    """Every frame until the server closes, and its close code and reason."""
    frames = []
    try:
        while True:
            frames.append(await asyncio.wait_for(ws.recv(), 20))
    except ConnectionClosed:
        pass
    return frames, ws.close_code, ws.close_reason


async def test_a_database_that_cannot_be_reached_is_a_503_and_a_4503(no_database_server):
    server = no_database_server
    mark = len(server.log)
    key = "0123456789abcdef0123456789abcdef01234567"
    headers = {"Authorization": f"Token {key}"}

    async with httpx.AsyncClient(base_url=server.url, timeout=20) as http:
        response = await http.get("/api/datastores/", headers=headers)
    assert response.status_code == 503, response.text
    assert response.headers["content-type"] == "application/json"
    assert response.headers["retry-after"]
    assert response.json()["code"] == "database-unavailable"

    async with connect(server.datastore_ws_url("todo"), additional_headers=headers) as ws:
        frames, code, _ = await closed_with(ws)
    assert code == 4503
    assert [json.loads(frame)["content"]["code"] for frame in frames] == ["database-unavailable"]

    async with connect(f"{server.yjs_url}/todo?token={key}") as ws:
        frames, code, reason = await closed_with(ws)
    assert code == 4503 and reason.startswith("the database cannot be reached"), reason
    assert frames and b"database-unavailable" in frames[0]

    log = await aeventually(
        lambda: log_since(server, mark).count("WSDISCONNECT") == 2 and log_since(server, mark),
        what="both connections in the server's log",
    )
    assert log.count("the database is unavailable") == 2, log
    assert log.count("database unavailable: ") == 1, log  # the REST request
    assert "Traceback" not in log, log
    server.check_alive()


# --- Redis going away and coming back ----------------------------------------------------------


@pytest.mark.django_db(transaction=True)
async def test_without_redis_connections_work_locally_and_fan_out_resumes(
    redis_server, start_server, opened
):
    env = {"REDIS_URL": redis_server.url, "REDIS_PREFIX": "outage"}
    first = await asyncio.to_thread(start_server, env=env, name="worker-1")
    second = await asyncio.to_thread(start_server, env=env, name="worker-2")
    token = await database_sync_to_async(owned_datastore)("before")
    bo_token = await database_sync_to_async(owned_datastore)("during", username="bo")
    alice = await Peer.open(first, "before", token)
    carol = await Peer.open(second, "before", token)
    opened.extend([alice, carol])
    await alice.add("a1")
    await carol.until(lambda: "a1" in carol.items())  # fan-out through Redis

    await asyncio.to_thread(redis_server.stop)
    await alice.add("a2")  # stored; its announcement is lost with Redis
    await alice.until(lambda: len(alice.acked) == 2)
    for server in (first, second):
        await aeventually(lambda s=server: LAYER_DOWN in s.log, 30, f"{server.name} noticed")

    # New rooms while Redis is down: the handshake works, and so does the worker's own fan-out.
    dave = await Peer.open(first, "during", bo_token)
    bob = await Peer.open(first, "during", bo_token)
    erin = await Peer.open(second, "during", bo_token)
    opened.extend([dave, bob, erin])
    await dave.add("d1")
    await dave.until(lambda: len(dave.acked) == 1)
    await bob.until(lambda: "d1" in bob.items())

    await asyncio.to_thread(redis_server.start)
    for server in (first, second):
        await aeventually(lambda s=server: LAYER_BACK in s.log, 30, f"{server.name} recovered")
    # What was committed during the outage arrives from the database...
    await carol.until(lambda: "a2" in carol.items())
    await erin.until(lambda: "d1" in erin.items())
    # ... and what is committed now, through Redis again (in rooms opened during the outage too).
    await dave.add("d2")
    await erin.until(lambda: "d2" in erin.items())
    await alice.add("a3")
    await carol.until(lambda: "a3" in carol.items())
    assert sorted(carol.serials) == [1, 2, 3] and sorted(erin.serials) == [1, 2]

    for server in (first, second):
        log = server.log
        assert log.count(LAYER_DOWN) == 1, log
        assert "Traceback" not in log, log
        server.check_alive()


@pytest.mark.django_db(transaction=True)
async def test_a_rest_write_without_redis_is_stored_and_answered(redis_server, start_server):
    """A worker without WebSocket connections announces its commits through the layer itself;
    that failing must not turn a stored write into a 500 (the client would send it again)."""
    env = {"REDIS_URL": redis_server.url, "REDIS_PREFIX": "outage"}
    server = await asyncio.to_thread(start_server, env=env, name="rest-worker")
    token = await database_sync_to_async(owned_datastore)("shop")
    await asyncio.to_thread(redis_server.stop)
    mark = len(server.log)
    serials = []
    async with httpx.AsyncClient(base_url=server.url, timeout=20) as http:
        for item in ("tea", "jam"):
            doc = Doc()
            add_todo(doc, item, item.title())
            response = await http.post(
                "/api/datastores/shop/transactions/",
                json={"patch": base64.b64encode(doc.get_update()).decode(), "id": item},
                headers={"Authorization": f"Token {token}"},
            )
            assert response.status_code == 201, response.text
            serials.append(response.json()["serial"])
    assert serials == [1, 2]
    log = log_since(server, mark)
    assert log.count("commits cannot be announced") == 1, log
    assert "Traceback" not in log, log
