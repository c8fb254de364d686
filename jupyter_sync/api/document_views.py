"""``/api/documents``: open files as collaborative documents, and ask for work on them.

``POST /api/documents/<id>/undo`` and ``/redo`` are this server's per-author undo
(``tables.undo``) on the document's datastore: the caller's own last change is reverted by a new
transaction that keeps everyone else's edits, also those made since. Not a JupyterLab route:
JupyterLab's Ctrl+Z is the Yjs undo manager in the browser, and the bridge does not forward this.

Opening writes (or reuses) a ``documents`` record of the jupyter datastore with ``request:
open`` (``jupyter_sync.collaboration.document_records``); the supernode opens the file into
the document's datastore and clears the request. The view waits for that through the Jupyter
endpoints' pipeline (``base.JupyterView.pending``: asynchronously, at most
``RTC_API_ACTION_TIMEOUT``), then answers with where to edit the document, or 202 with the
document's URL while the supernode is still at it. Requests (save, reload, rename, close,
delete) go the same way. With no supernode connected nothing is written and the answer is 503.
"""

from __future__ import annotations

from typing import Any

from django.urls import reverse
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import status
from rest_framework.request import Request
from rest_framework.response import Response

from jupyter_sync.api import document_serializers as s
from jupyter_sync.api.base import JupyterView
from jupyter_sync.api.serializers import JupyterErrorSerializer
from jupyter_sync.collaboration import document_records
from jupyter_sync.collaboration.room import document_session, room_name
from jupyter_sync.document_ids import DocumentIdError, parse_document_id
from jupyter_sync.models import Document
from jupyter_sync.records import RecordWriteRejected
from tables import history, undo
from tables.api.errors import APIError, conflict, not_found, rejected_write
from tables.api.serializers import RevertResultSerializer, validated
from tables.permissions import access_for
from tables.service import Status

TAG = "documents"
STILL_WORKING = OpenApiResponse(
    s.DocumentSerializer,
    description="The supernode is still working (RTC_API_ACTION_TIMEOUT passed): the document "
    "as it stands; Location gives its URL.",
)


def error_responses(*codes: int) -> dict[int, Any]:
    return dict.fromkeys((*codes, 401, 403, 404, 429), JupyterErrorSerializer)


def request_done(record: dict[str, Any] | None) -> bool:
    """The supernode has carried out the record's request (or the record is gone)."""
    return record is None or not record.get("request")


def unknown_document(document_id: str) -> APIError:
    return not_found("unknown-document", f"no document with id {document_id!r}")


def document_url(request: Request, document_id: str) -> str:
    return request.build_absolute_uri(
        reverse("documents:document-detail", kwargs={"document_id": document_id})
    )


def represent(request: Request, row: Document) -> dict[str, Any]:
    """A document as the API shows it, with its WebSocket URLs once it has a datastore."""
    datastore = document_records.document_datastore(row)
    sockets = session = None
    if datastore is not None:
        base = f"{'wss' if request.is_secure() else 'ws'}://{request.get_host()}"
        sockets = {
            "yjs": f"{base}/ws/yjs/{datastore.name}",
            "datastore": f"{base}/ws/datastores/{datastore.name}/",
            "collaboration": (
                f"{base}/api/collaboration/room/{room_name(row.type or 'file', row.record_id)}"
            ),
        }
        session = document_session(datastore)
    return {
        "record_id": row.record_id,
        "path": row.path,
        "type": row.type,
        "format": row.format,
        "status": row.status,
        "request": row.request,
        "error": row.error,
        "conflict": row.conflict,
        "last_saved": row.last_saved,
        "last_modified": row.last_modified,
        "datastore_name": datastore.name if datastore is not None else "",
        "url": document_url(request, row.record_id),
        "websockets": sockets,
        "session_id": session,
    }


def failure(row: Document) -> APIError:
    """The supernode could not carry the request out: why, as it said."""
    message = row.error or "the supernode reported an error"
    if row.error_status == status.HTTP_404_NOT_FOUND:
        return not_found("no-such-file", message)
    return APIError(status.HTTP_400_BAD_REQUEST, "request-failed", message)


class DocumentsView(JupyterView):
    """What the documents endpoints share: finding a document, asking and waiting."""

    def find(self, document_id: str) -> Document:
        row = document_records.find(self.datastore, document_id)
        if row is None:
            raise unknown_document(document_id)
        return row

    def resolve(self, given: str) -> str:
        """The record id a URL names, bare or as its room id (``jupyter_sync.document_ids``):
        400 bad-document-id or wrong-type, 404 unknown-document."""
        try:
            parsed = parse_document_id(given)
            parsed.check_type(self.find(parsed.id).type)
        except DocumentIdError as error:
            raise APIError(status.HTTP_400_BAD_REQUEST, error.code, str(error)) from None
        return parsed.id

    def answer(self, document_id: str, *, created: bool = False) -> Response:
        """The document once the supernode is done: 201/200, or the error it reported."""
        row = self.find(document_id)
        if row.status == "error" and not row.request:
            raise failure(row)
        body = s.DocumentSerializer(represent(self.request, row)).data
        if created:
            return Response(body, status=status.HTTP_201_CREATED, headers={"Location": body["url"]})
        return Response(body)

    def wait_then_answer(self, document_id: str, *, created: bool = False) -> Response:
        """202 now; within the timeout, ``answer`` once the request is carried out."""
        row = self.find(document_id)
        body = s.DocumentSerializer(represent(self.request, row)).data
        return self.pending(
            "documents",
            document_id,
            request_done,
            lambda _record: self.answer(document_id, created=created),
            url=body["url"],
            body=body,
        )


class DocumentListView(DocumentsView):
    @extend_schema(
        operation_id="documents_list",
        tags=[TAG],
        summary="The documents (open or not) of the jupyter datastore",
        parameters=[s.DocumentListQuerySerializer],
        responses={200: s.DocumentListSerializer, **error_responses(400)},
    )
    def get(self, request: Request) -> Response:
        query = validated(s.DocumentListQuerySerializer, request.query_params)
        rows = document_records.jupyter_records(self.datastore).order_by("record_id")
        if "path" in query:
            rows = rows.filter(path=query["path"])
        body = {"results": [represent(request, row) for row in rows]}
        return Response(s.DocumentListSerializer(body).data)

    @extend_schema(
        operation_id="documents_open",
        tags=[TAG],
        summary="Open a file as a collaborative document (and wait for the supernode)",
        description=(
            "Finds the document of this path, or creates one, and asks the supernode to open it. "
            "201: created and open; 200: it existed and is open; 202: the supernode is still "
            "opening it. 404 no-such-file; 400 invalid (a path outside the root) or "
            "request-failed (the supernode's reason); 503 supernode-unavailable (nothing is "
            "written)."
        ),
        request=s.OpenSerializer,
        responses={
            201: s.DocumentSerializer,
            200: s.DocumentSerializer,
            202: STILL_WORKING,
            **error_responses(400, 503),
        },
    )
    def post(self, request: Request) -> Response:
        data = validated(s.OpenSerializer, request.data)
        self.require_supernode()
        try:
            opened = document_records.open_document(
                self.access, data["path"], data["type"], self.username(), data["format"]
            )
        except RecordWriteRejected as error:
            raise rejected_write(error.code, error.detail) from None
        if not opened.requested:
            return self.answer(opened.document_id)
        return self.wait_then_answer(opened.document_id, created=opened.created)


class DocumentDetailView(DocumentsView):
    @extend_schema(
        operation_id="documents_retrieve",
        tags=[TAG],
        summary="One document: its status and where to edit it",
        responses={200: s.DocumentSerializer, **error_responses(400)},
    )
    def get(self, request: Request, document_id: str) -> Response:
        row = self.find(self.resolve(document_id))
        return Response(s.DocumentSerializer(represent(request, row)).data)


ACTION_HELP = (
    "Writes the request on the document and waits for the supernode. 200: done; 202: still "
    "under way; 409 busy: another request is pending; 400 request-failed / 404 no-such-file: "
    "the supernode's reason; 503 supernode-unavailable (nothing is written)."
)


class DocumentActionView(DocumentsView):
    """One request on a document (``action``, set per URL)."""

    action = ""
    body_serializer: type | None = None

    def post(self, request: Request, document_id: str) -> Response:
        new_path = None
        if self.body_serializer is not None:
            new_path = validated(self.body_serializer, request.data)["new_path"]
        document_id = self.resolve(document_id)
        row = self.find(document_id)
        self.require_supernode()
        try:
            document_records.ask(self.access, row, self.action, self.username(), new_path)
        except document_records.Busy as error:
            raise conflict("busy", str(error)) from None
        except RecordWriteRejected as error:
            raise rejected_write(error.code, error.detail) from None
        return self.wait_then_answer(document_id)


def _action_view(action: str, summary: str, body: type | None = None) -> type[DocumentActionView]:
    @extend_schema(
        operation_id=f"documents_{action}",
        tags=[TAG],
        summary=summary,
        description=ACTION_HELP,
        request=body,
        responses={200: s.DocumentSerializer, 202: STILL_WORKING, **error_responses(400, 409, 503)},
    )
    def post(self, request: Request, document_id: str) -> Response:
        return DocumentActionView.post(self, request, document_id)

    return type(
        f"Document{action.title()}View",
        (DocumentActionView,),
        {"action": action, "body_serializer": body, "post": post, "__module__": __name__},
    )


ACTION_VIEWS = {
    "save": _action_view("save", "Save the document to its file now (the document wins)"),
    "reload": _action_view("reload", "Load the file into the document now (the file wins)"),
    "rename": _action_view("rename", "Rename the file (the document follows)", s.RenameSerializer),
    "close": _action_view("close", "Save pending changes and stop following the file"),
    "delete": _action_view("delete", "Delete the file and close the document"),
}


REVERT_HELP = (
    "Reverts the caller's own last change to the document (undo), or their last undone one "
    "(redo), with one new transaction (origin undo or redo, by the caller) that keeps "
    "everyone else's edits, also those made since. The id is the record id or the room id "
    "(json:notebook:<fileId>). 409 nothing-to-undo when there is none, not-open when the "
    "document has no collaborative datastore; 403 for viewers; 404 unknown-document."
)


class DocumentRevertView(DocumentsView):
    """Per-author undo or redo (``kind``, set per URL) on one document's datastore."""

    kind = "undo"

    def post(self, request: Request, document_id: str) -> Response:
        row = self.find(self.resolve(document_id))
        datastore = document_records.document_datastore(row)
        if datastore is None:
            raise conflict("not-open", f"document {row.record_id!r} is not open here")
        access = access_for(request.user, datastore)
        if not access.can_write:
            raise APIError(
                status.HTTP_403_FORBIDDEN,
                "permission-denied",
                f"role {access.role or 'none'} may not change {row.record_id!r}",
            )
        try:
            outcome = undo.undo_or_redo(
                datastore,
                self.kind,
                None,
                author_id=access.user_id,
                authorize=access.authorizer(),
            )
        except (undo.NothingToUndo, undo.UndoUnsupported) as error:
            raise rejected_write(error.code, str(error)) from None
        if outcome.status is not Status.STORED:
            raise rejected_write(outcome.error_code or undo.NothingToUndo.code, outcome.error)
        body = {
            "serial": outcome.serial,
            "reverts": history.reverted_serial(outcome.transaction_pk),
            "status": str(outcome.status),
        }
        return Response(RevertResultSerializer(body).data, status=status.HTTP_201_CREATED)


def _revert_view(kind: str, summary: str) -> type[DocumentRevertView]:
    @extend_schema(
        operation_id=f"documents_{kind}",
        tags=[TAG],
        summary=summary,
        description=REVERT_HELP,
        request=None,
        responses={201: RevertResultSerializer, **error_responses(400, 409)},
    )
    def post(self, request: Request, document_id: str) -> Response:
        return DocumentRevertView.post(self, request, document_id)

    return type(
        f"Document{kind.title()}View",
        (DocumentRevertView,),
        {"kind": kind, "post": post, "__module__": __name__},
    )


REVERT_VIEWS = {
    "undo": _revert_view("undo", "Undo your own last change to the document (others' stay)"),
    "redo": _revert_view("redo", "Redo your own last undone change to the document"),
}
