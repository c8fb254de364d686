"""jupyter-collaboration's HTTP route, mounted at ``/api/`` (rtc_project/urls.py); its
WebSocket routes are in ``routing.py``."""

from django.urls import path

from jupyter_sync.collaboration import session

app_name = "collaboration"

urlpatterns = [
    path(
        "collaboration/session/<path:path>",
        session.CollaborationSessionView.as_view(),
        name="collaboration-session",
    ),
]
