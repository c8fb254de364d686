"""The admin as a table browser: datastores, their history and documents, and projected rows.

Nothing here writes a document directly. Datastores are created by ``tables.service``, projected
records are edited through ``tables.records`` (the write path, origin "admin"), undo goes through
``tables.undo``; patch history and checkpoints are read-only.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, ClassVar

from django import forms
from django.contrib import admin, messages
from django.contrib.admin.utils import unquote
from django.core.exceptions import ImproperlyConfigured, PermissionDenied
from django.db.models import Model, QuerySet
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.template.defaultfilters import filesizeformat
from django.template.response import TemplateResponse
from django.urls import URLPattern, path, reverse
from django.utils.functional import cached_property
from django.utils.html import format_html, format_html_join
from django.utils.http import urlencode

from tables import service
from tables.history import doc_at
from tables.models import Checkpoint, Datastore, Origin, TouchedRecord, Transaction
from tables.projection import ProjectedRecord, TableProjector, get_projector
from tables.pruning import HistoryPruned
from tables.records import delete_record, set_fields
from tables.schema import (
    Field,
    FieldKind,
    SchemaViolation,
    Table,
    TableSchema,
    UnknownSchema,
    all_schemas,
    describe_value,
    get_schema,
)
from tables.service import Status
from tables.undo import NothingToUndo, UndoUnsupported, undo

admin.site.site_header = "Jupyter RTC"
admin.site.site_title = "Jupyter RTC"
admin.site.index_title = "Datastores, history and projections"

# The Tables view shows at most this many records per table (the rest is counted, not drawn).
TABLE_ROWS_LIMIT = 1000
# A one-line transaction summary shows this many changes, then "(+N more)".
SUMMARY_CHANGES_SHOWN = 3
VALUE_PREVIEW_CHARS = 60


# --- Small helpers --------------------------------------------------------------------------


def compact_json(value: Any) -> str:
    """One-line JSON for a table cell."""
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"), default=str)


def pretty_json(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, indent=2, sort_keys=True, default=str)


def human_size(size: int | None) -> str:
    return filesizeformat(size or 0)


def transactions_url(datastore_pk: int, **params: str) -> str:
    """The Transaction changelist filtered by a datastore (and optionally by a record)."""
    query = urlencode({"datastore__id__exact": datastore_pk, **params})
    return f"{reverse('admin:tables_transaction_changelist')}?{query}"


def record_counts(datastore: Datastore) -> dict[str, int]:
    """Records per table (cells for notebooks), read from the live document."""
    data, _ = service.live_python(datastore)
    schema = get_schema(datastore.schema)
    if isinstance(schema, TableSchema):
        return {table: len(data.get(table) or {}) for table in schema.tables}
    return {name: len(value) for name, value in data.items() if isinstance(value, list)}


def describe_counts(datastore: Datastore) -> str:
    """``record_counts`` as text; a document that cannot be loaded says so instead of failing."""
    try:
        counts = record_counts(datastore)
    except Exception as error:  # a page of datastores must not fail because of one document
        return f"unavailable ({error})"
    return ", ".join(f"{name}: {count}" for name, count in counts.items()) or "—"


# --- Readable transaction summaries ---------------------------------------------------------


def _preview(value: Any) -> str:
    text = repr(value)
    if len(text) > VALUE_PREVIEW_CHARS:
        return f"{text[:VALUE_PREVIEW_CHARS]}…"
    return text


def _location(root: str, path: Sequence[Any]) -> str:
    """``items['a'].title`` for root ``items`` and path ``['a', 'title']``."""
    where = root
    for position, part in enumerate(path):
        if position > 0 and isinstance(part, str) and part.isidentifier():
            where += f".{part}"
        else:
            where += f"[{part!r}]"
    return where


def _map_line(change: dict[str, Any]) -> str:
    root, path, key = change.get("root", "?"), change.get("path") or [], change.get("key")
    action, old, new = change.get("action"), change.get("old"), change.get("new")
    if not path:
        verb = {"add": "added", "delete": "deleted", "update": "replaced"}.get(action, action)
        return f"{root}: {verb} {key!r}"
    where = _location(root, [*path, key])
    if action == "add":
        return f"{where}: set to {_preview(new)}"
    if action == "delete":
        return f"{where}: deleted (was {_preview(old)})"
    return f"{where}: {_preview(old)} → {_preview(new)}"


def _span_line(change: dict[str, Any]) -> str:
    where = _location(change.get("root", "?"), change.get("path") or [])
    unit = "char" if change.get("kind") == "text" else "item"
    parts = [
        f"inserted {_preview(value)} at {index}" for index, value in change.get("inserted", [])
    ]
    parts += [
        f"deleted {count} {unit}{'s' if count != 1 else ''} at {index}"
        for index, count in change.get("deleted", [])
    ]
    return f"{where}: {', '.join(parts) or 'changed'}"


def change_line(change: Any) -> str:
    """One readable line for one entry of ``Transaction.summary``."""
    if not isinstance(change, dict):
        return str(change)
    return _map_line(change) if change.get("kind") == "map" else _span_line(change)


def summary_lines(summary: Any) -> list[str]:
    return [change_line(change) for change in summary or []]


def summary_one_line(summary: Any) -> str:
    lines = summary_lines(summary)
    shown = "; ".join(lines[:SUMMARY_CHANGES_SHOWN])
    hidden = len(lines) - SUMMARY_CHANGES_SHOWN
    return f"{shown} (+{hidden} more)" if hidden > 0 else shown or "—"


# --- Read-only admins -----------------------------------------------------------------------


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


# --- Datastores -----------------------------------------------------------------------------


def _schema_choices() -> list[tuple[str, str]]:
    return [(name, name) for name in all_schemas()]


class DatastoreAddForm(forms.ModelForm):
    schema = forms.ChoiceField(choices=_schema_choices)

    class Meta:
        model = Datastore
        fields = ["name", "schema", "owner"]


class DatastoreAdmin(admin.ModelAdmin):
    list_display = (
        "name",
        "schema",
        "owner",
        "last_serial",
        "size_display",
        "checkpoint_serial",
        "records",
        "browse",
    )
    list_filter = ("schema",)
    search_fields = ("name",)
    list_select_related = ("owner",)
    # Record counts load each listed document: keep pages short.
    list_per_page = 25
    stats = (
        "created_at",
        "last_serial",
        "size_display",
        "checkpoint_serial",
        "bytes_since_checkpoint",
        "history_start",
        "records",
    )

    def has_delete_permission(self, request: HttpRequest, obj: Model | None = None) -> bool:
        # It would drop the whole history under connected clients: not something for a form.
        return False

    def get_form(
        self, request: HttpRequest, obj: Any = None, change: bool = False, **kwargs: Any
    ) -> type[forms.ModelForm]:
        if obj is None:
            kwargs["form"] = DatastoreAddForm
        return super().get_form(request, obj, change=change, **kwargs)

    def get_fields(self, request: HttpRequest, obj: Any = None) -> Sequence[str]:
        if obj is None:
            return ("name", "schema", "owner")
        return ("name", "schema", "owner", "roles_from", *self.stats)

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> Sequence[str]:
        return () if obj is None else ("name", "schema", *self.stats)

    def get_changeform_initial_data(self, request: HttpRequest) -> dict[str, Any]:
        return {"owner": request.user.pk, **super().get_changeform_initial_data(request)}

    def save_model(self, request: HttpRequest, obj: Datastore, form: Any, change: bool) -> None:
        """New datastores come from the service; on change only the owner and roles_from."""
        if change:
            # The write path updates the counters concurrently: never save them from a form.
            obj.save(update_fields=["owner", "roles_from"])
            return
        created = service.create_datastore(obj.name, obj.schema, owner=obj.owner)
        obj.pk = created.pk
        obj._state.adding = False
        obj.refresh_from_db()

    @admin.display(description="size", ordering="size")
    def size_display(self, obj: Datastore) -> str:
        return human_size(obj.size)

    @admin.display(description="records")
    def records(self, obj: Datastore) -> str:
        return describe_counts(obj)

    @admin.display(description="browse")
    def browse(self, obj: Datastore) -> str:
        return format_html_join(
            " · ", '<a href="{}">{}</a>', ((url, label) for label, url in self.links(obj))
        )

    def links(self, obj: Datastore) -> list[tuple[str, str]]:
        info = (self.opts.app_label, self.opts.model_name)
        return [
            ("Tables", reverse("admin:{}_{}_tables".format(*info), args=[obj.pk])),
            ("State at serial", reverse("admin:{}_{}_state".format(*info), args=[obj.pk])),
            ("Transaction history", transactions_url(obj.pk)),
        ]

    def render_change_form(
        self,
        request: HttpRequest,
        context: dict[str, Any],
        add: bool = False,
        change: bool = False,
        form_url: str = "",
        obj: Datastore | None = None,
    ) -> HttpResponse:
        context["browse_links"] = self.links(obj) if obj is not None else []
        return super().render_change_form(request, context, add, change, form_url, obj)

    # --- Custom views ---

    def get_urls(self) -> list[URLPattern]:
        info = (self.opts.app_label, self.opts.model_name)
        custom = [
            path(
                "<path:object_id>/tables/",
                self.admin_site.admin_view(self.tables_view),
                name="{}_{}_tables".format(*info),
            ),
            path(
                "<path:object_id>/state/",
                self.admin_site.admin_view(self.state_view),
                name="{}_{}_state".format(*info),
            ),
        ]
        return custom + super().get_urls()

    def _viewable(self, request: HttpRequest, object_id: str) -> Datastore:
        obj = self.get_object(request, unquote(object_id))
        if obj is None:
            raise Http404(f"no datastore with id {object_id!r}")
        if not self.has_view_permission(request, obj):
            raise PermissionDenied
        return obj

    def _context(self, request: HttpRequest, obj: Datastore, title: str) -> dict[str, Any]:
        return {
            **self.admin_site.each_context(request),
            "opts": self.opts,
            "original": obj,
            "title": f"{title}: {obj.name}",
            "browse_links": self.links(obj),
        }

    def tables_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        """Every record of every table (or the whole document for other layouts), live."""
        obj = self._viewable(request, object_id)
        context = self._context(request, obj, "Tables")
        try:
            schema = get_schema(obj.schema)
            data, serial = service.live_python(obj)
        except UnknownSchema as error:
            context["error"] = str(error)
            return TemplateResponse(request, "admin/tables/datastore/tables.html", context)
        context["serial"] = serial
        if isinstance(schema, TableSchema):
            context["tables"] = [
                table_view(obj, spec, data.get(name) or {}) for name, spec in schema.tables.items()
            ]
        else:
            context["document_json"] = pretty_json(data)
        return TemplateResponse(request, "admin/tables/datastore/tables.html", context)

    def state_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        """The document as it was right after transaction ``?serial=N`` (time travel)."""
        obj = self._viewable(request, object_id)
        context = self._context(request, obj, "State at serial")
        raw = request.GET.get("serial", "").strip()
        context["serial_input"] = raw
        try:
            serial = parse_serial(raw, obj.last_serial)
            schema = get_schema(obj.schema)
        except (ValueError, UnknownSchema) as error:
            context["error"] = str(error)
            return TemplateResponse(
                request, "admin/tables/datastore/state.html", context, status=400
            )
        try:
            doc = doc_at(obj, serial)
        except HistoryPruned as error:
            context["error"] = str(error)
            return TemplateResponse(
                request, "admin/tables/datastore/state.html", context, status=410
            )
        context.update(
            serial=serial,
            serial_input=str(serial),
            document_json=pretty_json(schema.to_python(doc)),
            transaction_url=_transaction_url(obj, serial),
            previous_serial=serial - 1 if serial > 0 else None,
            next_serial=serial + 1 if serial < obj.last_serial else None,
        )
        return TemplateResponse(request, "admin/tables/datastore/state.html", context)


def parse_serial(raw: str, last_serial: int) -> int:
    """A serial from a query string: blank means the newest; ValueError says what is wrong."""
    if not raw:
        return last_serial
    allowed = f"enter a whole number from 0 to {last_serial}"
    try:
        serial = int(raw)
    except ValueError:
        raise ValueError(f"{raw!r} is not a serial: {allowed}.") from None
    if serial < 0:
        raise ValueError(f"Serial {serial} is negative: {allowed}.")
    if serial > last_serial:
        raise ValueError(
            f"Serial {serial} is after the newest transaction (serial {last_serial}): {allowed}."
        )
    return serial


def _transaction_url(datastore: Datastore, serial: int) -> str | None:
    pk = (
        Transaction.objects.filter(datastore=datastore, serial=serial)
        .values_list("pk", flat=True)
        .first()
    )
    return reverse("admin:tables_transaction_change", args=[pk]) if pk else None


@dataclass(frozen=True)
class TableRow:
    record_id: str
    history_url: str
    cells: list[str]


@dataclass(frozen=True)
class TableView:
    name: str
    doc: str
    fields: list[str]
    rows: list[TableRow]
    total: int


def _cell(spec: Field, record: Any, name: str) -> str:
    """Text fields as their text, everything else as compact JSON; absent fields blank."""
    if not isinstance(record, dict) or name not in record:
        return ""
    value = record[name]
    if spec.kind is FieldKind.TEXT and isinstance(value, str):
        return value
    return compact_json(value)


def table_view(datastore: Datastore, spec: Table, records: dict[str, Any]) -> TableView:
    """One table of the Tables page: a row per record, a column per field."""
    fields = list(spec.fields)
    rows = [
        TableRow(
            record_id,
            transactions_url(datastore.pk, table=spec.name, record_id=record_id),
            [_cell(spec.fields[name], record, name) for name in fields],
        )
        for record_id, record in sorted(records.items())[:TABLE_ROWS_LIMIT]
    ]
    return TableView(spec.name, spec.doc, fields, rows, len(records))


# --- Transactions ---------------------------------------------------------------------------


class RecordFilter(admin.ListFilter):
    """``?table=items&record_id=a``: the transactions that touched one record."""

    title = "record"
    parameters = ("table", "record_id")

    def __init__(
        self,
        request: HttpRequest,
        params: dict[str, list[str]],
        model: type[Model],
        model_admin: admin.ModelAdmin,
    ) -> None:
        super().__init__(request, params, model, model_admin)
        for name in self.parameters:
            if name in params:
                self.used_parameters[name] = params.pop(name)[-1]

    def has_output(self) -> bool:
        return True

    def expected_parameters(self) -> list[str]:
        return list(self.parameters)

    def label(self) -> str | None:
        table = self.used_parameters.get("table")
        record_id = self.used_parameters.get("record_id")
        if table is None and record_id is None:
            return None
        return f"{table or '*'}[{record_id!r}]" if record_id is not None else f"{table}[*]"

    def choices(self, changelist: Any) -> Iterable[dict[str, Any]]:
        label = self.label()
        yield {
            "selected": label is None,
            "query_string": changelist.get_query_string(remove=list(self.parameters)),
            "display": "All",
        }
        if label is not None:
            yield {
                "selected": True,
                "query_string": changelist.get_query_string(),
                "display": label,
            }

    def queryset(self, request: HttpRequest, queryset: QuerySet) -> QuerySet:
        if not self.used_parameters:
            return queryset
        touched = TouchedRecord.objects.filter(**self.used_parameters)
        return queryset.filter(pk__in=touched.values("transaction_id"))


class TransactionAdmin(ReadOnlyAdmin):
    list_display = (
        "serial",
        "datastore",
        "txid",
        "origin",
        "author",
        "created_at",
        "size",
        "change_summary",
    )
    list_display_links = ("serial",)
    list_filter = ("datastore", "origin", "author", RecordFilter)
    list_select_related = ("datastore", "author")
    search_fields = ("txid", "store_id", "datastore__name")
    ordering = ("-created_at", "-serial")
    actions = ("undo_selected",)
    fields = (
        "datastore",
        "serial",
        "txid",
        "store_id",
        "origin",
        "author",
        "created_at",
        "update_size",
        "reverts",
        "summary_lines",
        "touched_records",
        "state_after",
    )
    readonly_fields = ("update_size", "summary_lines", "touched_records", "state_after")

    def get_queryset(self, request: HttpRequest) -> QuerySet:
        # The Yjs bytes are never shown; do not load them.
        return super().get_queryset(request).defer("update")

    @admin.display(description="summary")
    def change_summary(self, obj: Transaction) -> str:
        return summary_one_line(obj.summary)

    @admin.display(description="update size")
    def update_size(self, obj: Transaction) -> str:
        return f"{human_size(obj.size)} ({obj.size} bytes)"

    @admin.display(description="changes")
    def summary_lines(self, obj: Transaction) -> str:
        lines = summary_lines(obj.summary)
        if not lines:
            return "—"
        items = format_html_join("", "<li>{}</li>", ((line,) for line in lines))
        return format_html("<ul>{}</ul>", items)

    @admin.display(description="touched records")
    def touched_records(self, obj: Transaction) -> str:
        rows = obj.touched.order_by("table", "record_id").values_list("table", "record_id")
        links = (
            (transactions_url(obj.datastore_id, table=table, record_id=record_id), table, record_id)
            for table, record_id in rows
        )
        return format_html_join(", ", '<a href="{}">{}[{}]</a>', links) or "—"

    @admin.display(description="document after this transaction")
    def state_after(self, obj: Transaction) -> str:
        url = reverse("admin:tables_datastore_state", args=[obj.datastore_id])
        return format_html(
            '<a href="{}?serial={}">state at serial {}</a>', url, obj.serial, obj.serial
        )

    def has_undo_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm("tables.change_datastore")

    @admin.action(permissions=["undo"], description="Undo selected transactions")
    def undo_selected(self, request: HttpRequest, queryset: QuerySet) -> None:
        """Revert each one as a new transaction (origin undo), newest first."""
        for target in queryset.select_related("datastore").order_by("datastore", "-serial"):
            self._undo_one(request, target)

    def _undo_one(self, request: HttpRequest, target: Transaction) -> None:
        name = f"{target.datastore.name}#{target.serial}"
        try:
            outcome = undo(target.datastore, target.serial, author_id=request.user.pk)
        except (NothingToUndo, UndoUnsupported) as error:
            self.message_user(request, f"Could not undo {name}: {error}", messages.WARNING)
            return
        if outcome.status is Status.STORED:
            self.message_user(
                request, f"Undid {name} with a new transaction, serial {outcome.serial}."
            )
        elif outcome.status is Status.REJECTED:
            self.message_user(
                request,
                f"Undo of {name} was refused ({outcome.error_code}): {outcome.error}",
                messages.ERROR,
            )
        else:
            reason = outcome.error or "nothing to undo"
            self.message_user(request, f"Could not undo {name}: {reason}", messages.WARNING)


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


admin.site.register(Datastore, DatastoreAdmin)
admin.site.register(Transaction, TransactionAdmin)
admin.site.register(Checkpoint, CheckpointAdmin)


# --- Projected records: edited through the write path ---------------------------------------


@dataclass(frozen=True)
class TableBinding:
    """The schema table a projected model mirrors."""

    schema: TableSchema
    table: str

    @property
    def spec(self) -> Table:
        return self.schema.tables[self.table]

    @property
    def editable(self) -> bool:
        return self.schema.table_policy(self.table) != "service"


def binding_for(model: type[Model]) -> TableBinding:
    """Find the table a model projects from the registered table projectors."""
    for name, schema in all_schemas().items():
        projector = get_projector(name)
        if not isinstance(projector, TableProjector) or not isinstance(schema, TableSchema):
            continue
        for table, projected in projector.models_by_table.items():
            if projected is model:
                return TableBinding(schema, table)
    raise ImproperlyConfigured(f"no registered table projector projects {model.__name__}")


def _document_value(spec: Field, value: Any) -> Any:
    """A form value as the document stores it (dates as ISO strings, blank registers as null)."""
    if isinstance(value, datetime):
        value = value.isoformat()
    if spec.kind is FieldKind.TEXT:
        return "" if value is None else str(value)
    if spec.kind is FieldKind.REGISTER and value == "" and spec.nullable:
        return None
    return value


def _value_problem(spec: Field, value: Any) -> str | None:
    """Why the schema would refuse ``value``, checked before writing so the field shows it."""
    if spec.kind is FieldKind.LIST and value is not None and not isinstance(value, list):
        return f"expected a list, got {describe_value(value)}"
    if spec.kind is FieldKind.MAP and value is not None and not isinstance(value, dict):
        return f"expected an object, got {describe_value(value)}"
    if spec.kind is FieldKind.REGISTER:
        return spec.check(value)
    return None


class ProjectedRecordForm(forms.ModelForm):
    """Saves by writing to the document: a refused write is a form error and nothing is stored.

    The write path is the validator (a write is stored whole or refused whole), so the write
    happens at the end of validation; ``ProjectedRecordAdmin.save_model`` only reads back the row
    the projector made.
    """

    binding: ClassVar[TableBinding]
    author_id: ClassVar[int | None] = None

    def full_clean(self) -> None:
        super().full_clean()
        if not self.is_bound or self.errors:
            return
        values = self.document_values()
        for name, value in values.items():
            problem = _value_problem(self.binding.spec.fields[name], value)
            if problem:
                self.add_error(name, problem)
        if not self.errors and (values or self.instance._state.adding):
            self._write(values)

    def document_values(self) -> dict[str, Any]:
        """New records: every value given; existing ones: only the fields that changed."""
        adding = self.instance._state.adding
        values = {}
        for name, spec in self.binding.spec.fields.items():
            if name not in self.cleaned_data or not (adding or name in self.changed_data):
                continue
            value = _document_value(spec, self.cleaned_data[name])
            if not (adding and value is None):
                values[name] = value
        return values

    def _write(self, values: dict[str, Any]) -> None:
        datastore = self.cleaned_data.get("datastore") or self.instance.datastore
        record_id = self.cleaned_data.get("record_id") or self.instance.record_id
        try:
            outcome = set_fields(
                datastore,
                self.binding.table,
                record_id,
                values,
                author_id=self.author_id,
                origin=Origin.ADMIN,
            )
        except SchemaViolation as error:
            self.add_error(None, f"The change was refused: {error}")
            return
        if outcome.status is Status.REJECTED:
            self.add_error(None, f"The change was refused ({outcome.error_code}): {outcome.error}")


_REFUSED = "_tables_admin_refused"


class ProjectedRecordAdmin(admin.ModelAdmin):
    """Admin for a ``ProjectedRecord`` model: every save and delete goes through the write path.

    Tables written only by the service (policy "service") are read-only here.
    """

    form = ProjectedRecordForm
    list_display = ("record_id", "datastore")
    list_filter = (("datastore", admin.RelatedOnlyFieldListFilter),)
    list_select_related = ("datastore",)
    search_fields = ("record_id",)
    ordering = ("datastore__name", "record_id")
    head_fields = ("datastore", "record_id")

    @cached_property
    def binding(self) -> TableBinding:
        # Looked up on first use: apps register projectors in ready(), after admin autodiscovery.
        return binding_for(self.model)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return self.binding.editable and super().has_add_permission(request)

    def has_change_permission(self, request: HttpRequest, obj: Model | None = None) -> bool:
        return self.binding.editable and super().has_change_permission(request, obj)

    def has_delete_permission(self, request: HttpRequest, obj: Model | None = None) -> bool:
        return self.binding.editable and super().has_delete_permission(request, obj)

    def get_form(
        self, request: HttpRequest, obj: Any = None, change: bool = False, **kwargs: Any
    ) -> type[forms.ModelForm]:
        form = super().get_form(request, obj, change=change, **kwargs)
        attrs = {"binding": self.binding, "author_id": request.user.pk}
        return type(form.__name__, (form,), attrs)

    def get_fields(self, request: HttpRequest, obj: Any = None) -> Sequence[str]:
        fields = super().get_fields(request, obj)
        return [*self.head_fields, *(f for f in fields if f not in self.head_fields)]

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> Sequence[str]:
        return () if obj is None else (*self.head_fields, "record_history")

    def formfield_for_foreignkey(
        self, db_field: Any, request: HttpRequest, **kwargs: Any
    ) -> forms.Field | None:
        if db_field.name == "datastore":
            kwargs["queryset"] = Datastore.objects.filter(schema=self.binding.schema.name)
        return super().formfield_for_foreignkey(db_field, request, **kwargs)

    @admin.display(description="history")
    def record_history(self, obj: ProjectedRecord) -> str:
        url = transactions_url(obj.datastore_id, table=self.binding.table, record_id=obj.record_id)
        return format_html('<a href="{}">transactions that touched this record</a>', url)

    def save_model(self, request: HttpRequest, obj: Any, form: Any, change: bool) -> None:
        """The form has written the document; show the row the projector made from it."""
        row = self.model.objects.get(datastore_id=obj.datastore_id, record_id=obj.record_id)
        obj.pk = row.pk
        obj._state.adding = False
        obj.refresh_from_db()

    def delete_model(self, request: HttpRequest, obj: Any) -> None:
        outcome = delete_record(
            obj.datastore,
            self.binding.table,
            obj.record_id,
            author_id=request.user.pk,
            origin=Origin.ADMIN,
        )
        if outcome.status is Status.REJECTED:
            setattr(request, _REFUSED, True)
            self.message_user(
                request,
                f"Deleting {obj.record_id!r} was refused ({outcome.error_code}): {outcome.error}",
                messages.ERROR,
            )

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet) -> None:
        for obj in queryset.select_related("datastore"):
            self.delete_model(request, obj)

    def response_delete(self, request: HttpRequest, obj_display: str, obj_id: Any) -> HttpResponse:
        if getattr(request, _REFUSED, False):
            info = (self.opts.app_label, self.opts.model_name)
            return HttpResponseRedirect(reverse("admin:{}_{}_change".format(*info), args=[obj_id]))
        return super().response_delete(request, obj_display, obj_id)
