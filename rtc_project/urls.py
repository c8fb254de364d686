from django.contrib import admin
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

from rtc_project import api_errors
from rtc_project.views import front_page

# JSON for API clients (rtc_project/api_errors.py), Django's pages elsewhere.
handler404 = api_errors.not_found
handler500 = api_errors.server_error

urlpatterns = [
    path("", front_page, name="front-page"),
    path("admin/", admin.site.urls),
    path("todo/", include("todo.urls")),
    path("api/schema/", SpectacularAPIView.as_view(), name="openapi-schema"),
    path(
        "api/docs/", SpectacularSwaggerView.as_view(url_name="openapi-schema"), name="openapi-docs"
    ),
    path("api/", include("tables.api.urls")),
    path("api/", include("jupyter_sync.api.urls")),
    path("api/", include("jupyter_sync.api.document_urls")),
    path("api/", include("jupyter_sync.collaboration.urls")),
]
