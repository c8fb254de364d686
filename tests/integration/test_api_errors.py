"""Errors under /api/ are JSON whatever raised them: a body nested past any storable value (400
``too-deep``), a path with no route (404), an unexpected exception (500). Outside /api/, Django's
pages stay. (A database that cannot be reached: tests/integration/test_outages.py.)"""

from __future__ import annotations

import json

import pytest
from django.contrib.auth.models import User
from django.test import Client
from rest_framework.test import APIClient

from relay.models import ApiToken
from tables import service

pytestmark = pytest.mark.django_db


@pytest.fixture
def editor_client() -> APIClient:
    owner = User.objects.create_user("owner")
    service.create_datastore("todo", "todo", owner=owner)
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {ApiToken.objects.create(user=owner).key}")
    return client


def nested(depth: int) -> str:
    return "[" * depth + "]" * depth


@pytest.mark.parametrize(
    ("route", "wrap"),
    [
        ("/api/datastores/", lambda deep: '{"name": "x", "schema": "todo", "extra": ' + deep + "}"),
        ("/api/datastores/todo/transactions/", lambda deep: '{"patch": ' + deep + "}"),
    ],
)
def test_json_bodies_nested_past_the_limit_are_too_deep(editor_client, settings, route, wrap):
    """The limit is RTC_MAX_NESTING plus the body's own levels (16): one level past it is a 400
    too-deep, at it the body is parsed and judged like any other."""
    settings.RTC = {**settings.RTC, "MAX_NESTING": 20}
    limit = 20 + 16
    past = editor_client.post(route, wrap(nested(limit)), content_type="application/json")
    assert past.status_code == 400 and past["Content-Type"] == "application/json", past.content
    assert past.json()["code"] == "too-deep"
    assert f"more than {limit} levels" in past.json()["detail"]
    at = editor_client.post(route, wrap(nested(limit - 1)), content_type="application/json")
    assert at.status_code in (201, 400) and at.json().get("code") != "too-deep", at.content


def test_a_path_with_no_route_under_api_is_a_json_404():
    response = Client().get("/api/no-such-thing/")
    assert response.status_code == 404
    assert response["Content-Type"] == "application/json"
    assert response.json()["code"] == "not-found"
    assert "/api/no-such-thing/" in response.json()["detail"]
    elsewhere = Client().get("/no-such-page/")
    assert elsewhere.status_code == 404 and "text/html" in elsewhere["Content-Type"]


@pytest.mark.urls("tests.support.failing_urls")
def test_an_unexpected_error_under_api_is_a_json_500(caplog):
    client = Client(raise_request_exception=False)
    response = client.get("/api/failing/")
    assert response.status_code == 500
    assert response["Content-Type"] == "application/json"
    assert json.loads(response.content)["code"] == "server-error"
    assert any("a bug" in str(record.exc_info) for record in caplog.records)  # still logged
    elsewhere = client.get("/failing/")
    assert elsewhere.status_code == 500 and "text/html" in elsewhere["Content-Type"]
