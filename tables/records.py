"""Record-level edits for server-side callers (admin, REST, supernode), through the write path.

Each edit is a ``Proposal`` whose ``make`` the write path runs on the live document itself, under
its lock: the transaction's own update is validated, stored with a serial and broadcast like any
client's, and nothing is copied (a copy of a large document cost more than the edit).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pycrdt import Array, Doc, Map, Text

from tables import service
from tables.models import Datastore, Origin
from tables.schema import FieldKind, SchemaViolation, TableSchema, get_schema
from tables.service import Authorizer, Outcome, Proposal


def _table_schema(datastore: Datastore, table: str) -> TableSchema:
    schema = get_schema(datastore.schema)
    if not isinstance(schema, TableSchema) or table not in schema.tables:
        raise SchemaViolation([f"unknown table {table!r} in schema {datastore.schema!r}"])
    return schema


def _set_text(current: Any, value: str) -> Text:
    """Edit a Text in place with the smallest change (common prefix and suffix kept)."""
    old = str(current)
    start = 0
    while start < min(len(old), len(value)) and old[start] == value[start]:
        start += 1
    end_old, end_new = len(old), len(value)
    while end_old > start and end_new > start and old[end_old - 1] == value[end_new - 1]:
        end_old -= 1
        end_new -= 1
    if end_old > start:
        del current[start:end_old]
    if end_new > start:
        current.insert(start, value[start:end_new])
    return current


def _assign(record: Map, name: str, kind: FieldKind, value: Any) -> None:
    current = record.get(name)
    if kind is FieldKind.TEXT:
        if value is None:
            record.pop(name, None)
        elif isinstance(current, Text):
            _set_text(current, str(value))
        else:
            record[name] = Text(str(value))
    elif kind is FieldKind.LIST:
        record[name] = Array(list(value or []))
    elif kind is FieldKind.MAP:
        record[name] = Map(dict(value or {}))
    else:
        record[name] = value


def set_fields(
    datastore: Datastore,
    table: str,
    record_id: str,
    values: Mapping[str, Any],
    *,
    author_id: int | None = None,
    origin: str = Origin.ADMIN,
    authorize: Authorizer | None = None,
) -> Outcome:
    """Create or update one record's fields (plain Python values; text as str).

    ``authorize`` is the caller's write-path hook (e.g. ``Access.authorizer()``), so a record
    edit is refused exactly as the same change sent by a client would be.
    """
    return set_records(
        datastore,
        table,
        {record_id: values},
        author_id=author_id,
        origin=origin,
        authorize=authorize,
    )


def set_records(
    datastore: Datastore,
    table: str,
    records: Mapping[str, Mapping[str, Any]],
    *,
    author_id: int | None = None,
    origin: str = Origin.ADMIN,
    authorize: Authorizer | None = None,
) -> Outcome:
    """``set_fields`` for several records of one table, as one transaction: all stored, in one
    serial, or none."""
    spec = _table_schema(datastore, table).tables[table]
    unknown = sorted({name for values in records.values() for name in values} - set(spec.fields))
    if unknown:
        raise SchemaViolation([f"{table}: unknown field {name!r}" for name in unknown])

    def mutate(doc: Doc) -> None:
        shared = doc.get(table, type=Map)
        for record_id, values in records.items():
            record = shared.get(record_id)
            if not isinstance(record, Map):
                shared[record_id] = record = Map()
            for name, value in values.items():
                _assign(record, name, spec.fields[name].kind, value)

    proposal = Proposal(b"", author_id=author_id, origin=origin, make=mutate)
    return service.write_one(datastore, proposal, authorize)


def delete_record(
    datastore: Datastore,
    table: str,
    record_id: str,
    *,
    author_id: int | None = None,
    origin: str = Origin.ADMIN,
) -> Outcome:
    _table_schema(datastore, table)

    def mutate(doc: Doc) -> None:
        doc.get(table, type=Map).pop(record_id, None)

    proposal = Proposal(b"", author_id=author_id, origin=origin, make=mutate)
    return service.write_one(datastore, proposal)
