"""Preloaded cameras: their relay runs from the start of each Daphne process, viewers or not.

For the few cameras an operator must see without any wait (a main square, a station
entrance): CAMERA_PRELOAD_CODES names them. Daphne has no start-up hook (no ASGI
lifespan), so `PreloadMiddleware` starts them on the first request or socket the process
serves — a health check from the load balancer is enough — on Daphne's own event loop,
where the relay's upstreams live.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from channels.db import database_sync_to_async
from django.conf import settings

from cameras import relay
from cameras.models import Camera

log = logging.getLogger(__name__)


def preload_targets() -> list[tuple[int, str, str]]:
    """(id, stream URL, redacted URL) of the cameras named in CAMERA_PRELOAD_CODES that have a stream."""
    codes = list(settings.CAMERA_PRELOAD_CODES)
    if not codes:
        return []
    cameras = Camera.objects.filter(code__in=codes).exclude(stream_url="").order_by("pk")
    return [(camera.pk, camera.stream_url, camera.stream_url_redacted) for camera in cameras]


async def cameras_preload() -> list[relay.Upstream]:
    """Open (and pin) the upstream of every preloaded camera in this process."""
    targets = await database_sync_to_async(preload_targets)()
    upstreams = [relay.upstream_preload(pk, url, redacted) for pk, url, redacted in targets]
    if upstreams:
        log.info("preloaded %d camera(s): %s", len(upstreams), ", ".join(str(u.camera_id) for u in upstreams))
    return upstreams


class PreloadMiddleware:
    """ASGI middleware: on the first call in this process, start the preloaded cameras."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.started = False
        self.task: asyncio.Task[None] | None = None  # held so the task is not collected mid-way

    async def __call__(self, scope: Any, receive: Any, send: Any) -> Any:
        if not self.started and settings.CAMERA_PRELOAD_CODES:
            self.started = True
            self.task = asyncio.get_running_loop().create_task(self.preload())
        return await self.app(scope, receive, send)

    async def preload(self) -> None:
        try:
            await cameras_preload()
        except Exception:  # a database hiccup must not break the request that got here first
            log.warning("preloading cameras failed; they open with their first viewer", exc_info=True)
            self.started = False
