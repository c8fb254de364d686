"""Management commands."""

from io import StringIO

import pytest
from django.contrib.auth.models import User
from django.core.management import CommandError, call_command
from rest_framework.authtoken.models import Token

from tables.models import Datastore

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


def test_create_token_prints_a_stable_token():
    User.objects.create_user("ada")
    first = run("create_token", "ada").strip()
    assert first == run("create_token", "ada").strip()
    assert Token.objects.get(user__username="ada").key == first
    rotated = run("create_token", "ada", "--rotate").strip()
    assert rotated != first and len(rotated) == 40


def test_create_token_for_unknown_user():
    with pytest.raises(CommandError, match="--create-user"):
        run("create_token", "ghost")
    assert len(run("create_token", "ghost", "--create-user").strip()) == 40
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
