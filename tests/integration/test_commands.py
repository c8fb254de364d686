"""Management commands."""

import hashlib
import os
import subprocess
import sys
from io import StringIO

import pytest
from django.contrib.auth.models import User
from django.core.management import CommandError, call_command
from rest_framework.test import APIClient

from jupyter_sync.jupyter.launcher import free_port
from relay.models import ApiToken
from tables.models import Datastore
from tests.support import ROOT

pytestmark = pytest.mark.django_db


def run(*args: str) -> str:
    out = StringIO()
    call_command(*args, stdout=out)
    return out.getvalue()


def test_create_datastore_with_owner():
    owner = User.objects.create_user("ada")
    assert "created datastore 'shop'" in run(
        "create_datastore", "shop", "--schema", "todo", "--owner", "ada"
    )
    datastore = Datastore.objects.get(name="shop")
    assert (datastore.schema, datastore.owner, datastore.last_serial) == ("todo", owner, 0)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["x", "--schema", "nope"], "unknown schema 'nope'"),
        (["bad name!", "--schema", "todo"], "A datastore name is"),
        (["x", "--schema", "todo", "--owner", "ghost"], "no user named 'ghost'"),
    ],
)
def test_create_datastore_errors_are_clear(args, message):
    with pytest.raises(CommandError, match=message):
        run("create_datastore", *args)
    assert not Datastore.objects.exists()


def test_create_datastore_twice_is_refused():
    run("create_datastore", "x", "--schema", "freeform")
    with pytest.raises(CommandError, match="already exists"):
        run("create_datastore", "x", "--schema", "todo")


def authenticates(key: str) -> bool:
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Token {key}")
    return api.get("/api/datastores/").status_code == 200


def test_create_token_shows_the_token_once_and_stores_only_its_digest():
    User.objects.create_user("ada")
    first = run("create_token", "ada").strip()
    assert len(first) == 43 and authenticates(first)
    with pytest.raises(CommandError, match="has a token already") as refused:
        run("create_token", "ada")
    assert f"({first[:8]}..." in str(refused.value) and first not in str(refused.value)
    stored = ApiToken.objects.get(user__username="ada")
    assert stored.digest == hashlib.sha256(first.encode()).hexdigest()
    assert stored.prefix == first[:8]
    assert first not in repr(ApiToken.objects.values().get())  # no column holds the key

    rotated = run("create_token", "ada", "--rotate").strip()
    assert rotated != first and len(rotated) == 43
    assert authenticates(rotated) and not authenticates(first)


def test_a_database_dump_holds_no_token():
    User.objects.create_user("ada")
    key = run("create_token", "ada").strip()
    dump = run("dumpdata")
    assert '"model": "relay.apitoken"' in dump and key[:8] in dump
    assert key not in dump


def test_create_token_for_unknown_user():
    with pytest.raises(CommandError, match="--create-user"):
        run("create_token", "ghost")
    assert len(run("create_token", "ghost", "--create-user").strip()) == 43
    assert User.objects.filter(username="ghost").exists()


def test_grant_and_revoke_roles():
    from tables.models import DatastoreRole

    User.objects.create_user("bo")
    run("create_datastore", "shop", "--schema", "todo")
    assert "bo is now viewer of shop" in run("grant", "shop", "bo", "viewer")
    run("grant", "shop", "bo", "editor")
    assert DatastoreRole.objects.get(user__username="bo").role == "editor"
    run("grant", "shop", "bo", "none")
    assert not DatastoreRole.objects.exists()
    with pytest.raises(CommandError, match="unknown datastore 'nope'"):
        run("grant", "nope", "bo", "viewer")
    with pytest.raises(CommandError, match="no user named 'ghost'"):
        run("grant", "shop", "ghost", "viewer")


@pytest.mark.parametrize(
    "command",
    [["migrate"], ["create_token", "ada"], ["prune_history", "--all", "--older-than", "30d"]],
)
def test_a_database_that_cannot_be_reached_is_one_line_naming_database_url(command):
    port = free_port()  # nothing listens there
    env = {**os.environ, "DATABASE_URL": f"postgres://postgres@127.0.0.1:{port}/nowhere"}
    done = subprocess.run(
        [sys.executable, "manage.py", *command],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 1, done
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in done.stderr, done.stderr
    assert "DATABASE_URL" in lines[0] and f"127.0.0.1:{port}" in lines[0]


def test_the_admin_lists_tokens_by_prefix_and_never_shows_one(client):
    User.objects.create_superuser("root", password="secret-enough-1")
    User.objects.create_user("ada")
    key = run("create_token", "ada").strip()
    client.login(username="root", password="secret-enough-1")
    listing = client.get("/admin/relay/apitoken/")
    assert listing.status_code == 200
    page = listing.content.decode()
    assert key[:8] in page and key not in page
    token = ApiToken.objects.get()
    detail = client.get(f"/admin/relay/apitoken/{token.pk}/change/").content.decode()
    assert key[:8] in detail and key not in detail and token.digest not in detail
    assert client.get("/admin/relay/apitoken/add/").status_code == 403  # made by the commands
    assert (
        client.post(f"/admin/relay/apitoken/{token.pk}/delete/", {"post": "yes"}).status_code == 302
    )
    assert not ApiToken.objects.exists() and not authenticates(key)  # deleting revokes
