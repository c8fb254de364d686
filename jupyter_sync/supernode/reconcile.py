"""Make a table in a document equal to what the Jupyter Server says, changing only what differs.

Pure functions over pycrdt types: the supernode calls them inside one document transaction per
refresh, so a refresh that finds nothing new sends nothing, and one that finds a kernel gone
sends exactly that deletion.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pycrdt import Array, Map

from tables.schema import FieldKind, Table, jsonable


def _shared(kind: FieldKind, value: Any) -> Any:
    if kind is FieldKind.MAP:
        return Map(dict(value or {}))
    if kind is FieldKind.LIST:
        return Array(list(value or []))
    return value


def reconcile_record(record: Map, table: Table, wanted: Mapping[str, Any]) -> bool:
    """Set the fields of ``record`` that differ from ``wanted``; True when anything changed."""
    changed = False
    for name, value in wanted.items():
        spec = table.fields[name]
        if spec.kind is FieldKind.TEXT:
            raise ValueError(f"{table.name}.{name}: text is edited, not reconciled")
        if name in record and jsonable(record.get(name)) == jsonable(value):
            continue
        record[name] = _shared(spec.kind, value)
        changed = True
    return changed


def reconcile_table(
    records: Map, table: Table, wanted: Mapping[str, Mapping[str, Any]], *, prune: bool = True
) -> dict[str, list[str]]:
    """Make ``records`` hold exactly ``wanted`` (by record id); returns what was done."""
    done: dict[str, list[str]] = {"added": [], "changed": [], "removed": []}
    for record_id, fields in wanted.items():
        record = records.get(record_id)
        if not isinstance(record, Map):
            records[record_id] = Map(
                {name: _shared(table.fields[name].kind, value) for name, value in fields.items()}
            )
            done["added"].append(record_id)
        elif reconcile_record(record, table, fields):
            done["changed"].append(record_id)
    if prune:
        for record_id in [key for key in records if key not in wanted]:
            del records[record_id]
            done["removed"].append(record_id)
    return done
