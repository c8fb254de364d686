"""A live document as tables: records per table, and the rows of a datastore's Tables page."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from tables import service
from tables.admin.formatting import compact_json, transactions_url
from tables.models import Datastore
from tables.schema import Field, FieldKind, Table, TableSchema, get_schema

# The Tables view shows at most this many records per table (the rest is counted, not drawn).
TABLE_ROWS_LIMIT = 1000


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


@dataclass(frozen=True)
class BrowsedRow:
    record_id: str
    history_url: str
    cells: list[str]


@dataclass(frozen=True)
class BrowsedTable:
    name: str
    doc: str
    fields: list[str]
    rows: list[BrowsedRow]
    total: int


def _cell(spec: Field, record: Any, name: str) -> str:
    """Text fields as their text, everything else as compact JSON; absent fields blank."""
    if not isinstance(record, dict) or name not in record:
        return ""
    value = record[name]
    if spec.kind is FieldKind.TEXT and isinstance(value, str):
        return value
    return compact_json(value)


def browsed_table(datastore: Datastore, spec: Table, records: dict[str, Any]) -> BrowsedTable:
    """One table of the Tables page: a row per record, a column per field."""
    fields = list(spec.fields)
    rows = [
        BrowsedRow(
            record_id,
            transactions_url(datastore.pk, table=spec.name, record_id=record_id),
            [_cell(spec.fields[name], record, name) for name in fields],
        )
        for record_id, record in sorted(records.items())[:TABLE_ROWS_LIMIT]
    ]
    return BrowsedTable(spec.name, spec.doc, fields, rows, len(records))
