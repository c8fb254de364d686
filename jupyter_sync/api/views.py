"""Status, kernelspecs, kernels, sessions, terminals and request records, as Jupyter Server
answers them. Reads come from the ``jupyter`` datastore's tables; actions are ``requests``
records the supernode carries out (``base.JupyterView``)."""

from __future__ import annotations

from typing import Any

from django.utils import timezone
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import status
from rest_framework.request import Request
from rest_framework.response import Response

from jupyter_sync.account import JUPYTER_DATASTORE
from jupyter_sync.api import serializers as s
from jupyter_sync.api.base import REQUEST_DONE, JupyterView
from jupyter_sync.models import SupernodeLease
from tables.api.errors import not_found
from tables.api.serializers import ErrorSerializer
from tables.api.views import validated

TAG = "jupyter"
ACCEPTED = OpenApiResponse(
    s.AcceptedSerializer,
    description="The supernode is still working (RTC_API_ACTION_TIMEOUT passed): the Location "
    "header and url give the request record, which answers the result when done.",
)


def errors(*codes: int) -> dict[int, Any]:
    """Every operation may answer these (same body as the datastore API's errors)."""
    return dict.fromkeys((*codes, 401, 403, 404, 429), ErrorSerializer)


def action_errors(*codes: int) -> dict[int, Any]:
    """An action may also answer 202 (still working), 502 (Jupyter failed), 503 (no supernode,
    or it cannot reach Jupyter) and 504."""
    return {202: ACCEPTED, **errors(*codes, 400, 502, 503, 504)}


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
        responses={200: s.StatusSerializer, **errors()},
    )
    def get(self, request: Request) -> Response:
        server = self.record("status", "server") or {}
        supernode = SupernodeLease.objects.filter(
            name=JUPYTER_DATASTORE, expires_at__gt=timezone.now()
        ).exists()
        return Response(
            {
                "started": server.get("started"),
                "last_activity": server.get("last_activity"),
                "connections": server.get("connections"),
                "kernels": server.get("kernels"),
                "connected": server.get("connected") if supernode else False,
                "supernode": supernode,
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
        responses={200: s.KernelspecsSerializer, **errors()},
    )
    def get(self, request: Request) -> Response:
        return Response(kernelspecs_body(self))


class KernelspecView(JupyterView):
    @extend_schema(
        operation_id="jupyter_kernelspec",
        tags=[TAG],
        summary="One kernelspec",
        responses={200: s.KernelspecSerializer, **errors()},
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
        responses={200: s.KernelSerializer(many=True), **errors()},
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
        responses={200: s.KernelSerializer, **errors()},
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
        responses={200: s.RequestRecordSerializer, 202: s.RequestRecordSerializer, **errors()},
    )
    def get(self, request: Request, request_id: str) -> Response:
        record = self.record("requests", request_id)
        if record is None:
            raise not_found("unknown-request", f"no request {request_id!r}")
        body = {field: record.get(field) for field in s.RequestRecordSerializer().fields}
        body["id"] = request_id
        done = record.get("status") in REQUEST_DONE
        return Response(body, status=status.HTTP_200_OK if done else status.HTTP_202_ACCEPTED)
