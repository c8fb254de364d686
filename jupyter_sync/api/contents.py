"""``/api/contents/<path>``: Jupyter's contents API. Folders the supernode watches (they are in
the ``contents`` table) are answered from the model; a file's content, and every change, is a
request the supernode carries out (``contents.get``, ``.new``, ``.save``, ``.rename``,
``.delete``), after which it re-reads the folders it watches."""

from __future__ import annotations

from typing import Any

from drf_spectacular.utils import extend_schema
from rest_framework import status
from rest_framework.request import Request
from rest_framework.response import Response

from jupyter_sync.api import serializers as s
from jupyter_sync.api.base import JupyterView
from jupyter_sync.api.views import NO_BODY, TAG, action_errors
from jupyter_sync.paths import BadPath, checked_path
from jupyter_sync.schema import content_fields, content_key
from tables.api.errors import APIError
from tables.api.serializers import validated


def clean(path: str, *, root: bool = False) -> str:
    """The route's path, checked (``jupyter_sync.paths``); 400 ``bad-path`` otherwise."""
    try:
        return checked_path(path, root=root)
    except BadPath as error:
        raise APIError(status.HTTP_400_BAD_REQUEST, error.code, str(error)) from None


def model_from_record(record: dict[str, Any]) -> dict[str, Any]:
    """A contents model without content, as the contents table holds it."""
    return {**content_fields(record, None), "content": None}


def located(model: dict[str, Any], code: int = status.HTTP_201_CREATED) -> Response:
    return Response(
        model, status=code, headers={"Location": f"/api/contents/{model.get('path', '')}"}
    )


class ContentsView(JupyterView):
    def from_model(self, path: str, query: dict[str, Any]) -> dict[str, Any] | None:
        """The answer from the contents table, when it holds it (a watched folder, or any
        known entry without content)."""
        record = self.record("contents", content_key(path))
        if record is None or query.get("type") not in (None, record.get("type")):
            return None
        if query.get("content") == "0":
            return model_from_record(record)
        if record.get("type") != "directory" or record.get("children") is None:
            return None
        model = model_from_record(record)
        entries = []
        for name in record["children"]:
            child = self.record("contents", content_key(f"{path}/{name}" if path else name))
            if child is not None:
                entries.append(model_from_record(child))
        model.update(format="json", content=entries)
        return model

    @extend_schema(
        operation_id="jupyter_contents_retrieve",
        tags=[TAG],
        summary="A file, notebook or folder (its entries), with or without content",
        parameters=[s.ContentsQuerySerializer],
        responses={200: s.ContentsModelSerializer, **action_errors()},
    )
    def get(self, request: Request, path: str = "") -> Response:
        path = clean(path, root=True)
        query = validated(s.ContentsQuerySerializer, request.query_params)
        known = self.from_model(path, query)
        if known is not None:
            return Response(known)
        params = {"path": path, "content": query.get("content") != "0"}
        params.update({key: query[key] for key in ("type", "format") if key in query})
        return self.pending_request(
            "contents.get", params, lambda result: Response(result.get("model") or {})
        )

    @extend_schema(
        operation_id="jupyter_contents_create",
        tags=[TAG],
        summary="In the folder: a new untitled file, notebook or folder, or a copy of copy_from",
        request=s.ContentsCreateSerializer,
        responses={201: s.ContentsModelSerializer, **action_errors(409)},
    )
    def post(self, request: Request, path: str = "") -> Response:
        data = validated(s.ContentsCreateSerializer, request.data)
        params = {"path": clean(path, root=True), **data}
        return self.pending_request(
            "contents.new", params, lambda result: located(result.get("model") or {})
        )

    @extend_schema(
        operation_id="jupyter_contents_save",
        tags=[TAG],
        summary="Save a file or notebook (created: 201, replaced: 200)",
        request=s.ContentsSaveSerializer,
        responses={
            200: s.ContentsModelSerializer,
            201: s.ContentsModelSerializer,
            **action_errors(),
        },
    )
    def put(self, request: Request, path: str = "") -> Response:
        data = validated(s.ContentsSaveSerializer, request.data)
        model = {key: data[key] for key in ("type", "format", "content") if key in data}

        def saved(result: dict[str, Any]) -> Response:
            code = status.HTTP_201_CREATED if result.get("created") else status.HTTP_200_OK
            return located(result.get("model") or {}, code)

        return self.pending_request("contents.save", {"path": clean(path), "model": model}, saved)

    @extend_schema(
        operation_id="jupyter_contents_rename",
        tags=[TAG],
        summary="Rename or move",
        request=s.ContentsRenameSerializer,
        responses={200: s.ContentsModelSerializer, **action_errors(409)},
    )
    def patch(self, request: Request, path: str = "") -> Response:
        new_path = validated(s.ContentsRenameSerializer, request.data)["path"]
        return self.pending_request(
            "contents.rename",
            {"path": clean(path), "new_path": new_path},
            lambda result: located(result.get("model") or {}, status.HTTP_200_OK),
        )

    @extend_schema(
        operation_id="jupyter_contents_delete",
        tags=[TAG],
        summary="Delete a file, notebook or folder",
        responses={204: NO_BODY, **action_errors()},
    )
    def delete(self, request: Request, path: str = "") -> Response:
        return self.pending_request(
            "contents.delete",
            {"path": clean(path)},
            lambda result: Response(status=status.HTTP_204_NO_CONTENT),
        )


class ContentsRefreshView(JupyterView):
    @extend_schema(
        operation_id="jupyter_contents_refresh",
        tags=[TAG],
        summary="Re-read a folder from Jupyter now (and keep it watched), and answer it",
        request=None,
        responses={200: s.ContentsModelSerializer, **action_errors()},
    )
    def post(self, request: Request, path: str = "") -> Response:
        path = clean(path, root=True)
        return self.pending_request(
            "contents.list",
            {"path": path},
            lambda result: Response(ContentsView.from_model(self, path, {}) or {}),
        )


class ContentsRootView(ContentsView):
    """``/api/contents`` (and ``/api/contents/``): the root folder; documented as ``{path}``."""

    schema = None


class ContentsRootRefreshView(ContentsRefreshView):
    schema = None


__all__ = ["ContentsRefreshView", "ContentsRootRefreshView", "ContentsRootView", "ContentsView"]
