"""Status, kernelspecs, kernels, sessions, terminals and request records, as Jupyter Server
answers them. Reads come from the ``jupyter`` datastore's tables; actions are ``requests``
records the supernode carries out (``base.JupyterView``)."""

from __future__ import annotations

from typing import Any

from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import status
from rest_framework.request import Request
from rest_framework.response import Response

from jupyter_sync.api import serializers as s
from jupyter_sync.api.base import JupyterView
from jupyter_sync.schema import REQUEST_DONE
from tables.api.errors import not_found
from tables.api.serializers import validated

TAG = "jupyter"
ACCEPTED = OpenApiResponse(
    s.AcceptedSerializer,
    description="The supernode is still working (RTC_API_ACTION_TIMEOUT passed): the Location "
    "header and url give the request record, which answers the result when done.",
)


def error_responses(*codes: int) -> dict[int, Any]:
    """Every operation may answer these (same body as the datastore API's errors; 400 too-large
    for a body beyond Django's DATA_UPLOAD_MAX_MEMORY_SIZE)."""
    return dict.fromkeys((*codes, 400, 401, 403, 404, 429), s.JupyterErrorSerializer)


def action_errors(*codes: int) -> dict[int, Any]:
    """An action may also answer 202 (still working), 502 (Jupyter failed), 503 (no supernode,
    or it cannot reach Jupyter) and 504."""
    return {202: ACCEPTED, **error_responses(*codes, 400, 502, 503, 504)}


NO_BODY = OpenApiResponse(description="Done; no body.")


# --- shapes ---------------------------------------------------------------------------------


def kernel_model(kernel_id: str, record: dict[str, Any] | None) -> dict[str, Any]:
    record = record or {}
    return {
        "id": kernel_id,
        "name": record.get("name"),
        "last_activity": record.get("last_activity"),
        "execution_state": record.get("execution_state"),
        "connections": record.get("connections"),
    }


def present(record: Any) -> bool:
    return record is not None


def absent(record: Any) -> bool:
    return record is None


# --- status, kernelspecs ------------------------------------------------------------------


class StatusView(JupyterView):
    @extend_schema(
        operation_id="jupyter_status",
        tags=[TAG],
        summary="The Jupyter Server's status, and whether a supernode is connected to it",
        responses={200: s.StatusSerializer, **error_responses()},
    )
    def get(self, request: Request) -> Response:
        server = self.record("status", "server") or {}
        supernode = self.freshness.live
        since = self.freshness.since
        return Response(
            {
                "started": server.get("started"),
                "last_activity": server.get("last_activity"),
                "connections": server.get("connections"),
                "kernels": server.get("kernels"),
                "connected": server.get("connected") if supernode else False,
                "supernode": supernode,
                "stale_since": since.isoformat() if since is not None else None,
            }
        )


def kernelspecs_body(view: JupyterView) -> dict[str, Any]:
    specs = view.table("kernelspecs")
    server = view.record("status", "server") or {}
    return {
        "default": server.get("default_kernelspec"),
        "kernelspecs": {
            name: {
                "name": name,
                "spec": (spec or {}).get("spec") or {},
                "resources": (spec or {}).get("resources") or {},
            }
            for name, spec in specs.items()
        },
    }


class KernelspecsView(JupyterView):
    @extend_schema(
        operation_id="jupyter_kernelspecs",
        tags=[TAG],
        summary="The kernelspecs, and the default one",
        responses={200: s.KernelspecsSerializer, **error_responses()},
    )
    def get(self, request: Request) -> Response:
        return Response(kernelspecs_body(self))


class KernelspecView(JupyterView):
    @extend_schema(
        operation_id="jupyter_kernelspec",
        tags=[TAG],
        summary="One kernelspec",
        responses={200: s.KernelspecSerializer, **error_responses()},
    )
    def get(self, request: Request, kernel_name: str) -> Response:
        spec = kernelspecs_body(self)["kernelspecs"].get(kernel_name)
        if spec is None:
            raise not_found("unknown-kernelspec", f"no kernelspec named {kernel_name!r}")
        return Response(spec)


class RefreshView(JupyterView):
    """POST .../refresh: the supernode re-reads everything from Jupyter, then the list."""

    def refreshed(self, answer) -> Response:
        return self.pending_request("refresh", {}, lambda result: answer())


class KernelspecsRefreshView(RefreshView):
    @extend_schema(
        operation_id="jupyter_kernelspecs_refresh",
        tags=[TAG],
        summary="Re-read the kernelspecs from Jupyter now, and answer them",
        request=None,
        responses={200: s.KernelspecsSerializer, **action_errors()},
    )
    def post(self, request: Request) -> Response:
        return self.refreshed(lambda: Response(kernelspecs_body(self)))


class StatusRefreshView(RefreshView):
    @extend_schema(
        operation_id="jupyter_refresh",
        tags=[TAG],
        summary="Re-read everything (status, kernels, sessions, terminals, watched folders) now",
        request=None,
        responses={200: s.StatusSerializer, **action_errors()},
    )
    def post(self, request: Request) -> Response:
        return self.refreshed(lambda: StatusView.get(self, request))


# --- kernels --------------------------------------------------------------------------------


def kernels_list(view: JupyterView) -> list[dict[str, Any]]:
    return [kernel_model(kernel_id, record) for kernel_id, record in view.table("kernels").items()]


class KernelListView(JupyterView):
    @extend_schema(
        operation_id="jupyter_kernels_list",
        tags=[TAG],
        summary="The running kernels",
        responses={200: s.KernelSerializer(many=True), **error_responses()},
    )
    def get(self, request: Request) -> Response:
        return Response(kernels_list(self))

    @extend_schema(
        operation_id="jupyter_kernels_start",
        tags=[TAG],
        summary="Start a kernel",
        request=s.KernelStartSerializer,
        responses={201: s.KernelSerializer, **action_errors()},
    )
    def post(self, request: Request) -> Response:
        params = validated(s.KernelStartSerializer, request.data)
        self.check_kernelspec(params.get("name"), "name")

        def started(result: dict[str, Any]) -> Response:
            kernel = result.get("kernel") or {}
            location = f"/api/kernels/{kernel.get('id')}"
            return Response(kernel, status=status.HTTP_201_CREATED, headers={"Location": location})

        return self.pending_request(
            "kernel.start",
            params,
            started,
            settle=lambda result: ("kernels", (result.get("kernel") or {}).get("id"), present),
        )


class KernelsRefreshView(RefreshView):
    @extend_schema(
        operation_id="jupyter_kernels_refresh",
        tags=[TAG],
        summary="Re-read the kernels from Jupyter now, and answer them",
        request=None,
        responses={200: s.KernelSerializer(many=True), **action_errors()},
    )
    def post(self, request: Request) -> Response:
        return self.refreshed(lambda: Response(kernels_list(self)))


class KernelBase(JupyterView):
    def known_kernel(self, kernel_id: str) -> dict[str, Any]:
        """The kernel's record; 404 as Jupyter answers for a kernel it does not have."""
        record = self.record("kernels", kernel_id)
        if record is None:
            raise not_found("not-found", f"Kernel does not exist: {kernel_id}")
        return record


class KernelDetailView(KernelBase):
    @extend_schema(
        operation_id="jupyter_kernels_retrieve",
        tags=[TAG],
        summary="One kernel",
        responses={200: s.KernelSerializer, **error_responses()},
    )
    def get(self, request: Request, kernel_id: str) -> Response:
        return Response(kernel_model(kernel_id, self.known_kernel(kernel_id)))

    @extend_schema(
        operation_id="jupyter_kernels_shutdown",
        tags=[TAG],
        summary="Shut a kernel down",
        responses={204: NO_BODY, **action_errors()},
    )
    def delete(self, request: Request, kernel_id: str) -> Response:
        return self.pending_request(
            "kernel.shutdown",
            {"kernel_id": kernel_id},
            lambda result: Response(status=status.HTTP_204_NO_CONTENT),
            settle=lambda result: ("kernels", kernel_id, absent),
        )


class KernelInterruptView(KernelBase):
    @extend_schema(
        operation_id="jupyter_kernels_interrupt",
        tags=[TAG],
        summary="Interrupt a kernel",
        request=None,
        responses={204: NO_BODY, **action_errors()},
    )
    def post(self, request: Request, kernel_id: str) -> Response:
        return self.pending_request(
            "kernel.interrupt",
            {"kernel_id": kernel_id},
            lambda result: Response(status=status.HTTP_204_NO_CONTENT),
        )


class KernelRestartView(KernelBase):
    @extend_schema(
        operation_id="jupyter_kernels_restart",
        tags=[TAG],
        summary="Restart a kernel",
        request=None,
        responses={200: s.KernelSerializer, **action_errors()},
    )
    def post(self, request: Request, kernel_id: str) -> Response:
        return self.pending_request(
            "kernel.restart",
            {"kernel_id": kernel_id},
            lambda result: Response(result.get("kernel") or kernel_model(kernel_id, None)),
        )


# --- request records ----------------------------------------------------------------------


class RequestDetailView(JupyterView):
    @extend_schema(
        operation_id="jupyter_requests_retrieve",
        tags=[TAG],
        summary="A request record: 202 while the supernode works on it, 200 once it is done",
        responses={
            200: s.RequestRecordSerializer,
            202: s.RequestRecordSerializer,
            **error_responses(),
        },
    )
    def get(self, request: Request, request_id: str) -> Response:
        record = self.record("requests", request_id)
        if record is None:
            raise not_found("unknown-request", f"no request {request_id!r}")
        body = {field: record.get(field) for field in s.RequestRecordSerializer().fields}
        body["id"] = request_id
        done = record.get("status") in REQUEST_DONE
        return Response(body, status=status.HTTP_200_OK if done else status.HTTP_202_ACCEPTED)


# --- sessions -------------------------------------------------------------------------------


def session_model(view: JupyterView, session_id: str, record: dict[str, Any]) -> dict[str, Any]:
    kernel_id = record.get("kernel_id")
    kernel = view.record("kernels", kernel_id) if kernel_id else None
    return {
        "id": session_id,
        "path": record.get("path"),
        "name": record.get("name"),
        "type": record.get("type"),
        "kernel": kernel_model(kernel_id, kernel) if kernel_id else None,
        "notebook": {"path": record.get("path"), "name": record.get("name")},
    }


def sessions_list(view: JupyterView) -> list[dict[str, Any]]:
    return [session_model(view, key, record) for key, record in view.table("sessions").items()]


def session_shown(session: dict[str, Any]):
    """The sessions table shows ``session`` (Jupyter's answer): its path and its kernel."""
    kernel_id = (session.get("kernel") or {}).get("id")

    def shown(record: Any) -> bool:
        return (
            record is not None
            and record.get("path") == session.get("path")
            and record.get("kernel_id") == kernel_id
        )

    return ("sessions", session.get("id"), shown)


def session_params(data: dict[str, Any]) -> dict[str, Any]:
    kernel = data.pop("kernel", None) or {}
    if "id" in kernel:
        data["kernel_id"] = kernel["id"]
    if "name" in kernel:
        data["kernel_name"] = kernel["name"]
    return data


class SessionListView(JupyterView):
    @extend_schema(
        operation_id="jupyter_sessions_list",
        tags=[TAG],
        summary="The sessions",
        responses={200: s.SessionSerializer(many=True), **error_responses()},
    )
    def get(self, request: Request) -> Response:
        return Response(sessions_list(self))

    @extend_schema(
        operation_id="jupyter_sessions_create",
        tags=[TAG],
        summary="Create a session (on an existing kernel, or a new one); the existing session "
        "of the path if it has one",
        request=s.SessionCreateSerializer,
        responses={201: s.SessionSerializer, **action_errors()},
    )
    def post(self, request: Request) -> Response:
        params = session_params(dict(validated(s.SessionCreateSerializer, request.data)))
        self.check_kernelspec(params.get("kernel_name"), "kernel")
        if "kernel_id" in params and self.record("kernels", params["kernel_id"]) is None:
            raise not_found("not-found", f"Kernel does not exist: {params['kernel_id']}")

        def created(result: dict[str, Any]) -> Response:
            session = result.get("session") or {}
            location = f"/api/sessions/{session.get('id')}"
            return Response(session, status=status.HTTP_201_CREATED, headers={"Location": location})

        return self.pending_request(
            "session.create",
            params,
            created,
            settle=lambda result: session_shown(result.get("session") or {}),
        )


class SessionsRefreshView(RefreshView):
    @extend_schema(
        operation_id="jupyter_sessions_refresh",
        tags=[TAG],
        summary="Re-read the sessions from Jupyter now, and answer them",
        request=None,
        responses={200: s.SessionSerializer(many=True), **action_errors()},
    )
    def post(self, request: Request) -> Response:
        return self.refreshed(lambda: Response(sessions_list(self)))


class SessionDetailView(JupyterView):
    def known_session(self, session_id: str) -> dict[str, Any]:
        record = self.record("sessions", session_id)
        if record is None:
            raise not_found("not-found", f"Session not found: {session_id}")
        return record

    @extend_schema(
        operation_id="jupyter_sessions_retrieve",
        tags=[TAG],
        summary="One session",
        responses={200: s.SessionSerializer, **error_responses()},
    )
    def get(self, request: Request, session_id: str) -> Response:
        return Response(session_model(self, session_id, self.known_session(session_id)))

    @extend_schema(
        operation_id="jupyter_sessions_update",
        tags=[TAG],
        summary="Rename or move a session, or change its kernel",
        request=s.SessionUpdateSerializer,
        responses={200: s.SessionSerializer, **action_errors()},
    )
    def patch(self, request: Request, session_id: str) -> Response:
        fields = dict(validated(s.SessionUpdateSerializer, request.data))
        kernel = fields.get("kernel")
        if kernel is not None:
            self.check_kernelspec(kernel.get("name"), "kernel")
        return self.pending_request(
            "session.update",
            {**fields, "session_id": session_id},
            lambda result: Response(result.get("session") or {}),
            settle=lambda result: session_shown(result.get("session") or {}),
        )

    @extend_schema(
        operation_id="jupyter_sessions_delete",
        tags=[TAG],
        summary="Delete a session (and shut its kernel down)",
        responses={204: NO_BODY, **action_errors()},
    )
    def delete(self, request: Request, session_id: str) -> Response:
        return self.pending_request(
            "session.delete",
            {"session_id": session_id},
            lambda result: Response(status=status.HTTP_204_NO_CONTENT),
            settle=lambda result: ("sessions", session_id, absent),
        )


# --- terminals ------------------------------------------------------------------------------


def terminal_model(name: str, record: dict[str, Any] | None) -> dict[str, Any]:
    return {"name": name, "last_activity": (record or {}).get("last_activity")}


def terminals_list(view: JupyterView) -> list[dict[str, Any]]:
    return [terminal_model(key, record) for key, record in view.table("terminals").items()]


class TerminalListView(JupyterView):
    @extend_schema(
        operation_id="jupyter_terminals_list",
        tags=[TAG],
        summary="The terminals",
        responses={200: s.TerminalSerializer(many=True), **error_responses()},
    )
    def get(self, request: Request) -> Response:
        return Response(terminals_list(self))

    @extend_schema(
        operation_id="jupyter_terminals_create",
        tags=[TAG],
        summary="Open a terminal (404 when the Jupyter Server has no terminals)",
        request=s.TerminalCreateSerializer,
        responses={200: s.TerminalSerializer, **action_errors()},
    )
    def post(self, request: Request) -> Response:
        params = validated(s.TerminalCreateSerializer, request.data)
        return self.pending_request(
            "terminal.create",
            dict(params),
            lambda result: Response(result.get("terminal") or {}),
            settle=lambda result: (
                "terminals",
                (result.get("terminal") or {}).get("name"),
                present,
            ),
        )


class TerminalsRefreshView(RefreshView):
    @extend_schema(
        operation_id="jupyter_terminals_refresh",
        tags=[TAG],
        summary="Re-read the terminals from Jupyter now, and answer them",
        request=None,
        responses={200: s.TerminalSerializer(many=True), **action_errors()},
    )
    def post(self, request: Request) -> Response:
        return self.refreshed(lambda: Response(terminals_list(self)))


class TerminalDetailView(JupyterView):
    @extend_schema(
        operation_id="jupyter_terminals_retrieve",
        tags=[TAG],
        summary="One terminal",
        responses={200: s.TerminalSerializer, **error_responses()},
    )
    def get(self, request: Request, terminal_name: str) -> Response:
        record = self.record("terminals", terminal_name)
        if record is None:
            raise not_found("not-found", f"Terminal not found: {terminal_name}")
        return Response(terminal_model(terminal_name, record))

    @extend_schema(
        operation_id="jupyter_terminals_delete",
        tags=[TAG],
        summary="Close a terminal",
        responses={204: NO_BODY, **action_errors()},
    )
    def delete(self, request: Request, terminal_name: str) -> Response:
        return self.pending_request(
            "terminal.delete",
            {"name": terminal_name},
            lambda result: Response(status=status.HTTP_204_NO_CONTENT),
            settle=lambda result: ("terminals", terminal_name, absent),
        )
