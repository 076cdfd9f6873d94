"""Preloaded cameras (CAMERA_PRELOAD_CODES) keep their relay open without viewers."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest
import pytest_asyncio
from asgiref.sync import sync_to_async
from channels.db import database_sync_to_async
from django.db import connections

from cameras import relay
from cameras.models import Camera
from cameras.preload import PreloadMiddleware, cameras_preload
from cameras.selectors import make_point

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.asyncio, pytest.mark.rtsp]

SMALL = {"width": 320, "height": 240, "fps": 15}


@pytest_asyncio.fixture(autouse=True)
async def clean_up() -> AsyncIterator[None]:
    yield
    await relay.relay_shutdown()
    await sync_to_async(connections.close_all)()


def camera(code: str, url: str) -> Camera:
    return Camera.objects.create(
        code=code, name=code, location=make_point(lat=37.5, lon=126.95), stream_url=url
    )


async def until_live(upstream: relay.Upstream, timeout: float = 8.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while upstream.state != relay.StreamState.LIVE or not upstream.gop:
        assert asyncio.get_running_loop().time() < deadline, "never went live"
        await asyncio.sleep(0.05)


async def test_a_preloaded_camera_streams_without_viewers_and_stays_after_the_last_leaves(
    rtsp_server_factory, settings
):
    server = rtsp_server_factory(**SMALL)
    preloaded = await database_sync_to_async(camera)("PRE-1", server.url())
    await database_sync_to_async(camera)("NOT-PRE", server.url())
    settings.CAMERA_PRELOAD_CODES = ["PRE-1", "UNKNOWN-CODE"]
    settings.RELAY_IDLE_CLOSE_S = 0.3

    upstreams = await cameras_preload()

    assert [u.camera_id for u in upstreams] == [preloaded.pk]
    await until_live(upstreams[0])
    # A first viewer starts from the cached GOP: init segment and a keyframe at once.
    _upstream, viewer = relay.viewer_join(preloaded.pk, preloaded.stream_url, "")
    first = [await asyncio.wait_for(viewer.get(), 0.2) for _ in range(3)]
    assert isinstance(first[0], relay.InitSegment)
    assert any(isinstance(item, relay.Fragment) and item.keyframe for item in first)
    relay.viewer_leave(upstreams[0], viewer)
    await asyncio.sleep(0.8)
    assert relay.upstream_of(preloaded.pk) is upstreams[0]
    assert not upstreams[0].stopped
    assert server.client_count() == 1


async def test_the_middleware_preloads_once_per_process_on_the_first_call(rtsp_server_factory, settings):
    server = rtsp_server_factory(**SMALL)
    preloaded = await database_sync_to_async(camera)("PRE-1", server.url())
    settings.CAMERA_PRELOAD_CODES = ["PRE-1"]
    calls: list[str] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        calls.append(scope["type"])

    middleware = PreloadMiddleware(app)
    await middleware({"type": "http"}, None, None)
    await middleware({"type": "websocket"}, None, None)
    assert middleware.task is not None
    await middleware.task

    assert calls == ["http", "websocket"]
    upstream = relay.upstream_of(preloaded.pk)
    assert upstream is not None and upstream.pinned
    assert relay.relay_status()["upstreams"] == 1
