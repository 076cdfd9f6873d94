"""WebSocket routes."""

from django.urls import URLPattern, URLResolver, path

from incidents.consumers import OperatorConsumer

websocket_urlpatterns: list[URLPattern | URLResolver] = [
    path("ws/operator/", OperatorConsumer.as_asgi()),
]
