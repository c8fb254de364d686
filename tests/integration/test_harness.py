"""The end-to-end harness itself: a real server process, and Node Yjs clients driven over stdio."""

from __future__ import annotations

import http.cookiejar
import re
import signal
import urllib.parse
import urllib.request

import pytest
from django.contrib.auth.models import User
from django.contrib.sessions.models import Session
from pycrdt import Doc, Map, Text

from tests.support.liveserver import ServerError, ServerProcess, free_port
from tests.support.nodeclient import NodeClientError, NodeYClient

pytest_plugins = ["tests.support.liveserver", "tests.support.nodeclient"]


@pytest.mark.django_db(transaction=True)
def test_live_server_answers_http_from_its_own_process(live_server_process: ServerProcess):
    assert live_server_process.url.startswith("http://127.0.0.1:")
    status, body = live_server_process.get("/admin/login/")
    assert status == 200
    assert b"csrfmiddlewaretoken" in body
    assert live_server_process.process is not None
    assert live_server_process.process.pid


@pytest.mark.django_db(transaction=True)
def test_live_server_uses_the_test_database(live_server_process: ServerProcess):
    """A user created here logs in to the server's admin; the session it stores is seen here."""
    User.objects.create_superuser("ada", password="a long test password")
    cookies = http.cookiejar.CookieJar()
    opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(cookies))
    login = f"{live_server_process.url}/admin/login/"
    form = opener.open(login, timeout=10).read().decode()
    csrf = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', form)
    assert csrf
    data = urllib.parse.urlencode(
        {
            "csrfmiddlewaretoken": csrf.group(1),
            "username": "ada",
            "password": "a long test password",
            "next": "/admin/",
        }
    ).encode()
    request = urllib.request.Request(login, data=data, headers={"Referer": login})
    with opener.open(request, timeout=10) as response:
        assert response.url == f"{live_server_process.url}/admin/"
        assert 'id="logout-form"' in response.read().decode()
    assert Session.objects.count() == 1


@pytest.mark.django_db(transaction=True)
def test_a_killed_server_can_start_again_on_the_same_port(start_server):
    first, second = start_server(), start_server()
    assert first.port != second.port
    port = first.port
    assert first.kill(signal.SIGKILL) == -signal.SIGKILL
    with pytest.raises(OSError):
        first.get("/admin/login/", timeout=2)
    assert second.get("/admin/login/")[0] == 200  # the other worker is unaffected
    first.start()
    assert first.port == port
    assert first.get("/admin/login/")[0] == 200


@pytest.mark.django_db(transaction=True)
def test_a_server_that_cannot_start_reports_its_output():
    server = ServerProcess(env={"DJANGO_SETTINGS_MODULE": "no_such_settings_module"})
    try:
        with pytest.raises(ServerError, match="no_such_settings_module"):
            server.start(timeout=30)
    finally:
        server.stop()
        server.log_path.unlink(missing_ok=True)


def test_node_client_edits_a_local_document(node_client):
    client = node_client()
    assert isinstance(client.client_id, int)
    assert client.status() == {"clientId": client.client_id, "connected": False, "synced": False}

    client.set("items", "a", {"$map": {"title": {"$text": "Buy milk"}, "done": False}})
    client.insert_text(["items", "a", "title"], 3, " oat")
    client.set(["items", "a"], "done", True)
    client.insert_text("source", 0, "print(1)")
    client.delete_text("source", 0, 6)
    client.batch(
        [
            {"op": "set", "path": "lists", "key": "l", "value": {"$map": {"items": ["a"]}}},
            {"op": "array-insert", "path": "cells", "index": 0, "values": [{"$text": "x"}, 2]},
        ]
    )
    assert client.get({"items": "map", "lists": "map", "source": "text", "cells": "array"}) == {
        "items": {"a": {"title": "Buy oat milk", "done": True}},
        "lists": {"l": {"items": ["a"]}},
        "source": "1)",
        "cells": ["x", 2],
    }
    state = client.wait_for(lambda doc: doc["items"]["a"]["done"] is True, ["items"], timeout=5)
    assert state["items"]["a"]["title"] == "Buy oat milk"

    # What the Node doc encodes is a Yjs update pycrdt reads (the same wire format).
    doc = Doc()
    doc.apply_update(client.encode_state())
    items = doc.get("items", type=Map)
    assert isinstance(items["a"]["title"], Text)
    assert items.to_py() == {"a": {"title": "Buy oat milk", "done": True}}

    client.set_awareness({"user": {"name": "ada"}})
    assert client.get_awareness() == {client.client_id: {"user": {"name": "ada"}}}


def test_node_client_reports_failed_commands_and_stays_usable(node_client):
    client = node_client()
    with pytest.raises(NodeClientError, match="nothing at"):
        client.insert_text(["items", "missing", "title"], 0, "x")
    with pytest.raises(NodeClientError, match="not connected"):
        client.wait_synced(timeout=1)
    with pytest.raises(NodeClientError, match="unknown command"):
        client.request("no-such-command")
    with pytest.raises(NodeClientError, match="did not happen within"):
        client.wait_event("synced", timeout=0.2)
    client.set("m", "k", [1, 2])
    assert client.get(["m"]) == {"m": {"k": [1, 2]}}


def test_node_client_close_always_ends_the_process(node_client):
    client = node_client()
    client.close()
    assert client.process.returncode is not None
    client.close()  # idempotent
    with pytest.raises(NodeClientError, match="exited"):
        client.status()


def test_a_client_that_never_connects_to_a_server_reports_it(node_client):
    # Nothing listens on a port just freed: the provider reports the failed attempts.
    client: NodeYClient = node_client()
    client.connect(f"ws://127.0.0.1:{free_port()}/ws/yjs", "nowhere", token="x")
    client.wait_event("connection-error")
    client.wait_event("close", lambda event: event["code"] is not None)
    with pytest.raises(NodeClientError, match="not synced"):
        client.wait_synced(timeout=0.5)
