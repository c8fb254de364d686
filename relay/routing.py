"""WebSocket routes of the relay."""

websocket_urlpatterns: list = []
