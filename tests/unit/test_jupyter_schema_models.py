"""The ``jupyter`` schema and its projection models agree: every column is a field of its table,
of a kind the column can hold; every field is a column, but for the few listed as kept only in
the datastore."""

import pytest
from django.apps import apps
from django.db import models

from jupyter_sync.schema import JUPYTER
from tables.projection import get_projector
from tables.schema import FieldKind

NOT_PROJECTED = {("status", "default_kernelspec")}
"""Fields read from the datastore only (no column)."""

COLUMN_TYPES = {
    "string": (models.CharField, models.TextField, models.DateTimeField),
    "integer": (models.IntegerField, models.BigIntegerField),
    "boolean": (models.BooleanField,),
    "object": (models.JSONField,),
}
NOT_NULL_FREE = (models.CharField, models.TextField)
"""Columns that hold a missing value as "" rather than NULL."""


def model_for(table: str) -> type[models.Model]:
    return get_projector(JUPYTER.name).models_by_table[table]


def columns(model: type[models.Model]) -> dict[str, models.Field]:
    skip = {"id", "datastore", "record_id"}
    return {f.name: f for f in model._meta.concrete_fields if f.name not in skip}


def test_every_table_has_a_model():
    assert set(get_projector(JUPYTER.name).models_by_table) == set(JUPYTER.tables)
    for table in JUPYTER.tables:
        assert apps.get_containing_app_config(model_for(table).__module__).label == "jupyter_sync"


@pytest.mark.parametrize("table", sorted(JUPYTER.tables))
def test_fields_and_columns_agree(table):
    fields = JUPYTER.tables[table].fields
    model = model_for(table)
    cols = columns(model)
    for name in cols:
        assert name in fields, f"{model.__name__}.{name}: no field {name!r} in table {table!r}"
    for name in fields:
        if (table, name) not in NOT_PROJECTED:
            assert name in cols, f"table {table!r}: field {name!r} has no {model.__name__} column"
    for name, column in cols.items():
        field = fields[name]
        where = f"table {table!r} field {name!r} -> {model.__name__}.{name}"
        if field.kind is FieldKind.TEXT:
            assert isinstance(column, models.TextField), f"{where}: a text needs a TextField"
        elif field.kind in (FieldKind.LIST, FieldKind.MAP):
            assert isinstance(column, models.JSONField), f"{where}: a {field.kind} needs JSON"
        else:
            allowed = COLUMN_TYPES[field.json_type]
            assert isinstance(column, allowed), (
                f"{where}: a {field.json_type} register cannot be a {type(column).__name__}"
            )
        if field.nullable and not isinstance(column, NOT_NULL_FREE):
            assert column.null, f"{where}: the field may be null, the column may not"
