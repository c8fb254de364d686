#!/usr/bin/env python
"""Django's command-line utility for administrative tasks."""

import os
import sys


def main() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "rtc_project.settings")
    try:
        from django.core.management import execute_from_command_line
    except ImportError as error:
        raise ImportError(
            "Couldn't import Django. Run scripts/setup, then use .venv/bin/python manage.py "
            "(or activate the virtualenv: . .venv/bin/activate)."
        ) from error
    from django.db import OperationalError

    try:
        execute_from_command_line(sys.argv)
    except OperationalError as error:
        sys.exit(database_unreachable(error))


def database_unreachable(error: Exception) -> str:
    """One line for a database that cannot be reached, instead of a page of traceback."""
    from django.db import connection

    settings = connection.settings_dict
    where = settings.get("HOST") or settings.get("NAME")
    if settings.get("PORT"):
        where = f"{where}:{settings['PORT']}"
    first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
    return (
        f"error: the database ({connection.vendor} at {where}) cannot be used: {first}. "
        "Check DATABASE_URL (unset: SQLite in var/)."
    )


if __name__ == "__main__":
    main()
