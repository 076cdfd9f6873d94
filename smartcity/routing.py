"""WebSocket routes."""

from django.urls import URLPattern, URLResolver, path

from cameras.consumers import LiveVideoConsumer
from incidents.consumers import OperatorConsumer

websocket_urlpatterns: list[URLPattern | URLResolver] = [
    path("ws/operator/", OperatorConsumer.as_asgi()),
    path("ws/cameras/<int:camera_id>/live/", LiveVideoConsumer.as_asgi()),
]
