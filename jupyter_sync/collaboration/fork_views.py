"""jupyter-collaboration's fork routes, ``/api/collaboration/fork/<id>`` (``collaboration.forks``
does the work):

- ``PUT fork/<room>`` (``<room>``: the document's room id, ``<format>:<type>:<fileId>``) with
  ``{title, description, synchronize}`` makes a fork: 201 ``{sessionId, fork_roomid,
  fork_info}``, as jupyter-collaboration 5 answers.
- ``GET fork/<room>``: the document's forks, ``{<fork id>: fork_info}``.
- ``DELETE fork/<fork id>?merge=true|false``: merge the fork into the document (one transaction)
  or discard it; 200 with what was done (jupyter-collaboration answers an empty 200).

The bridge forwards these and emits jupyter-collaboration's fork events on Jupyter's event bus.
"""

from __future__ import annotations

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import status
from rest_framework.request import Request
from rest_framework.response import Response

from jupyter_sync.api import document_serializers as s
from jupyter_sync.api.base import JupyterView
from jupyter_sync.collaboration import forks
from jupyter_sync.collaboration.room import document_session
from jupyter_sync.collaboration.session import JoinAccess, session_errors
from jupyter_sync.models import DocumentFork
from tables.api.errors import APIError, rejected_write
from tables.api.serializers import validated
from tables.service import Status

ROOM = OpenApiParameter(
    "room",
    str,
    OpenApiParameter.PATH,
    description="PUT, GET: the document's room, <format>:<type>:<fileId>; DELETE: the fork's id.",
)


def refused(error: forks.ForkRefused) -> APIError:
    return APIError(error.status, error.code, error.detail)


class ForkView(JupyterView):
    permission_classes = [JoinAccess]

    @extend_schema(
        operation_id="collaboration_fork_create",
        tags=["collaboration"],
        summary="Fork a document: a datastore branched at its newest serial, joined as a room",
        description=(
            "Needs read access on the document. The fork shares the document's history up to "
            "the branch (nothing is copied) and is edited in /api/collaboration/room/<fork id>. "
            "400 bad-room, wrong-type or fork-of-fork; 404 unknown-document (not open, or not "
            "readable by the caller); 410 history-pruned."
        ),
        parameters=[ROOM],
        request=s.ForkRequestSerializer,
        responses={201: s.ForkCreatedSerializer, **session_errors(400, 410, 503)},
    )
    def put(self, request: Request, room: str) -> Response:
        body = validated(s.ForkRequestSerializer, request.data)
        try:
            made = forks.do_create_fork(
                self.datastore,
                room,
                request.user,
                body["title"] or "",
                body["description"] or "",
            )
        except forks.ForkRefused as error:
            raise refused(error) from None
        fork = DocumentFork.objects.select_related("datastore").get(pk=made.fork_id)
        answer = {
            "sessionId": document_session(fork.datastore),
            "fork_roomid": made.fork_id,
            "fork_info": made.to_json(),
        }
        return Response(s.ForkCreatedSerializer(answer).data, status=status.HTTP_201_CREATED)

    @extend_schema(
        operation_id="collaboration_fork_list",
        tags=["collaboration"],
        summary="The forks of a document",
        description="Needs read access on the document. 404 unknown-document.",
        parameters=[ROOM],
        responses={
            200: OpenApiResponse(
                OpenApiTypes.OBJECT,
                description="{<fork id>: fork_info} (fork_info as PUT answers it), oldest first.",
            ),
            **session_errors(400, 503),
        },
    )
    def get(self, request: Request, room: str) -> Response:
        try:
            found = forks.forks_of(self.datastore, room, request.user)
        except forks.ForkRefused as error:
            raise refused(error) from None
        return Response({fork.fork_id: fork.to_json() for fork in found})

    @extend_schema(
        operation_id="collaboration_fork_delete",
        tags=["collaboration"],
        summary="Merge a fork into its document (one transaction), or discard it",
        description=(
            "merge=true needs write access on the document: the fork's own changes are written "
            "as one transaction (origin merge, by the caller), next to everything written to "
            "the document meanwhile. merge=false: the fork's maker or a writer. Either way the "
            "fork is gone after. 403 permission-denied; 404 unknown-fork (also when merged or "
            "discarded already)."
        ),
        parameters=[ROOM, s.ForkDeleteQuerySerializer],
        request=None,
        responses={200: s.ForkDeletedSerializer, **session_errors(400, 503)},
    )
    def delete(self, request: Request, room: str) -> Response:
        query = validated(s.ForkDeleteQuerySerializer, request.query_params)
        merge = query["merge"] == "true"
        try:
            deleted = forks.do_delete_fork(room, request.user, merge=merge)
        except forks.ForkRefused as error:
            raise refused(error) from None
        outcome = deleted.outcome
        if outcome is not None and not outcome.ok:
            raise rejected_write(outcome.error_code, outcome.error)
        stored = outcome is not None and outcome.status is Status.STORED
        answer = {
            "fork_roomid": deleted.fork.fork_id,
            "fork_info": deleted.fork.to_json(),
            "merged": merge,
            "serial": outcome.serial if stored else None,
        }
        return Response(s.ForkDeletedSerializer(answer).data)
