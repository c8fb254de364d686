"""Who may create which datastore through the API: reserved names and per-user quotas.

The system names some datastores itself (the supernode's ``jupyter`` datastore, ``doc-<id>``
for each open file, from the file's path): a user who could create such a name first would
own it and keep the file from ever opening, so ``RTC_RESERVED_NAMES`` are created only by the
system (which calls ``service.create_datastore`` directly) and superusers. And each user owns
at most ``RTC_MAX_DATASTORES_PER_USER`` datastores, so no account can fill the database with
empty ones.
"""

from __future__ import annotations

from typing import Any

from tables.conf import name_list, rtc_settings
from tables.models import Datastore


class CreationRefused(Exception):
    code = "refused"


class ReservedName(CreationRefused):
    code = "reserved-name"


class DatastoreQuota(CreationRefused):
    code = "datastore-quota"


def reserved(name: str) -> bool:
    """Whether ``name`` is one of ``RTC_RESERVED_NAMES`` (a trailing ``*``: a prefix)."""
    for pattern in name_list(rtc_settings.RESERVED_NAMES):
        if pattern.endswith("*"):
            if name.startswith(pattern[:-1]):
                return True
        elif name == pattern:
            return True
    return False


def check_create_datastore(user: Any, name: str) -> None:
    """Raise ``ReservedName`` or ``DatastoreQuota`` unless ``user`` may create ``name``."""
    if getattr(user, "is_superuser", False):
        return
    if reserved(name):
        raise ReservedName(f"{name!r} is reserved for the system's own datastores")
    limit = rtc_settings.MAX_DATASTORES_PER_USER
    if limit and Datastore.objects.filter(owner=user).count() >= limit:
        raise DatastoreQuota(
            f"you own {limit} datastores, the most a user may (RTC_MAX_DATASTORES_PER_USER)"
        )
