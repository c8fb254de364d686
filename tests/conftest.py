"""Shared fixtures.

Under ``CI=true`` a skipped test is a failure: every service a test needs must run in CI.

A test that uses no database fixture (no ``django_db`` marker, no ``db``/``transactional_db``)
is marked ``engine_independent`` at collection: what it does is the same whatever the test
database is (unit tests, the Jupyter client, JupyterLab's own stack on its own SQLite file), so
``scripts/test`` runs it in the SQLite pass only. Every test that uses the test database, directly
or through a server process, runs on both.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING

import pytest
from django.db import connection, connections

from tables import commit
from tables.loaded import doc_cache

if TYPE_CHECKING:
    from tests.support.socket_peers import Peer

IN_CI = os.environ.get("CI", "").lower() in {"1", "true", "yes"}

# In this process only: connections that outlive a call would stay open in worker threads and
# keep the test database from being dropped. Server processes started by tests keep the default.
connections.settings["default"]["CONN_MAX_AGE"] = 0


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    if IN_CI and report.skipped and not hasattr(report, "wasxfail"):
        report.outcome = "failed"
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else report.longrepr
        report.longrepr = f"skipped under CI=true, which needs every test to run: {reason}"


# Every fixture giving the test database depends on django_db_setup (a module's own live server
# too); the django_db marker asks for one while the test sets up.
DATABASE_FIXTURES = {"django_db_setup", "db", "transactional_db", "live_server"}


def uses_database(item: pytest.Item) -> bool:
    fixtures = set(getattr(item, "fixturenames", ()))
    return item.get_closest_marker("django_db") is not None or bool(fixtures & DATABASE_FIXTURES)


def pytest_collection_modifyitems(config, items):
    for item in items:
        # Tests that need PostgreSQL carry the marker, so the SQLite run can deselect them.
        if "postgres" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.postgres)
        if not uses_database(item):
            item.add_marker(pytest.mark.engine_independent)


@pytest.fixture(scope="session")
def django_db_modify_db_settings(django_db_modify_db_settings_parallel_suffix: None) -> None:
    """A test database of this run's own on a database server: ``test_<NAME>_<suffix>``, the
    suffix from ``TEST_DB_SUFFIX`` (scripts/test sets it, and drops the database if a run is
    killed before pytest drops it) or this process's id, so two runs on one server never
    collide. SQLite's test database is a file in DATA_DIR."""
    from django.conf import settings

    conf = settings.DATABASES["default"]
    if conf["ENGINE"] == "django.db.backends.sqlite3":
        return
    suffix = os.environ.get("TEST_DB_SUFFIX") or f"pid{os.getpid()}"
    test = conf.setdefault("TEST", {})
    test["NAME"] = f"{test.get('NAME') or 'test_' + conf['NAME']}_{suffix}"


@pytest.fixture(autouse=True)
def _fresh_process_state():
    """Loaded docs and commit queues belong to a database that each test starts afresh."""
    doc_cache.clear()
    commit._queues.clear()
    yield
    doc_cache.clear()
    commit._queues.clear()


@pytest.fixture
async def opened() -> AsyncIterator[list[Peer]]:
    """Socket peers (``tests.support.socket_peers.Peer``) to close at teardown, whatever
    happened in the test."""
    peers: list[Peer] = []
    yield peers
    for peer in peers:
        await peer.close()


@pytest.fixture
def redis_url() -> str:
    """A reachable Redis (skip, or fail under CI, otherwise), with a prefix of its own."""
    import socket
    import uuid
    from urllib.parse import urlparse

    url = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
    parsed = urlparse(url)
    try:
        socket.create_connection((parsed.hostname, parsed.port or 6379), timeout=2).close()
    except OSError as error:
        pytest.skip(f"needs Redis at {url}: {error}")
    return url, f"rtc-test-{uuid.uuid4().hex[:8]}"


@pytest.fixture
def postgres():
    """Skip (fail under CI) unless the database is PostgreSQL."""
    if connection.vendor != "postgresql":
        pytest.skip("needs DATABASE_URL pointing at PostgreSQL")
