"""ASGI entry point: HTTP goes to Django, WebSockets to the relay's consumers."""

import os

import django

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "rtc_project.settings")
django.setup(set_prefix=False)  # what django.core.asgi.get_asgi_application does first

from rtc_project.request_threads import PooledThreadsASGIHandler  # noqa: E402

# Django's handler, each request's synchronous work on a kept thread with its database
# connection, not on a thread made for it (rtc_project/request_threads.py).
django_asgi_app = PooledThreadsASGIHandler()

from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402
from django.conf import settings  # noqa: E402
from django.contrib.staticfiles.handlers import ASGIStaticFilesHandler  # noqa: E402

from jupyter_sync.collaboration.routing import websocket_urlpatterns as collaboration_routes  # noqa: E402
from relay import daphne_send  # noqa: E402
from relay.auth import RTCAuthMiddlewareStack  # noqa: E402
from relay.routing import unknown_path, websocket_urlpatterns  # noqa: E402

daphne_send.install()  # served by daphne: a cheaper send path for the relay's fan-out

http_app = ASGIStaticFilesHandler(django_asgi_app) if settings.SERVE_STATIC else django_asgi_app

application = ProtocolTypeRouter(
    {
        "http": http_app,
        "websocket": RTCAuthMiddlewareStack(
            URLRouter([*websocket_urlpatterns, *collaboration_routes, unknown_path])
        ),
    }
)
