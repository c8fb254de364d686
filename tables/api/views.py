"""The datastore endpoints. Each view is thin: REST framework has authenticated the request,
``DatastoreAccess`` has decided the role (``request.rtc_access``), the throttles have counted it;
the view validates its input with a serializer, performs it through ``tables.service``,
``tables.history`` or ``tables.undo``, and answers with a serializer.
"""

from __future__ import annotations

import json
from typing import Any

from django.db import IntegrityError
from django.db.models import F, Q
from django.urls import reverse
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from tables import history, service, undo
from tables.api import serializers as s
from tables.api.errors import (
    APIError,
    FiniteJSONRenderer,
    api_exception_handler,
    conflict,
    not_found,
    rejected_write,
)
from tables.api.parsers import JSONParser
from tables.api.permissions import DatastoreAccess
from tables.api.serializers import validated
from tables.conf import rtc_settings
from tables.creation import CreationRefused, check_create_datastore
from tables.models import Datastore, DatastoreRole, Origin, Role, TouchedRecord
from tables.permissions import Access, access_for
from tables.pruning import HistoryPruned
from tables.schema import FieldKind, TableSchema, get_schema
from tables.service import Proposal, Status

TAG = "datastores"


def error_responses(*codes: int) -> dict[int, Any]:
    """The error responses an operation may give (every one has the same body)."""
    return dict.fromkeys((*codes, 401, 403, 429), s.ErrorSerializer)


def next_page(request: Request, **params: Any) -> str:
    query = request.query_params.copy()
    for key, value in params.items():
        query[key] = str(value)
    return request.build_absolute_uri(f"{request.path}?{query.urlencode()}")


class DatastoreAPIView(APIView):
    permission_classes = [DatastoreAccess]
    renderer_classes = [FiniteJSONRenderer]
    parser_classes = [JSONParser]

    def get_exception_handler(self):
        return api_exception_handler

    @property
    def access(self) -> Access:
        return self.request.rtc_access

    @property
    def datastore(self) -> Datastore:
        return self.access.datastore


# --- Datastores -----------------------------------------------------------------------------


def readable_datastores(user) -> tuple[Any, Any]:
    """The datastores ``user`` may read, and their role on a datastore (tables.permissions)."""
    datastores = Datastore.objects.select_related("owner").order_by("name")
    if not user.is_authenticated:
        role = rtc_settings.ANONYMOUS_ROLE
        return datastores, lambda datastore: role
    if user.is_superuser:
        return datastores, lambda datastore: Role.OWNER
    granted = dict(DatastoreRole.objects.filter(user=user).values_list("datastore_id", "role"))
    datastores = datastores.filter(Q(owner=user) | Q(pk__in=list(granted)))

    def role(datastore: Datastore) -> str:
        return Role.OWNER if datastore.owner_id == user.pk else granted[datastore.pk]

    return datastores, role


class DatastoreListView(DatastoreAPIView):
    @extend_schema(
        operation_id="datastores_list",
        tags=[TAG],
        summary="The datastores you may read",
        parameters=[s.DatastoreListQuerySerializer],
        responses={200: s.DatastorePageSerializer, **error_responses(400)},
    )
    def get(self, request: Request) -> Response:
        query = validated(s.DatastoreListQuerySerializer, request.query_params)
        datastores, role = readable_datastores(request.user)
        if "after" in query:
            datastores = datastores.filter(name__gt=query["after"])
        page = list(datastores[: query["limit"] + 1])
        more = len(page) > query["limit"]
        page = page[: query["limit"]]
        context = {"roles": {datastore.pk: role(datastore) for datastore in page}}
        return Response(
            {
                "results": s.DatastoreSerializer(page, many=True, context=context).data,
                "next": next_page(request, after=page[-1].name) if more else None,
            }
        )

    @extend_schema(
        operation_id="datastores_create",
        tags=[TAG],
        summary="Create a datastore (you become its owner)",
        request=s.DatastoreCreateSerializer,
        responses={201: s.DatastoreDetailSerializer, **error_responses(400, 403, 409)},
    )
    def post(self, request: Request) -> Response:
        data = validated(s.DatastoreCreateSerializer, request.data)
        try:
            check_create_datastore(request.user, data["name"])
        except CreationRefused as error:
            raise APIError(status.HTTP_403_FORBIDDEN, error.code, str(error)) from None
        try:
            datastore = service.create_datastore(data["name"], data["schema"], owner=request.user)
        except (service.DatastoreExists, IntegrityError):
            raise conflict(
                "datastore-exists", f"a datastore named {data['name']!r} already exists"
            ) from None
        access = access_for(request.user, datastore)
        body = s.DatastoreDetailSerializer(
            datastore, context={"roles": {datastore.pk: access.role}, "access": access}
        ).data
        location = reverse("api:datastore-detail", kwargs={"name": datastore.name})
        return Response(body, status=status.HTTP_201_CREATED, headers={"Location": location})


class DatastoreDetailView(DatastoreAPIView):
    @extend_schema(
        operation_id="datastores_retrieve",
        tags=[TAG],
        summary="One datastore, with your role and the tables you may write",
        responses={200: s.DatastoreDetailSerializer, **error_responses(404)},
    )
    def get(self, request: Request, name: str) -> Response:
        context = {"roles": {self.datastore.pk: self.access.role}, "access": self.access}
        return Response(s.DatastoreDetailSerializer(self.datastore, context=context).data)


# --- State ----------------------------------------------------------------------------------


def at_serial(datastore: Datastore, serial: int) -> Any:
    """The document right after ``serial`` (time travel); 404 beyond the newest serial, 410
    behind the pruned history."""
    if serial > datastore.last_serial:
        raise not_found(
            "unknown-serial",
            f"no transaction {serial} yet; the newest is {datastore.last_serial}",
        )
    try:
        return history.doc_at(datastore, serial)
    except HistoryPruned as error:
        raise APIError(status.HTTP_410_GONE, error.code, str(error)) from None


class StateView(DatastoreAPIView):
    @extend_schema(
        operation_id="datastores_state",
        tags=[TAG],
        summary="The document as JSON, now or at a serial",
        parameters=[s.StateQuerySerializer],
        responses={200: s.StateSerializer, **error_responses(400, 404, 410)},
    )
    def get(self, request: Request, name: str) -> Response:
        query = validated(s.StateQuerySerializer, request.query_params)
        if "serial" in query:
            doc = at_serial(self.datastore, query["serial"])
            state, serial = get_schema(self.datastore.schema).to_python(doc), query["serial"]
        else:
            state, serial = service.live_python(self.datastore)
        return Response({"serial": serial, "state": state})


class EncodedStateView(DatastoreAPIView):
    @extend_schema(
        operation_id="datastores_state_yjs",
        tags=[TAG],
        summary="The document as one Yjs update (base64), now or at a serial",
        parameters=[s.StateQuerySerializer],
        responses={200: s.EncodedStateSerializer, **error_responses(400, 404, 410)},
    )
    def get(self, request: Request, name: str) -> Response:
        query = validated(s.StateQuerySerializer, request.query_params)
        if "serial" in query:
            state, serial = at_serial(self.datastore, query["serial"]).get_update(), query["serial"]
        else:
            state, serial = service.live_state(self.datastore)
        return Response(s.EncodedStateSerializer({"serial": serial, "state": state}).data)


# --- History --------------------------------------------------------------------------------


class HistoryView(DatastoreAPIView):
    @extend_schema(
        operation_id="datastores_history",
        tags=[TAG],
        summary="The transactions, oldest first, in pages (filters combine)",
        parameters=[s.HistoryQuerySerializer],
        responses={200: s.HistoryPageSerializer, **error_responses(400, 404)},
    )
    def get(self, request: Request, name: str) -> Response:
        query = validated(s.HistoryQuerySerializer, request.query_params)
        rows = history.transaction_rows(self.datastore, query["after_serial"]).order_by("serial")
        if "table" in query or "record" in query:
            touched = TouchedRecord.objects.filter(
                datastore_id__in=history.history_datastores(self.datastore)
            )
            if "table" in query:
                touched = touched.filter(table=query["table"])
            if "record" in query:
                touched = touched.filter(record_id=query["record"])
            rows = rows.filter(pk__in=touched.values("transaction_id"))
        if "author" in query:
            rows = rows.filter(author__username=query["author"])
        if "origin" in query:
            rows = rows.filter(origin=query["origin"])
        if "since" in query:
            rows = rows.filter(created_at__gte=query["since"])
        if "until" in query:
            rows = rows.filter(created_at__lte=query["until"])
        include_patch = query.get("include") == "patch"
        if not include_patch:
            rows = rows.defer("update")
        rows = rows.annotate(author_name=F("author__username"), reverts_serial=F("reverts__serial"))
        page = list(rows[: query["limit"] + 1])
        more = len(page) > query["limit"]
        page = page[: query["limit"]]
        context = {"include_patch": include_patch}
        return Response(
            {
                "results": s.HistoryItemSerializer(page, many=True, context=context).data,
                "next": next_page(request, after_serial=page[-1].serial) if more else None,
            }
        )


# --- Tables ---------------------------------------------------------------------------------

FILTER_HELP = (
    "Filters on the table's register and text fields, ?field=value (all must match). The "
    'value is read as a JSON literal when it is one (true, 3, null, "a"), else as a string.'
)


def parse_literal(raw: str) -> Any:
    try:
        return json.loads(raw)
    except ValueError:
        return raw


class TableAPIView(DatastoreAPIView):
    def table_schema(self, table: str) -> TableSchema:
        schema = get_schema(self.datastore.schema)
        if not isinstance(schema, TableSchema) or table not in schema.tables:
            raise not_found("unknown-table", f"{self.datastore.name!r} has no table {table!r}")
        return schema

    def records(self, table: str) -> tuple[dict[str, Any], int]:
        state, serial = service.live_python(self.datastore)
        return state.get(table) or {}, serial


class TableView(TableAPIView):
    @extend_schema(
        operation_id="datastores_table",
        tags=[TAG],
        summary="The records of a table, optionally filtered by field values",
        parameters=[
            OpenApiParameter(
                "filters",
                {"type": "object", "additionalProperties": {"type": "string"}},
                OpenApiParameter.QUERY,
                style="form",
                explode=True,
                description=FILTER_HELP,
            )
        ],
        responses={200: s.TableSerializer, **error_responses(400, 404)},
    )
    def get(self, request: Request, name: str, table: str) -> Response:
        spec = self.table_schema(table).tables[table]
        wanted: dict[str, Any] = {}
        problems: dict[str, list[str]] = {}
        for field, values in request.query_params.lists():
            raw = values[-1]
            kind = spec.fields[field].kind if field in spec.fields else None
            if len(values) > 1:
                problems[field] = [s.ONCE]
            elif kind is None:
                problems[field] = [f"Not a field of table {table!r}."]
            elif kind not in (FieldKind.REGISTER, FieldKind.TEXT):
                problems[field] = [f"A {kind} field cannot be filtered on."]
            else:
                wanted[field] = (raw, raw if kind is FieldKind.TEXT else parse_literal(raw))
        if problems:
            raise serializers.ValidationError(problems)
        records, serial = self.records(table)
        matching = {
            record_id: fields
            for record_id, fields in records.items()
            if all(_matches(fields, field, *values) for field, values in wanted.items())
        }
        return Response({"serial": serial, "table": table, "records": matching})


def _matches(fields: Any, field: str, raw: str, value: Any) -> bool:
    """The field equals the JSON literal, or the string as written (?n=3 matches 3 and "3")."""
    if not isinstance(fields, dict) or field not in fields:
        return False
    actual = fields[field]
    if actual == raw:
        return True
    # JSON has one number type: 3 matches 3.0 (Yjs numbers arrive as floats); true is not 1.
    if isinstance(actual, bool) or isinstance(value, bool):
        return type(actual) is type(value) and actual == value
    return actual == value


class RecordView(TableAPIView):
    @extend_schema(
        operation_id="datastores_record",
        tags=[TAG],
        summary="One record of a table",
        responses={200: s.RecordSerializer, **error_responses(404)},
    )
    def get(self, request: Request, name: str, table: str, record_id: str) -> Response:
        self.table_schema(table)
        records, serial = self.records(table)
        fields = records.get(record_id)
        if not isinstance(fields, dict):
            raise not_found("unknown-record", f"table {table!r} has no record {record_id!r}")
        return Response({"serial": serial, "table": table, "id": record_id, "fields": fields})


# --- Writes ---------------------------------------------------------------------------------


class TransactionsView(DatastoreAPIView):
    @extend_schema(
        operation_id="datastores_transactions_create",
        tags=[TAG],
        summary="Apply a Yjs update through the write path",
        description=(
            "201 when stored; 200 when the id was stored before (duplicate, with its serial) or "
            "when the update changed nothing (noop). Refusals: 400 schema-violation, "
            "malformed-update, missing-dependencies, too-large, too-deep, bad-text; "
            "403 permission-denied."
        ),
        request=s.TransactionSerializer,
        responses={
            201: s.TransactionResultSerializer,
            200: s.TransactionResultSerializer,
            **error_responses(400, 404),
        },
    )
    def post(self, request: Request, name: str) -> Response:
        data = validated(s.TransactionSerializer, request.data)
        proposal = Proposal(
            data["patch"],
            txid=data.get("id", ""),
            store_id=data["store_id"],
            author_id=self.access.user_id,
            origin=Origin.REST,
        )
        outcome = service.write_one(self.datastore, proposal, self.access.authorizer())
        if outcome.status is Status.REJECTED:
            raise rejected_write(outcome.error_code, outcome.error)
        code = status.HTTP_201_CREATED if outcome.status is Status.STORED else status.HTTP_200_OK
        body = {"id": outcome.txid, "serial": outcome.serial, "status": str(outcome.status)}
        return Response(s.TransactionResultSerializer(body).data, status=code)


class RevertView(DatastoreAPIView):
    """Undo or redo: with a serial that transaction, else your own last one."""

    kind = "undo"

    def post(self, request: Request, name: str) -> Response:
        serial = validated(s.RevertSerializer, request.data).get("serial")
        author, authorize = self.access.user_id, self.access.authorizer()
        try:
            outcome = undo.undo_or_redo(
                self.datastore, self.kind, serial, author_id=author, authorize=authorize
            )
        except (undo.NothingToUndo, undo.UndoUnsupported) as error:
            raise rejected_write(error.code, str(error)) from None
        if outcome.status is not Status.STORED:
            raise rejected_write(outcome.error_code or undo.NothingToUndo.code, outcome.error)
        reverts = history.reverted_serial(outcome.transaction_pk)
        body = {"serial": outcome.serial, "reverts": reverts, "status": str(outcome.status)}
        return Response(s.RevertResultSerializer(body).data, status=status.HTTP_201_CREATED)


REVERT_HELP = (
    "Without a serial: your own last change (undo) or last undone change (redo). 409 "
    "nothing-to-undo when there is none; 400 undo-unsupported for freeform datastores; 403 "
    "permission-denied when the revert would write tables you may not write."
)


class UndoView(RevertView):
    kind = "undo"

    @extend_schema(
        operation_id="datastores_undo",
        tags=[TAG],
        summary="Undo a transaction (keeping everyone else's later changes)",
        description=REVERT_HELP,
        request=s.RevertSerializer,
        responses={201: s.RevertResultSerializer, **error_responses(400, 404, 409)},
    )
    def post(self, request: Request, name: str) -> Response:
        return super().post(request, name)


class RedoView(RevertView):
    kind = "redo"

    @extend_schema(
        operation_id="datastores_redo",
        tags=[TAG],
        summary="Redo an undone transaction",
        description=REVERT_HELP,
        request=s.RevertSerializer,
        responses={201: s.RevertResultSerializer, **error_responses(400, 404, 409)},
    )
    def post(self, request: Request, name: str) -> Response:
        return super().post(request, name)
