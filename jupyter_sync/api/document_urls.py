"""The documents endpoints, mounted at ``/api/`` (rtc_project/urls.py).

Paths without a trailing slash, as the Jupyter endpoints beside them (``jupyter_sync.api.urls``).
"""

from django.urls import path

from jupyter_sync.api import document_views, executions

app_name = "documents"

urlpatterns = [
    path("documents", document_views.DocumentListView.as_view(), name="document-list"),
    path(
        "documents/<str:document_id>",
        document_views.DocumentDetailView.as_view(),
        name="document-detail",
    ),
    *(
        path(
            f"documents/<str:document_id>/{action}",
            view.as_view(),
            name=f"document-{action}",
        )
        for action, view in (document_views.ACTION_VIEWS | document_views.REVERT_VIEWS).items()
    ),
    path(
        "documents/<str:document_id>/run",
        executions.NotebookRunView.as_view(),
        name="document-run",
    ),
]
