"""The transaction history: filtered by record, summarised, linked to the state after, undone."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from django.contrib import admin, messages
from django.db.models import Model, QuerySet
from django.http import HttpRequest
from django.urls import reverse
from django.utils.html import format_html, format_html_join

from tables.admin.formatting import human_size, transactions_url
from tables.admin.read_only import ReadOnlyAdmin
from tables.admin.summaries import summary_lines, summary_one_line
from tables.models import TouchedRecord, Transaction
from tables.service import Status
from tables.undo import NothingToUndo, UndoUnsupported, undo


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


@admin.register(Transaction)
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
