"""`/ws/cameras/<id>/live/` against real gst-rtsp-server cameras: what a viewer gets, and when.

Streams are 320x240@15 (2 s GOP) to keep the run short on a small machine. Note that the
test server forces a keyframe whenever an RTSP client joins: the relay's one upstream
session is that client, so a second *viewer* gets no such help and really starts from
the relay's GOP cache.
"""

from __future__ import annotations

import asyncio
import io
import itertools
import json
import re
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import av
import pytest
import pytest_asyncio
from asgiref.sync import sync_to_async
from channels.db import database_sync_to_async
from channels.layers import get_channel_layer
from channels.routing import URLRouter
from channels.testing import WebsocketCommunicator
from django.contrib.auth import get_user_model
from django.contrib.auth.models import AnonymousUser
from django.db import connections

from audit.models import AuditEntry
from cameras import relay
from cameras.models import Camera, Center, StaffRole
from cameras.selectors import make_point
from smartcity.routing import websocket_urlpatterns
from tests.conftest import box
from tests.fixtures.rtsp import RtspServer
from tests.incidents.conftest import operator_of

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.asyncio, pytest.mark.rtsp]

SMALL = {"width": 320, "height": 240, "fps": 15}
AVC1 = re.compile(r'^video/mp4; codecs="avc1\.[0-9a-f]{6}"$')

Message = str | bytes
ServerFactory = Callable[..., RtspServer]


# -- fixtures and helpers ----------------------------------------------------------


@pytest_asyncio.fixture(autouse=True)
async def clean_up() -> AsyncIterator[None]:
    yield
    # No upstream thread may outlive its test, and DB connections opened by
    # database_sync_to_async threads would keep the test database busy.
    await relay.relay_shutdown()
    assert relay.relay_status()["upstreams"] == 0
    await sync_to_async(connections.close_all)()


@pytest.fixture(autouse=True)
def fast_reconnect(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(relay, "RECONNECT_BACKOFF_S", (0.2, 0.4))


@pytest_asyncio.fixture
async def viewers() -> AsyncIterator[list[WebsocketCommunicator]]:
    """Every socket a test opens, closed at teardown before the relay is shut down."""
    opened: list[WebsocketCommunicator] = []
    yield opened
    for communicator in opened:
        if not communicator.future.done():
            await communicator.disconnect(timeout=3)


def centre(slug: str, west: float) -> Center:
    return Center.objects.create(slug=slug, name=slug.title(), jurisdiction=box(west, 37.4, west + 0.1, 37.6))


def camera_of(center: Center | None, url: str) -> Camera:
    n = Camera.objects.count() + 1
    return Camera.objects.create(
        code=f"V-{n:04d}",
        name=f"Video {n}",
        center=center,
        location=make_point(lat=37.5, lon=126.95),
        stream_url=url,
    )


def administrator(username: str = "admin") -> Any:
    return get_user_model().objects.create_superuser(username, password="pw-long-enough-123")


@pytest_asyncio.fixture
async def watch(viewers: list[WebsocketCommunicator]) -> Callable[..., Awaitable[WebsocketCommunicator]]:
    async def open_socket(user: Any, camera_id: int, app: Any = None) -> WebsocketCommunicator:
        communicator = WebsocketCommunicator(
            app or URLRouter(websocket_urlpatterns), f"/ws/cameras/{camera_id}/live/"
        )
        communicator.scope["user"] = user
        connected, code = await communicator.connect(timeout=5)
        assert connected, f"refused with {code}"
        viewers.append(communicator)
        return communicator

    return open_socket


async def next_message(communicator: WebsocketCommunicator, timeout: float = 5.0) -> Message:
    message = await communicator.receive_output(timeout)
    assert message["type"] == "websocket.send", message
    return message["text"] if message.get("text") is not None else message["bytes"]


async def read_until(
    communicator: WebsocketCommunicator, done: Callable[[list[Message]], bool], timeout: float = 8.0
) -> list[Message]:
    messages: list[Message] = []
    deadline = time.monotonic() + timeout
    while not done(messages):
        remaining = deadline - time.monotonic()
        assert remaining > 0, f"gave up after {timeout} s with {summary(messages)}"
        messages.append(await next_message(communicator, remaining))
    return messages


async def refused_with(communicator: WebsocketCommunicator) -> int | None:
    """The close code of a refused socket, which must carry no video and no status first.

    Refusals accept the handshake and then close with 4401/4403/4404 so that a browser's
    `CloseEvent.code` says why (a handshake rejected before accept is a bare 1006).
    """
    connected, _ = await communicator.connect(timeout=5)
    assert connected, "a refusal accepts first, so the browser hears the close code"
    message = await communicator.receive_output(timeout=5)
    assert message["type"] == "websocket.close", f"refused socket sent {message}"
    # A refused consumer still waits on the channel layer; left to the end of the test,
    # that wait holds the teardown for seconds.
    await communicator.disconnect(timeout=0.1)
    return message.get("code")


def binaries(messages: list[Message]) -> list[bytes]:
    return [m for m in messages if isinstance(m, bytes)]


def texts(messages: list[Message]) -> list[dict[str, Any]]:
    return [json.loads(m) for m in messages if isinstance(m, str)]


def has_binaries(count: int) -> Callable[[list[Message]], bool]:
    return lambda messages: len(binaries(messages)) >= count


def has_status(state: str) -> Callable[[list[Message]], bool]:
    return lambda messages: {"type": "status", "state": state} in texts(messages)


def summary(messages: list[Message]) -> str:
    return f"{texts(messages)} and {len(binaries(messages))} binary messages"


def box_type(data: bytes) -> bytes:
    return data[4:8]


def parse_mp4(data: bytes) -> tuple[str, int, int, list[tuple[int, bool]]]:
    """(codec, width, height, [(pts, keyframe)…]) of an fMP4 byte stream, read back by PyAV."""
    with av.open(io.BytesIO(data), mode="r", format="mp4") as container:
        stream = container.streams.video[0]
        packets = [
            (int(p.pts), p.is_keyframe) for p in container.demux(stream) if p.size and p.pts is not None
        ]
        context = stream.codec_context
        return context.name, context.width, context.height, packets


def codec_string_from_sps(url: str) -> str:
    """avc1.PPCCLL straight from the SPS the camera announces (its SDP's parameter sets)."""
    with av.open(url, options=relay.RTSP_OPTIONS, timeout=(10.0, 5.0)) as container:
        extradata = bytes(container.streams.video[0].codec_context.extradata or b"")
    if extradata[:1] == b"\x01":  # already an avcC record
        return f"avc1.{extradata[1:4].hex()}"
    for nal in re.split(b"\x00\x00\x00\x01|\x00\x00\x01", extradata):
        if nal and nal[0] & 0x1F == 7:  # sequence parameter set
            return f"avc1.{nal[1:4].hex()}"
    raise AssertionError(f"no SPS in {extradata.hex()}")


# -- the stream ----------------------------------------------------------------------


async def test_output_is_init_json_then_fmp4_that_parses_as_the_cameras_h264(rtsp_server_factory, watch):
    server = rtsp_server_factory(**SMALL)
    camera = await database_sync_to_async(camera_of)(None, server.url())
    admin = await database_sync_to_async(administrator)()

    sock = await watch(admin, camera.pk)
    messages = await read_until(sock, has_binaries(31))

    first_binary = next(i for i, m in enumerate(messages) if isinstance(m, bytes))
    before = [json.loads(m) for m in messages[:first_binary]]  # nothing binary before init
    assert before[-1]["type"] == "init"
    assert all(m == {"type": "status", "state": "connecting"} for m in before[:-1])
    mime = before[-1]["mime"]
    assert AVC1.match(mime), mime
    assert mime == f'video/mp4; codecs="{await sync_to_async(codec_string_from_sps)(server.url())}"'
    chunks = binaries(messages)
    assert box_type(chunks[0]) == b"ftyp"
    assert all(box_type(chunk) == b"moof" for chunk in chunks[1:])  # one fragment per message
    assert {"type": "status", "state": "live"} in texts(messages)

    codec, width, height, packets = parse_mp4(b"".join(chunks))
    assert (codec, width, height) == ("h264", 320, 240)
    assert len(packets) >= 30  # one fragment per frame, none held back for the next
    assert packets[0][1], "the first frame must be a keyframe"
    assert all(b[0] > a[0] for a, b in itertools.pairwise(packets)), "timestamps go forward"


async def test_an_h265_camera_is_remuxed_with_an_hvc1_codec_string(rtsp_server_factory, watch):
    # Browsers' MSE wants `hvc1` sample entries and an RFC 6381 string read from hvcC;
    # whether a browser can then decode it is the player's question (codec not supported).
    server = rtsp_server_factory(codec="h265", **SMALL)
    camera = await database_sync_to_async(camera_of)(None, server.url())
    admin = await database_sync_to_async(administrator)()

    sock = await watch(admin, camera.pk)
    messages = await read_until(sock, has_binaries(16), timeout=15)

    init = next(m for m in texts(messages) if m["type"] == "init")
    assert re.fullmatch(r'video/mp4; codecs="hvc1\.1\.[0-9A-F]+\.L\d+(\.[0-9A-F]+)*"', init["mime"]), init
    chunks = binaries(messages)
    assert b"hvc1" in chunks[0] and b"hev1" not in chunks[0]
    codec, width, height, packets = parse_mp4(b"".join(chunks))
    assert (codec, width, height) == ("hevc", 320, 240)
    assert packets[0][1], "the first frame must be a keyframe"


async def test_a_late_viewer_starts_at_once_from_the_last_keyframe(rtsp_server_factory, watch):
    server = rtsp_server_factory(**SMALL)
    camera = await database_sync_to_async(camera_of)(None, server.url())
    admin = await database_sync_to_async(administrator)()
    first = await watch(admin, camera.pk)
    await read_until(first, has_binaries(16))  # one second into a two-second GOP

    joined = time.monotonic()
    late = await watch(admin, camera.pk)
    messages = await read_until(late, has_binaries(6), timeout=1.0)
    waited = time.monotonic() - joined

    assert texts(messages)[0]["type"] == "init"
    assert waited < 0.5, f"the late viewer waited {waited:.2f} s for its first frames"
    _codec, width, height, packets = parse_mp4(b"".join(binaries(messages)))
    assert (width, height) == (320, 240)
    assert packets[0][1], "a late viewer starts at a keyframe"
    assert server.client_count() == 1


async def test_twenty_viewers_share_one_rtsp_session(rtsp_server_factory, watch):
    server = rtsp_server_factory(**SMALL)
    camera = await database_sync_to_async(camera_of)(None, server.url())
    admin = await database_sync_to_async(administrator)()

    socks = [await watch(admin, camera.pk) for _ in range(20)]
    received = await asyncio.gather(*(read_until(sock, has_binaries(10)) for sock in socks))

    assert all(len(binaries(messages)) >= 10 for messages in received)
    assert await sync_to_async(server.wait_for_clients)(1) == 1
    assert "CLIENT 2" not in server.stdout()
    status = relay.relay_status()
    assert (status["upstreams"], status["viewers"], status["live"]) == (1, 20, 1)


# -- resilience ----------------------------------------------------------------------


async def test_viewers_hear_offline_then_resume_by_themselves_when_the_camera_returns(
    rtsp_server_factory, watch
):
    server = rtsp_server_factory(**SMALL)
    camera = await database_sync_to_async(camera_of)(None, server.url())
    admin = await database_sync_to_async(administrator)()
    socks = [await watch(admin, camera.pk) for _ in range(2)]
    before = [await read_until(sock, has_binaries(5)) for sock in socks]

    await sync_to_async(server.stop)()
    down = [await read_until(sock, has_status("offline")) for sock in socks]
    await asyncio.sleep(0.5)  # a few failed reconnection attempts
    await sync_to_async(server.restart)()
    after = [
        await read_until(sock, lambda m: has_status("live")(m) and len(binaries(m)) >= 10) for sock in socks
    ]

    for messages in after:
        assert not [m for m in texts(messages) if m["type"] == "init"], "same parameters: same init segment"
        first_live = messages.index(json.dumps({"type": "status", "state": "live"}))
        assert all(isinstance(m, bytes) for m in messages[first_live + 1 :])
    # One timeline across the outage: the whole recording still parses and goes forward.
    whole = b"".join(binaries(before[0] + down[0] + after[0]))
    _codec, width, _height, packets = parse_mp4(whole)
    assert width == 320
    assert all(b[0] > a[0] for a, b in itertools.pairwise(packets))
    assert server.client_count() == 1


async def test_changed_stream_parameters_bring_a_new_init_segment(rtsp_server_factory, watch):
    server = rtsp_server_factory(**SMALL)
    camera = await database_sync_to_async(camera_of)(None, server.url())
    admin = await database_sync_to_async(administrator)()
    sock = await watch(admin, camera.pk)
    await read_until(sock, has_binaries(3))

    await sync_to_async(server.stop)()
    await read_until(sock, has_status("offline"))
    await sync_to_async(server.start)(port=server.port, width=352, height=288, fps=15)
    messages = await read_until(sock, has_binaries(8))

    new_init = next(
        i for i, m in enumerate(messages) if isinstance(m, str) and json.loads(m)["type"] == "init"
    )
    assert AVC1.match(json.loads(messages[new_init])["mime"])
    after = binaries(messages[new_init:])
    assert box_type(after[0]) == b"ftyp"
    _codec, width, height, packets = parse_mp4(b"".join(after))
    assert (width, height) == (352, 288)
    assert packets[0][1]


async def test_a_camera_with_a_password_plays_and_its_credentials_never_reach_the_viewer(
    rtsp_server_factory, watch, caplog
):
    user, password = "viewer", "s3cret:p@ss/word"
    server = rtsp_server_factory(user=user, password=password, **SMALL)
    camera = await database_sync_to_async(camera_of)(None, server.url())
    assert password not in camera.stream_url_redacted
    admin = await database_sync_to_async(administrator)()

    with caplog.at_level("DEBUG"):
        sock = await watch(admin, camera.pk)
        messages = await read_until(sock, has_binaries(10))
        await sock.disconnect()

    _codec, width, _height, _packets = parse_mp4(b"".join(binaries(messages)))
    assert width == 320
    everything = b"".join(m.encode() if isinstance(m, str) else m for m in messages)
    secrets = [password, "s3cret%3Ap%40ss%2Fword", server.url(), f"{user}:"]
    for secret in secrets:
        assert secret.encode() not in everything
        assert secret not in caplog.text
        assert secret not in json.dumps(relay.relay_status())


async def test_a_wrong_password_leaves_the_viewer_connected_and_told_offline(rtsp_server_factory, watch):
    server = rtsp_server_factory(user="viewer", password="right", **SMALL)
    camera = await database_sync_to_async(camera_of)(None, server.url().replace("right", "wrong"))
    admin = await database_sync_to_async(administrator)()

    sock = await watch(admin, camera.pk)
    messages = await read_until(sock, has_status("offline"))

    assert not binaries(messages)
    assert "wrong" not in "".join(m for m in messages if isinstance(m, str))


# -- access and the ledger -------------------------------------------------------------


async def test_anonymous_is_refused_with_4401():
    communicator = WebsocketCommunicator(URLRouter(websocket_urlpatterns), "/ws/cameras/1/live/")
    communicator.scope["user"] = AnonymousUser()
    assert await refused_with(communicator) == 4401


async def test_an_operator_of_another_centre_is_refused_with_4403():
    def setup() -> tuple[Any, Camera]:
        mine, theirs = centre("centre-a", 126.9), centre("centre-b", 127.1)
        return operator_of(mine, "op-a"), camera_of(theirs, "rtsp://127.0.0.1:9/cam1")

    user, camera = await database_sync_to_async(setup)()
    communicator = WebsocketCommunicator(URLRouter(websocket_urlpatterns), f"/ws/cameras/{camera.pk}/live/")
    communicator.scope["user"] = user

    assert await refused_with(communicator) == 4403
    assert relay.relay_status()["upstreams"] == 0  # no camera was contacted


async def test_a_privacy_officer_or_unknown_camera_is_refused():
    def setup() -> tuple[Any, Camera]:
        mine = centre("centre-a", 126.9)
        return operator_of(mine, "privacy", role=StaffRole.PRIVACY_OFFICER), camera_of(
            mine, "rtsp://127.0.0.1:9/x"
        )

    user, camera = await database_sync_to_async(setup)()
    for camera_id, code in ((camera.pk, 4403), (camera.pk + 1000, 4404)):
        communicator = WebsocketCommunicator(
            URLRouter(websocket_urlpatterns), f"/ws/cameras/{camera_id}/live/"
        )
        communicator.scope["user"] = user
        assert await refused_with(communicator) == code


async def test_an_operator_of_the_cameras_centre_watches_and_the_viewing_is_recorded(
    rtsp_server_factory, watch
):
    server = rtsp_server_factory(**SMALL)

    def setup() -> tuple[Any, Camera]:
        mine = centre("centre-a", 126.9)
        return operator_of(mine, "op-a"), camera_of(mine, server.url())

    user, camera = await database_sync_to_async(setup)()
    sock = await watch(user, camera.pk)
    await read_until(sock, has_binaries(8))
    await sock.disconnect()

    entries = await database_sync_to_async(list)(
        AuditEntry.objects.filter(action__startswith="video.")
        .order_by("id")
        .values("action", "actor", "user_id", "object_type", "object_id", "details")
    )
    assert [e["action"] for e in entries] == ["video.view_start", "video.view_stop"]
    assert all(
        (e["actor"], e["user_id"], e["object_type"], e["object_id"])
        == ("user:op-a", user.pk, "camera", str(camera.pk))
        for e in entries
    )
    assert 0.3 < entries[1]["details"]["duration_s"] < 10


# -- slow viewers and idle upstreams ---------------------------------------------------


def stalls_after(app: Any, sends: int) -> Any:
    """An ASGI app whose client stops reading after `sends` messages: sends then block."""

    async def stalled_app(scope: Any, receive: Any, send: Any) -> None:
        sent = 0

        async def blocking_send(message: Any) -> None:
            nonlocal sent
            sent += 1
            if sent > sends:
                await asyncio.Event().wait()  # a full TCP window: never completes
            await send(message)

        await app(scope, receive, blocking_send)

    return stalled_app


async def test_a_stalled_viewer_neither_delays_the_others_nor_grows_without_bound(
    rtsp_server_factory, watch, monkeypatch
):
    monkeypatch.setattr(relay, "VIEWER_QUEUE_FRAGMENTS", 10)
    server = rtsp_server_factory(**SMALL)
    camera = await database_sync_to_async(camera_of)(None, server.url())
    admin = await database_sync_to_async(administrator)()
    steady = await watch(admin, camera.pk)
    start = await read_until(steady, has_binaries(2))
    await watch(admin, camera.pk, app=stalls_after(URLRouter(websocket_urlpatterns), sends=3))
    upstream = relay.upstream_of(camera.pk)
    assert upstream is not None

    started = time.monotonic()
    messages = await read_until(steady, has_binaries(45), timeout=6)  # 3 s at 15 fps
    elapsed = time.monotonic() - started
    largest = max(viewer.fragments for viewer in upstream.viewers)

    assert elapsed < 3.8, f"45 frames took {elapsed:.1f} s"
    assert largest <= 10
    stalled = next(viewer for viewer in upstream.viewers if viewer.skips)
    assert stalled.skips >= 2  # it fell behind, dropped its backlog, and waits for keyframes
    assert len(stalled.items) <= 12
    _codec, _width, _height, packets = parse_mp4(b"".join(binaries(start + messages)))
    assert len(packets) >= 45


async def test_the_upstream_closes_after_the_last_viewer_leaves(rtsp_server_factory, watch, settings):
    settings.RELAY_IDLE_CLOSE_S = 0.8
    server = rtsp_server_factory(**SMALL)
    camera = await database_sync_to_async(camera_of)(None, server.url())
    admin = await database_sync_to_async(administrator)()
    sock = await watch(admin, camera.pk)
    await read_until(sock, has_binaries(3))
    upstream = relay.upstream_of(camera.pk)

    await sock.disconnect()
    await asyncio.sleep(0.3)
    again = await watch(admin, camera.pk)  # back within the idle time: same session
    await read_until(again, has_binaries(3), timeout=1)
    assert relay.upstream_of(camera.pk) is upstream
    assert upstream is not None and upstream.sessions == 1
    await again.disconnect()

    assert server.client_count() == 1  # kept for RELAY_IDLE_CLOSE_S
    assert await sync_to_async(server.wait_for_clients)(0, timeout=5) == 0
    assert relay.relay_status()["upstreams"] == 0


async def test_logging_out_everywhere_ends_the_live_video(watch):
    from cameras.sessions import sessions_end_all

    def setup() -> tuple[Any, Camera]:
        mine = centre("centre-a", 126.9)
        return operator_of(mine, "op-a"), camera_of(mine, "rtsp://127.0.0.1:9/cam1")  # nothing listens

    user, camera = await database_sync_to_async(setup)()
    sock = await watch(user, camera.pk)
    await read_until(sock, has_status("offline"))

    await database_sync_to_async(sessions_end_all)(user=user)

    while (message := await sock.receive_output(timeout=5))["type"] == "websocket.send":
        pass  # a status may still be on its way
    assert message == {"type": "websocket.close", "code": 4401}
    upstream = relay.upstream_of(camera.pk)
    assert upstream is not None and not upstream.viewers


async def test_after_a_lost_layer_a_viewer_whose_session_ended_meanwhile_is_closed(watch):
    """Redis away: "log out everywhere" could not reach the socket. When the layer says
    it lost messages (smartcity/layers.py), the viewer checks its session itself."""
    from django.contrib.sessions.backends.db import SessionStore

    from cameras.sessions import user_group

    def setup() -> tuple[Any, Camera, Any]:
        mine = centre("centre-a", 126.9)
        session = SessionStore()
        session.create()
        return operator_of(mine, "op-a"), camera_of(mine, "rtsp://127.0.0.1:9/cam1"), session

    user, camera, session = await database_sync_to_async(setup)()
    sock = WebsocketCommunicator(URLRouter(websocket_urlpatterns), f"/ws/cameras/{camera.pk}/live/")
    sock.scope |= {"user": user, "session": session}
    connected, _ = await sock.connect(timeout=5)
    assert connected
    await read_until(sock, has_status("offline"))
    layer = get_channel_layer()

    await layer.group_send(user_group(user.pk), {"type": "layer.lost"})
    assert await sock.receive_nothing(timeout=0.5)  # the session is still there: go on watching

    await database_sync_to_async(session.delete)()  # ended while no message could get through
    await layer.group_send(user_group(user.pk), {"type": "layer.lost"})
    while (message := await sock.receive_output(timeout=5))["type"] == "websocket.send":
        pass
    assert message == {"type": "websocket.close", "code": 4401}
