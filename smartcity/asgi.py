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
from daphne.http_protocol import WebRequest  # noqa: E402

from cameras.preload import PreloadMiddleware  # noqa: E402
from smartcity.collector import collector_settle  # noqa: E402
from smartcity.routing import websocket_urlpatterns  # noqa: E402

application = PreloadMiddleware(
    ProtocolTypeRouter(
        {
            "http": django_asgi_app,
            "websocket": AllowedHostsOriginValidator(AuthMiddlewareStack(URLRouter(websocket_urlpatterns))),
        }
    )
)


# Twisted parses every POST body's Content-Type with the email package (and form bodies
# into `request.args`) for its own resources; Daphne never reads either — Django parses
# the body itself. It was ~4 % of a Daphne process's Python time on partner POSTs, all of
# it on the event loop's thread (~19 % of that thread's time under the screen bench).
# Twisted sets the flag on each request in __init__, so a plain class attribute would
# be shadowed: a read-only property is not (tests/test_http_admission.py checks).
WebRequest._parsePOSTFormSubmission = property(lambda request: False, lambda request, value: None)

collector_settle()  # everything above lives as long as the process (smartcity/collector.py)
