"""What the REST API accepts and answers: request bodies and query strings are validated here
(bad input is a 400 with a message per field), responses are described here (and so in the
OpenAPI schema)."""

from __future__ import annotations

import base64
import binascii
import re
from typing import Any

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from tables.models import DATASTORE_NAME_PATTERN, Origin, Role, validate_datastore_name
from tables.schema import UnknownSchema, all_schemas, get_schema
from tables.service import Status

# The largest integer the databases store (BigIntegerField): larger ones are refused as input.
MAX_SERIAL = 2**63 - 1
MAX_PAGE = 1000


def _flat_errors(detail: Any, prefix: str = "") -> dict[str, list[str]]:
    """Nested serializer errors as ``{"kernel.name": [messages]}``: the error body's shape."""
    if isinstance(detail, dict):
        flat: dict[str, list[str]] = {}
        for key, value in detail.items():
            name = (
                key if not prefix else (prefix if key == "non_field_errors" else f"{prefix}.{key}")
            )
            flat.update(_flat_errors(value, name))
        return flat
    if isinstance(detail, list) and detail and not all(isinstance(i, str) for i in detail):
        flat = {}
        for item in detail:
            for key, value in _flat_errors(item, prefix).items():
                flat.setdefault(key, []).extend(value)
        return flat
    return {
        prefix or "non_field_errors": [str(item) for item in detail]
        if isinstance(detail, list)
        else [str(detail)]
    }


def validated(serializer_class: type[serializers.Serializer], data: Any) -> dict[str, Any]:
    """The serializer's validated data; its errors as a 400 with one message list per field."""
    serializer = serializer_class(data=data)
    if not serializer.is_valid():
        raise serializers.ValidationError(_flat_errors(serializer.errors))
    return serializer.validated_data


class StrictCharField(serializers.CharField):
    """A string, and only a string, taken as it is: REST framework would take 0 for "0" and
    strip spaces. Lone surrogates (which JSON's escapes can spell) are refused: no database
    stores them."""

    default_error_messages = {
        "not_a_string": "Not a string.",
        "surrogate": "Not valid Unicode (a lone surrogate).",
    }

    def __init__(self, **kwargs: Any):
        kwargs.setdefault("trim_whitespace", False)
        super().__init__(**kwargs)

    def to_internal_value(self, data: Any) -> str:
        if not isinstance(data, str):
            self.fail("not_a_string")
        try:
            data.encode()
        except UnicodeEncodeError:
            self.fail("surrogate")
        return super().to_internal_value(data)


def full_datastore_name(value: str) -> None:
    """The whole value must be a name (the model's check lets a trailing newline through)."""
    if not re.fullmatch(DATASTORE_NAME_PATTERN, value):
        raise serializers.ValidationError(validate_datastore_name.message)


ONCE = "Give this parameter once."


class QuerySerializer(serializers.Serializer):
    """A query string's parameters. Each may be given once (REST framework would take the last
    of several), and an empty value (``?until=``) is refused unless the field allows blanks
    (REST framework would take it as absent)."""

    def to_internal_value(self, data: Any) -> dict[str, Any]:
        problems: dict[str, list[str]] = {}
        for name, field in self.fields.items():
            values = data.getlist(name) if hasattr(data, "getlist") else [data.get(name)]
            if len(values) > 1:
                problems[name] = [ONCE]
            elif values[:1] == [""] and not getattr(field, "allow_blank", False):
                problems[name] = ["This field may not be blank."]
        if problems:
            raise serializers.ValidationError(problems)
        return super().to_internal_value(data)


@extend_schema_field({"type": "string", "format": "byte", "minLength": 1})
class Base64Field(StrictCharField):
    """Bytes as base64 text (standard alphabet, with padding)."""

    default_error_messages = {"invalid_base64": "Not valid base64 (standard alphabet, padded)."}

    def to_internal_value(self, data: Any) -> bytes:
        text = super().to_internal_value(data)
        try:
            return base64.b64decode(text, validate=True)
        except (binascii.Error, ValueError):
            self.fail("invalid_base64")

    def to_representation(self, value: Any) -> str:
        return base64.b64encode(bytes(value)).decode()


class ErrorSerializer(serializers.Serializer):
    """Every error: a stable code and a readable explanation."""

    code = serializers.CharField(help_text="e.g. invalid, not-found, permission-denied, throttled")
    detail = serializers.CharField()
    errors = serializers.DictField(
        child=serializers.ListField(child=serializers.CharField()),
        required=False,
        help_text="Validation errors (code invalid): field name -> messages.",
    )


# --- Datastores -----------------------------------------------------------------------------


class DatastoreSerializer(serializers.Serializer):
    name = serializers.CharField()
    schema = serializers.CharField()
    owner = serializers.CharField(source="owner.username", allow_null=True)
    last_serial = serializers.IntegerField(help_text="Serial of the newest transaction (0: none).")
    size = serializers.IntegerField(help_text="Bytes of patch history stored.")
    history_start = serializers.IntegerField(
        help_text="Patches up to this serial were pruned: the history and time travel start "
        "here (0: nothing pruned)."
    )
    created_at = serializers.DateTimeField()
    role = serializers.SerializerMethodField(help_text="Your role on this datastore.")

    @extend_schema_field(serializers.ChoiceField(choices=Role.choices))
    def get_role(self, datastore) -> str:
        return self.context["roles"][datastore.pk]


class DatastoreDetailSerializer(DatastoreSerializer):
    tables = serializers.SerializerMethodField(help_text="The schema's tables (if it has tables).")
    can_write = serializers.SerializerMethodField()
    read_only_tables = serializers.SerializerMethodField(
        help_text="Tables you may not write (server state, or all of them for a viewer)."
    )

    def get_tables(self, datastore) -> list[str]:
        try:
            return sorted(getattr(get_schema(datastore.schema), "tables", {}))
        except UnknownSchema:
            return []

    def get_can_write(self, datastore) -> bool:
        return self.context["access"].can_write

    def get_read_only_tables(self, datastore) -> list[str]:
        try:
            return self.context["access"].read_only_tables()
        except UnknownSchema:
            return []


class DatastoreCreateSerializer(serializers.Serializer):
    name = StrictCharField(
        max_length=100,
        validators=[validate_datastore_name, full_datastore_name],
        help_text="1-100 letters, digits, '.', '_' or '-', starting with a letter or digit.",
    )
    schema = serializers.ChoiceField(choices=[], help_text="A registered schema, e.g. todo.")

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        # The schemas registered now (apps register theirs when they are ready).
        self.fields["schema"].choices = list(all_schemas())
        known = ", ".join(all_schemas())
        self.fields["schema"].error_messages["invalid_choice"] = (
            f"Unknown schema {{input!r}} (known: {known})."
        )


class DatastoreListQuerySerializer(QuerySerializer):
    after = serializers.CharField(
        required=False,
        allow_blank=True,
        max_length=100,
        help_text="Page after this datastore name.",
    )
    limit = serializers.IntegerField(min_value=1, max_value=MAX_PAGE, default=100)


class DatastorePageSerializer(serializers.Serializer):
    results = DatastoreSerializer(many=True)
    next = serializers.URLField(allow_null=True, help_text="The next page, or null.")


# --- State ----------------------------------------------------------------------------------


class StateQuerySerializer(QuerySerializer):
    serial = serializers.IntegerField(
        required=False,
        min_value=0,
        max_value=MAX_SERIAL,
        help_text="Time travel: the document right after this transaction (default: now).",
    )


class StateSerializer(serializers.Serializer):
    serial = serializers.IntegerField()
    state = serializers.DictField(help_text="The document as JSON (its schema's to_python).")


class EncodedStateSerializer(serializers.Serializer):
    serial = serializers.IntegerField()
    state = Base64Field(help_text="The document as one Yjs update (v1 encoding), base64.")


# --- History --------------------------------------------------------------------------------


class HistoryQuerySerializer(QuerySerializer):
    after_serial = serializers.IntegerField(
        required=False, default=0, min_value=0, max_value=MAX_SERIAL, help_text="Page cursor."
    )
    limit = serializers.IntegerField(min_value=1, max_value=MAX_PAGE, default=100)
    table = serializers.CharField(required=False, allow_blank=True, max_length=100)
    record = serializers.CharField(
        required=False, allow_blank=True, max_length=200, help_text="A record id."
    )
    author = serializers.CharField(
        required=False, allow_blank=True, max_length=150, help_text="A username."
    )
    origin = serializers.ChoiceField(required=False, choices=Origin.choices)
    since = serializers.DateTimeField(required=False, help_text="Created at or after.")
    until = serializers.DateTimeField(required=False, help_text="Created at or before.")
    include = serializers.ChoiceField(
        required=False, choices=["patch"], help_text="patch: add each transaction's update."
    )


class HistoryItemSerializer(serializers.Serializer):
    serial = serializers.IntegerField()
    txid = serializers.CharField()
    store_id = serializers.CharField()
    author = serializers.CharField(source="author_name", allow_null=True)
    origin = serializers.ChoiceField(choices=Origin.choices)
    created_at = serializers.DateTimeField()
    size = serializers.IntegerField(help_text="Bytes of the stored update.")
    reverts = serializers.IntegerField(
        source="reverts_serial", allow_null=True, help_text="Undo/redo: the serial reverted."
    )
    summary = serializers.ListField(
        child=serializers.DictField(), help_text="What changed, path by path."
    )
    patch = Base64Field(
        source="update", required=False, help_text="The Yjs update (only with include=patch)."
    )

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        if self.context.get("include_patch") is False:  # (the schema shows it, optional)
            self.fields.pop("patch")


class HistoryPageSerializer(serializers.Serializer):
    results = HistoryItemSerializer(many=True)
    next = serializers.URLField(allow_null=True, help_text="The next page, or null.")


# --- Tables ---------------------------------------------------------------------------------


class TableSerializer(serializers.Serializer):
    serial = serializers.IntegerField()
    table = serializers.CharField()
    records = serializers.DictField(
        child=serializers.DictField(), help_text="Record id -> fields, the ones that match."
    )


class RecordSerializer(serializers.Serializer):
    serial = serializers.IntegerField()
    table = serializers.CharField()
    id = serializers.CharField()
    fields = serializers.DictField()


# --- Writes ---------------------------------------------------------------------------------


class TransactionSerializer(serializers.Serializer):
    patch = Base64Field(help_text="A Yjs update (v1 encoding), base64.")
    id = StrictCharField(
        required=False,
        max_length=100,
        help_text="Transaction id; a retry with the same id is stored once (default: new).",
    )
    store_id = StrictCharField(
        required=False, default="", allow_blank=True, max_length=100, help_text="Client id."
    )


class TransactionResultSerializer(serializers.Serializer):
    id = serializers.CharField(help_text="The transaction id.")
    serial = serializers.IntegerField(
        help_text="stored/duplicate: its serial; noop: the serial the document is at."
    )
    status = serializers.ChoiceField(
        choices=[Status.STORED.value, Status.DUPLICATE.value, Status.NOOP.value]
    )


class StrictIntegerField(serializers.IntegerField):
    """A JSON integer, and only that: REST framework would take 5.0, "5" and true."""

    default_error_messages = {"not_an_integer": "Not an integer."}

    def to_internal_value(self, data: Any) -> int:
        if isinstance(data, bool) or not isinstance(data, int):
            self.fail("not_an_integer")
        return super().to_internal_value(data)


class RevertSerializer(serializers.Serializer):
    serial = StrictIntegerField(
        required=False,
        allow_null=True,
        min_value=1,
        max_value=MAX_SERIAL,
        help_text="The transaction to undo (redo: to redo); default: your last one.",
    )


class RevertResultSerializer(serializers.Serializer):
    serial = serializers.IntegerField(help_text="The new transaction's serial.")
    reverts = serializers.IntegerField(help_text="The serial of the transaction it reverts.")
    status = serializers.ChoiceField(choices=[Status.STORED.value])
