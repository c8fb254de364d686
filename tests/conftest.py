"""Shared fixtures.

Under ``CI=true`` a skipped test is a failure: every service a test needs must run in CI.
"""

from __future__ import annotations

import os

import pytest
from django.db import connection, connections

from tables import commit
from tables.loaded import doc_cache

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


def pytest_collection_modifyitems(config, items):
    # Tests that need PostgreSQL carry the marker, so the SQLite run can deselect them.
    for item in items:
        if "postgres" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.postgres)


@pytest.fixture(autouse=True)
def _fresh_process_state():
    """Loaded docs and commit queues belong to a database that each test starts afresh."""
    doc_cache.clear()
    commit._queues.clear()
    yield
    doc_cache.clear()
    commit._queues.clear()


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
