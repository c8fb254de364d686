"""Errors under ``/api/`` are JSON, whatever raised them: API clients never get an HTML page.

REST framework answers the errors it knows (``tables.api.errors``). What it does not know goes
to Django: a path no route matches (``handler404``), an unexpected exception (``handler500``),
and a database that cannot be reached (``APIErrorsMiddleware``: 503 ``database-unavailable``
with ``Retry-After``, logged as one line). Outside ``/api/`` Django's own pages stay.
"""

from __future__ import annotations

import logging

from django.http import HttpRequest, HttpResponse, JsonResponse
from django.utils.deprecation import MiddlewareMixin
from django.views import defaults

from tables.outages import (
    DATABASE_ERRORS,
    DATABASE_UNAVAILABLE,
    DATABASE_UNAVAILABLE_DETAIL,
    one_line,
)

logger = logging.getLogger(__name__)

API_PREFIX = "/api/"
RETRY_AFTER_SECONDS = 5


def is_api(request: HttpRequest) -> bool:
    return request.path.startswith(API_PREFIX)


def api_error(status: int, code: str, detail: str) -> JsonResponse:
    """The REST API's error body (``{"code", "detail"}``), with ``message`` as the Jupyter
    routes add it for Jupyter's clients."""
    return JsonResponse({"code": code, "detail": detail, "message": detail}, status=status)


class APIErrorsMiddleware(MiddlewareMixin):
    """A database error escaping an API view answers 503 instead of a 500 page."""

    def process_exception(self, request: HttpRequest, exception: Exception) -> HttpResponse | None:
        if not is_api(request) or not isinstance(exception, DATABASE_ERRORS):
            return None
        logger.warning(
            "%s %s: database unavailable: %s", request.method, request.path, one_line(exception)
        )
        response = api_error(503, DATABASE_UNAVAILABLE, DATABASE_UNAVAILABLE_DETAIL)
        response["Retry-After"] = str(RETRY_AFTER_SECONDS)
        return response


def not_found(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    """``handler404``: JSON under ``/api/``."""
    if is_api(request):
        return api_error(404, "not-found", f"no API route for {request.path}")
    return defaults.page_not_found(request, exception)


def server_error(request: HttpRequest) -> HttpResponse:
    """``handler500``: JSON under ``/api/`` (Django has logged the traceback already)."""
    if is_api(request):
        return api_error(500, "server-error", "unexpected server error (logged)")
    return defaults.server_error(request)
