"""jupyter-collaboration's HTTP routes, mounted at ``/api/`` (rtc_project/urls.py); its
WebSocket routes are in ``routing.py``."""

from django.urls import path, re_path

from jupyter_sync.collaboration import fork_views, session, timeline_views

app_name = "collaboration"

urlpatterns = [
    path(
        "collaboration/session/<path:path>",
        session.CollaborationSessionView.as_view(),
        name="collaboration-session",
    ),
    # Any path, newlines too (Django's <path:> stops at one): the view answers, never an HTML 404.
    re_path(
        r"^collaboration/timeline/(?P<path>[\s\S]+)$",
        timeline_views.TimelineView.as_view(),
        name="collaboration-timeline",
    ),
    re_path(
        r"^collaboration/undo_redo/(?P<room>[\s\S]+)$",
        timeline_views.UndoRedoView.as_view(),
        name="collaboration-undo-redo",
    ),
    re_path(
        r"^collaboration/fork/(?P<room>[\s\S]+)$",
        fork_views.ForkView.as_view(),
        name="collaboration-fork",
    ),
]
