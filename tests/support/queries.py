"""The SQL a piece of code ran, as the statement-count tests read it."""

from __future__ import annotations

from django.test.utils import CaptureQueriesContext

# Logged by SQLite's backend and not by PostgreSQL's: left out so both count alike.
TRANSACTION_CONTROL = frozenset({"BEGIN", "COMMIT", "SAVEPOINT", "RELEASE"})


def statements_run(captured: CaptureQueriesContext) -> list[str]:
    """Each statement captured, transaction control left out; an executemany (logged as
    ``<n> times: <statement>``) is one statement."""
    sqls = [query["sql"].split(" times: ", 1)[-1] for query in captured.captured_queries]
    return [sql for sql in sqls if sql.split(None, 1)[0].upper() not in TRANSACTION_CONTROL]
