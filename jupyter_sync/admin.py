"""Jupyter projections in the admin.

Server-state tables are written only by the supernode, so ``ProjectedRecordAdmin`` makes them
read-only; executions and documents are edited through the write path. Notebook, cell and output
rows are projections of notebook documents and are read-only.
"""

from django.contrib import admin
from django.db.models import Count, QuerySet
from django.http import HttpRequest
from django.utils.text import Truncator

from jupyter_sync.models import (
    Cell,
    Content,
    Document,
    Execution,
    JupyterSession,
    Kernel,
    Kernelspec,
    Notebook,
    Output,
    Request,
    ServerStatus,
    Terminal,
)
from tables.admin import ProjectedRecordAdmin, ReadOnlyAdmin, ReadOnlyInline

DATASTORE_FILTER = ProjectedRecordAdmin.list_filter


@admin.register(ServerStatus)
class ServerStatusAdmin(ProjectedRecordAdmin):
    list_display = (
        "record_id",
        "version",
        "connected",
        "connections",
        "kernels",
        "started",
        "last_activity",
        "datastore",
    )


@admin.register(Kernelspec)
class KernelspecAdmin(ProjectedRecordAdmin):
    list_display = ("record_id", "display_name", "language", "datastore")
    list_filter = ("language", *DATASTORE_FILTER)
    search_fields = ("record_id", "name", "display_name")


@admin.register(Kernel)
class KernelAdmin(ProjectedRecordAdmin):
    list_display = (
        "record_id",
        "name",
        "execution_state",
        "connections",
        "last_activity",
        "datastore",
    )
    list_filter = ("execution_state", "name", *DATASTORE_FILTER)
    search_fields = ("record_id", "name")


@admin.register(JupyterSession)
class JupyterSessionAdmin(ProjectedRecordAdmin):
    list_display = ("record_id", "path", "type", "kernel_name", "kernel_id", "datastore")
    list_filter = ("type", *DATASTORE_FILTER)
    search_fields = ("record_id", "path", "name", "kernel_id")


@admin.register(Content)
class ContentAdmin(ProjectedRecordAdmin):
    list_display = ("path", "type", "size", "last_modified", "writable", "datastore")
    list_filter = ("type", *DATASTORE_FILTER)
    search_fields = ("path", "name")
    ordering = ("datastore__name", "path")


@admin.register(Terminal)
class TerminalAdmin(ProjectedRecordAdmin):
    list_display = ("record_id", "name", "last_activity", "datastore")
    search_fields = ("record_id", "name")


@admin.register(Execution)
class ExecutionAdmin(ProjectedRecordAdmin):
    list_display = (
        "record_id",
        "cell_id",
        "status",
        "requested_by",
        "execution_count",
        "created_at",
        "finished_at",
        "datastore",
    )
    list_filter = ("status", *DATASTORE_FILTER)
    search_fields = ("record_id", "cell_id", "document_id", "kernel_id", "code", "requested_by")


@admin.register(Request)
class RequestAdmin(ProjectedRecordAdmin):
    list_display = ("record_id", "action", "status", "requested_by", "created_at", "datastore")
    list_filter = ("action", "status", *DATASTORE_FILTER)
    search_fields = ("record_id", "action", "requested_by", "error")


@admin.register(Document)
class DocumentAdmin(ProjectedRecordAdmin):
    list_display = (
        "path",
        "type",
        "status",
        "request",
        "datastore_name",
        "last_saved",
        "datastore",
    )
    list_filter = ("status", "type", *DATASTORE_FILTER)
    search_fields = ("record_id", "path", "datastore_name", "requested_by")
    ordering = ("datastore__name", "path")


# --- Notebook documents (read-only projections) ---------------------------------------------


class CellInline(ReadOnlyInline):
    model = Cell
    fields = ("index", "cell_id", "cell_type", "source", "execution_count")


class OutputInline(ReadOnlyInline):
    model = Output
    fields = ("index", "output_type", "content")


@admin.register(Notebook)
class NotebookAdmin(ReadOnlyAdmin):
    list_display = ("datastore", "nbformat", "nbformat_minor", "cell_count")
    list_select_related = ("datastore",)
    search_fields = ("datastore__name",)
    inlines = (CellInline,)

    def get_queryset(self, request: HttpRequest) -> QuerySet:
        return super().get_queryset(request).annotate(cell_count=Count("cells"))

    @admin.display(description="cells", ordering="cell_count")
    def cell_count(self, obj: Notebook) -> int:
        return obj.cell_count


@admin.register(Cell)
class CellAdmin(ReadOnlyAdmin):
    list_display = ("cell_id", "notebook", "index", "cell_type", "source_start", "execution_count")
    list_filter = ("cell_type",)
    list_select_related = ("notebook__datastore",)
    search_fields = ("cell_id", "source", "notebook__datastore__name")
    inlines = (OutputInline,)

    @admin.display(description="source")
    def source_start(self, obj: Cell) -> str:
        return Truncator(obj.source).chars(80)


@admin.register(Output)
class OutputAdmin(ReadOnlyAdmin):
    list_display = ("cell", "index", "output_type")
    list_filter = ("output_type",)
    list_select_related = ("cell",)
    search_fields = ("cell__cell_id", "cell__notebook__datastore__name")
