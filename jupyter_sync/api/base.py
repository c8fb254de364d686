"""The pipeline of every Jupyter endpoint: REST framework's (authenticate, permissions, throttle,
validate, perform), run in a database thread, then an asynchronous wait for the supernode.

A view class is a REST framework ``APIView`` whose handlers are synchronous and short: they read
the shared model, or write a request record (``submit``) and return ``self.pending(...)``: the
``202`` answer (the record's URL) together with what to wait for and how to answer once it is
done. ``as_view`` wraps ``dispatch`` in an ``async`` Django view that runs it through
``database_sync_to_async`` and then waits with ``waiting.wait_for_record``: no thread is held while
the supernode works. Within ``RTC_API_ACTION_TIMEOUT`` the answer is Jupyter's (built by the
``finish`` callback, in a database thread again); past it, the ``202``.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import cached_property
from typing import Any

from channels.db import database_sync_to_async
from django.core.exceptions import RequestDataTooBig
from rest_framework import serializers, status
from rest_framework.permissions import SAFE_METHODS
from rest_framework.response import Response

from jupyter_sync.api.parsers import AnyTypeJSONParser
from jupyter_sync.availability import Freshness, freshness, supernode_problem
from jupyter_sync.conf import jupyter_settings
from jupyter_sync.records import (
    RecordWriteRejected,
    WritePathWriter,
    do_new_record,
    do_request_action,
)
from jupyter_sync.schema import JUPYTER_DATASTORE, REQUEST_DONE
from jupyter_sync.waiting import Record, WaitTimeout, read_record, wait_for_record
from tables.api.errors import APIError, api_exception_handler, rejected_write
from tables.api.parsers import JSONParser
from tables.api.permissions import DatastoreAccess
from tables.api.views import DatastoreAPIView
from tables.models import Datastore
from tables.permissions import Access
from tables.schema import Analysis
from tables.service import Authorizer, Proposal, live_python


def restore_integers(value: Any) -> Any:
    """Numbers as JSON has them: Yjs stores every number as a double, so 3 comes back as 3.0;
    answered as 3, as Jupyter would (and as an OpenAPI ``integer`` demands)."""
    if isinstance(value, float) and value.is_integer() and abs(value) < 2**53:
        return int(value)
    if isinstance(value, dict):
        return {key: restore_integers(item) for key, item in value.items()}
    if isinstance(value, list):
        return [restore_integers(item) for item in value]
    return value


class JupyterAccess(DatastoreAccess):
    """The caller's role on the ``jupyter`` datastore, decided as for any datastore: no role
    answers 404 (as a datastore that does not exist), and only owners and editors may act (POST,
    PUT, PATCH, DELETE); viewers read.
    """

    def datastore_name(self, view) -> str:
        return JUPYTER_DATASTORE

    def write_denied(self, access: Access) -> str:
        return f"role {access.role} may only read {JUPYTER_DATASTORE!r}"

    def has_permission(self, request, view) -> bool:
        """Before any supernode has run there is no jupyter datastore: that is the supernode's
        absence (503, try again), not a 404 a client would take for good."""
        try:
            return super().has_permission(request, view)
        except APIError as error:
            if error.status_code != status.HTTP_404_NOT_FOUND or not request.user.is_authenticated:
                raise
            if Datastore.objects.filter(name=JUPYTER_DATASTORE).exists():
                raise
            raise unavailable(
                "no supernode has run yet: start one with manage.py run_supernode"
            ) from None


def unavailable(detail: str) -> APIError:
    return APIError(status.HTTP_503_SERVICE_UNAVAILABLE, "supernode-unavailable", detail)


def _requests_only(access: Access) -> Authorizer:
    """For reads that need the supernode (a file's content): the request record, nothing else."""

    def authorize(proposal: Proposal, analysis: Analysis) -> str | None:
        other = sorted(set(analysis.tables) - {"requests"})
        return f"a read may only write requests, not {', '.join(other)}" if other else None

    return authorize if access.can_read else access.authorizer()


@contextlib.contextmanager
def write_path_refusals() -> Iterator[None]:
    """The write path's refusal of a record write, answered as the datastore API answers it."""
    try:
        yield
    except RecordWriteRejected as error:
        raise rejected_write(error.code, error.detail) from None


@dataclass
class Pending:
    """What a handler waits for: a record becoming ``done``, then ``finish(record)`` answers.

    ``settle(record)`` may name a further (table, id, condition) to wait for within the same
    deadline (a started kernel appearing in ``kernels``), so a read right after the answer sees
    the change; if it does not happen in time the answer is given anyway. ``progress(record)``
    answers (202) with the record as it stands when the deadline passes first; without it the
    answer is the one the handler gave.
    """

    table: str
    record_id: str
    done: Callable[[Record], bool]
    finish: Callable[[dict[str, Any]], Response]
    settle: Callable[[dict[str, Any]], tuple[str, str, Callable[[Record], bool]] | None] | None = (
        None
    )
    progress: Callable[[dict[str, Any]], Response] | None = None


def jupyter_exception_handler(exc: Exception, context: dict[str, Any]):
    """The datastore API's error body, plus ``message`` (the same text), where Jupyter clients
    (e.g. @jupyterlab/services) look for it."""
    response = api_exception_handler(exc, context)
    if response is not None and isinstance(response.data, dict) and "detail" in response.data:
        response.data["message"] = response.data["detail"]
    return response


def storable_text(value: Any, where: str) -> None:
    """Every string (keys too) of a request must be storable: no NUL (PostgreSQL's JSON has
    none) and no lone surrogates (not UTF-8). Refused as a 400, not left to fail the write."""
    if isinstance(value, str):
        try:
            value.encode()
        except UnicodeEncodeError:
            raise serializers.ValidationError({where: ["Not valid Unicode."]}) from None
        if "\x00" in value:
            raise serializers.ValidationError({where: ["NUL characters are not allowed."]})
    elif isinstance(value, dict):
        for key, item in value.items():
            storable_text(key, where)
            storable_text(item, where)
    elif isinstance(value, list):
        for item in value:
            storable_text(item, where)


class JupyterView(DatastoreAPIView):
    """A datastore view (``access``, ``datastore``, JSON in and out) on the ``jupyter``
    datastore, with Jupyter's error body and the wait for the supernode."""

    permission_classes = [JupyterAccess]
    parser_classes = [JSONParser, AnyTypeJSONParser]
    _pending: Pending | None = None
    # Set once the handler has returned: reads after the wait for the supernode read the
    # datastore's row again (other processes may have committed meanwhile).
    _handled = False

    def get_exception_handler(self):
        return jupyter_exception_handler

    def handle_exception(self, exc: Exception):
        if isinstance(exc, RequestDataTooBig):  # Django's DATA_UPLOAD_MAX_MEMORY_SIZE
            # 400 too-large, as the write path's refusal of an oversize update.
            exc = APIError(status.HTTP_400_BAD_REQUEST, "too-large", str(exc))
        return super().handle_exception(exc)

    def initial(self, request, *args: Any, **kwargs: Any) -> None:
        super().initial(request, *args, **kwargs)
        for name, value in kwargs.items():
            storable_text(value, name)
        for name, values in request.query_params.lists():
            storable_text(values, name)
        storable_text(request.data, "body")

    # --- reading the model ------------------------------------------------------------------

    @cached_property
    def freshness(self) -> Freshness:
        return freshness()

    def table(self, name: str) -> dict[str, Any]:
        state, _ = live_python(self.datastore)
        records = restore_integers(state.get(name) or {})
        return {key: self.as_known(name, record) for key, record in records.items()}

    def record(self, table: str, record_id: str) -> Record:
        """A record as this request sees the datastore: while the handler runs,
        ``self.datastore`` is the row its permission check read, so the doc is caught up to it
        without reading it again (an answer built after the wait reads it again)."""
        record = read_record(self.datastore, table, record_id, reread=self._handled)
        return self.as_known(table, restore_integers(record))

    def as_known(self, table: str, record: Any) -> Any:
        """With no supernode, nobody knows what a kernel is doing (or whether it still runs):
        its ``execution_state`` is ``unknown``, not the last one seen."""
        if table == "kernels" and isinstance(record, dict) and not self.freshness.live:
            return {**record, "execution_state": "unknown"}
        return record

    def finalize_response(self, request, response, *args: Any, **kwargs: Any):
        """Reads answer from the model; when no supernode keeps it current they say so:
        ``X-Jupyter-Stale: true`` and, once one had run, ``X-Jupyter-Stale-Since``."""
        response = super().finalize_response(request, response, *args, **kwargs)
        if request.method == "GET" and response.status_code < 300 and not self.freshness.live:
            response["X-Jupyter-Stale"] = "true"
            if self.freshness.since is not None:
                response["X-Jupyter-Stale-Since"] = self.freshness.since.isoformat()
        return response

    def check_kernelspec(self, name: str | None, field: str) -> None:
        """A kernelspec the server has, when the model knows them (Jupyter answers an unknown
        one with a 500)."""
        specs = self.table("kernelspecs")
        if name is not None and specs and name not in specs:
            known = ", ".join(sorted(specs))
            raise serializers.ValidationError({field: [f"Unknown kernelspec (known: {known})."]})

    # --- acting -----------------------------------------------------------------------------

    def username(self) -> str:
        user = self.request.user
        return user.get_username() if user.is_authenticated else "anonymous"

    def require_supernode(self) -> None:
        """503 before anything is written when nobody would carry the request out."""
        problem = supernode_problem(self.datastore, reread=self._handled)
        if problem:
            raise unavailable(problem)

    def writer(self) -> WritePathWriter:
        """Writes as the caller; a read (GET) may write its request record and nothing else."""
        if self.request.method in SAFE_METHODS:
            return WritePathWriter(self.access, _requests_only(self.access))
        return WritePathWriter(self.access)

    def write_record(self, table: str, fields: dict[str, Any]) -> str:
        """Write a new record (id: a fresh uuid) through the write path; 503 without a
        supernode, and then nothing is written."""
        self.require_supernode()
        with write_path_refusals():
            return do_new_record(self.writer(), table, fields, self.username())

    def submit(self, action: str, params: dict[str, Any]) -> str:
        """A ``requests`` record asking the supernode for ``action``; its id."""
        self.require_supernode()
        with write_path_refusals():
            return do_request_action(self.writer(), action, params, self.username())

    def pending(
        self,
        table: str,
        record_id: str,
        done: Callable[[Record], bool],
        finish: Callable[[dict[str, Any]], Response],
        *,
        url: str,
        settle: Callable[[dict[str, Any]], Any] | None = None,
        body: dict[str, Any] | None = None,
        progress: Callable[[dict[str, Any]], Response] | None = None,
    ) -> Response:
        """Wait for ``done`` (after this handler returns); answer 202 with ``url`` meanwhile."""
        self._pending = Pending(table, record_id, done, finish, settle, progress)
        return Response(
            body if body is not None else {"id": record_id, "status": "requested", "url": url},
            status=status.HTTP_202_ACCEPTED,
            headers={"Location": url},
        )

    def pending_request(
        self,
        action: str,
        params: dict[str, Any],
        finish: Callable[[dict[str, Any]], Response],
        settle: Callable[[dict[str, Any]], Any] | None = None,
    ) -> Response:
        """Submit ``action`` and wait for its record; a failure answers Jupyter's status."""
        record_id = self.submit(action, params)

        def answer(record: dict[str, Any]) -> Response:
            if record.get("status") == "error":
                raise failure(record)
            return finish(restore_integers(record.get("result") or {}))

        return self.pending(
            "requests",
            record_id,
            lambda record: record is not None and record.get("status") in REQUEST_DONE,
            answer,
            url=f"/api/requests/{record_id}",
            settle=(
                (lambda record: settle(restore_integers(record.get("result") or {})))
                if settle is not None
                else None
            ),
        )

    # --- the asynchronous half --------------------------------------------------------------

    @classmethod
    def as_view(cls, **initkwargs: Any):
        sync_view = super().as_view(**initkwargs)

        async def view(request, *args: Any, **kwargs: Any):
            self = cls(**initkwargs)
            self.setup(request, *args, **kwargs)
            response = await database_sync_to_async(self.dispatch)(request, *args, **kwargs)
            self._handled = True
            if self._pending is None or response.status_code != status.HTTP_202_ACCEPTED:
                return response
            return await self._wait(self._pending, response)

        # What REST framework and drf-spectacular look for on a view function.
        for name in ("cls", "initkwargs", "csrf_exempt", "view_class", "view_initkwargs"):
            if hasattr(sync_view, name):
                setattr(view, name, getattr(sync_view, name))
        view.__doc__, view.__name__ = sync_view.__doc__, sync_view.__name__
        return view

    async def _wait(self, pending: Pending, accepted: Response):
        loop = asyncio.get_running_loop()
        timeout = float(jupyter_settings.API_ACTION_TIMEOUT)
        deadline = loop.time() + timeout
        try:
            record = await wait_for_record(
                JUPYTER_DATASTORE, pending.table, pending.record_id, pending.done, timeout
            )
        except WaitTimeout as timeout_passed:
            if pending.progress is None or timeout_passed.record is None:
                return accepted
            return await database_sync_to_async(self._respond)(
                pending.progress, timeout_passed.record
            )
        further = None
        if pending.settle is not None and record.get("status") != "error":
            further = pending.settle(record)
        if further is not None and isinstance(further[1], str):
            table, record_id, condition = further
            # The action is done; if the table lags, it follows at the supernode's next refresh.
            with contextlib.suppress(WaitTimeout):
                await wait_for_record(
                    JUPYTER_DATASTORE, table, record_id, condition, max(0.0, deadline - loop.time())
                )
        return await database_sync_to_async(self._respond)(pending.finish, record)

    def _respond(
        self, respond: Callable[[dict[str, Any]], Response], record: dict[str, Any]
    ) -> Response:
        try:
            response = respond(record)
        except Exception as error:
            response = self.handle_exception(error)
        return self.finalize_response(self.request, response)


def failure(record: dict[str, Any]) -> APIError:
    """A failed request as the status Jupyter answered (404 for an unknown kernel...)."""
    detail = record.get("error") or "the action failed"
    info = restore_integers((record.get("result") or {}).get("error") or {})
    code_status = info.get("status")
    if not isinstance(code_status, int) or not 400 <= code_status <= 599:
        code_status = status.HTTP_502_BAD_GATEWAY
    codes = {
        400: "invalid",
        403: "permission-denied",
        404: "not-found",
        409: "conflict",
        503: "supernode-unavailable",
        504: "timeout",
    }
    return APIError(code_status, codes.get(code_status, "jupyter-error"), str(detail))
