"""jupyter-collaboration's HTTP routes, mounted at ``/api/`` (rtc_project/urls.py); its
WebSocket routes are in ``routing.py``."""

from django.urls import path

from jupyter_sync.collaboration import session, timeline_views

app_name = "collaboration"

urlpatterns = [
    path(
        "collaboration/session/<path:path>",
        session.CollaborationSessionView.as_view(),
        name="collaboration-session",
    ),
    path(
        "collaboration/timeline/<path:path>",
        timeline_views.TimelineView.as_view(),
        name="collaboration-timeline",
    ),
    path(
        "collaboration/undo_redo/<path:room>",
        timeline_views.UndoRedoView.as_view(),
        name="collaboration-undo-redo",
    ),
]
