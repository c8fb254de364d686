"""HTTP requests run their synchronous work on kept threads (``rtc_project/request_threads.py``),
lent to one request at a time, which keep their database connections between requests.

Against real daphne workers; on PostgreSQL the connections are counted on the server's side
(``pg_stat_activity``, ``pg_stat_database``).
"""

from __future__ import annotations

import concurrent.futures
import http.client
import threading
from collections.abc import Callable
from datetime import datetime

import pytest
from django.db import connection

from rtc_project.request_threads import RequestThreads
from tests.support.factories import owned_datastore
from tests.support.liveserver import database_url
from tests.support.waiting import eventually

pytest_plugins = ["tests.support.liveserver"]

REQUESTS = 30


def api_requests(port: int, token: str, count: int) -> None:
    """``count`` authenticated API requests on one keep-alive HTTP connection."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=20)
    try:
        for _ in range(count):
            conn.request("GET", "/api/datastores/", headers={"Authorization": f"Token {token}"})
            response = conn.getresponse()
            assert response.status == 200, response.read()[:300]
            response.read()
    finally:
        conn.close()


def warmed_server(start_server, application: str, request_threads: int) -> Callable[[int], None]:
    """A daphne worker named ``application`` to the database, past its first requests; returns
    a function making ``count`` API requests to it."""
    token = owned_datastore(application)
    database = database_url()
    if connection.vendor == "postgresql":
        database += f"?application_name={application}"
    server = start_server(
        database=database, env={"RTC_REQUEST_THREADS": str(request_threads)}, name=application
    )
    api_requests(server.port, token, 3)
    return lambda count: api_requests(server.port, token, count)


def sessions_opened() -> int:
    """Sessions PostgreSQL has started on the test database (cumulative statistics, reported
    by a session at the latest when it ends)."""
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


# --- lending -----------------------------------------------------------------------------------


def test_a_thread_is_lent_to_one_request_at_a_time_and_kept_after_it():
    threads = RequestThreads(size=2)
    first, kept_first = threads.borrow()
    second, kept_second = threads.borrow()
    extra, kept_extra = threads.borrow()  # both lent: one of its own
    try:
        assert kept_first and kept_second and not kept_extra
        assert len({id(first), id(second), id(extra)}) == 3
        threads.give_back(first, kept_first)
        assert threads.idle == 1
        again, kept_again = threads.borrow()
        assert again is first and kept_again
        # One thread each: an executor runs its request's calls on the same thread.
        idents = {first.submit(threading.get_ident).result() for _ in range(3)}
        assert len(idents) == 1
    finally:
        threads.give_back(second, kept_second)
        threads.give_back(extra, kept_extra)
        for executor in (first, second):
            executor.shutdown()
    with pytest.raises(RuntimeError):  # an extra one ends with its request
        extra.submit(threading.get_ident)


@pytest.mark.django_db(transaction=True)
def test_more_requests_at_once_than_kept_threads_are_all_answered(start_server):
    requests = warmed_server(start_server, "rtc-two-threads", 2)

    with concurrent.futures.ThreadPoolExecutor(12) as pool:
        for done in [pool.submit(requests, 5) for _ in range(12)]:
            done.result(timeout=60)


# --- connections -------------------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_a_thread_per_request_opens_a_session_per_request(postgres, start_server):
    """With no kept threads (each request on a thread of its own, Django's way) every request is
    a session, and each is closed with its request: what the kept threads are for, and proof
    that the count in the next test can fail."""
    requests = warmed_server(start_server, "rtc-no-kept-threads", 0)
    before = sessions_opened()

    requests(REQUESTS)

    eventually(lambda: sessions_opened() - before >= REQUESTS, what=f"{REQUESTS} new sessions")
    eventually(lambda: len(backends_of("rtc-no-kept-threads")) <= 2, what="their sessions closed")


@pytest.mark.django_db(transaction=True)
def test_kept_threads_keep_their_connections(postgres, start_server):
    requests = warmed_server(start_server, "rtc-kept-threads", 4)
    started = database_time()

    requests(REQUESTS)

    backends = backends_of("rtc-kept-threads")
    assert 1 <= len(backends) <= 6  # kept request threads (one used here) and the sync thread
    assert [when for when in backends if when > started] == []
