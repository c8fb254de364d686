"""Reads on every request's way in, in SQL built from the models' own metadata.

Each REST request and each WebSocket connection looks up its token, the datastore it names and
the caller's role before anything else. Through the ORM each of those lookups cost ~0.3 ms of
building (query objects, filters, the compiler) on the development machine, about twenty times
what SQLite takes to run it. Here a lookup's statement is a string made once per model, columns
and database vendor; the row becomes a model instance through the same converters the ORM
applies (``from_db_value``, the backend's date and boolean conversions) and ``Model.from_db``,
so it is the instance the ORM would have returned.

Only equality (and ``IN`` for a list) on concrete fields by name (``pk`` too); a foreign key by
its name compares its column with a primary key value.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from functools import lru_cache
from typing import Any, TypeVar

from django.db import DEFAULT_DB_ALIAS, connections
from django.db.backends.base.base import BaseDatabaseWrapper
from django.db.models import Field, Model

M = TypeVar("M", bound=Model)

Converter = Callable[[Any, Any, BaseDatabaseWrapper], Any]


def _database() -> BaseDatabaseWrapper:
    return connections[DEFAULT_DB_ALIAS]


@lru_cache(maxsize=128)
def _select(
    vendor: str, model: type[Model], fields: tuple[str, ...], where: tuple[tuple[str, int], ...]
) -> tuple[str, tuple[Field, ...]]:
    """``SELECT`` of ``fields`` (empty: every concrete field) where each named field equals a
    value (count 0) or is in a list of ``count`` values; with the fields selected."""
    database = _database()
    quote = database.ops.quote_name
    meta = model._meta
    table = quote(meta.db_table)
    selected = (
        tuple(meta.concrete_fields) if not fields else tuple(meta.get_field(f) for f in fields)
    )
    conditions = []
    for name, count in where:
        column = f"{table}.{quote(meta.get_field(name).column)}"
        if count:
            conditions.append(f"{column} IN ({', '.join(['%s'] * count)})")
        else:
            conditions.append(f"{column} = %s")
    columns = ", ".join(f"{table}.{quote(field.column)}" for field in selected)
    return f"SELECT {columns} FROM {table} WHERE {' AND '.join(conditions)}", selected


@lru_cache(maxsize=128)
def _converters(
    vendor: str, model: type[Model], fields: tuple[Field, ...]
) -> tuple[tuple[Any, tuple[Converter, ...]], ...]:
    """Per selected field, its column expression and the converters the ORM's compiler runs on
    its values (the backend's, then the field's own)."""
    database = _database()
    found = []
    for field in fields:
        column = field.get_col(model._meta.db_table)
        converters = database.ops.get_db_converters(column) + column.get_db_converters(database)
        found.append((column, tuple(converters)))
    return tuple(found)


def _query(
    model: type[Model], fields: tuple[str, ...], where: dict[str, Any], limit: int | None
) -> tuple[list[tuple[Any, ...]], tuple[Field, ...]]:
    database = _database()
    if "pk" in where:
        where = {model._meta.pk.name if name == "pk" else name: v for name, v in where.items()}
    if any(isinstance(value, list | tuple) and not value for value in where.values()):
        return [], ()  # IN () matches nothing (and is not valid SQL)
    shape = []
    params: list[Any] = []
    for name, value in where.items():
        field = model._meta.get_field(name)
        if isinstance(value, list | tuple):
            shape.append((name, len(value)))
            params.extend(field.get_db_prep_value(item, database) for item in value)
        else:
            if value is None:
                raise ValueError(f"{name}: None is not a value to compare (IS NULL is not here)")
            shape.append((name, 0))
            params.append(field.get_db_prep_value(value, database))
    sql, selected = _select(database.vendor, model, fields, tuple(shape))
    if limit is not None:
        sql = f"{sql} LIMIT {int(limit)}"
    with database.cursor() as cursor:
        cursor.execute(sql, params)
        rows = cursor.fetchall()
    converters = _converters(database.vendor, model, selected)
    converted = []
    for row in rows:
        values = []
        for value, (column, functions) in zip(row, converters, strict=True):
            for convert in functions:
                value = convert(value, column, database)
            values.append(value)
        converted.append(tuple(values))
    return converted, selected


def fetch_one(model: type[M], **where: Any) -> M | None:
    """The row of ``model`` whose fields equal ``where`` (one, or the first the database
    returns), as the ORM's ``filter(**where).first()`` would give it but unordered; None if
    there is none."""
    rows, fields = _query(model, (), where, 1)
    if not rows:
        return None
    return model.from_db(_database().alias, [field.attname for field in fields], rows[0])


def fetch_all(model: type[M], **where: Any) -> list[M]:
    """The rows of ``model`` matching ``where`` (a list value: ``IN``), as instances, in no
    particular order."""
    rows, fields = _query(model, (), where, None)
    names = [field.attname for field in fields]
    alias = _database().alias
    return [model.from_db(alias, names, row) for row in rows]


def fetch_values(model: type[Model], fields: Sequence[str], **where: Any) -> list[tuple[Any, ...]]:
    """``fields`` of every row of ``model`` matching ``where`` (a list value: ``IN``), as
    ``filter(**where).values_list(*fields)`` would give them, in no particular order."""
    rows, _ = _query(model, tuple(fields), where, None)
    return rows
