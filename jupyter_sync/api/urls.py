"""The Jupyter endpoints, mounted at ``/api/`` beside the datastore API (rtc_project/urls.py).

Paths are Jupyter Server's (no trailing slash). ``.../refresh`` comes before ``.../<id>``: ids of
kernels and sessions are uuids, never "refresh".
"""

from django.urls import path

from jupyter_sync.api import views

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
    path("requests/<str:request_id>", views.RequestDetailView.as_view(), name="request"),
]
