"""A separate OS process that writes to a datastore (for the multi-writer tests)."""

from __future__ import annotations

import os
import sys


def main(database_url: str, datastore_name: str, prefix: str, count: int) -> None:
    os.environ["DATABASE_URL"] = database_url
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "rtc_project.settings")
    import django

    django.setup()
    from pycrdt import Doc, Map, Text

    from tables import service
    from tables.commit import commit
    from tables.service import Proposal, Status

    datastore = service.get_datastore(datastore_name)
    doc = Doc()
    for i in range(count):
        before = doc.get_state()
        with doc.transaction():
            doc.get("items", type=Map)[f"{prefix}{i}"] = Map({"title": Text(prefix), "done": False})
        outcome = commit(datastore, Proposal(doc.get_update(before), txid=f"{prefix}-{i}"))
        if outcome.status is not Status.STORED:
            sys.exit(f"{prefix}-{i}: {outcome}")


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]))
