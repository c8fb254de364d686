"""manage.py prune_history (<datastore>... | --all) --older-than <age> [--keep N]"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

from django.core.management.base import BaseCommand, CommandError

from tables.models import Datastore
from tables.pruning import DEFAULT_KEEP, prune_history

_AGE = re.compile(r"^(\d+)([smhd]?)$")
_UNIT_SECONDS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_age(raw: str) -> timedelta:
    """``90``, ``90s``, ``15m``, ``12h`` or ``30d``."""
    match = _AGE.match(raw.strip())
    if not match:
        raise ValueError(f"{raw!r} is not an age like 3600, 90s, 15m, 12h or 30d")
    number, unit = match.groups()
    return timedelta(seconds=int(number) * _UNIT_SECONDS[unit])


class Command(BaseCommand):
    help = (
        "Delete patches older than an age behind a checkpoint: the history, time travel and "
        "undo then start at that checkpoint. Run it again to finish an interrupted run."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument("names", nargs="*", metavar="datastore")
        parser.add_argument("--all", action="store_true", help="Every datastore.")
        parser.add_argument(
            "--older-than", required=True, help="Age of the patches to prune: 3600, 15m, 12h, 30d."
        )
        parser.add_argument(
            "--keep",
            type=int,
            default=DEFAULT_KEEP,
            help=f"Never prune the newest N patches (default {DEFAULT_KEEP}).",
        )

    def handle(self, *args, names: list[str], all: bool, older_than: str, keep: int, **options):
        if all == bool(names):
            raise CommandError("name one or more datastores, or give --all")
        if keep < 0:
            raise CommandError("--keep must be >= 0")
        try:
            cutoff = datetime.now(UTC) - parse_age(older_than)
        except ValueError as error:
            raise CommandError(str(error)) from None
        chosen = Datastore.objects.all() if all else Datastore.objects.filter(name__in=names)
        datastores = list(chosen)
        missing = sorted(set(names) - {datastore.name for datastore in datastores})
        if missing:
            raise CommandError(f"no datastore named {', '.join(map(repr, missing))}")
        for datastore in datastores:
            pruned = prune_history(datastore, older_than=cutoff, keep=keep)
            self.stdout.write(
                f"{pruned.datastore}: pruned {pruned.transactions:,} patches "
                f"({pruned.bytes:,} bytes); history starts at serial {pruned.history_start:,}"
            )
