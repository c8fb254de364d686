"""The Jupyter endpoints, mounted at ``/api/`` beside the datastore API (rtc_project/urls.py).

Paths are Jupyter Server's (no trailing slash). ``.../refresh`` comes before ``.../<id>``: ids of
kernels and sessions are uuids, never "refresh".
"""

from django.urls import path, register_converter

from jupyter_sync.api import contents, executions, views


class ContentsPathConverter:
    """Any path, newlines too (Django's ``path`` stops at one): a file may be named so, and a
    request for it must reach the view rather than get an HTML 404."""

    regex = r"[\s\S]+"

    def to_python(self, value: str) -> str:
        return value

    def to_url(self, value: str) -> str:
        return value


register_converter(ContentsPathConverter, "contents_path")

app_name = "jupyter-api"

urlpatterns = [
    path("status", views.StatusView.as_view(), name="status"),
    path("refresh", views.StatusRefreshView.as_view(), name="refresh"),
    path("kernelspecs", views.KernelspecsView.as_view(), name="kernelspecs"),
    path("kernelspecs/refresh", views.KernelspecsRefreshView.as_view(), name="kernelspecs-refresh"),
    path("kernelspecs/<str:kernel_name>", views.KernelspecView.as_view(), name="kernelspec"),
    path("kernels", views.KernelListView.as_view(), name="kernels"),
    path("kernels/refresh", views.KernelsRefreshView.as_view(), name="kernels-refresh"),
    path("kernels/<str:kernel_id>", views.KernelDetailView.as_view(), name="kernel"),
    path(
        "kernels/<str:kernel_id>/interrupt",
        views.KernelInterruptView.as_view(),
        name="kernel-interrupt",
    ),
    path(
        "kernels/<str:kernel_id>/restart", views.KernelRestartView.as_view(), name="kernel-restart"
    ),
    path(
        "kernels/<str:kernel_id>/execute",
        executions.KernelExecuteView.as_view(),
        name="kernel-execute",
    ),
    path(
        "kernels/<str:kernel_id>/requests/<str:request_id>",
        executions.KernelRequestView.as_view(),
        name="kernel-request",
    ),
    path(
        "kernels/<str:kernel_id>/input", executions.KernelInputView.as_view(), name="kernel-input"
    ),
    path("executions", executions.ExecutionListView.as_view(), name="executions"),
    path(
        "executions/<str:execution_id>",
        executions.ExecutionDetailView.as_view(),
        name="execution",
    ),
    path(
        "executions/<str:execution_id>/input",
        executions.ExecutionInputView.as_view(),
        name="execution-input",
    ),
    path(
        "executions/<str:execution_id>/cancel",
        executions.ExecutionCancelView.as_view(),
        name="execution-cancel",
    ),
    path("sessions", views.SessionListView.as_view(), name="sessions"),
    path("sessions/refresh", views.SessionsRefreshView.as_view(), name="sessions-refresh"),
    path("sessions/<str:session_id>", views.SessionDetailView.as_view(), name="session"),
    path("terminals", views.TerminalListView.as_view(), name="terminals"),
    path("terminals/refresh", views.TerminalsRefreshView.as_view(), name="terminals-refresh"),
    path("terminals/<str:terminal_name>", views.TerminalDetailView.as_view(), name="terminal"),
    path("contents", contents.ContentsRootView.as_view(), name="contents-root"),
    path("contents/", contents.ContentsRootView.as_view()),
    path("contents/<contents_path:path>", contents.ContentsView.as_view(), name="contents"),
    path(
        "contents-refresh",
        contents.ContentsRootRefreshView.as_view(),
        name="contents-refresh-root",
    ),
    path(
        "contents-refresh/<contents_path:path>",
        contents.ContentsRefreshView.as_view(),
        name="contents-refresh",
    ),
    path("requests/<str:request_id>", views.RequestDetailView.as_view(), name="request"),
]
