"""A service this server depends on being unreachable: told apart from a bug.

A database that is down, restarting or refusing connections raises ``OperationalError`` or
``InterfaceError`` from wherever a query ran. That is not a fault of the request nor of the code,
so the REST API answers it with a 503 ``database-unavailable`` and the WebSocket side closes with
4503, each logged as one line without a traceback (a traceback per request would bury the one
line that matters: which database, and why).
"""

from __future__ import annotations

from django.db import InterfaceError, OperationalError

DATABASE_ERRORS: tuple[type[Exception], ...] = (OperationalError, InterfaceError)
DATABASE_UNAVAILABLE = "database-unavailable"
DATABASE_UNAVAILABLE_DETAIL = "the database cannot be reached; try again later"


def one_line(error: BaseException) -> str:
    """An error's message on one line (database drivers write several)."""
    return " ".join(str(error).split()) or type(error).__name__
