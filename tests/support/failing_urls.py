"""A URLconf for tests of what an unexpected exception answers: the project's routes and error
handlers, plus a view that fails the way a bug does (under /api/ and elsewhere)."""

from django.urls import path

from rtc_project.urls import handler404, handler500
from rtc_project.urls import urlpatterns as project_urlpatterns


def failing_view(request):
    raise RuntimeError("a bug")


urlpatterns = [
    *project_urlpatterns,
    path("api/failing/", failing_view),
    path("failing/", failing_view),
]

__all__ = ["handler404", "handler500", "urlpatterns"]
