"""Checkpoints, listed by size and serial; their states are never loaded."""

from __future__ import annotations

from django.contrib import admin
from django.db.models import QuerySet
from django.http import HttpRequest

from tables.admin.formatting import human_size
from tables.admin.read_only import ReadOnlyAdmin
from tables.models import Checkpoint


@admin.register(Checkpoint)
class CheckpointAdmin(ReadOnlyAdmin):
    list_display = ("datastore", "serial", "size_display", "created_at")
    list_filter = ("datastore",)
    list_select_related = ("datastore",)
    search_fields = ("datastore__name",)
    fields = ("datastore", "serial", "size_display", "created_at")
    readonly_fields = ("size_display",)

    def get_queryset(self, request: HttpRequest) -> QuerySet:
        # Checkpoint states can be large and are never shown.
        return super().get_queryset(request).defer("state")

    @admin.display(description="size", ordering="size")
    def size_display(self, obj: Checkpoint) -> str:
        return human_size(obj.size)
