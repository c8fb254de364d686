"""Django's middleware hooks run on the event loop under ASGI, except those that reach the
database (``rtc_project/middleware.py``): fewer thread hops per request, the same behaviour.

Requests go through Django's ``AsyncClient``, which builds the middleware chain in async mode as
the ASGI handler does; the thread hops are counted where asgiref makes them.
"""

from __future__ import annotations

import collections
import re

import pytest
from asgiref import sync
from channels.db import database_sync_to_async
from django.contrib.auth.models import Group, User
from django.contrib.sessions.models import Session
from django.db import connections
from django.test import AsyncClient

from relay.models import ApiToken
from rtc_project import middleware

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(autouse=True)
async def _close_the_test_clients_connections():
    """Django's test clients keep a request's connection open in the sync thread (they leave
    ``request_finished`` without ``close_old_connections``): closed here, so the test database
    can be dropped."""
    yield
    await sync.sync_to_async(connections.close_all)()


@pytest.fixture
def hops(monkeypatch) -> collections.Counter:
    """The functions handed to a sync thread during the test, by qualified name."""
    counted: collections.Counter = collections.Counter()
    call = sync.SyncToAsync.__call__

    async def counting(self, *args, **kwargs):
        counted[getattr(self.func, "__qualname__", None) or type(self.func).__qualname__] += 1
        return await call(self, *args, **kwargs)

    monkeypatch.setattr(sync.SyncToAsync, "__call__", counting)
    return counted


def middleware_hops(hops: collections.Counter) -> list[str]:
    return sorted(name for name in hops if re.search(r"Middleware\.process_", name))


@database_sync_to_async
def token_for(username: str) -> str:
    user = User.objects.create_user(username)
    return ApiToken.objects.create(user=user).key


@database_sync_to_async
def admin(username: str = "root", password: str = "a long password") -> User:
    return User.objects.create_superuser(username, password=password)


def csrf_token(page: str) -> str:
    match = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page)
    assert match, "no CSRF token on the page"
    return match.group(1)


async def test_an_api_request_runs_no_middleware_hook_on_a_thread(hops):
    client = AsyncClient()
    key = await token_for("reader")
    await client.get("/api/datastores/", headers={"Authorization": f"Token {key}"})  # warm
    hops.clear()

    response = await client.get("/api/datastores/", headers={"Authorization": f"Token {key}"})

    assert response.status_code == 200
    assert middleware_hops(hops) == []
    # What is left: the request_started receivers, the view, rendering, request_finished.
    assert sum(hops.values()) <= 4, hops
    # The hooks did run: the headers they set are there.
    assert response["X-Frame-Options"] == "DENY"
    assert response["X-Content-Type-Options"] == "nosniff"
    assert response["Cross-Origin-Opener-Policy"] == "same-origin"
    assert response["Content-Length"] == str(len(response.content))


async def test_a_login_saves_its_session_on_the_thread(hops):
    await admin()
    client = AsyncClient()
    login_page = await client.get("/admin/login/")
    hops.clear()

    response = await client.post(
        "/admin/login/?next=/admin/",
        {
            "username": "root",
            "password": "a long password",
            "csrfmiddlewaretoken": csrf_token(login_page.content.decode()),
        },
    )

    assert response.status_code == 302, response.content[:300]
    assert "SessionMiddleware.process_response" in middleware_hops(hops)
    assert await Session.objects.acount() == 1
    assert (await client.get("/admin/")).status_code == 200


async def test_an_unsafe_request_without_its_csrf_token_is_refused():
    await admin()
    client = AsyncClient(enforce_csrf_checks=True)
    await client.get("/admin/login/")

    response = await client.post(
        "/admin/login/", {"username": "root", "password": "a long password"}
    )

    assert response.status_code == 403
    assert b"CSRF" in response.content
    assert await Session.objects.acount() == 0


async def test_messages_added_by_a_view_are_stored_and_shown(hops):
    await admin()
    client = AsyncClient()
    await client.alogin(username="root", password="a long password")
    form = await client.get("/admin/auth/group/add/")
    hops.clear()

    response = await client.post(
        "/admin/auth/group/add/",
        {"name": "reviewers", "csrfmiddlewaretoken": csrf_token(form.content.decode())},
    )

    assert response.status_code == 302, response.content[:300]
    assert "MessageMiddleware.process_response" in middleware_hops(hops)
    assert await Group.objects.filter(name="reviewers").aexists()
    listing = await client.get(response["Location"])
    assert "was added successfully" in listing.content.decode()


async def test_a_path_without_its_slash_is_redirected():
    response = await AsyncClient().get("/admin")

    assert response.status_code == 301
    assert response["Location"] == "/admin/"


def test_settings_use_the_loop_versions_of_every_django_middleware():
    from django.conf import settings

    ours = {
        f"rtc_project.middleware.{name}"
        for name, value in vars(middleware).items()
        if isinstance(value, type)
        and issubclass(value, middleware.HooksOnTheLoop)
        and value is not middleware.HooksOnTheLoop
    }
    assert ours <= set(settings.MIDDLEWARE)
    assert not [name for name in settings.MIDDLEWARE if name.startswith("django.")]
