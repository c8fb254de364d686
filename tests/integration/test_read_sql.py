"""``tables.read_sql``: the rows it reads are the instances the ORM gives for the same lookup
(dates aware, booleans, JSON and foreign keys converted alike), on SQLite and PostgreSQL."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import User

from jupyter_sync.models import Notebook
from relay.models import ApiToken
from tables import service
from tables.models import Datastore, DatastoreRole
from tables.permissions import grant
from tables.read_sql import fetch_all, fetch_one, fetch_values

pytestmark = pytest.mark.django_db(transaction=True)


def fields_of(instance) -> dict:
    return {
        field.attname: getattr(instance, field.attname) for field in instance._meta.concrete_fields
    }


def test_fetch_one_gives_the_instance_the_orm_gives():
    ada = User.objects.create_user("ada")
    datastore = service.create_datastore("shop", "todo", owner=ada)
    fetched = fetch_one(Datastore, name="shop")
    assert fields_of(fetched) == fields_of(Datastore.objects.get(name="shop"))
    assert fetched.created_at.tzinfo is not None
    assert fetched.pk == datastore.pk and fetched.owner_id == ada.pk
    assert not fetched._state.adding  # saved as a row that exists
    fetched.size = 7
    fetched.save(update_fields=["size"])
    assert Datastore.objects.get(pk=datastore.pk).size == 7

    notebook = Notebook.objects.create(
        datastore=service.create_datastore("nb", "notebook"),
        metadata={"kernelspec": {"name": "python3"}, "n": [1, 2.5, None]},
        repeated_ids=True,
    )
    read = fetch_one(Notebook, datastore=notebook.datastore_id)
    assert fields_of(read) == fields_of(Notebook.objects.get(pk=notebook.pk))
    assert read.repeated_ids is True and read.metadata["n"] == [1, 2.5, None]

    token = ApiToken.objects.create(user=ada, label="ci")
    assert fields_of(fetch_one(ApiToken, digest=token.digest)) == fields_of(
        ApiToken.objects.get(pk=token.pk)
    )
    assert fetch_one(Datastore, name="nothing") is None


def test_fetch_values_compares_in_a_list_and_refuses_none():
    ada, bob = User.objects.create_user("ada"), User.objects.create_user("bob")
    one = service.create_datastore("one", "todo")
    two = service.create_datastore("two", "todo")
    grant(one, ada, "editor")
    grant(two, ada, "viewer")
    grant(two, bob, "owner")
    found = fetch_values(
        DatastoreRole, ("datastore", "role"), datastore=[one.pk, two.pk], user=ada.pk
    )
    assert sorted(found) == sorted(
        DatastoreRole.objects.filter(user=ada).values_list("datastore_id", "role")
    )
    assert fetch_values(DatastoreRole, ("role",), datastore=[], user=ada.pk) == []
    with pytest.raises(ValueError, match="None"):
        fetch_one(Datastore, owner=None)


def test_fetch_all_gives_every_matching_row():
    service.create_datastore("one", "todo")
    service.create_datastore("two", "todo")
    service.create_datastore("three", "todo")
    found = fetch_all(Datastore, name=["one", "three", "none"])
    assert sorted(fields_of(row)["name"] for row in found) == ["one", "three"]
    assert sorted(map(fields_of, found), key=lambda f: f["id"]) == [
        fields_of(row) for row in Datastore.objects.filter(name__in=["one", "three"]).order_by("id")
    ]
    assert fetch_all(Datastore, name=[]) == []
