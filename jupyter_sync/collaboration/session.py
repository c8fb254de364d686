"""``PUT /api/collaboration/session/<path>``: jupyter-collaboration's document session.

JupyterLab's collaboration front end (``@jupyter/docprovider``, ``requestDocSession``) sends
``{"format", "type"}`` for a path (URL-encoded) and expects ``{"format", "type", "fileId",
"sessionId"}``: 201 the first time the path is seen, 200 after, 404 when the file does not exist;
then it joins the room ``<format>:<type>:<fileId>`` (``jupyter_sync.collaboration.room``).
jupyter-collaboration only indexes the file here and loads it when the room opens; this server
opens the document here (the supernode reads the file), so that a missing file or a refused
write is reported to this request, and waits for it (``RTC_API_ACTION_TIMEOUT``; past it 504,
since the front end would take a 202 for a session and join a room that is not there yet).
Errors carry ``message`` too (as every Jupyter endpoint's), where the front end reads it. A
viewer may join a document that is open already, but not open one (opening is a write, refused
by the write path's hook).
"""

from __future__ import annotations

from typing import Any

from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import status
from rest_framework.request import Request
from rest_framework.response import Response

from jupyter_sync.api import document_serializers as s
from jupyter_sync.api.base import JupyterAccess, Pending
from jupyter_sync.api.document_views import DocumentsView, failure, request_done
from jupyter_sync.api.serializers import JupyterErrorSerializer
from jupyter_sync.collaboration import document_records
from jupyter_sync.collaboration.room import document_session
from jupyter_sync.records import RecordWriteRejected
from tables.api.errors import APIError, rejected_write
from tables.api.serializers import validated
from tables.permissions import Access


class JoinAccess(JupyterAccess):
    """A role on the jupyter datastore, any role (``base.JupyterAccess`` refuses viewers every
    write): whether the caller may open the document is the write path's decision
    (``Access.authorizer()``), so a viewer joins open documents only."""

    def allows(self, request, access: Access) -> bool:
        return True


def session_errors(*codes: int) -> dict[int, Any]:
    return dict.fromkeys((*codes, 401, 403, 404, 429), JupyterErrorSerializer)


def timed_out(path: str) -> APIError:
    return APIError(
        status.HTTP_504_GATEWAY_TIMEOUT,
        "timeout",
        f"the supernode has not opened {path} yet; try again",
    )


class CollaborationSessionView(DocumentsView):
    permission_classes = [JoinAccess]

    @extend_schema(
        operation_id="collaboration_session",
        tags=["collaboration"],
        summary="jupyter-collaboration's document session: open a file, get its room",
        description=(
            "201 when the path had no document yet, 200 after. 404 no-such-file; 400 invalid "
            "(a path outside the root, a format that does not fit the type) or request-failed; "
            "403 permission-denied (a viewer, for a document that is not open); 503 "
            "supernode-unavailable (nothing is written); 504 timeout when the supernode has not "
            "opened the file within RTC_API_ACTION_TIMEOUT."
        ),
        parameters=[
            OpenApiParameter(
                "path",
                str,
                OpenApiParameter.PATH,
                description="The file, relative to the Jupyter Server's root (URL-encoded).",
            )
        ],
        request=s.CollaborationSessionRequestSerializer,
        responses={
            201: s.CollaborationSessionSerializer,
            200: s.CollaborationSessionSerializer,
            **session_errors(400, 503, 504),
        },
    )
    def put(self, request: Request, path: str) -> Response:
        data = validated(s.CollaborationSessionRequestSerializer, request.data)
        path = validated(s.RenameSerializer, {"new_path": path})["new_path"]
        self.require_supernode()
        try:
            opened = document_records.open_document(
                self.access, path, data["type"], self.username(), data["format"]
            )
        except RecordWriteRejected as error:
            raise rejected_write(error.code, error.detail) from None
        if not opened.requested:
            return self.session(opened.document_id, data, created=opened.created)
        return self.pending(
            "documents",
            opened.document_id,
            request_done,
            lambda _record: self.session(opened.document_id, data, created=opened.created),
            url="",
            body={"fileId": opened.document_id, "path": path},
        )

    async def _wait(self, pending: Pending, accepted: Response):
        """The shared pipeline answers 202 past the timeout; a session is not a 202 (the front
        end would join a room that is not there yet): 504."""
        response = await super()._wait(pending, accepted)
        if response is not accepted:
            return response
        failed = self.handle_exception(timed_out(accepted.data["path"]))
        return self.finalize_response(self.request, failed)

    def session(self, document_id: str, data: dict[str, Any], *, created: bool) -> Response:
        row = self.find(document_id)
        if row.request:
            raise timed_out(row.path)
        if row.status == "error":
            raise failure(row)
        if row.type and row.type != data["type"]:
            raise APIError(
                status.HTTP_400_BAD_REQUEST,
                "wrong-type",
                f"{row.path} is open as a {row.type}, not a {data['type']}",
            )
        datastore = document_records.document_datastore(row)
        if datastore is None:
            raise failure(row)
        body = {
            "format": data["format"],
            "type": data["type"],
            "fileId": row.record_id,
            "sessionId": document_session(datastore),
        }
        code = status.HTTP_201_CREATED if created else status.HTTP_200_OK
        return Response(s.CollaborationSessionSerializer(body).data, status=code)
