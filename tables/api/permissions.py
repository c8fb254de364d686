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

    def has_permission(self, request, view) -> bool:
        authenticated = bool(request.user and request.user.is_authenticated)
        if not authenticated and not rtc_settings.ANONYMOUS_ROLE:
            return False  # REST framework answers 401 (or 403 to a session-only client)
        name = view.kwargs.get("name")
        if name is None:  # the collection: anyone may list, logged-in users may create
            return authenticated or request.method in SAFE_METHODS
        access = lookup_access(request, name)
        if request.method not in SAFE_METHODS and not access.can_write:
            raise exceptions.PermissionDenied(
                f"role {access.role} may not write to {access.datastore.name!r}",
                code="permission-denied",
            )
        request.rtc_access = access
        return True
