"""The write path's statements, in SQL built from the models' own metadata.

Every commit locks the datastore's row, inserts its patches and the records they touched, and
updates the row's counters. Through the ORM, building those statements (query objects, filters,
compilers) cost Django several times what running them costs SQLite: most of a keystroke's
commit. Here each is a string made once per database vendor, with values prepared by the model
fields themselves (``get_db_prep_save``: JSON, binary and date columns as the backend wants them),
so a renamed column or changed field type still follows the models.

Backends: any whose features Django reports; ``RETURNING`` is used where the backend can return
rows from a multi-row insert (PostgreSQL, SQLite >= 3.35), else the new rows' ids are read back.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache, lru_cache
from typing import Any

from django.db import DEFAULT_DB_ALIAS, connections
from django.db.backends.base.base import BaseDatabaseWrapper
from django.db.models import Field, Model
from django.utils import timezone

from tables.models import Datastore, TouchedRecord, Transaction


def _database() -> BaseDatabaseWrapper:
    """This thread's connection, looked up once per statement: every attribute read through
    ``django.db.connection`` (a proxy) looks the connection up again, a few microseconds each."""
    return connections[DEFAULT_DB_ALIAS]


def _quote(name: str) -> str:
    return _database().ops.quote_name(name)


@lru_cache(maxsize=64)
def _fields(model: type[Model], names: tuple[str, ...]) -> tuple[Field, ...]:
    return tuple(model._meta.get_field(name) for name in names)


def columns(model: type[Model], names: tuple[str, ...]) -> str:
    """The quoted columns of ``model``'s fields ``names``, comma-separated: from the model's
    metadata, so a renamed column follows the model."""
    return ", ".join(_quote(field.column) for field in _fields(model, names))


# What a write reads under the lock (and may change): see service._lock.
LOCKED_FIELDS = (
    "last_serial",
    "size",
    "checkpoint_serial",
    "bytes_since_checkpoint",
    "history_start",
)

TRANSACTION_FIELDS = (
    "datastore",
    "serial",
    "txid",
    "store_id",
    "author",
    "origin",
    "update",
    "summary",
    "reverts",
    "created_at",
    "size",
)

TOUCHED_FIELDS = ("transaction", "datastore", "table", "record_id")


@cache
def _lock_sql(vendor: str, for_update: bool) -> str:
    meta = Datastore._meta
    selected = columns(Datastore, LOCKED_FIELDS)
    sql = f"SELECT {selected} FROM {_quote(meta.db_table)} WHERE {_quote(meta.pk.column)} = %s"
    return f"{sql} FOR UPDATE" if for_update else sql


def lock_datastore(pk: int) -> tuple[Any, ...] | None:
    """Lock a datastore's row (``SELECT ... FOR UPDATE`` where the backend has it; SQLite's
    ``BEGIN IMMEDIATE`` already holds the database's write lock) and read ``LOCKED_FIELDS``;
    None if the row is gone."""
    database = _database()
    sql = _lock_sql(database.vendor, database.features.has_select_for_update)
    with database.cursor() as cursor:
        cursor.execute(sql, [pk])
        return cursor.fetchone()


@lru_cache(maxsize=128)
def _insert_sql(
    vendor: str, model: type[Model], names: tuple[str, ...], rows: int, returning: bool
) -> str:
    one = "(" + ", ".join(["%s"] * len(names)) + ")"
    sql = (
        f"INSERT INTO {_quote(model._meta.db_table)} ({columns(model, names)}) VALUES "
        + ", ".join([one] * rows)
    )
    return f"{sql} RETURNING {_quote(model._meta.pk.column)}" if returning else sql


# Fields whose values of these exact Python types go to every backend as they are: preparing
# them through the field (``get_db_prep_save``: ``to_python``, validators' lookups, the backend's
# adapter) costs 2-3 us a value, about a tenth of a one-edit commit's inserts.
_PLAIN: dict[str, type] = {
    "AutoField": int,
    "BigAutoField": int,
    "IntegerField": int,
    "BigIntegerField": int,
    "PositiveIntegerField": int,
    "PositiveBigIntegerField": int,
    "SmallIntegerField": int,
    "CharField": str,
    "TextField": str,
}


@dataclass(frozen=True, slots=True)
class Prepared:
    """A value already prepared for the database (shared by a batch's rows)."""

    value: Any


@lru_cache(maxsize=64)
def _plain_types(model: type[Model], names: tuple[str, ...]) -> tuple[type | None, ...]:
    """Per field, the type whose values need no preparing (None: always prepare). A foreign key
    is its target's column."""
    kinds = []
    for field in _fields(model, names):
        target = field.target_field if field.is_relation else field
        kinds.append(_PLAIN.get(target.get_internal_type()))
    return tuple(kinds)


def _prepared(
    database: BaseDatabaseWrapper,
    model: type[Model],
    names: tuple[str, ...],
    rows: Sequence[Sequence[Any]],
) -> list:
    fields = _fields(model, names)
    plain = _plain_types(model, names)
    return [
        value
        if value is None or type(value) is kind
        else value.value
        if type(value) is Prepared
        else field.get_db_prep_save(value, database)
        for row in rows
        for field, kind, value in zip(fields, plain, row, strict=True)
    ]


def _chunks(
    database: BaseDatabaseWrapper,
    model: type[Model],
    names: tuple[str, ...],
    rows: Sequence[Any],
) -> list[Sequence[Any]]:
    size = database.ops.bulk_batch_size(_fields(model, names), rows) or len(rows)
    return [rows[start : start + size] for start in range(0, len(rows), size)]


def insert_transactions(datastore_pk: int, rows: Sequence[dict[str, Any]]) -> list[int]:
    """Insert patch rows (dicts of ``TRANSACTION_FIELDS`` but ``datastore`` and ``created_at``)
    in one statement per chunk; returns their ids, in order."""
    database = _database()
    # Prepared once for the batch (a datetime is the costliest value to prepare).
    now = Prepared(
        Transaction._meta.get_field("created_at").get_db_prep_save(timezone.now(), database)
    )
    values = [
        [datastore_pk, *(row[name] for name in TRANSACTION_FIELDS[1:-2]), now, row["size"]]
        for row in rows
    ]
    returning = database.features.can_return_rows_from_bulk_insert
    ids: list[int] = []
    with database.cursor() as cursor:
        for chunk in _chunks(database, Transaction, TRANSACTION_FIELDS, values):
            sql = _insert_sql(
                database.vendor, Transaction, TRANSACTION_FIELDS, len(chunk), returning
            )
            cursor.execute(sql, _prepared(database, Transaction, TRANSACTION_FIELDS, chunk))
            if returning:
                ids.extend(pk for (pk,) in cursor.fetchall())
    if returning:
        return ids
    by_serial = dict(
        Transaction.objects.filter(
            datastore_id=datastore_pk, serial__in=[row["serial"] for row in rows]
        )
        .order_by()
        .values_list("serial", "pk")
    )
    return [by_serial[row["serial"]] for row in rows]


def insert_touched(rows: Sequence[tuple[int, int, str, str]]) -> None:
    """Insert touched-record rows: (transaction id, datastore id, table, record id)."""
    database = _database()
    with database.cursor() as cursor:
        for chunk in _chunks(database, TouchedRecord, TOUCHED_FIELDS, rows):
            sql = _insert_sql(database.vendor, TouchedRecord, TOUCHED_FIELDS, len(chunk), False)
            cursor.execute(sql, _prepared(database, TouchedRecord, TOUCHED_FIELDS, chunk))


@cache
def _update_sql(vendor: str, names: tuple[str, ...]) -> str:
    meta = Datastore._meta
    sets = ", ".join(f"{_quote(field.column)} = %s" for field in _fields(Datastore, names))
    return f"UPDATE {_quote(meta.db_table)} SET {sets} WHERE {_quote(meta.pk.column)} = %s"


def update_datastore(pk: int, changes: dict[str, Any]) -> None:
    """Set integer counters of a datastore's row (the row is locked: values, not expressions)."""
    database = _database()
    with database.cursor() as cursor:
        cursor.execute(_update_sql(database.vendor, tuple(changes)), [*changes.values(), pk])
