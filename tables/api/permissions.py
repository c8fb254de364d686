"""Who may call which endpoint: the policy of ``tables.permissions``, as the WebSocket side has it.

- Not logged in: refused (401) unless ``RTC_ANONYMOUS_ROLE`` gives anonymous users a role.
- A datastore the user has no role on answers 404, exactly as one that does not exist, so that
  the API does not tell strangers which names are taken.
- Writes (POST to a datastore's endpoints) need the owner or editor role: viewers get 403. Which
  tables a write may touch is decided by the write path's authorizer (``Access.authorizer()``).
- Creating a datastore needs a logged-in user (who becomes its owner).

The decided ``Access`` is kept on the request (``request.rtc_access``) for the view.
"""

from __future__ import annotations

from rest_framework import exceptions
from rest_framework.permissions import SAFE_METHODS, BasePermission

from tables.api.errors import not_found
from tables.conf import rtc_settings
from tables.permissions import Access, access_to


def unknown_datastore(name: str):
    return not_found("unknown-datastore", f"no datastore named {name!r}")


def lookup_access(request, name: str) -> Access:
    """The user's access to datastore ``name``; 404 when it does not exist or is not theirs."""
    access = access_to(request.user, name)
    if access is None or not access.can_read:
        raise unknown_datastore(name)
    return access


class DatastoreAccess(BasePermission):
    """Authentication (or the anonymous role), then the role on the datastore of the URL."""

    def datastore_name(self, view) -> str | None:
        """The datastore the request is about; None for the collection."""
        return view.kwargs.get("name")

    def allows(self, request, access: Access) -> bool:
        """Whether the role allows the request: reads for every role, writes for writers."""
        return request.method in SAFE_METHODS or access.can_write

    def write_denied(self, access: Access) -> str:
        return f"role {access.role} may not write to {access.datastore.name!r}"

    def has_permission(self, request, view) -> bool:
        authenticated = bool(request.user and request.user.is_authenticated)
        if not authenticated and not rtc_settings.ANONYMOUS_ROLE:
            return False  # REST framework answers 401 (or 403 to a session-only client)
        name = self.datastore_name(view)
        if name is None:  # the collection: anyone may list, logged-in users may create
            return authenticated or request.method in SAFE_METHODS
        access = lookup_access(request, name)
        if not self.allows(request, access):
            raise exceptions.PermissionDenied(self.write_denied(access), code="permission-denied")
        request.rtc_access = access
        return True
