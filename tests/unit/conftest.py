"""Unit tests: no database, no server, no other process. They run in seconds, first."""

import pytest


def pytest_collection_modifyitems(config, items):
    for item in items:
        if "tests/unit/" in item.nodeid and item.get_closest_marker("django_db"):
            raise pytest.UsageError(
                f"{item.nodeid} uses the database: it belongs in tests/integration/"
            )
