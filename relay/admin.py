"""The Jupyter users bridges act for, shown read-only: the mapping is made by ``relay.identity``
on first use, never by hand (roles are granted on the datastores, as for anyone)."""

from __future__ import annotations

from django.contrib import admin

from relay.models import JupyterIdentity
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
