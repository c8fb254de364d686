"""Jupyter projections in the admin.

Server-state tables are written only by the supernode, so ``ProjectedRecordAdmin`` makes them
read-only; executions and documents are edited through the write path. Notebook, cell and output
rows are projections of notebook documents and are read-only.
"""

from urllib.parse import quote

from django.contrib import admin
from django.db.models import Count, F, OuterRef, QuerySet, Subquery, Value
from django.db.models.functions import Concat
from django.http import HttpRequest
from django.utils.html import format_html
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
from jupyter_sync.output_html import render_output
from tables.admin import ProjectedRecordAdmin, ReadOnlyAdmin, ReadOnlyInline
from tables.admin.datastores import add_datastore_links
from tables.models import Datastore

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
        "document_id",
        "cell_id",
        "status",
        "requested_by",
        "kernel_id",
        "source_changed",
        "execution_count",
        "created_at",
        "started_at",
        "finished_at",
        "datastore",
    )
    list_filter = ("status", "source_changed", *DATASTORE_FILTER)
    search_fields = (
        "record_id",
        "cell_id",
        "document_id",
        "kernel_id",
        "session_id",
        "source_hash",
        "code",
        "requested_by",
    )


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


def cell_index(obj: Cell) -> int:
    """The cell's 0-based place in its notebook, counted from the positions (the rows store a
    sparse position, so that inserting a cell does not rewrite the rows after it)."""
    index = getattr(obj, "index", None)
    if index is None:  # not annotated by CellQuerySet.with_index
        index = Cell.objects.filter(notebook=obj.notebook_id, position__lt=obj.position).count()
    return index


class CellInline(ReadOnlyInline):
    model = Cell
    fields = ("index", "cell_id", "cell_type", "source", "execution_count")
    readonly_fields = ("index",)

    def get_queryset(self, request: HttpRequest) -> QuerySet:
        return super().get_queryset(request).numbered()  # shows all of a notebook's cells

    @admin.display(description="index")
    def index(self, obj: Cell) -> int:
        return cell_index(obj)


class OutputInline(ReadOnlyInline):
    model = Output
    fields = ("index", "output_type", "shown")
    readonly_fields = ("shown",)

    @admin.display(description="output")
    def shown(self, obj: Output) -> str:
        return render_output(obj.content)


def document_paths() -> Subquery:
    """A notebook's file: the path of the documents record whose datastore it is (``doc-<id>``
    for record ``<id>``: a record merely naming the datastore does not count)."""
    return Subquery(
        Document.objects.annotate(opened_into=Concat(Value("doc-"), F("record_id")))
        .filter(opened_into=OuterRef("datastore__name"), datastore_name=OuterRef("datastore__name"))
        .order_by("-pk")
        .values("path")[:1]
    )


def file_url(path: str) -> str:
    """A document's file as the contents API serves it."""
    return f"/api/contents/{quote(path)}"


@add_datastore_links
def document_file(datastore: Datastore) -> list[tuple[str, str]]:
    """A document's datastore links its file, found as ``document_paths`` finds a notebook's:
    only from the documents record that opened it (record ``<id>`` for ``doc-<id>``)."""
    record_id = datastore.name.removeprefix("doc-")
    if record_id == datastore.name:
        return []
    path = (
        Document.objects.filter(record_id=record_id, datastore_name=datastore.name)
        .order_by("-pk")
        .values_list("path", flat=True)
        .first()
    )
    return [(f"File: {path}", file_url(path))] if path else []


@admin.register(Notebook)
class NotebookAdmin(ReadOnlyAdmin):
    list_display = ("file", "datastore", "nbformat", "nbformat_minor", "cell_count")
    list_select_related = ("datastore",)
    search_fields = ("datastore__name",)
    inlines = (CellInline,)
    readonly_fields = ("file",)

    def get_queryset(self, request: HttpRequest) -> QuerySet:
        queryset = super().get_queryset(request)
        return queryset.annotate(cell_count=Count("cells"), file_path=document_paths())

    def get_search_results(self, request: HttpRequest, queryset: QuerySet, search_term: str):
        found, duplicates = super().get_search_results(request, queryset, search_term)
        if search_term:
            found = found | queryset.filter(file_path__icontains=search_term)
        return found, duplicates

    @admin.display(description="file", ordering="file_path")
    def file(self, obj: Notebook) -> str:
        """The notebook's path, linking its file as the contents API serves it."""
        path = getattr(obj, "file_path", None)
        if not path:
            return "(no file)"
        return format_html('<a href="{}">{}</a>', file_url(path), path)

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
    readonly_fields = ("index",)

    def get_queryset(self, request: HttpRequest) -> QuerySet:
        return super().get_queryset(request).with_index()

    @admin.display(description="index", ordering="position")
    def index(self, obj: Cell) -> int:
        return cell_index(obj)

    @admin.display(description="source")
    def source_start(self, obj: Cell) -> str:
        return Truncator(obj.source).chars(80)


@admin.register(Output)
class OutputAdmin(ReadOnlyAdmin):
    list_display = ("cell", "index", "output_type", "shown")
    readonly_fields = ("shown",)
    list_filter = ("output_type",)
    list_select_related = ("cell",)
    search_fields = ("cell__cell_id", "cell__notebook__datastore__name")

    @admin.display(description="output")
    def shown(self, obj: Output) -> str:
        return render_output(obj.content)
