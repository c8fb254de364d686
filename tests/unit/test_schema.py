"""Schemas: field checks, the JSON export for clients, the registry."""

from __future__ import annotations

import json
from io import StringIO

import pytest
from django.core.management import call_command
from pycrdt import Array, Doc, Map, Text

from tables.schema import (
    Field,
    FieldKind,
    SchemaViolation,
    TableSchema,
    UnknownSchema,
    all_schemas,
    get_schema,
    register,
    register_schema,
)


def shared(kind):
    doc = Doc()
    doc["x"] = value = kind()
    return value


@pytest.mark.parametrize(
    ("field", "value", "problem"),
    [
        (register(), {"any": ["json", 1]}, None),
        (register("boolean"), True, None),
        (register("boolean"), 1, "expected boolean, got int"),
        (register("integer"), 3.0, None),  # Yjs numbers arrive as floats
        (register("integer"), 3.5, "expected integer, got float"),
        (register("string", nullable=False), None, "must not be null"),
        (register("string", choices=("a", "b")), "c", "must be one of ['a', 'b'], got 'c'"),
        (Field(FieldKind.TEXT), "plain", "expected a shared text, got str"),
    ],
)
def test_register_and_text_checks(field, value, problem):
    assert field.check(value) == problem


@pytest.mark.parametrize("kind", [Text, Array, Map])
def test_shared_types_are_checked_by_kind(kind):
    value = shared(kind)
    for field_kind, expected in (
        (FieldKind.TEXT, Text),
        (FieldKind.LIST, Array),
        (FieldKind.MAP, Map),
    ):
        problem = Field(field_kind).check(value)
        assert (problem is None) == (kind is expected)
    assert "expected a JSON value" in register().check(value)


def test_every_shipped_schema_is_registered():
    assert {"jupyter", "notebook", "file", "freeform", "todo"} <= set(all_schemas())


def test_export_for_clients():
    exported = get_schema("todo").to_json()
    assert exported["layout"] == "tables"
    assert exported["tables"]["items"]["fields"] == {
        "title": {"kind": "text"},
        "done": {"kind": "register", "type": "boolean", "nullable": False},
    }
    jupyter = get_schema("jupyter").to_json()
    assert jupyter["tables"]["kernels"]["writableBy"] == "service"
    assert jupyter["tables"]["executions"]["writableBy"] == "editors"
    assert get_schema("notebook").to_json()["roots"] == {
        "cells": "Array",
        "meta": "Map",
        "state": "Map",
    }
    json.dumps([schema.to_json() for schema in all_schemas().values()])


def test_export_schema_command():
    out = StringIO()
    call_command("export_schema", "todo", stdout=out)
    assert (
        json.loads(out.getvalue())["todo"]["tables"]["lists"]["fields"]["items"]["kind"] == "list"
    )
    out = StringIO()
    call_command("export_schema", stdout=out)
    assert set(json.loads(out.getvalue())) == set(all_schemas())


def test_unknown_schema_and_name_clash():
    with pytest.raises(UnknownSchema, match="unknown schema 'nope'"):
        get_schema("nope")
    with pytest.raises(ValueError, match="already registered"):
        register_schema(TableSchema("todo", []))


def test_violation_lists_every_error():
    error = SchemaViolation(["a: bad", "b: worse"])
    assert str(error) == "a: bad; b: worse" and error.code == "schema-violation"
