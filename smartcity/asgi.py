"""ASGI entry point: Daphne serves HTTP and WebSockets from this one application."""

import os

import django

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "smartcity.settings")
django.setup(set_prefix=False)

from smartcity.http import PooledASGIHandler  # noqa: E402  (needs Django set up first)

django_asgi_app = PooledASGIHandler()

from channels.auth import AuthMiddlewareStack  # noqa: E402  (needs Django set up first)
from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402
from channels.security.websocket import AllowedHostsOriginValidator  # noqa: E402

from cameras.preload import PreloadMiddleware  # noqa: E402
from smartcity.routing import websocket_urlpatterns  # noqa: E402

application = PreloadMiddleware(
    ProtocolTypeRouter(
        {
            "http": django_asgi_app,
            "websocket": AllowedHostsOriginValidator(AuthMiddlewareStack(URLRouter(websocket_urlpatterns))),
        }
    )
)
