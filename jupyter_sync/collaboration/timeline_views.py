"""jupyter-collaboration's timeline routes (``collaboration.timeline`` does the work):

- ``GET /api/collaboration/timeline/<path>?format=&type=`` (the path as the front end sends it,
  not encoded) answers ``{roomId, forkRoom, sessionId, timestamps}`` as jupyter-collaboration 5
  does, plus ``serials`` and ``authors`` per point. Anyone who may join the document may look.
- ``PUT /api/collaboration/undo_redo/<room>?action=&steps=&forkRoom=`` (``<room>``: the
  document's room id, URL-encoded) moves the fork's view (undo, redo) or restores its point
  (restore: editors and owners only). The body is jupyter-collaboration's (the front end reads
  ``code`` and ``status`` of a restore), with the point shown now.
"""

from __future__ import annotations

from typing import Any

from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import status
from rest_framework.negotiation import DefaultContentNegotiation
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.settings import api_settings

from jupyter_sync.api import document_serializers as s
from jupyter_sync.api.base import JupyterView
from jupyter_sync.collaboration import timeline
from jupyter_sync.collaboration.session import JoinAccess, session_errors
from tables.api.errors import APIError, rejected_write
from tables.api.serializers import validated
from tables.service import Status


def refused(error: timeline.TimelineRefused) -> APIError:
    return APIError(error.status, error.code, error.detail)


class _NoFormatOverride:
    """REST framework's settings, but no ``?format=`` renderer override."""

    URL_FORMAT_OVERRIDE = None

    def __getattr__(self, name: str) -> Any:
        return getattr(api_settings, name)


class DocumentFormatQuery(DefaultContentNegotiation):
    """``?format=`` is the document's contents format here (``text`` for a file), not the
    renderer REST framework would pick by it (and answer 404 for ``text``)."""

    settings = _NoFormatOverride()


class TimelineView(JupyterView):
    permission_classes = [JoinAccess]
    content_negotiation_class = DocumentFormatQuery

    @extend_schema(
        operation_id="collaboration_timeline",
        tags=["collaboration"],
        summary="jupyter-collaboration's timeline: a document's history and a fork room on it",
        description=(
            "Makes a fork room showing the document at its newest point. 400 invalid (a path "
            "outside the root, a format that does not fit the type) or wrong-type; 404 "
            "unknown-document (the path is not open here)."
        ),
        parameters=[
            OpenApiParameter(
                "path", str, OpenApiParameter.PATH, description="The file, relative to the root."
            ),
            s.TimelineQuerySerializer,
        ],
        responses={200: s.TimelineSerializer, **session_errors(400, 503)},
    )
    def get(self, request: Request, path: str) -> Response:
        query = validated(s.TimelineQuerySerializer, request.query_params)
        path = validated(s.RenameSerializer, {"new_path": path})["new_path"]
        try:
            found = timeline.open_timeline(self.datastore, path, query["type"], request.user)
        except timeline.TimelineRefused as error:
            raise refused(error) from None
        body = {
            "roomId": found.room_id,
            "forkRoom": found.fork_room,
            "sessionId": found.session_id,
            "timestamps": [point.timestamp for point in found.points],
            "serials": [point.serial for point in found.points],
            "authors": [point.author for point in found.points],
        }
        return Response(s.TimelineSerializer(body).data)


class UndoRedoView(JupyterView):
    permission_classes = [JoinAccess]

    @extend_schema(
        operation_id="collaboration_undo_redo",
        tags=["collaboration"],
        summary="Move a timeline's fork room, or restore the document to its point",
        description=(
            "undo/redo: the fork room's clients receive the operations that show the document "
            "at the new point (clamped to the slider's ends). restore: one new transaction "
            "(origin restore, by the caller) makes the document equal to the point; the fork "
            "is then gone. 403 permission-denied (a viewer's restore); 404 unknown-fork (not "
            "the caller's, or not this document's); 410 history-pruned."
        ),
        parameters=[
            OpenApiParameter(
                "room",
                str,
                OpenApiParameter.PATH,
                description="The document's room, <format>:<type>:<fileId> (URL-encoded).",
            ),
            s.UndoRedoQuerySerializer,
        ],
        request=None,
        responses={200: s.UndoRedoSerializer, **session_errors(400, 410, 503)},
    )
    def put(self, request: Request, room: str) -> Response:
        query = validated(s.UndoRedoQuerySerializer, request.query_params)
        fork_id = timeline.fork_id_of(query["forkRoom"])
        if fork_id is None:
            raise APIError(
                status.HTTP_404_NOT_FOUND, "unknown-fork", f"no timeline {query['forkRoom']!r}"
            )
        try:
            if query["action"] == "restore":
                return self.restore(fork_id, room)
            moved = timeline.move(fork_id, request.user, query["action"], query["steps"])
        except timeline.TimelineRefused as error:
            raise refused(error) from None
        body = {
            "code": 200,
            "status": "undone" if query["action"] == "undo" else "redone",
            "position": moved.position,
            "serial": moved.serial,
        }
        return Response(s.UndoRedoSerializer(body).data)

    def restore(self, fork_id: str, room: str) -> Response:
        restored = timeline.restore(fork_id, room, self.request.user)
        outcome = restored.outcome
        if not outcome.ok:
            raise rejected_write(outcome.error_code, outcome.error)
        stored = outcome.serial if outcome.status is Status.STORED else None
        body = {
            "code": 200,
            "status": f"Document restored to its version of transaction {restored.serial}",
            "position": restored.position,
            "serial": restored.serial,
            "restoredBy": stored,
        }
        return Response(s.UndoRedoSerializer(body).data)
