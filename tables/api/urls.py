"""The datastore endpoints, mounted at ``/api/`` (rtc_project/urls.py)."""

from django.urls import path, register_converter

from tables.api import views


class RecordIdConverter:
    """Any record id: slashes (the jupyter contents table is keyed by path), newlines too."""

    regex = r"[\s\S]+"

    def to_python(self, value: str) -> str:
        return value

    def to_url(self, value: str) -> str:
        return value


register_converter(RecordIdConverter, "record")

app_name = "api"

urlpatterns = [
    path("datastores/", views.DatastoreListView.as_view(), name="datastore-list"),
    path("datastores/<str:name>/", views.DatastoreDetailView.as_view(), name="datastore-detail"),
    path("datastores/<str:name>/state/", views.StateView.as_view(), name="datastore-state"),
    path(
        "datastores/<str:name>/state.bin",
        views.EncodedStateView.as_view(),
        name="datastore-state-yjs",
    ),
    path("datastores/<str:name>/history/", views.HistoryView.as_view(), name="datastore-history"),
    path(
        "datastores/<str:name>/tables/<str:table>/",
        views.TableView.as_view(),
        name="datastore-table",
    ),
    path(
        "datastores/<str:name>/tables/<str:table>/<record:record_id>/",
        views.RecordView.as_view(),
        name="datastore-record",
    ),
    path(
        "datastores/<str:name>/transactions/",
        views.TransactionsView.as_view(),
        name="datastore-transactions",
    ),
    path("datastores/<str:name>/undo/", views.UndoView.as_view(), name="datastore-undo"),
    path("datastores/<str:name>/redo/", views.RedoView.as_view(), name="datastore-redo"),
]
