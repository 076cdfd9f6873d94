"""A camera's RTSP server is killed; its viewers hear `offline` and resume within 15 s of its return.

End to end with production settings: a real Daphne with the relay's own reconnection
schedule (tests/video/test_live_socket.py covers the same story in process, with a
shortened schedule, and checks the timeline across the outage). The camera stays down
long enough for the relay's retries to reach their longest wait, which is where a
returning camera waits longest for its viewers to notice.
"""

from __future__ import annotations

import asyncio
import json
import signal
import time
from collections.abc import Iterator

import aiohttp
import pytest
from asgiref.sync import sync_to_async
from django.db import connections

from cameras.models import Camera
from cameras.selectors import make_point
from tests.fixtures.live_server import LiveDaphne, live_env
from tests.fixtures.rtsp import RtspServer
from tests.incidents.conftest import operator_of
from tests.incidents.test_scale_out import session_cookie

pytestmark = [pytest.mark.faults, pytest.mark.rtsp, pytest.mark.django_db(transaction=True)]

SMALL = {"width": 320, "height": 240, "fps": 15}
# Past the relay's fourth failed attempt (1 + 5 + 10 s of waits, jittered up to +25 %).
OUTAGE_S = 22.0
RESUME_WITHIN_S = 15.0


@pytest.fixture
def server() -> Iterator[LiveDaphne]:
    daphne = LiveDaphne(live_env())
    daphne.start()
    try:
        yield daphne
    finally:
        daphne.stop()


@pytest.fixture
def camera_and_viewer(center_factory, rtsp_server_factory) -> tuple[RtspServer, Camera, str]:
    rtsp = rtsp_server_factory(**SMALL)
    centre = center_factory("seoul-junggu", (126.96, 37.54, 127.03, 37.58))
    camera = Camera.objects.create(
        code="F-RTSP-1",
        name="시청앞",
        center=centre,
        location=make_point(lat=37.5664, lon=126.9780),
        stream_url=rtsp.url(),
    )
    return rtsp, camera, session_cookie(operator_of(centre, "op-video"))


async def until(
    ws: aiohttp.ClientWebSocketResponse, state: str, *, fragments: int = 0, timeout: float
) -> float:
    """Read until a `status` message says `state` and `fragments` video pieces followed it;
    returns when they had all arrived (monotonic)."""
    deadline = time.monotonic() + timeout
    seen_at, pieces = 0.0, 0
    while time.monotonic() < deadline:
        try:
            message = await ws.receive(timeout=max(0.1, deadline - time.monotonic()))
        except TimeoutError:
            break
        if message.type == aiohttp.WSMsgType.TEXT:
            data = json.loads(message.data)
            if data.get("type") == "status":
                seen_at, pieces = (time.monotonic(), 0) if data["state"] == state else (0.0, 0)
        elif message.type == aiohttp.WSMsgType.BINARY:
            pieces += 1
        else:
            raise AssertionError(f"socket closed: {message}")
        if seen_at and pieces >= fragments:
            return time.monotonic()
    raise AssertionError(f"no {state!r} with {fragments} fragments within {timeout} s")


@pytest.mark.asyncio
async def test_viewers_hear_offline_and_resume_within_15_s_of_the_camera_returning(server, camera_and_viewer):
    rtsp, camera, cookie = camera_and_viewer
    headers = {"Cookie": cookie, "Origin": server.url}
    url = f"{server.url}/ws/cameras/{camera.pk}/live/"
    try:
        async with aiohttp.ClientSession() as http, http.ws_connect(url, headers=headers) as ws:
            await until(ws, "live", fragments=5, timeout=15)

            rtsp.proc.send_signal(signal.SIGKILL)
            await sync_to_async(rtsp.proc.wait)()
            await until(ws, "offline", timeout=10)
            await asyncio.sleep(OUTAGE_S)
            await sync_to_async(rtsp.restart)()
            back_at = time.monotonic()

            live_at = await until(ws, "live", fragments=10, timeout=RESUME_WITHIN_S + 30)
            assert live_at - back_at < RESUME_WITHIN_S, (
                f"resumed {live_at - back_at:.1f} s after the camera returned"
            )
    finally:
        await sync_to_async(connections.close_all)()
