"""The REST API for datastores (/api/), on the real database and write path."""

from __future__ import annotations

import base64
import json
import re
from datetime import timedelta

import pytest
from channels.db import database_sync_to_async
from django.contrib.auth.models import Permission, User
from django.contrib.staticfiles import finders
from django.core.cache import cache
from django.core.management import call_command
from django.urls import URLPattern, URLResolver
from django.utils import timezone
from pycrdt import Doc, Map
from rest_framework.test import APIClient

from relay.models import ApiToken
from tables import history, service, undo
from tables.api import urls as api_urls
from tables.management.commands.export_openapi import openapi_schema
from tables.models import Origin, Transaction
from tables.permissions import access_for, grant
from tables.schema import get_schema
from tests.support.factories import Client, add_todo
from tests.support.peers import JsonPeer, token_for

pytestmark = pytest.mark.django_db(transaction=True)

API = "/api/datastores/"


@pytest.fixture(autouse=True)
def _fresh_throttle_counts():
    """Throttle counts live in the cache, which outlives each test's database."""
    cache.clear()
    yield
    cache.clear()


@pytest.fixture
def users() -> dict[str, User]:
    return {name: User.objects.create_user(name) for name in ("owner", "ed", "vi", "x")}


@pytest.fixture
def groceries(users):
    """A todo datastore with an owner, an editor and a viewer, and a few changes by two authors."""
    datastore = service.create_datastore("groceries", "todo", owner=users["owner"])
    grant(datastore, users["ed"], "editor")
    grant(datastore, users["vi"], "viewer")
    owner = Client(datastore, author_id=users["owner"].pk)
    owner.send(lambda d: add_todo(d, "milk", "Buy milk"))  # 1
    owner.send(lambda d: add_todo(d, "eggs", "Eggs", done=True))  # 2
    editor = Client(datastore, author_id=users["ed"].pk)
    editor.send(lambda d: add_todo(d, "bread", "Bread"))  # 3
    editor.send(lambda d: d.get("items", type=Map)["milk"].__setitem__("done", True))  # 4
    datastore.refresh_from_db()
    return datastore


def api(user: User | None = None) -> APIClient:
    client = APIClient()
    if user is not None:
        key = ApiToken.objects.create(user=user).key
        client.credentials(HTTP_AUTHORIZATION=f"Token {key}")
    return client


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def patch_for(datastore, mutate) -> str:
    """A real Yjs update, made by a client that is up to date, as base64."""
    return b64(Client(datastore).change(mutate))


def assert_error(response, status: int, code: str) -> dict:
    assert response.status_code == status, (response.status_code, response.content)
    body = response.json()
    assert body["code"] == code, body
    assert isinstance(body["detail"], str) and body["detail"]
    return body


# --- Datastores -----------------------------------------------------------------------------


def test_list_shows_the_datastores_each_user_may_read_with_their_role(users, groceries):
    other = service.create_datastore("private", "todo", owner=users["x"])
    boss = User.objects.create_superuser("boss")
    expected = {
        "owner": {"groceries": "owner"},
        "ed": {"groceries": "editor"},
        "vi": {"groceries": "viewer"},
        "x": {"private": "owner"},
    }
    for name, roles in expected.items():
        body = api(users[name]).get(API).json()
        assert {item["name"]: item["role"] for item in body["results"]} == roles
        assert body["next"] is None
    listed = api(boss).get(API).json()["results"]
    assert {item["name"]: item["role"] for item in listed} == {
        "groceries": "owner",
        "private": "owner",
    }
    # The same answer as tables.permissions, which the WebSocket side uses.
    for user in [*users.values(), boss]:
        seen = {item["name"]: item["role"] for item in api(user).get(API).json()["results"]}
        for datastore in (groceries, other):
            assert seen.get(datastore.name) == access_for(user, datastore).role
    item = api(users["vi"]).get(API).json()["results"][0]
    assert item == {
        "name": "groceries",
        "schema": "todo",
        "owner": "owner",
        "last_serial": 4,
        "size": groceries.size,
        "history_start": 0,
        "created_at": item["created_at"],
        "role": "viewer",
    }


def test_list_pages_by_name(users):
    for index in range(5):
        service.create_datastore(f"d{index}", "todo", owner=users["owner"])
    client = api(users["owner"])
    names, url = [], f"{API}?limit=2"
    while url:
        body = client.get(url).json()
        names += [item["name"] for item in body["results"]]
        assert len(body["results"]) <= 2
        url = body["next"]
    assert names == ["d0", "d1", "d2", "d3", "d4"]
    assert_error(client.get(f"{API}?limit=0"), 400, "invalid")
    assert_error(client.get(f"{API}?limit=many"), 400, "invalid")


def test_create_a_datastore_makes_the_creator_its_owner(users):
    client = api(users["ed"])
    response = client.post(API, {"name": "trip", "schema": "todo"}, format="json")
    assert response.status_code == 201, response.content
    assert response["Location"] == "/api/datastores/trip/"
    body = response.json()
    assert (body["name"], body["owner"], body["role"], body["last_serial"]) == (
        "trip",
        "ed",
        "owner",
        0,
    )
    assert body["tables"] == ["items", "lists"] and body["can_write"] is True
    assert service.get_datastore("trip").owner == users["ed"]

    exists = client.post(API, {"name": "trip", "schema": "todo"}, format="json")
    assert_error(exists, 409, "datastore-exists")
    bad_name = assert_error(
        client.post(API, {"name": "no spaces", "schema": "todo"}, format="json"), 400, "invalid"
    )
    assert list(bad_name["errors"]) == ["name"]
    unknown = assert_error(
        client.post(API, {"name": "ok", "schema": "nope"}, format="json"), 400, "invalid"
    )
    assert "Unknown schema 'nope'" in unknown["errors"]["schema"][0]
    for name in (0, " trip2", "trip2\n", "x" * 101, "ünï"):
        body = {"name": name, "schema": "todo"}
        assert list(
            assert_error(client.post(API, body, format="json"), 400, "invalid")["errors"]
        ) == ["name"], name
    missing = assert_error(client.post(API, {}, format="json"), 400, "invalid")
    assert set(missing["errors"]) == {"name", "schema"}
    assert_error(
        api().post(API, {"name": "anon", "schema": "todo"}, format="json"), 401, "not-authenticated"
    )


def test_detail_tells_the_role_and_the_tables_one_may_write(users):
    jupyter = service.create_datastore("jupyter", "jupyter", owner=users["owner"])
    grant(jupyter, users["ed"], "editor")
    grant(jupyter, users["vi"], "viewer")
    schema_tables = sorted(get_schema("jupyter").tables)
    editor = api(users["ed"]).get(f"{API}jupyter/").json()
    assert editor["role"] == "editor" and editor["can_write"] is True
    assert editor["tables"] == schema_tables
    assert (
        "kernels" in editor["read_only_tables"] and "executions" not in editor["read_only_tables"]
    )
    viewer = api(users["vi"]).get(f"{API}jupyter/").json()
    assert viewer["can_write"] is False and viewer["read_only_tables"] == schema_tables


# --- State ----------------------------------------------------------------------------------


def test_state_now_and_at_every_serial_equals_a_replay_of_the_history(users, groceries, settings):
    settings.RTC = {**settings.RTC, "CHECKPOINT_EVERY": 2}  # time travel starts at checkpoints
    client = api(users["vi"])
    Client(groceries, author_id=users["owner"].pk).send(lambda d: add_todo(d, "jam", "Jam"))
    groceries.refresh_from_db()
    assert groceries.checkpoint_serial >= 2
    now = client.get(f"{API}groceries/state/").json()
    assert now == {"serial": 5, "state": service.live_python(groceries)[0]}
    assert now["state"]["items"]["milk"] == {"title": "Buy milk", "done": True}
    schema = get_schema("todo")
    for serial in range(0, 6):
        body = client.get(f"{API}groceries/state/?serial={serial}").json()
        assert body == {
            "serial": serial,
            "state": schema.to_python(history.replay(groceries, serial)),
        }
    assert (
        client.get(f"{API}groceries/state/?serial=3").json()["state"]["items"]["milk"]["done"]
        is False
    )

    beyond = assert_error(client.get(f"{API}groceries/state/?serial=6"), 404, "unknown-serial")
    assert beyond["detail"] == "no transaction 6 yet; the newest is 5"
    for bad in ("-1", "x", "1.5", str(2**64)):
        assert (
            "serial"
            in assert_error(client.get(f"{API}groceries/state/?serial={bad}"), 400, "invalid")[
                "errors"
            ]
        )


def test_encoded_state_is_the_yjs_document(users, groceries):
    client = api(users["vi"])
    body = client.get(f"{API}groceries/state.bin").json()
    assert body["serial"] == 4
    doc = Doc()
    doc.apply_update(base64.b64decode(body["state"]))
    assert get_schema("todo").to_python(doc) == service.live_python(groceries)[0]
    old = client.get(f"{API}groceries/state.bin?serial=1").json()
    doc = Doc()
    doc.apply_update(base64.b64decode(old["state"]))
    assert old["serial"] == 1
    assert get_schema("todo").to_python(doc)["items"] == {
        "milk": {"title": "Buy milk", "done": False}
    }
    assert_error(client.get(f"{API}groceries/state.bin?serial=9"), 404, "unknown-serial")


def test_numbers_json_cannot_hold(users):
    """NaN: refused where a schema checks values; answered as null where it does not."""
    jupyter = service.create_datastore("jupyter", "jupyter", owner=users["owner"])
    client = api(users["owner"])
    nan = patch_for(
        jupyter,
        lambda d: d.get("requests", type=Map).update({"r": Map({"params": {"x": float("nan")}})}),
    )
    refused = post_tx(client, {"patch": nan}, "jupyter")
    assert "NaN" in assert_error(refused, 400, "schema-violation")["detail"]

    file = service.create_datastore("file", "file", owner=users["owner"])
    infinity = patch_for(file, lambda d: d.get("state", type=Map).update({"x": float("inf")}))
    stored = post_tx(client, {"patch": infinity}, "file")
    assert stored.status_code == 201, stored.content
    assert client.get(f"{API}file/state/").json()["state"] == {"source": "", "state": {"x": None}}
    summary = client.get(f"{API}file/history/").json()["results"][0]["summary"]
    assert summary[0]["new"] is None


# --- History --------------------------------------------------------------------------------


def history_of(client, query: str = "") -> list[dict]:
    response = client.get(f"{API}groceries/history/{query}")
    assert response.status_code == 200, response.content
    return response.json()["results"]


def test_history_items(users, groceries):
    client = api(users["vi"])
    items = history_of(client)
    assert [item["serial"] for item in items] == [1, 2, 3, 4]
    first = items[0]
    row = Transaction.objects.get(datastore=groceries, serial=1)
    assert first == {
        "serial": 1,
        "txid": row.txid,
        "store_id": "",
        "author": "owner",
        "origin": "client",
        "created_at": first["created_at"],
        "size": row.size,
        "reverts": None,
        "summary": row.summary,
    }
    assert first["summary"][0]["key"] == "milk"
    with_patches = history_of(client, "?include=patch")
    assert [base64.b64decode(item["patch"]) for item in with_patches] == [
        bytes(update)
        for update in Transaction.objects.filter(datastore=groceries).values_list(
            "update", flat=True
        )
    ]
    undo.undo_last(groceries, author_id=users["ed"].pk)
    last = history_of(client)[-1]
    assert (last["serial"], last["origin"], last["author"], last["reverts"]) == (5, "undo", "ed", 4)


def test_history_filters(users, groceries):
    client = api(users["owner"])
    serials = lambda query: [item["serial"] for item in history_of(client, query)]  # noqa: E731
    assert serials("?table=items&record=milk") == [1, 4]
    assert serials("?table=items&record=bread") == [3]
    assert serials("?table=items") == [1, 2, 3, 4]
    assert serials("?table=lists") == []
    assert serials("?author=ed") == [3, 4]
    assert serials("?author=nobody") == []
    assert serials("?origin=client") == [1, 2, 3, 4]
    assert serials("?origin=rest") == []
    assert serials("?after_serial=2") == [3, 4]
    assert serials("?author=owner&table=items&record=milk") == [1]

    Transaction.objects.filter(datastore=groceries, serial__lte=2).update(
        created_at=timezone.now() - timedelta(days=2)
    )
    yesterday = (timezone.now() - timedelta(days=1)).isoformat().replace("+00:00", "Z")
    assert serials(f"?since={yesterday}") == [3, 4]
    assert serials(f"?until={yesterday}") == [1, 2]

    assert serials("?record=milk") == [1, 4]  # in any table
    assert serials("?table=&author=") == []  # empty values are values
    for query, field in [
        ("origin=martian", "origin"),
        ("since=yesterday", "since"),
        ("after_serial=-1", "after_serial"),
        ("limit=1001", "limit"),
        ("include=everything", "include"),
        ("until=", "until"),
        ("limit=1&limit=2", "limit"),
        ("after_serial=", "after_serial"),
    ]:
        body = assert_error(client.get(f"{API}groceries/history/?{query}"), 400, "invalid")
        assert list(body["errors"]) == [field], query


def test_history_pages_follow_the_serials(users, groceries):
    client = api(users["owner"])
    writer = Client(groceries, author_id=users["owner"].pk)
    for index in range(5):
        writer.send(lambda d, index=index: add_todo(d, f"n{index}", "n"))
    seen, url, pages = [], f"{API}groceries/history/?limit=4&table=items", 0
    while url:
        body = client.get(url).json()
        seen += [item["serial"] for item in body["results"]]
        url, pages = body["next"], pages + 1
    assert seen == list(range(1, 10)) and pages == 3


# --- Tables ---------------------------------------------------------------------------------


def test_table_records_and_filters(users, groceries):
    client = api(users["vi"])
    table = client.get(f"{API}groceries/tables/items/").json()
    assert table["serial"] == 4 and table["table"] == "items"
    assert set(table["records"]) == {"milk", "eggs", "bread"}

    def ids(query: str) -> set[str]:
        response = client.get(f"{API}groceries/tables/items/{query}")
        assert response.status_code == 200, response.content
        return set(response.json()["records"])

    assert ids("?done=true") == {"milk", "eggs"}
    assert ids("?done=false") == {"bread"}
    assert ids("?title=Bread") == {"bread"}
    assert ids("?title=Bread&done=true") == set()
    assert ids("?title=true") == set()  # a text field compares the string as written
    assert client.get(f"{API}groceries/tables/lists/").json()["records"] == {}

    twice = assert_error(
        client.get(f"{API}groceries/tables/items/?done=true&done=false"), 400, "invalid"
    )
    assert twice["errors"] == {"done": ["Give this parameter once."]}
    unknown = assert_error(client.get(f"{API}groceries/tables/items/?colour=red"), 400, "invalid")
    assert unknown["errors"] == {"colour": ["Not a field of table 'items'."]}
    listed = assert_error(client.get(f"{API}groceries/tables/lists/?items=1"), 400, "invalid")
    assert list(listed["errors"]) == ["items"]
    assert_error(client.get(f"{API}groceries/tables/nope/"), 404, "unknown-table")


def test_register_filters_read_json_literals(users):
    jupyter = service.create_datastore("jupyter", "jupyter", owner=users["owner"])
    Client(jupyter).send(
        lambda d: d.get("kernels", type=Map).update(
            {
                "k1": Map({"name": "python3", "connections": 2, "reason": None}),
                "k2": Map({"name": "3", "connections": 0}),
            }
        )
    )
    client = api(users["owner"])

    def ids(query: str) -> set[str]:
        return set(client.get(f"{API}jupyter/tables/kernels/{query}").json()["records"])

    assert ids("?connections=2") == {"k1"}
    assert ids("?connections=2.0") == {"k1"}
    assert ids("?name=python3") == {"k1"}
    assert ids('?name="3"') == {"k2"}
    assert ids("?name=3") == {"k2"}  # the JSON literal 3, or the string as written
    assert ids("?reason=null") == {"k1"}


def test_one_record(users, groceries):
    client = api(users["vi"])
    assert client.get(f"{API}groceries/tables/items/eggs/").json() == {
        "serial": 4,
        "table": "items",
        "id": "eggs",
        "fields": {"title": "Eggs", "done": True},
    }
    assert_error(client.get(f"{API}groceries/tables/items/ham/"), 404, "unknown-record")
    assert_error(client.get(f"{API}groceries/tables/nope/eggs/"), 404, "unknown-table")
    # Record ids may hold slashes (paths).
    Client(groceries).send(lambda d: add_todo(d, "shop/aisle 3", "Rice"))
    record = client.get(f"{API}groceries/tables/items/shop/aisle%203/").json()
    assert (record["id"], record["fields"]["title"]) == ("shop/aisle 3", "Rice")
    Client(groceries).send(lambda d: add_todo(d, "two\nlines", "Oil"))
    assert client.get(f"{API}groceries/tables/items/two%0Alines/").json()["id"] == "two\nlines"
    assert_error(client.get(f"{API}groceries/tables/items/%0A/"), 404, "unknown-record")


def test_document_datastores_have_no_tables(users):
    service.create_datastore("notes", "file", owner=users["owner"])
    assert_error(api(users["owner"]).get(f"{API}notes/tables/source/"), 404, "unknown-table")


# --- Transactions ---------------------------------------------------------------------------


def post_tx(client, body: dict, name: str = "groceries"):
    return client.post(f"{API}{name}/transactions/", body, format="json")


def test_post_a_transaction_stored_duplicate_noop(users, groceries):
    client = api(users["ed"])
    patch = patch_for(groceries, lambda d: add_todo(d, "tea", "Tea"))
    stored = post_tx(client, {"patch": patch, "id": "rest-1", "store_id": "script"})
    assert stored.status_code == 201, stored.content
    assert stored.json() == {"id": "rest-1", "serial": 5, "status": "stored"}
    row = Transaction.objects.get(datastore=groceries, serial=5)
    assert (row.txid, row.store_id, row.author, row.origin) == (
        "rest-1",
        "script",
        users["ed"],
        Origin.REST,
    )
    assert service.live_python(groceries)[0]["items"]["tea"] == {"title": "Tea", "done": False}

    again = post_tx(client, {"patch": patch, "id": "rest-1"})
    assert (again.status_code, again.json()) == (
        200,
        {"id": "rest-1", "serial": 5, "status": "duplicate"},
    )
    same_change = post_tx(client, {"patch": patch})
    assert same_change.status_code == 200
    body = same_change.json()
    assert (body["serial"], body["status"]) == (5, "noop") and body["id"]
    assert Transaction.objects.filter(datastore=groceries).count() == 5

    fresh = post_tx(client, {"patch": patch_for(groceries, lambda d: add_todo(d, "jam", "Jam"))})
    assert fresh.status_code == 201 and fresh.json()["serial"] == 6 and fresh.json()["id"]


def test_refused_transactions(users, groceries, settings):
    client = api(users["ed"])
    assert_error(post_tx(client, {"patch": b64(b"\xff\x01garbage")}), 400, "malformed-update")
    assert_error(post_tx(client, {"patch": ""}), 400, "invalid")
    bad = assert_error(post_tx(client, {"patch": "not base64!"}), 400, "invalid")
    assert list(bad["errors"]) == ["patch"]
    missing = assert_error(post_tx(client, {"id": "x"}), 400, "invalid")
    assert list(missing["errors"]) == ["patch"]
    assert_error(post_tx(client, {"patch": b64(b"\x00\x00"), "id": ""}), 400, "invalid")
    for body in ({"patch": 12}, {"patch": "AAA=", "id": 7}, {"patch": "AAA=", "id": "\ud800"}):
        # As JSON text: the lone surrogate travels as the escape \ud800.
        response = client.post(
            f"{API}groceries/transactions/", json.dumps(body), content_type="application/json"
        )
        assert list(assert_error(response, 400, "invalid")["errors"]) == list(body)[-1:], body

    violation = post_tx(
        client, {"patch": patch_for(groceries, lambda d: add_todo(d, "x", "X", done="yes"))}
    )
    assert "expected boolean" in assert_error(violation, 400, "schema-violation")["detail"]

    # An update that builds on a change the server never stored.
    peer = Client(groceries)
    peer.change(lambda d: add_todo(d, "lost", "Never sent"))
    orphan = peer.change(lambda d: d.get("items", type=Map)["lost"].__setitem__("done", True))
    assert_error(post_tx(client, {"patch": b64(orphan)}), 400, "missing-dependencies")

    settings.RTC = {**settings.RTC, "MAX_UPDATE_BYTES": 10}
    big = patch_for(groceries, lambda d: add_todo(d, "big", "x" * 100))
    assert_error(post_tx(client, {"patch": big}), 400, "too-large")
    assert Transaction.objects.filter(datastore=groceries).count() == 4
    assert "x" not in service.live_python(groceries)[0]["items"]


def test_server_state_tables_are_refused_by_the_write_path(users):
    jupyter = service.create_datastore("jupyter", "jupyter", owner=users["owner"])
    grant(jupyter, users["ed"], "editor")
    kernel = patch_for(
        jupyter, lambda d: d.get("kernels", type=Map).update({"k": Map({"name": "py"})})
    )
    refused = post_tx(api(users["ed"]), {"patch": kernel}, "jupyter")
    assert "only the supernode" in assert_error(refused, 403, "permission-denied")["detail"]
    supernode = User.objects.create_user("supernode")
    supernode.user_permissions.add(Permission.objects.get(codename="write_server_state"))
    grant(jupyter, supernode, "editor")
    assert post_tx(api(supernode), {"patch": kernel}, "jupyter").status_code == 201


# --- Undo and redo --------------------------------------------------------------------------


def test_undo_and_redo(users, groceries):
    client = api(users["ed"])
    undone = client.post(f"{API}groceries/undo/", {}, format="json")
    assert undone.status_code == 201, undone.content
    assert undone.json() == {"serial": 5, "reverts": 4, "status": "stored"}
    assert service.live_python(groceries)[0]["items"]["milk"]["done"] is False
    redone = client.post(f"{API}groceries/redo/", format="json")
    assert redone.json() == {"serial": 6, "reverts": 5, "status": "stored"}
    assert service.live_python(groceries)[0]["items"]["milk"]["done"] is True
    assert_error(client.post(f"{API}groceries/redo/", {}, format="json"), 409, "nothing-to-undo")

    # A given serial, someone else's change.
    by_serial = client.post(f"{API}groceries/undo/", {"serial": 1}, format="json")
    assert by_serial.status_code == 201 and by_serial.json()["reverts"] == 1
    assert "milk" not in service.live_python(groceries)[0]["items"]
    again = client.post(f"{API}groceries/redo/", {"serial": 1}, format="json")
    assert again.status_code == 201
    assert "milk" in service.live_python(groceries)[0]["items"]

    assert_error(
        client.post(f"{API}groceries/undo/", {"serial": 99}, format="json"), 409, "nothing-to-undo"
    )
    assert_error(
        client.post(f"{API}groceries/redo/", {"serial": 2}, format="json"), 409, "nothing-to-undo"
    )
    assert_error(api(users["owner"]).post(f"{API}groceries/redo/"), 409, "nothing-to-undo")
    bad = assert_error(
        client.post(f"{API}groceries/undo/", {"serial": "last"}, format="json"), 400, "invalid"
    )
    assert list(bad["errors"]) == ["serial"]
    assert_error(client.post(f"{API}groceries/undo/", {"serial": 0}, format="json"), 400, "invalid")

    fresh = User.objects.create_user("fresh")
    grant(groceries, fresh, "editor")
    nothing = api(fresh).post(f"{API}groceries/undo/")
    assert assert_error(nothing, 409, "nothing-to-undo")["detail"] == "nothing to undo"


def test_undo_goes_through_the_table_policy(users):
    jupyter = service.create_datastore("jupyter", "jupyter", owner=users["owner"])
    grant(jupyter, users["ed"], "editor")
    supernode = User.objects.create_user("supernode")
    supernode.user_permissions.add(Permission.objects.get(codename="write_server_state"))
    Client(jupyter, author_id=supernode.pk).send(
        lambda d: d.get("kernels", type=Map).update({"k": Map({"name": "py"})})
    )
    refused = api(users["ed"]).post(f"{API}jupyter/undo/", {"serial": 1}, format="json")
    assert_error(refused, 403, "permission-denied")
    assert Transaction.objects.filter(datastore=jupyter).count() == 1


def test_freeform_datastores_cannot_be_undone(users):
    datastore = service.create_datastore("loose", "freeform", owner=users["owner"])
    Client(datastore, author_id=users["owner"].pk).send(
        lambda d: d.get("m", type=Map).update({"a": 1})
    )
    assert_error(api(users["owner"]).post(f"{API}loose/undo/"), 400, "undo-unsupported")


# --- Who may do what ------------------------------------------------------------------------

READS = ["", "state/", "state.bin", "history/", "tables/items/", "tables/items/milk/"]
WRITES = ["transactions/", "undo/", "redo/"]


def test_viewers_read_and_may_not_write(users, groceries):
    client = api(users["vi"])
    for path in READS:
        assert client.get(f"{API}groceries/{path}").status_code == 200, path
    patch = patch_for(groceries, lambda d: add_todo(d, "v", "V"))
    for path in WRITES:
        response = client.post(f"{API}groceries/{path}", {"patch": patch}, format="json")
        body = assert_error(response, 403, "permission-denied")
        assert body["detail"] == "role viewer may not write to 'groceries'", path
    assert Transaction.objects.filter(datastore=groceries).count() == 4


def test_strangers_get_the_same_404_as_for_a_datastore_that_does_not_exist(users, groceries):
    client = api(users["x"])
    for path in READS:
        hidden = client.get(f"{API}groceries/{path}")
        missing = client.get(f"{API}nothing-here/{path}")
        assert_error(hidden, 404, "unknown-datastore")
        assert_error(missing, 404, "unknown-datastore")
        assert hidden.json()["detail"] == "no datastore named 'groceries'"
    for path in WRITES:
        assert_error(
            client.post(f"{API}groceries/{path}", {}, format="json"), 404, "unknown-datastore"
        )
    assert_error(client.get(f"{API}bad%00name/"), 404, "unknown-datastore")


def test_anonymous_requests_need_credentials(groceries):
    for path in ["", *(f"groceries/{p}" for p in READS)]:
        response = api().get(f"{API}{path}")
        assert_error(response, 401, "not-authenticated")
        assert response["WWW-Authenticate"] == "Token"
    bad_token = APIClient()
    bad_token.credentials(HTTP_AUTHORIZATION="Token nope")
    assert_error(bad_token.get(API), 401, "authentication-failed")


def test_the_anonymous_role_applies_to_the_rest_api(users, groceries, settings):
    settings.RTC = {**settings.RTC, "ANONYMOUS_ROLE": "viewer"}
    client = api()
    assert [item["role"] for item in client.get(API).json()["results"]] == ["viewer"]
    for path in READS:
        assert client.get(f"{API}groceries/{path}").status_code == 200, path
    assert_error(client.post(f"{API}groceries/undo/"), 403, "permission-denied")
    assert_error(
        client.post(API, {"name": "a", "schema": "todo"}, format="json"), 401, "not-authenticated"
    )

    settings.RTC = {**settings.RTC, "ANONYMOUS_ROLE": "editor"}
    patch = patch_for(groceries, lambda d: add_todo(d, "anon", "Anonymous"))
    stored = client.post(f"{API}groceries/transactions/", {"patch": patch}, format="json")
    assert stored.status_code == 201
    row = Transaction.objects.get(datastore=groceries, serial=stored.json()["serial"])
    assert (row.author, row.origin) == (None, Origin.REST)


def test_sessions_need_the_csrf_token_to_write(users, groceries):
    client = APIClient(enforce_csrf_checks=True)
    client.force_login(users["ed"])
    assert client.get(f"{API}groceries/").json()["role"] == "editor"
    patch = patch_for(groceries, lambda d: add_todo(d, "s", "Session"))
    forged = client.post(f"{API}groceries/transactions/", {"patch": patch}, format="json")
    assert "CSRF" in assert_error(forged, 403, "permission-denied")["detail"]
    assert Transaction.objects.filter(datastore=groceries).count() == 4

    client.get("/admin/login/")  # any page that hands out the CSRF cookie
    token = client.cookies["csrftoken"].value
    allowed = client.post(
        f"{API}groceries/transactions/", {"patch": patch}, format="json", HTTP_X_CSRFTOKEN=token
    )
    assert allowed.status_code == 201, allowed.content


def test_requests_are_throttled(users, groceries, settings):
    settings.RTC = {**settings.RTC, "API_RATE_USER": "3/min", "API_RATE_ANON": "2/min"}
    client = api(users["vi"])
    assert [client.get(f"{API}groceries/").status_code for _ in range(3)] == [200] * 3
    throttled = client.get(f"{API}groceries/")
    assert_error(throttled, 429, "throttled")
    assert int(throttled["Retry-After"]) > 0
    assert api(users["ed"]).get(f"{API}groceries/").status_code == 200  # counted per user

    settings.RTC = {**settings.RTC, "ANONYMOUS_ROLE": "viewer"}
    assert [api().get(API).status_code for _ in range(3)] == [200, 200, 429]

    settings.RTC = {**settings.RTC, "API_RATE_USER": ""}  # empty: no limit
    assert client.get(f"{API}groceries/").status_code == 200


def test_bad_requests_are_json_errors(users, groceries):
    client = api(users["ed"])
    parse = client.post(
        f"{API}groceries/transactions/", "{not json", content_type="application/json"
    )
    assert_error(parse, 400, "parse-error")
    form = client.post(f"{API}groceries/transactions/", {"patch": "AAA="})  # multipart
    assert_error(form, 415, "unsupported-media-type")
    listed = assert_error(
        client.post(f"{API}groceries/transactions/", [1, 2], format="json"), 400, "invalid"
    )
    assert list(listed["errors"]) == ["non_field_errors"]
    assert_error(client.put(f"{API}groceries/", {}, format="json"), 405, "method-not-allowed")
    assert_error(client.get(API, HTTP_ACCEPT="text/csv"), 406, "not-acceptable")


# --- Reaching WebSocket clients -------------------------------------------------------------


async def test_rest_writes_reach_websocket_clients(users, groceries):
    owner = await token_for(users["owner"])
    peer = await JsonPeer.open("groceries", owner)
    await peer.join()
    assert peer.serial == 4
    client = await database_sync_to_async(api)(users["ed"])
    patch = await database_sync_to_async(patch_for)(
        groceries, lambda d: add_todo(d, "rest", "From REST")
    )
    response = await database_sync_to_async(post_tx)(client, {"patch": patch, "id": "via-rest"})
    assert response.status_code == 201
    pushed = await peer.next_of("transaction-broadcast")
    assert [(t["id"], t["serial"]) for t in pushed["content"]["transactions"]] == [("via-rest", 5)]
    peer.apply(pushed["content"]["transactions"])
    assert peer.doc.get("items", type=Map)["rest"]["title"].to_py() == "From REST"

    undone = await database_sync_to_async(client.post)(f"{API}groceries/undo/")
    assert undone.status_code == 201
    pushed = await peer.next_of("transaction-broadcast")
    peer.apply(pushed["content"]["transactions"])
    assert "rest" not in peer.doc.get("items", type=Map)
    await peer.close()


# --- OpenAPI --------------------------------------------------------------------------------


def api_routes() -> set[str]:
    """Every route of tables.api.urls, in OpenAPI's spelling (/api/datastores/{name}/...)."""
    routes = set()
    for pattern in api_urls.urlpatterns:
        assert isinstance(pattern, URLPattern) and not isinstance(pattern, URLResolver)
        route = str(pattern.pattern)
        for converter in ("str:", "record:"):
            route = route.replace(f"<{converter}", "{")
        routes.add("/api/" + route.replace(">", "}"))
    return routes


def test_the_openapi_schema_is_valid_and_describes_every_endpoint():
    from drf_spectacular.drainage import GENERATOR_STATS

    GENERATOR_STATS.reset()
    schema = openapi_schema()  # validated against the OpenAPI 3 specification
    assert not GENERATOR_STATS, "the schema generator warned"
    assert schema["info"]["title"] == "Jupyter RTC API"
    assert api_routes() <= set(schema["paths"])
    operations = {
        (path, method)
        for path, item in schema["paths"].items()
        for method in item
        if path.startswith("/api/datastores/")
    }
    assert operations == {
        ("/api/datastores/", "get"),
        ("/api/datastores/", "post"),
        ("/api/datastores/{name}/", "get"),
        ("/api/datastores/{name}/state/", "get"),
        ("/api/datastores/{name}/state.bin", "get"),
        ("/api/datastores/{name}/history/", "get"),
        ("/api/datastores/{name}/tables/{table}/", "get"),
        ("/api/datastores/{name}/tables/{table}/{record_id}/", "get"),
        ("/api/datastores/{name}/transactions/", "post"),
        ("/api/datastores/{name}/undo/", "post"),
        ("/api/datastores/{name}/redo/", "post"),
    }
    for path, method in operations:
        operation = schema["paths"][path][method]
        assert {"200", "201"} & set(operation["responses"]), (path, method)
        assert {"401", "403", "429"} <= set(operation["responses"]), (path, method)
        assert operation["security"] == [{"tokenAuth": []}, {"cookieAuth": []}]


def test_the_schema_and_its_viewer_are_served():
    schema = APIClient().get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json")
    assert schema.status_code == 200
    assert "/api/datastores/{name}/history/" in json.loads(schema.content)["paths"]
    docs = APIClient().get("/api/docs/")
    assert docs.status_code == 200 and b"swagger" in docs.content.lower()
    # Its assets come from this server's static files: the page works without the internet.
    page = docs.content.decode()
    assert "/static/drf_spectacular_sidecar/swagger-ui-dist/swagger-ui-bundle.js" in page
    # Nothing loaded from another host (the page's random CSRF token may spell anything).
    assert not re.findall(r"""(?:src|href)\s*=\s*["'](?:https?:)?//""", page, re.IGNORECASE)
    assert not re.findall(r"https?://(?!testserver)[\w.-]*cdn", page, re.IGNORECASE)
    assert finders.find("drf_spectacular_sidecar/swagger-ui-dist/swagger-ui-bundle.js")


def test_export_openapi_writes_the_schema(tmp_path):
    target = tmp_path / "spec.json"
    call_command("export_openapi", "--output", str(target), "--fail-on-warn")
    assert json.loads(target.read_text()) == openapi_schema()
