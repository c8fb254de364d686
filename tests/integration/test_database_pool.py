"""On PostgreSQL, HTTP requests take their connections from a pool (``settings.py``).

Django runs each ASGI request's database work on a thread of its own and never hands a kept
connection to the next request, so without a pool every REST request opened a PostgreSQL
session. Counted here on the server's side (``pg_stat_database.sessions``), against a real daphne.
"""

from __future__ import annotations

import http.client
from collections.abc import Callable
from datetime import datetime

import pytest
from django.db import connection

from tests.support.factories import owned_datastore
from tests.support.liveserver import database_url
from tests.support.waiting import eventually

pytest_plugins = ["tests.support.liveserver"]

REQUESTS = 30


def sessions_opened() -> int:
    """Sessions PostgreSQL has started on the test database so far (cumulative statistics,
    reported by a session at the latest when it ends)."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_stat_clear_snapshot()")
        cursor.execute("SELECT sessions FROM pg_stat_database WHERE datname = current_database()")
        return cursor.fetchone()[0]


def backends_of(application: str) -> list[datetime]:
    """When each open session of ``application`` started (live, not statistics)."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT backend_start FROM pg_stat_activity WHERE application_name = %s",
            [application],
        )
        return [started for (started,) in cursor.fetchall()]


def database_time() -> datetime:
    with connection.cursor() as cursor:
        cursor.execute("SELECT clock_timestamp()")
        return cursor.fetchone()[0]


def api_requests(port: int, token: str, count: int) -> None:
    """``count`` authenticated API requests on one keep-alive HTTP connection."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        for _ in range(count):
            conn.request("GET", "/api/datastores/", headers={"Authorization": f"Token {token}"})
            response = conn.getresponse()
            assert response.status == 200, response.read()[:300]
            response.read()
    finally:
        conn.close()


def warmed_server(start_server, application: str, pool_size: int) -> Callable[[int], None]:
    """A daphne worker named ``application`` to PostgreSQL, past its first requests; returns
    a function making ``count`` API requests to it."""
    token = owned_datastore(application)
    server = start_server(
        database=f"{database_url()}?application_name={application}",
        env={"DATABASE_POOL_SIZE": str(pool_size)},
        name=application,
    )
    api_requests(server.port, token, 3)
    return lambda count: api_requests(server.port, token, count)


@pytest.mark.django_db(transaction=True)
def test_without_the_pool_each_request_is_a_session_of_its_own(postgres, start_server):
    """What the pool is for, and proof that the count below can fail."""
    requests = warmed_server(start_server, "rtc-unpooled", 0)
    before = sessions_opened()

    requests(REQUESTS)

    eventually(lambda: sessions_opened() - before >= REQUESTS, what=f"{REQUESTS} new sessions")


@pytest.mark.django_db(transaction=True)
def test_rest_requests_share_the_pools_connections(postgres, start_server):
    requests = warmed_server(start_server, "rtc-pooled", 4)
    started = database_time()

    requests(REQUESTS)

    backends = backends_of("rtc-pooled")
    assert 1 <= len(backends) <= 4
    assert [when for when in backends if when > started] == []
