"""Tokens made before keys were hashed keep working after the migration that hashes them."""

from __future__ import annotations

import datetime

import pytest
from django.contrib.auth.models import User
from django.db import connection
from django.db.migrations.executor import MigrationExecutor
from rest_framework.test import APIClient

from relay.models import ApiToken

OLD_KEY = "9944b09199c62bcf9418ad846dd0e4bbdfc6ee4b"  # REST framework's form: 40 hex characters


def migrate(target: tuple[str, str]) -> None:
    executor = MigrationExecutor(connection)
    executor.migrate([target])


@pytest.mark.django_db(transaction=True)
def test_an_old_clear_key_is_hashed_in_place_and_keeps_working():
    migrate(("relay", "0001_initial"))
    user = User.objects.create_user("ada")
    # REST framework's authtoken_token, as its migrations made it and its tokens filled it.
    with connection.cursor() as cursor:
        cursor.execute(
            'CREATE TABLE authtoken_token ("key" varchar(40) NOT NULL PRIMARY KEY, '
            '"created" timestamp with time zone NOT NULL, '
            '"user_id" integer NOT NULL UNIQUE REFERENCES auth_user ("id"))'
        )
        cursor.execute(
            'INSERT INTO authtoken_token ("key", "created", "user_id") VALUES (%s, %s, %s)',
            [OLD_KEY, "2026-01-02 03:04:05", user.pk],
        )
    try:
        migrate(("relay", "0002_api_tokens"))
    finally:
        with connection.cursor() as cursor:
            cursor.execute("DROP TABLE IF EXISTS authtoken_token")

    assert "authtoken_token" not in connection.introspection.table_names()  # keys gone with it
    token = ApiToken.objects.get()
    assert (token.user, token.prefix) == (user, OLD_KEY[:8])
    assert token.created_at == datetime.datetime(2026, 1, 2, 3, 4, 5, tzinfo=datetime.UTC)
    assert OLD_KEY not in repr(ApiToken.objects.values().get())
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Token {OLD_KEY}")
    assert api.get("/api/datastores/").status_code == 200
    api.credentials(HTTP_AUTHORIZATION=f"Token {OLD_KEY[:-1]}0")
    assert api.get("/api/datastores/").status_code == 401
