"""Outages and strays against real daphne processes: a database that cannot be reached, a
WebSocket path no route serves, Redis going away and coming back. Each is answered clearly (a
JSON 503, a close with 4503, a refused handshake) and logged as one line without a traceback,
and the server serves on."""

from __future__ import annotations

import asyncio
import json

import httpx
import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from jupyter_sync.jupyter.launcher import free_port
from tests.support.liveserver import ServerProcess
from tests.support.waiting import aeventually

pytest_plugins = ["tests.support.liveserver"]

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
