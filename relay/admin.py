"""The Jupyter users bridges act for, shown read-only: the mapping is made by ``relay.identity``
on first use, never by hand (roles are granted on the datastores, as for anyone)."""

from __future__ import annotations

from django.contrib import admin
from django.http import HttpRequest

from relay.models import ApiToken, JupyterIdentity
from tables.admin import ReadOnlyAdmin


@admin.register(JupyterIdentity)
class JupyterIdentityAdmin(ReadOnlyAdmin):
    list_display = (
        "jupyter_username",
        "display_name",
        "bridge",
        "user",
        "initial_role",
        "created_at",
        "updated_at",
    )
    list_filter = ("bridge", "initial_role")
    list_select_related = ("bridge", "user")
    search_fields = ("jupyter_username", "display_name", "user__username")
    fields = (
        "bridge",
        "jupyter_username",
        "user",
        "name",
        "display_name",
        "initials",
        "color",
        "initial_role",
        "initial_role_given_at",
        "created_at",
        "updated_at",
    )
    readonly_fields = fields


@admin.register(ApiToken)
class ApiTokenAdmin(admin.ModelAdmin):
    """Tokens by their prefix: the key is not stored, so no page can show it. Made with
    ``manage.py create_token`` (shown once there); deleting one here revokes it."""

    list_display = ("prefix", "user", "label", "created_at")
    list_select_related = ("user",)
    search_fields = ("prefix", "user__username", "label")
    fields = ("prefix", "user", "label", "created_at")
    readonly_fields = fields

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: ApiToken | None = None) -> bool:
        return False
