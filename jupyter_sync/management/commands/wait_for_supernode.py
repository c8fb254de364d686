"""manage.py wait_for_supernode: return once a supernode holds the lease and reaches its Jupyter
Server (for scripts that start the stack and must not hand out a URL before it works)."""

from __future__ import annotations

import time

from django.core.management.base import BaseCommand, CommandError

from jupyter_sync.availability import supernode_problem
from jupyter_sync.schema import JUPYTER_DATASTORE
from tables.models import Datastore


def current_problem() -> str | None:
    jupyter = Datastore.objects.filter(name=JUPYTER_DATASTORE).first()
    if jupyter is None:
        return "no supernode has run yet"
    return supernode_problem(jupyter)


class Command(BaseCommand):
    help = "Wait until a supernode is connected to this server and to its Jupyter Server."

    def add_arguments(self, parser) -> None:
        parser.add_argument(
            "--timeout", type=float, default=90.0, help="Seconds to wait (default: 90)."
        )

    def handle(self, *args, timeout: float, **options) -> None:
        deadline = time.monotonic() + timeout
        while (problem := current_problem()) is not None:
            if time.monotonic() > deadline:
                raise CommandError(f"no supernode after {timeout:g} s: {problem}")
            time.sleep(0.25)
