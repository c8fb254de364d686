"""Who may create which datastore through the API: the system's names are the system's (a
user creating ``doc-<id>`` first would keep that file from ever opening), and each user owns a
bounded number of datastores."""

from __future__ import annotations

import uuid

import pytest
from django.contrib.auth.models import User
from rest_framework.test import APIClient

from tables import service
from tables.models import Datastore

pytestmark = pytest.mark.django_db


def client_for(user: User) -> APIClient:
    api = APIClient()
    api.force_authenticate(user)
    return api


def create(api: APIClient, name: str):
    return api.post("/api/datastores/", {"name": name, "schema": "todo"}, format="json")


def test_the_systems_names_are_refused_to_users_and_left_to_the_system():
    user = User.objects.create_user("mallory")
    api = client_for(user)
    for name in ("jupyter", "doc-0d6f", f"doc-{uuid.uuid4().hex}"):
        response = create(api, name)
        assert response.status_code == 403, response.content
        assert response.json()["code"] == "reserved-name"
    assert not Datastore.objects.filter(owner=user).exists()
    assert create(api, "docs-of-mine").status_code == 201  # a name that merely looks alike
    # The system still creates them (the supernode calls the service directly).
    service.create_datastore("doc-0d6f", "notebook", owner=None)
    admin = User.objects.create_superuser("root")
    assert create(client_for(admin), "jupyter").status_code == 201


def test_each_user_owns_at_most_the_quota(settings):
    settings.RTC = {"MAX_DATASTORES_PER_USER": 2}
    user, other = User.objects.create_user("a"), User.objects.create_user("b")
    api = client_for(user)
    assert [create(api, name).status_code for name in ("a1", "a2")] == [201, 201]
    response = create(api, "a3")
    assert response.status_code == 403, response.content
    body = response.json()
    assert body["code"] == "datastore-quota" and "2" in body["detail"]
    assert create(client_for(other), "b1").status_code == 201  # a quota per user
    Datastore.objects.get(name="a1").delete()
    assert create(api, "a3").status_code == 201
    settings.RTC = {"MAX_DATASTORES_PER_USER": 0}
    assert create(api, "a4").status_code == 201
