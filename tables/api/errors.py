"""Errors as JSON: ``{"code": ..., "detail": ...}``, plus ``errors`` (field -> messages) on 400.

Codes are kebab-case like the WebSocket protocol's (``permission-denied``, ``not-found``,
``schema-violation``); the write path's refusal codes are passed through unchanged.
"""

from __future__ import annotations

import math
from typing import Any

from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.http import Http404
from rest_framework import exceptions, status
from rest_framework.renderers import JSONRenderer
from rest_framework.views import exception_handler


class APIError(exceptions.APIException):
    """An error with a status and a code chosen where it is raised."""

    def __init__(self, status_code: int, code: str, detail: str):
        self.status_code = status_code
        super().__init__(detail, code)


def not_found(code: str, detail: str) -> APIError:
    return APIError(status.HTTP_404_NOT_FOUND, code, detail)


def conflict(code: str, detail: str) -> APIError:
    return APIError(status.HTTP_409_CONFLICT, code, detail)


# The write path's refusals (tables.service.REJECTIONS and undo's) and their HTTP status.
REJECTION_STATUS = {
    "permission-denied": status.HTTP_403_FORBIDDEN,
    "schema-violation": status.HTTP_400_BAD_REQUEST,
    "malformed-update": status.HTTP_400_BAD_REQUEST,
    "missing-dependencies": status.HTTP_400_BAD_REQUEST,
    "too-large": status.HTTP_400_BAD_REQUEST,
    "too-deep": status.HTTP_400_BAD_REQUEST,
    "bad-text": status.HTTP_400_BAD_REQUEST,
    "nothing-to-undo": status.HTTP_409_CONFLICT,
    "undo-unsupported": status.HTTP_400_BAD_REQUEST,
}


def rejected_write(code: str | None, detail: str | None) -> APIError:
    """The answer to a write the write path rejected: its code, and the HTTP status for it."""
    code = code or "refused"
    return APIError(REJECTION_STATUS.get(code, status.HTTP_400_BAD_REQUEST), code, detail or code)


def _kebab(code: Any) -> str:
    return str(code).replace("_", "-")


def _first_message(detail: Any) -> str:
    """A one-line summary of a validation error's messages (the first one, with its field)."""
    if isinstance(detail, dict):
        for field, messages in detail.items():
            inner = _first_message(messages)
            return inner if field == "non_field_errors" else f"{field}: {inner}"
    if isinstance(detail, list) and detail:
        return _first_message(detail[0])
    return str(detail)


def api_exception_handler(exc: Exception, context: dict[str, Any]):
    """REST framework's handler (status, WWW-Authenticate, Retry-After), our body."""
    if isinstance(exc, Http404):
        exc = exceptions.NotFound()
    elif isinstance(exc, DjangoPermissionDenied):
        exc = exceptions.PermissionDenied()
    response = exception_handler(exc, context)
    if response is None:
        return None
    if isinstance(exc, exceptions.ValidationError):
        errors = exc.detail if isinstance(exc.detail, dict) else {"non_field_errors": exc.detail}
        response.data = {"code": "invalid", "detail": _first_message(errors), "errors": errors}
    elif isinstance(exc, exceptions.APIException):
        codes = exc.get_codes()
        code = codes if isinstance(codes, str) else "error"
        response.data = {"code": _kebab(code), "detail": str(exc.detail)}
    return response


def _finite(value: Any) -> Any:
    """NaN and infinities become null, as JavaScript's JSON.stringify does."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {key: _finite(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(item) for item in value]
    return value


class FiniteJSONRenderer(JSONRenderer):
    """Strict JSON; a document holding NaN (a Yjs client may write one) renders it as null."""

    def render(self, data, accepted_media_type=None, renderer_context=None):
        try:
            return super().render(data, accepted_media_type, renderer_context)
        except ValueError:
            return super().render(_finite(data), accepted_media_type, renderer_context)
