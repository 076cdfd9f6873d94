"""WebSocket routes. Each app adds its consumers here as they are built."""

from django.urls import URLPattern, URLResolver

websocket_urlpatterns: list[URLPattern | URLResolver] = []
