"""Who may read and write a datastore: roles per datastore, and table write policies.

One module for the policy, used by every entry point (WebSockets, REST, admin), so the answer is
the same whichever way a user comes in.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

from tables.conf import rtc_settings
from tables.models import DATASTORE_NAME_PATTERN, Datastore, DatastoreRole, Role
from tables.read_sql import fetch_one, fetch_values
from tables.schema import Analysis, get_schema
from tables.service import Authorizer, Proposal

WRITE_SERVER_STATE = "tables.write_server_state"
_WRITERS = {Role.OWNER, Role.EDITOR}

_NAME = re.compile(DATASTORE_NAME_PATTERN)


@dataclass(frozen=True)
class Access:
    """What one user may do with one datastore, decided once per connection or request."""

    datastore: Datastore
    role: str | None
    user_id: int | None
    user: Any = field(default=None, repr=False, compare=False)

    @cached_property
    def writes_server_state(self) -> bool:
        """May write the schema's service tables (the supernode's account). Asked only when a
        write touches one, or a writer asks which tables are read-only: the permission check is
        two queries, which most requests (every REST call, a cell run) never need."""
        user = self.user
        return bool(
            user is not None and user.is_authenticated and user.has_perm(WRITE_SERVER_STATE)
        )

    @property
    def can_read(self) -> bool:
        return self.role is not None

    @property
    def can_write(self) -> bool:
        return self.role in _WRITERS

    def read_only_tables(self) -> list[str]:
        schema = get_schema(self.datastore.schema)
        tables = getattr(schema, "tables", {})
        if not self.can_write:
            return sorted(tables)
        if self.writes_server_state:
            return []
        return sorted(name for name in tables if schema.table_policy(name) == "service")

    def authorizer(self) -> Authorizer:
        """The write path's hook: refuses viewers, and service-only tables for everyone else."""
        schema = get_schema(self.datastore.schema)

        def authorize(proposal: Proposal, analysis: Analysis) -> str | None:
            if not self.can_write:
                return f"role {self.role or 'none'} may not write to {self.datastore.name!r}"
            locked = sorted(t for t in analysis.tables if schema.table_policy(t) == "service")
            if locked and not self.writes_server_state:
                return f"only the supernode may write table(s) {', '.join(locked)}"
            return None

        return authorize


def role_for(user, datastore: Datastore) -> str | None:
    """The user's role: owner, else a role granted here, else the role they have on the
    datastore this one takes its roles from (``roles_from``, one level), else none. Asked
    on every request and connection: read with ``tables.read_sql``."""
    if user is None or not user.is_authenticated:
        return rtc_settings.ANONYMOUS_ROLE or None
    if user.is_superuser or datastore.owner_id == user.id:
        return Role.OWNER
    sources = (
        [datastore.pk]
        if datastore.roles_from_id is None
        else [datastore.pk, datastore.roles_from_id]
    )
    granted = dict(
        fetch_values(DatastoreRole, ("datastore", "role"), datastore=sources, user=user.pk)
    )
    return granted.get(datastore.pk) or granted.get(datastore.roles_from_id)


def access_for(user, datastore: Datastore) -> Access:
    authenticated = user is not None and user.is_authenticated
    return Access(
        datastore=datastore,
        role=role_for(user, datastore),
        user_id=user.pk if authenticated else None,
        user=user if authenticated else None,
    )


def access_to(user, name: str) -> Access | None:
    """The user's access to the datastore called ``name``; None when there is no such datastore.
    A name that cannot exist is not looked up (some databases refuse NUL characters)."""
    if not _NAME.fullmatch(name):
        return None
    datastore = fetch_one(Datastore, name=name)
    return None if datastore is None else access_for(user, datastore)


def grant(datastore: Datastore, user, role: str) -> DatastoreRole:
    if role not in Role.values:
        raise ValueError(f"unknown role {role!r} (one of: {', '.join(Role.values)})")
    grant_row, _ = DatastoreRole.objects.update_or_create(
        datastore=datastore, user=user, defaults={"role": role}
    )
    return grant_row


def revoke(datastore: Datastore, user) -> None:
    DatastoreRole.objects.filter(datastore=datastore, user=user).delete()
