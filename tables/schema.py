"""Schemas: what a datastore's document may contain, declared once in Python.

A schema says which root types a document has, checks the records a transaction touched, and
turns the CRDT events of a transaction into readable changes (for the history and the projection).

Table layout (``TableSchema``): each table is a root ``Map``; each record is a ``Map`` keyed by
record id; each field has a kind:

* ``register``: any JSON value (optionally of one JSON type), last writer wins;
* ``text``: a ``Text``;
* ``list``: an ``Array`` of JSON values;
* ``map``: a ``Map`` of JSON values.

Document layouts (notebooks, files) live in ``tables.layouts``. Apps register their schemas in
``AppConfig.ready()`` with ``register_schema``.
"""

from __future__ import annotations

import base64
import enum
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal

from pycrdt import Array, ArrayEvent, Doc, Map, MapEvent, Text, TextEvent
from pycrdt._base import BaseType


class SchemaViolation(Exception):
    """A transaction would leave the document in a shape its schema does not allow."""

    code = "schema-violation"

    def __init__(self, errors: Iterable[str]):
        self.errors = list(errors)
        super().__init__("; ".join(self.errors))


class FieldKind(enum.StrEnum):
    REGISTER = "register"
    TEXT = "text"
    LIST = "list"
    MAP = "map"


JSONType = Literal["string", "number", "integer", "boolean", "object", "array"]

_JSON_CHECKS: dict[str, Any] = {
    "string": lambda v: isinstance(v, str),
    "number": lambda v: isinstance(v, (int, float)) and not isinstance(v, bool),
    # Yjs numbers arrive as floats: 3.0 is an integer.
    "integer": lambda v: (
        (isinstance(v, int) and not isinstance(v, bool))
        or (isinstance(v, float) and v.is_integer())
    ),
    "boolean": lambda v: isinstance(v, bool),
    "object": lambda v: isinstance(v, dict),
    "array": lambda v: isinstance(v, list),
}

_SHARED_TYPE_NAMES = {Text: "text", Array: "list", Map: "map"}


def describe_value(value: Any) -> str:
    """A short name for the kind of a value, for error messages."""
    for shared, name in _SHARED_TYPE_NAMES.items():
        if isinstance(value, shared):
            return f"a shared {name}"
    if isinstance(value, BaseType):
        return f"a shared {type(value).__name__}"
    if value is None:
        return "null"
    if isinstance(value, list):
        return "a plain JSON list"
    if isinstance(value, dict):
        return "a plain JSON object"
    return type(value).__name__


def _non_finite(value: Any) -> bool:
    """NaN or an infinity somewhere in a value: numbers JSON (and the database) cannot hold."""
    if isinstance(value, float):
        return not math.isfinite(value)
    if isinstance(value, dict):
        return any(_non_finite(v) for v in value.values())
    if isinstance(value, list):
        return any(_non_finite(v) for v in value)
    return False


NON_FINITE = "a number JSON cannot hold (NaN or infinity)"


def _contains_shared(value: Any) -> bool:
    if isinstance(value, BaseType):
        return True
    if isinstance(value, dict):
        return any(_contains_shared(v) for v in value.values())
    if isinstance(value, list):
        return any(_contains_shared(v) for v in value)
    return False


@dataclass(frozen=True)
class Field:
    kind: FieldKind
    json_type: JSONType | None = None
    nullable: bool = True
    choices: tuple[Any, ...] | None = None
    doc: str = ""
    item_texts: tuple[str, ...] = ()
    """List fields: items may also be maps of JSON values whose keys named here hold a shared
    text (a stream's output grows in place: each write costs what it appends)."""

    def check(self, value: Any) -> str | None:
        """Return why ``value`` does not fit this field, or None when it does."""
        if self.kind is FieldKind.TEXT:
            if not isinstance(value, Text):
                return f"expected a shared text, got {describe_value(value)}"
            return None
        if self.kind is FieldKind.LIST:
            if not isinstance(value, Array):
                return f"expected a shared list, got {describe_value(value)}"
            return None
        if self.kind is FieldKind.MAP:
            if not isinstance(value, Map):
                return f"expected a shared map, got {describe_value(value)}"
            return None
        # Register: a plain JSON value.
        if _contains_shared(value):
            return f"expected a JSON value, got {describe_value(value)}"
        if _non_finite(value):
            return f"expected a JSON value, got {NON_FINITE}"
        if value is None:
            return None if self.nullable else "must not be null"
        if self.json_type and not _JSON_CHECKS[self.json_type](value):
            return f"expected {self.json_type}, got {describe_value(value)}"
        if self.choices is not None and value not in self.choices:
            return f"must be one of {list(self.choices)}, got {value!r}"
        return None

    def check_item(self, value: Any) -> str | None:
        """Items of list fields and values of map fields must be plain JSON (or, for a list
        with ``item_texts``, maps of JSON values with shared text under those keys)."""
        if self.item_texts and isinstance(value, Map):
            for key, entry in value.items():
                if key in self.item_texts and isinstance(entry, (Text, str)):
                    continue
                if _contains_shared(entry):
                    return f"item key {key!r}: expected a JSON value, got {describe_value(entry)}"
                if _non_finite(entry):
                    return f"item key {key!r}: expected a JSON value, got {NON_FINITE}"
            return None
        if _contains_shared(value):
            return f"items must be JSON values, got {describe_value(value)}"
        if _non_finite(value):
            return f"items must be JSON values, got {NON_FINITE}"
        return None

    def to_json(self) -> dict[str, Any]:
        exported: dict[str, Any] = {"kind": str(self.kind)}
        if self.json_type:
            exported["type"] = self.json_type
        if self.kind is FieldKind.REGISTER:
            exported["nullable"] = self.nullable
        if self.choices is not None:
            exported["choices"] = list(self.choices)
        if self.item_texts:
            exported["item_texts"] = list(self.item_texts)
        if self.doc:
            exported["doc"] = self.doc
        return exported


def register(
    json_type: JSONType | None = None,
    *,
    nullable: bool = True,
    choices: Iterable[Any] | None = None,
    doc: str = "",
) -> Field:
    return Field(
        FieldKind.REGISTER,
        json_type,
        nullable,
        tuple(choices) if choices is not None else None,
        doc,
    )


def text(doc: str = "") -> Field:
    return Field(FieldKind.TEXT, doc=doc)


def list_(doc: str = "", *, item_texts: Iterable[str] = ()) -> Field:
    return Field(FieldKind.LIST, doc=doc, item_texts=tuple(item_texts))


def map_(doc: str = "") -> Field:
    return Field(FieldKind.MAP, doc=doc)


WritePolicy = Literal["editors", "service"]


@dataclass(frozen=True)
class Table:
    name: str
    fields: Mapping[str, Field]
    writable_by: WritePolicy = "editors"
    doc: str = ""

    def to_json(self) -> dict[str, Any]:
        return {
            "fields": {name: f.to_json() for name, f in self.fields.items()},
            "writableBy": self.writable_by,
            "doc": self.doc,
        }


# --- Changes: what a transaction did, in readable form ------------------------------------


MAX_SAFE_INTEGER = 2**53 - 1
"""The largest integer a JavaScript number holds exactly."""


def jsonable(value: Any) -> Any:
    """A JSON-serialisable copy of a value found in a document or an event.

    Yjs keeps every JSON number as a double (pycrdt reads ``4`` back as ``4.0``), so a whole
    number comes out as an ``int``, as JavaScript's JSON.stringify writes it: ``execution_count``,
    ``nbformat`` and any integer a client stored stay integers. Every read of a value out of a
    document goes through here.
    """
    if isinstance(value, float):
        if value.is_integer() and abs(value) <= MAX_SAFE_INTEGER:
            return int(value)
        return value
    if isinstance(value, BaseType):
        try:
            return jsonable(value.to_py())
        except Exception:  # a deleted shared type can no longer be read
            return None
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    if isinstance(value, bytes):
        return {"base64": base64.b64encode(value).decode()}
    return value


SUMMARY_TEXT_LIMIT = 200


def clip(value: Any, limit: int = SUMMARY_TEXT_LIMIT) -> Any:
    """Shorten long strings inside a value: summaries are for reading, the update has it all.

    NaN and infinities (which a schema without checks lets through) become null, as in
    JavaScript's JSON.stringify: the summary is stored as JSON, which has no such numbers.
    """
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, str) and len(value) > limit:
        return f"{value[:limit]}… (+{len(value) - limit} chars)"
    if isinstance(value, dict):
        return {k: clip(v, limit) for k, v in value.items()}
    if isinstance(value, list):
        return [clip(v, limit) for v in value[:limit]] + (
            [f"… (+{len(value) - limit} items)"] if len(value) > limit else []
        )
    return value


@dataclass
class Change:
    """One leaf change of a transaction: a key of a map, or a span of a text or list."""

    root: str
    path: tuple[str | int, ...]
    kind: Literal["map", "text", "list"]
    key: str | None = None
    action: str | None = None  # map: add / update / delete
    old: Any = None
    new: Any = None
    inserted: list[tuple[int, Any]] = field(default_factory=list)
    deleted: list[tuple[int, int]] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {"root": self.root, "path": list(self.path), "kind": self.kind}
        if self.kind == "map":
            data.update(key=self.key, action=self.action, old=clip(self.old), new=clip(self.new))
        else:
            data.update(
                inserted=[[i, clip(v)] for i, v in self.inserted],
                deleted=[[i, n] for i, n in self.deleted],
            )
        return data


def changes_from_events(root: str, events: Iterable[Any]) -> list[Change]:
    """Flatten pycrdt deep events of one root into ``Change`` rows."""
    changes: list[Change] = []
    for event in events:
        path = tuple(event.path)
        if isinstance(event, MapEvent):
            for key, info in event.keys.items():
                changes.append(
                    Change(
                        root,
                        path,
                        "map",
                        key=key,
                        action=info.get("action"),
                        old=jsonable(info.get("oldValue")),
                        new=jsonable(info.get("newValue")),
                    )
                )
        elif isinstance(event, (TextEvent, ArrayEvent)):
            change = Change(root, path, "text" if isinstance(event, TextEvent) else "list")
            index = 0
            for op in event.delta:
                if "retain" in op:
                    index += op["retain"]
                elif "insert" in op:
                    inserted = op["insert"]
                    change.inserted.append((index, jsonable(inserted)))
                    index += len(inserted)
                elif "delete" in op:
                    change.deleted.append((index, op["delete"]))
            changes.append(change)
    return changes


@dataclass
class Analysis:
    """What one transaction touched, as the schema sees it."""

    changes: list[Change] = field(default_factory=list)
    # (table, record id) pairs; for document layouts the "table" is a root such as "cells".
    touched: set[tuple[str, str]] = field(default_factory=set)
    errors: list[str] = field(default_factory=list)

    @property
    def tables(self) -> set[str]:
        return {table for table, _ in self.touched}


# --- Schemas --------------------------------------------------------------------------------


class Schema:
    """Base class: the layout of a document and the checks on its transactions."""

    name: str = ""
    doc: str = ""
    validates: ClassVar[bool] = True

    def root_types(self) -> dict[str, type[BaseType]]:
        """Root name -> shared type, created when a document is loaded."""
        raise NotImplementedError

    def analyze(self, doc: Doc, events: Mapping[str, list[Any]], new_roots: set[str]) -> Analysis:
        """Turn the deep events of one transaction into changes, touched records and errors."""
        raise NotImplementedError

    def to_python(self, doc: Doc) -> dict[str, Any]:
        """The whole document as plain JSON."""
        return {
            name: jsonable(doc.get(name, type=kind)) for name, kind in self.root_types().items()
        }

    def table_policy(self, table: str) -> WritePolicy:
        return "editors"

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "doc": self.doc,
            "layout": "custom",
            "roots": {name: kind.__name__ for name, kind in self.root_types().items()},
        }


class TableSchema(Schema):
    """Tables of records with typed fields (the layout of app and Jupyter datastores)."""

    def __init__(self, name: str, tables: Iterable[Table], doc: str = ""):
        self.name = name
        self.doc = doc
        self.tables: dict[str, Table] = {table.name: table for table in tables}

    def root_types(self) -> dict[str, type[BaseType]]:
        return {name: Map for name in self.tables}

    def table_policy(self, table: str) -> WritePolicy:
        return self.tables[table].writable_by if table in self.tables else "editors"

    def analyze(self, doc: Doc, events: Mapping[str, list[Any]], new_roots: set[str]) -> Analysis:
        analysis = Analysis()
        for root in sorted(new_roots):
            analysis.errors.append(f"unknown table {root!r}")
        # Fields whose value was (re)assigned, per record (None: the whole record is new).
        assigned: dict[tuple[str, str], set[str] | None] = {}
        for table_name, table_events in events.items():
            for change in changes_from_events(table_name, table_events):
                analysis.changes.append(change)
                record_id = change.key if not change.path else str(change.path[0])
                if record_id is not None:
                    analysis.touched.add((table_name, record_id))
            for event in table_events:
                analysis.errors.extend(self._note_event(table_name, event, assigned))
        for table_name, record_id in sorted(analysis.touched):
            fields = assigned.get((table_name, record_id), set())
            analysis.errors.extend(self.check_record(doc, table_name, record_id, fields))
        return analysis

    def _note_event(
        self, table_name: str, event: Any, assigned: dict[tuple[str, str], set[str] | None]
    ) -> list[str]:
        """Record what an event (re)assigned; check the items an event inserted into a list or
        map field, so that editing a long list does not re-check all of it."""
        path = event.path
        if not path:  # records added or replaced
            for key, info in event.keys.items():
                if info.get("action") in ("add", "update"):
                    assigned[(table_name, key)] = None
            return []
        record_id = str(path[0])
        if len(path) == 1:  # fields set
            fields = assigned.setdefault((table_name, record_id), set())
            if fields is not None:
                fields.update(
                    key for key, info in event.keys.items() if info.get("action") != "delete"
                )
            return []
        where = f"{table_name}[{record_id!r}].{path[1]}"
        spec = self.tables[table_name].fields.get(str(path[1]))
        if spec is not None and spec.item_texts and len(path) > 2:
            # Inside an item of a list with texts: an item's keys set, or its text edited.
            if len(path) == 3 and isinstance(event, MapEvent):
                for key, info in event.keys.items():
                    value = info.get("newValue")
                    if info.get("action") == "delete" or (
                        key in spec.item_texts and isinstance(value, (Text, str))
                    ):
                        continue
                    if isinstance(value, BaseType) or spec.check_item(value):
                        return [f"{where}[{path[2]}].{key}: expected a JSON value"]
                return []
            if len(path) == 4 and str(path[3]) in spec.item_texts:
                return []
            return [f"{where}: only the {list(spec.item_texts)} of an item may be shared text"]
        if len(path) > 2:
            return [f"{where}: items must be JSON values, not shared types"]
        if isinstance(event, ArrayEvent):
            values = [v for op in event.delta if "insert" in op for v in op["insert"]]
        elif isinstance(event, MapEvent):
            values = [info.get("newValue") for info in event.keys.values()]
        else:
            values = []
        if spec is not None and spec.item_texts:
            problem = next(filter(None, (spec.check_item(v) for v in values)), None)
            return [f"{where}: {problem}"] if problem else []
        if any(_contains_shared(value) for value in values):
            return [f"{where}: items must be JSON values, got a shared type"]
        if any(_non_finite(value) for value in values):
            return [f"{where}: items must be JSON values, got {NON_FINITE}"]
        return []

    def check_record(
        self, doc: Doc, table_name: str, record_id: str, deep: set[str] | None = None
    ) -> list[str]:
        """Check a record's fields; the items of list and map fields only for the fields in
        ``deep`` (None: all), since inserted items are checked from the events."""
        table = self.tables[table_name]
        record = doc.get(table_name, type=Map).get(record_id)
        where = f"{table_name}[{record_id!r}]"
        if record is None:
            return []  # deleted
        if not isinstance(record, Map):
            return [f"{where}: a record must be a map, got {describe_value(record)}"]
        errors = []
        for key, value in record.items():
            spec = table.fields.get(key)
            if spec is None:
                errors.append(f"{where}: unknown field {key!r} in table {table_name!r}")
                continue
            problem = spec.check(value)
            if problem is None and (deep is None or key in deep):
                if spec.kind is FieldKind.LIST:
                    problem = next(filter(None, (spec.check_item(v) for v in value)), None)
                elif spec.kind is FieldKind.MAP:
                    items = value.values()
                    problem = next(filter(None, (spec.check_item(v) for v in items)), None)
            if problem:
                errors.append(f"{where}.{key}: {problem}")
        return errors

    def records(self, doc: Doc, table_name: str) -> dict[str, dict[str, Any]]:
        """All records of a table as plain JSON, keyed by record id."""
        return jsonable(doc.get(table_name, type=Map))

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "doc": self.doc,
            "layout": "tables",
            "tables": {name: table.to_json() for name, table in self.tables.items()},
        }


class FreeformSchema(Schema):
    """No validation: any Yjs document (opt-in per datastore, for generic Yjs apps)."""

    name = "freeform"
    doc = "Any Yjs document; nothing is validated and changes are not itemised."
    validates = False

    def root_types(self) -> dict[str, type[BaseType]]:
        return {}

    def analyze(self, doc: Doc, events: Mapping[str, list[Any]], new_roots: set[str]) -> Analysis:
        return Analysis()

    def to_python(self, doc: Doc) -> dict[str, Any]:
        # Roots of unknown type cannot be read without guessing; report what is typed.
        return {name: jsonable(value) for name, value in doc.items() if value is not None}

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "doc": self.doc, "layout": "freeform"}


# --- Registry -------------------------------------------------------------------------------

_registry: dict[str, Schema] = {}


class UnknownSchema(LookupError):
    pass


def register_schema(schema: Schema) -> Schema:
    existing = _registry.get(schema.name)
    if existing is not None and existing is not schema:
        raise ValueError(f"a schema named {schema.name!r} is already registered")
    _registry[schema.name] = schema
    return schema


def get_schema(name: str) -> Schema:
    try:
        return _registry[name]
    except KeyError:
        known = ", ".join(sorted(_registry))
        raise UnknownSchema(f"unknown schema {name!r} (known: {known})") from None


def all_schemas() -> dict[str, Schema]:
    return dict(sorted(_registry.items()))


register_schema(FreeformSchema())
