"""The datastore admin: created through the service, browsed live and at any serial."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from django import forms
from django.contrib import admin
from django.contrib.admin.utils import unquote
from django.core.exceptions import PermissionDenied
from django.db.models import Model
from django.http import Http404, HttpRequest, HttpResponse
from django.template.response import TemplateResponse
from django.urls import URLPattern, path, reverse
from django.utils.html import format_html_join

from tables import service
from tables.admin.formatting import human_size, pretty_json, transactions_url
from tables.admin.table_browser import browsed_table, describe_counts
from tables.history import doc_at
from tables.models import Datastore, Transaction
from tables.pruning import HistoryPruned
from tables.schema import TableSchema, UnknownSchema, all_schemas, get_schema

# Links other apps add to a datastore's page and its row (label, URL): this app knows none of
# them (tables imports no other app), so they register here; jupyter_sync links a document's
# datastore to its file.
LinkProvider = Callable[[Datastore], list[tuple[str, str]]]
_link_providers: list[LinkProvider] = []


def add_datastore_links(provider: LinkProvider) -> LinkProvider:
    """Register ``provider``: the datastore page and list show the links it gives."""
    if provider not in _link_providers:
        _link_providers.append(provider)
    return provider


def _schema_choices() -> list[tuple[str, str]]:
    return [(name, name) for name in all_schemas()]


class DatastoreAddForm(forms.ModelForm):
    schema = forms.ChoiceField(choices=_schema_choices)

    class Meta:
        model = Datastore
        fields = ["name", "schema", "owner"]


@admin.register(Datastore)
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
            *(link for provider in _link_providers for link in provider(obj)),
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
                browsed_table(obj, spec, data.get(name) or {})
                for name, spec in schema.tables.items()
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
