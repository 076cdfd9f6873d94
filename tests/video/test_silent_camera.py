"""A camera that accepts the connection and then says nothing is offline within the socket timeout."""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections.abc import AsyncIterator, Iterator

import pytest
import pytest_asyncio

from cameras import relay

pytestmark = pytest.mark.asyncio


@pytest_asyncio.fixture(autouse=True)
async def clean_up() -> AsyncIterator[None]:
    yield
    await relay.relay_shutdown()


@pytest.fixture
def silent_port() -> Iterator[int]:
    """A TCP port that accepts RTSP clients and never answers them."""
    server = socket.create_server(("127.0.0.1", 0))
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        server.settimeout(0.2)
        while not stop.is_set():
            try:
                held.append(server.accept()[0])
            except TimeoutError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield server.getsockname()[1]
    stop.set()
    thread.join(2)
    for connection in held:
        connection.close()
    server.close()


async def test_a_silent_camera_goes_offline_within_the_socket_timeout(silent_port, monkeypatch):
    monkeypatch.setitem(relay.RTSP_OPTIONS, "timeout", "1000000")  # 1 s instead of 5
    url = f"rtsp://127.0.0.1:{silent_port}/cam1"
    started = time.monotonic()

    upstream, viewer = relay.viewer_join(9001, url, url)
    states = []
    while relay.StreamState.OFFLINE not in states:
        item = await asyncio.wait_for(viewer.get(), 5)
        if isinstance(item, relay.StatusChange):
            states.append(item.state)

    assert time.monotonic() - started < 4
    assert states[0] == relay.StreamState.CONNECTING
    relay.viewer_leave(upstream, viewer)
