"""Acting for Jupyter users over REST: a bridge's token and ``X-Jupyter-User`` on the real
database, write path and history; who may send the header, what a malformed one gets, the role a
new Jupyter user is given, the command that makes a bridge, the admin that shows the mapping."""

from __future__ import annotations

import base64
import io
import json
from concurrent.futures import ThreadPoolExecutor
from threading import Barrier

import pytest
from django.contrib.auth.models import User
from django.core.cache import cache
from django.core.management import CommandError, call_command
from django.db import connection
from pycrdt import Doc, Map
from rest_framework.test import APIClient

from relay.identity import BRIDGE_DATASTORE, resolve_acting_user, username_base
from relay.models import ApiToken, JupyterIdentity
from tables import service
from tables.models import DatastoreRole, Transaction
from tables.permissions import grant, revoke

pytestmark = pytest.mark.django_db(transaction=True)

JUPYTER = f"/api/datastores/{BRIDGE_DATASTORE}/"


@pytest.fixture(autouse=True)
def _fresh_throttle_counts():
    cache.clear()
    yield
    cache.clear()


def make_bridge(username: str = "lab") -> str:
    out = io.StringIO()
    call_command("create_bridge_token", username, stdout=out, stderr=io.StringIO())
    return out.getvalue().strip()


def identity(username: str, display_name: str | None = None, **extra) -> str:
    data = {
        "username": username,
        "name": username,
        "display_name": display_name or username.title(),
        "initials": username[:1].upper(),
        "color": "var(--jp-collaborator-color1)",
        **extra,
    }
    return json.dumps(data, ensure_ascii=True)


def client(token: str | None, jupyter_user: str | None = None) -> APIClient:
    api = APIClient()
    headers = {}
    if token:
        headers["HTTP_AUTHORIZATION"] = f"Token {token}"
    if jupyter_user is not None:
        headers["HTTP_X_JUPYTER_USER"] = jupyter_user
    api.credentials(**headers)
    return api


def execution_patch(record: str) -> str:
    """An update adding an ``executions`` record (a table clients may write)."""
    state, _ = service.live_state(BRIDGE_DATASTORE)
    doc = Doc()
    doc.apply_update(state)
    before = doc.get_state()
    doc.get("executions", type=Map)[record] = Map({"status": "requested"})
    return base64.b64encode(doc.get_update(before)).decode()


def write(api: APIClient, record: str):
    body = {"patch": execution_patch(record), "id": f"tx-{record}"}
    return api.post(f"{JUPYTER}transactions/", body, format="json")


@pytest.fixture
def jupyter():
    return service.create_datastore(BRIDGE_DATASTORE, "jupyter")


def test_each_jupyter_user_acts_as_a_plain_user_of_their_own(jupyter):
    token = make_bridge("lab")
    bridge = User.objects.get(username="lab")
    assert write(client(token, identity("alice", "Alice Liddell")), "a1").status_code == 201
    assert write(client(token, identity("bob")), "b1").status_code == 201
    assert write(client(token, identity("alice", "Alice L.")), "a2").status_code == 201

    authors = dict(Transaction.objects.values_list("txid", "author__username"))
    assert authors == {"tx-a1": "alice@lab", "tx-b1": "bob@lab", "tx-a2": "alice@lab"}
    alice = User.objects.get(username="alice@lab")
    assert alice.first_name == "Alice L."  # the display name follows Jupyter's
    mapping = JupyterIdentity.objects.get(bridge=bridge, jupyter_username="alice")
    assert (mapping.user, mapping.display_name, mapping.initials) == (alice, "Alice L.", "A")
    assert JupyterIdentity.objects.count() == 2
    for user in User.objects.filter(jupyter_identity__isnull=False):
        assert not (user.is_staff or user.is_superuser or user.has_usable_password())
        assert not user.get_all_permissions()
    # The bridge's own account got nothing; the people have the default role.
    assert not DatastoreRole.objects.filter(user=bridge).exists()
    roles = dict(DatastoreRole.objects.values_list("user__username", "role"))
    assert roles == {"alice@lab": "editor", "bob@lab": "editor"}

    history = client(token, identity("bob")).get(f"{JUPYTER}history/").json()["results"]
    assert [item["author"] for item in history] == ["alice@lab", "bob@lab", "alice@lab"]
    # Without the header the bridge is itself, with no role anywhere.
    assert client(token).get(JUPYTER).status_code == 404


def test_names_never_collide_across_bridges_nor_with_django_users(jupyter):
    admin = User.objects.create_superuser("admin", password="secret-enough-1")
    User.objects.create_user("carol@one")  # someone already has the readable name
    one, two = make_bridge("one"), make_bridge("two")
    assert write(client(one, identity("admin")), "x1").status_code == 201
    assert write(client(two, identity("admin")), "x2").status_code == 201
    assert write(client(one, identity("carol")), "x3").status_code == 201

    mapped = {
        (m.bridge.username, m.jupyter_username): m.user.username
        for m in JupyterIdentity.objects.select_related("bridge", "user")
    }
    assert mapped == {
        ("one", "admin"): "admin@one",
        ("two", "admin"): "admin@two",
        ("one", "carol"): "carol@one-2",
    }
    assert not Transaction.objects.filter(author=admin).exists()
    assert not User.objects.filter(username__startswith="admin@", is_superuser=True).exists()


def test_readable_usernames_keep_to_djangos_characters():
    assert username_base("alice", "lab") == "alice@lab"
    assert username_base("Jane Doe/ops", "hub bridge") == "Jane-Doe-ops@hub-bridge"
    assert username_base("../..", "lab") == "user@lab"
    assert len(username_base("x" * 255, "y" * 150)) <= 150


def test_only_a_bridges_token_may_name_a_jupyter_user(jupyter):
    plain = User.objects.create_user("plain")
    grant(jupyter, plain, "editor")
    root = User.objects.create_superuser("root", password="secret-enough-1")
    for user in (plain, root):  # a superuser is not a bridge unless made one
        token = ApiToken.objects.create(user=user).key
        answer = write(client(token, identity("alice")), f"by-{user.username}")
        assert answer.status_code == 403, answer.content
        assert answer.json()["code"] == "may-not-act-for-others"

    session = APIClient()
    session.force_login(plain)
    answer = session.get(JUPYTER, HTTP_X_JUPYTER_USER=identity("alice"))
    assert (answer.status_code, answer.json()["code"]) == (403, "may-not-act-for-others")

    anonymous = client(None, identity("alice")).get(JUPYTER)
    assert anonymous.status_code == 401
    assert anonymous["WWW-Authenticate"] == "Token"

    assert not Transaction.objects.exists()
    assert not JupyterIdentity.objects.exists()
    assert not User.objects.filter(username__startswith="alice").exists()


MALFORMED = {
    "not-json": "{username: alice}",
    "not-an-object": '["alice"]',
    "username-a-number": '{"username": 7}',
    "username-missing": '{"name": "alice"}',
    "username-empty": '{"username": "  "}',
    "name-null": '{"username": "alice", "name": null}',
    "color-an-object": '{"username": "alice", "color": {"r": 1}}',
    "duplicate-key": '{"username": "alice", "username": "admin"}',
    "nan": '{"username": "alice", "initials": NaN}',
    "non-ascii": '{"username": "al\u00efce"}',
    "raw-nul": '{"username": "al\x00ice"}',
    "escaped-nul": '{"username": "al\\u0000ice"}',
    "lone-surrogate": '{"username": "al\\ud800ice"}',
    "oversize": json.dumps({"username": "alice", "display_name": "a" * 4100}),
    "field-too-long": json.dumps({"username": "a" * 256}),
    "deeply-nested": '{"username": "alice", "x": ' + "[" * 2000 + "]" * 2000 + "}",
}


@pytest.mark.parametrize("value", MALFORMED.values(), ids=MALFORMED.keys())
def test_a_malformed_identity_is_400_and_makes_nobody(jupyter, value):
    token = make_bridge()
    answer = write(client(token, value), "m1")
    assert answer.status_code == 400, answer.content
    assert answer.json()["code"] == "bad-identity"
    assert not JupyterIdentity.objects.exists()
    assert list(User.objects.values_list("username", flat=True)) == ["lab"]
    assert not Transaction.objects.exists()


@pytest.mark.parametrize(
    ("role", "write_status"), [("editor", 201), ("viewer", 403), ("none", 404)]
)
def test_rtc_bridge_role_is_the_role_a_new_jupyter_user_gets(jupyter, settings, role, write_status):
    settings.RTC = {**settings.RTC, "BRIDGE_ROLE": role}
    token = make_bridge()
    answer = write(client(token, identity("alice")), "r1")
    assert answer.status_code == write_status, answer.content
    given = DatastoreRole.objects.filter(user__username="alice@lab").values_list("role", flat=True)
    assert list(given) == ([] if role == "none" else [role])
    assert JupyterIdentity.objects.get().initial_role == role
    assert Transaction.objects.count() == (1 if role == "editor" else 0)


def test_the_role_is_given_once_and_an_admins_change_stands(jupyter):
    token = make_bridge()
    alice, bob = client(token, identity("alice")), client(token, identity("bob"))
    assert write(alice, "g1").status_code == 201
    assert write(bob, "g2").status_code == 201
    revoke(jupyter, User.objects.get(username="alice@lab"))
    grant(jupyter, User.objects.get(username="bob@lab"), "viewer")

    assert write(alice, "g3").status_code == 404  # no role: no datastore, as for anyone
    assert write(bob, "g4").status_code == 403
    roles = dict(DatastoreRole.objects.values_list("user__username", "role"))
    assert roles == {"bob@lab": "viewer"}
    assert sorted(Transaction.objects.values_list("txid", flat=True)) == ["tx-g1", "tx-g2"]


def test_the_role_waits_for_the_jupyter_datastore():
    token = make_bridge()
    assert client(token, identity("alice")).get("/api/datastores/").status_code == 200
    mapping = JupyterIdentity.objects.get()
    assert (mapping.initial_role, mapping.initial_role_given_at) == ("", None)

    jupyter = service.create_datastore(BRIDGE_DATASTORE, "jupyter")  # the supernode's first run
    listed = client(token, identity("alice")).get("/api/datastores/").json()["results"]
    assert [(item["name"], item["role"]) for item in listed] == [("jupyter", "editor")]
    mapping.refresh_from_db()
    assert mapping.initial_role == "editor" and mapping.initial_role_given_at is not None
    assert DatastoreRole.objects.get(datastore=jupyter).user == mapping.user


def test_create_bridge_token_makes_a_bridge_once():
    first = make_bridge("hub")
    with pytest.raises(CommandError, match="--rotate"):  # shown once: never printed again
        make_bridge("hub")
    bridge = User.objects.get(username="hub")
    assert bridge.has_perm("relay.act_for_jupyter_users")
    assert not (bridge.is_staff or bridge.has_usable_password())
    out = io.StringIO()
    call_command("create_bridge_token", "hub", "--rotate", stdout=out, stderr=io.StringIO())
    rotated = out.getvalue().strip()
    assert rotated != first and [token.prefix for token in bridge.api_tokens.all()] == [rotated[:8]]

    User.objects.create_superuser("boss", password="secret-enough-1")
    with pytest.raises(CommandError, match="staff"):
        call_command("create_bridge_token", "boss", stdout=io.StringIO(), stderr=io.StringIO())
    assert not ApiToken.objects.filter(user__username="boss").exists()


def test_the_admin_shows_the_mapping_read_only(jupyter):
    token = make_bridge()
    write(client(token, identity("alice", "Alice Liddell")), "ad1")
    admin_user = User.objects.create_superuser("admin", password="secret-enough-1")
    browser = APIClient()
    browser.force_login(admin_user)
    listing = browser.get("/admin/relay/jupyteridentity/")
    assert listing.status_code == 200
    assert b"Alice Liddell" in listing.content and b"alice@lab" in listing.content
    assert browser.get("/admin/relay/jupyteridentity/add/").status_code == 403
    mapping = JupyterIdentity.objects.get()
    page = browser.post(f"/admin/relay/jupyteridentity/{mapping.pk}/change/", {"color": "red"})
    assert page.status_code == 403
    mapping.refresh_from_db()
    assert mapping.color == "var(--jp-collaborator-color1)"


def test_first_requests_at_once_make_one_user(jupyter):
    make_bridge()
    bridge = User.objects.get(username="lab")
    barrier = Barrier(4)

    def first_request() -> int:
        try:
            barrier.wait(timeout=10)
            return resolve_acting_user(bridge, identity("alice")).pk
        finally:
            connection.close()

    with ThreadPoolExecutor(4) as pool:
        users = set(pool.map(lambda _: first_request(), range(4)))
    assert len(users) == 1
    assert list(User.objects.exclude(username="lab").values_list("username", flat=True)) == [
        "alice@lab"
    ]
    assert JupyterIdentity.objects.get().user_id == users.pop()
    assert DatastoreRole.objects.filter(datastore=jupyter).count() == 1
