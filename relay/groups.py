"""Channel-layer group names, built and validated in one place."""

import re

_VALID = re.compile(r"^[a-zA-Z0-9\-_.]{1,99}$")


def datastore_group(datastore_pk: int) -> str:
    """The group every worker serving this datastore joins (keyed by primary key: names may
    contain characters groups do not allow, and stay short)."""
    name = f"rtc.datastore.{int(datastore_pk)}"
    if not _VALID.match(name):  # pragma: no cover - an int always fits
        raise ValueError(f"invalid group name {name!r}")
    return name
