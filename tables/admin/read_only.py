"""Admins that only show: history is written by the write path, never through a form."""

from __future__ import annotations

from django.contrib import admin
from django.db.models import Model
from django.http import HttpRequest


class NoEditsMixin:
    """Nobody adds, changes or deletes through this admin: the write path does that."""

    def has_add_permission(self, request: HttpRequest, obj: Model | None = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Model | None = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Model | None = None) -> bool:
        return False


class ReadOnlyAdmin(NoEditsMixin, admin.ModelAdmin):
    """Viewable by whoever may view the model."""


class ReadOnlyInline(NoEditsMixin, admin.TabularInline):
    extra = 0
    can_delete = False
    show_change_link = True
