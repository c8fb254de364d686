"""Todo rows in the admin; edits go through the write path (see tables.admin)."""

from django.contrib import admin

from tables.admin import ProjectedRecordAdmin
from todo.models import TodoItem, TodoList


@admin.register(TodoItem)
class TodoItemAdmin(ProjectedRecordAdmin):
    list_display = ("record_id", "title", "done", "datastore")
    list_filter = ("done", *ProjectedRecordAdmin.list_filter)
    search_fields = ("record_id", "title")


@admin.register(TodoList)
class TodoListAdmin(ProjectedRecordAdmin):
    list_display = ("record_id", "title", "item_count", "datastore")
    search_fields = ("record_id", "title")

    @admin.display(description="items")
    def item_count(self, obj: TodoList) -> int:
        return len(obj.items or [])
