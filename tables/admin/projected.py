"""Admins for other apps' projected records: every save and delete goes through the write path.

A form save writes the document with origin "admin" and the projector makes the row; a delete
deletes the record from the document. Tables written only by the service are read-only here.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, ClassVar

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import ImproperlyConfigured
from django.db.models import Model, QuerySet
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.urls import reverse
from django.utils.functional import cached_property
from django.utils.html import format_html

from tables.admin.formatting import transactions_url
from tables.models import Datastore, Origin
from tables.projection import ProjectedRecord, TableProjector, get_projector
from tables.records import delete_record, set_fields
from tables.schema import (
    Field,
    FieldKind,
    SchemaViolation,
    Table,
    TableSchema,
    all_schemas,
    describe_value,
)
from tables.service import Status


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
