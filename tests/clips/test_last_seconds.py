"""Saving "the last N seconds" of a camera from the relay's recent buffer, in this process or another."""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
import http.client
import time
from collections.abc import AsyncIterator, Iterator

import pytest
import pytest_asyncio
from asgiref.sync import sync_to_async
from django.core.cache import cache
from django.db import connections
from django.test import Client
from django.utils import timezone

from audit.models import AuditEntry
from cameras import relay
from cameras.clips import ClipNotBuffered, clip_record, clip_request, clips_fail_stalled
from cameras.fmp4 import Fragment, InitSegment
from cameras.models import Camera, Clip, ClipMode, ClipStatus
from cameras.recent import RecentBuffer, footage_write_mp4
from cameras.relay import RELAY_LIVE_KEY
from tests.clips.conftest import incident_at, operator_of
from tests.clips.test_clips import decodes_cleanly, ffprobe, logged_in
from tests.fixtures.live_server import LiveDaphne, live_env

# The test streams (tests/fixtures/rtsp.py) have a keyframe every 2 s: a clip of the last
# N seconds starts at the keyframe at or before N seconds ago, so it lasts N to N + 2 s.
GOP_S = 2.0
TIMESCALE = 1000


# -- the buffer on its own -----------------------------------------------------------------


def frames(seconds: float, *, fps: int = 25, gop_s: float = GOP_S, size: int = 1000) -> Iterator[Fragment]:
    step = TIMESCALE // fps
    for n in range(int(seconds * fps)):
        yield Fragment(
            data=bytes(size), keyframe=n % int(gop_s * fps) == 0, decode_time=n * step, duration=step
        )


def init_segment() -> InitSegment:
    return InitSegment(data=b"init", mime="video/mp4", timescale=TIMESCALE)


def test_the_buffer_keeps_whole_gops_covering_its_window_and_no_more():
    buffer = RecentBuffer(seconds=6, max_bytes=10**9)
    buffer.reset(init_segment())

    for fragment in frames(30):
        buffer.append(fragment)

    assert all(gop[0].keyframe for gop in buffer.gops)
    assert 6 <= buffer.buffered_s < 6 + 2 * GOP_S  # trimmed on keyframes: up to two GOPs over
    assert buffer.bytes == sum(len(f.data) for gop in buffer.gops for f in gop)


def test_the_buffer_never_holds_more_than_its_byte_limit():
    buffer = RecentBuffer(seconds=60, max_bytes=120_000)
    buffer.reset(init_segment())

    for fragment in frames(30):
        buffer.append(fragment)
        assert buffer.bytes <= 120_000

    assert buffer.buffered_s >= 2.0  # whole GOPs dropped from the old end, the newest kept


def test_a_snapshot_starts_at_the_keyframe_at_or_before_the_span_asked_for():
    buffer = RecentBuffer(seconds=20, max_bytes=10**9)
    buffer.reset(init_segment())
    for fragment in frames(15.0):
        buffer.append(fragment)
    now = timezone.now()

    footage = buffer.snapshot(seconds=5, now=now)
    everything = buffer.snapshot(seconds=60, now=now)

    assert footage is not None and everything is not None
    assert footage.fragments[0].keyframe
    assert 5 <= footage.duration_s < 5 + GOP_S
    assert footage.ends_at == now
    assert footage.starts_at == now - dt.timedelta(seconds=footage.duration_s)
    assert everything.duration_s == pytest.approx(15.0)  # less buffered than asked: all there is


def test_an_offline_stream_empties_the_buffer():
    buffer = RecentBuffer(seconds=20, max_bytes=10**9)
    buffer.reset(init_segment())
    for fragment in frames(5):
        buffer.append(fragment)

    buffer.reset(buffer.init)  # what the relay does when the stream goes offline

    assert buffer.snapshot(seconds=5, now=timezone.now()) is None


# -- a real relay in this process ---------------------------------------------------------


@pytest_asyncio.fixture
async def relays() -> AsyncIterator[None]:
    yield
    await relay.relay_shutdown()
    await sync_to_async(connections.close_all)()


async def live_for(upstream: relay.Upstream, seconds: float, timeout: float = 20.0) -> None:
    """Until the relay has buffered `seconds` of video."""
    deadline = time.monotonic() + timeout
    while upstream.recent is None or upstream.recent.buffered_s < seconds:
        assert time.monotonic() < deadline, f"relay never buffered {seconds} s"
        await asyncio.sleep(0.1)


@pytest.mark.rtsp
@pytest.mark.asyncio
async def test_the_relays_buffer_remuxes_into_a_playable_mp4_of_the_last_seconds(
    rtsp_server, relays, tmp_path
):
    upstream = relay.upstream_preload(90001, rtsp_server.url(1), "")
    await live_for(upstream, 6.5)
    assert upstream.recent is not None

    footage = upstream.recent.snapshot(seconds=4, now=timezone.now())
    assert footage is not None
    path = tmp_path / "last.mp4"
    written = await asyncio.to_thread(footage_write_mp4, footage=footage, path=path)

    probe = ffprobe(path)
    duration = float(probe["format"]["duration"])
    assert 4.0 - 0.1 <= duration <= 4.0 + GOP_S + 0.1
    assert written.duration_s == pytest.approx(duration, abs=0.1)
    (video,) = probe["streams"]
    assert (video["codec_name"], video["width"], video["height"]) == ("h264", 640, 480)
    assert decodes_cleanly(path)
    data = path.read_bytes()
    assert data.find(b"moov") < data.find(b"mdat")  # faststart, as recorded clips


@pytest.mark.rtsp
@pytest.mark.asyncio
@pytest.mark.django_db(transaction=True)
async def test_a_last_seconds_request_is_answered_by_the_relay_in_the_same_process(
    rtsp_server, relays, centre, camera_factory, clip_storage
):
    camera = await sync_to_async(camera_factory)(
        lat=37.5663, lon=126.9779, center=centre, stream_url=rtsp_server.url(2)
    )
    operator = await sync_to_async(operator_of)(centre, "op-a")
    incident = await sync_to_async(incident_at)(centre)
    upstream = relay.upstream_preload(camera.pk, camera.stream_url, camera.stream_url_redacted)
    await live_for(upstream, 5.0)

    # The request runs in a worker thread, as the view does; the relay answers on this loop.
    clip = await sync_to_async(clip_request, thread_sensitive=False)(
        user=operator, incident_id=incident.pk, camera_id=camera.pk, seconds=3, mode=ClipMode.LAST
    )
    clip = await ready(clip.pk)

    assert clip.mode == ClipMode.LAST
    duration = float(ffprobe(clip_storage / clip.file)["format"]["duration"])
    assert 3.0 - 0.1 <= duration <= 3.0 + GOP_S + 0.1
    assert clip.sha256 == hashlib.sha256((clip_storage / clip.file).read_bytes()).hexdigest()
    # The footage ends when it was asked for, and the row says when it was taken.
    assert clip.period_start is not None and clip.period_end is not None
    assert timezone.now() - clip.period_end < dt.timedelta(seconds=3)
    assert (clip.period_end - clip.period_start).total_seconds() == pytest.approx(duration, abs=0.1)


async def ready(clip_id: int, timeout: float = 15.0) -> Clip:
    deadline = time.monotonic() + timeout
    while True:
        clip = await Clip.objects.aget(pk=clip_id)
        if clip.status not in (ClipStatus.PENDING, ClipStatus.RECORDING) or time.monotonic() > deadline:
            assert clip.status == ClipStatus.READY, (clip.status, clip.error)
            return clip
        await asyncio.sleep(0.1)


# -- the relay in another process (a Daphne), the request here ----------------------------


@pytest.fixture
def daphne_with_camera(rtsp_server, centre, camera_factory, tmp_path) -> Iterator[tuple[LiveDaphne, Camera]]:
    """A Daphne that preloads one camera (its relay and buffer run there), writing clips to tmp."""
    camera = camera_factory(lat=37.5663, lon=126.9779, center=centre, stream_url=rtsp_server.url(1))
    storage = tmp_path / "daphne-clips"
    server = LiveDaphne(live_env(CAMERA_PRELOAD_CODES=camera.code, CLIP_STORAGE_DIR=str(storage)))
    server.start()
    try:
        first_call(server)  # Daphne has no start-up hook: its first call preloads the camera
        yield server, camera
    finally:
        server.stop()


def first_call(server: LiveDaphne) -> None:
    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
    try:
        connection.request("GET", "/login/")
        assert connection.getresponse().status == 200
    finally:
        connection.close()


def until_relayed_elsewhere(camera_id: int, timeout: float = 25.0) -> None:
    deadline = time.monotonic() + timeout
    while not relay.relay_live_camera_ids([camera_id]):
        assert time.monotonic() < deadline, "the other process never reported the camera live"
        time.sleep(0.2)


@pytest.mark.rtsp
@pytest.mark.django_db(transaction=True)
def test_the_last_seconds_come_from_the_relay_in_another_process(
    daphne_with_camera, centre, settings, tmp_path
):
    server, camera = daphne_with_camera
    settings.CLIP_STORAGE_DIR = storage = tmp_path / "daphne-clips"  # where the other process writes
    until_relayed_elsewhere(camera.pk)
    time.sleep(6.5)  # live for at least this long there: 4 s and a GOP buffered
    assert relay.upstream_of(camera.pk) is None  # nothing relayed in this process
    client = logged_in(operator_of(centre, "op-a"))
    incident = incident_at(centre)

    response = client.post(
        f"/incidents/{incident.pk}/clips/",
        {"camera_id": camera.pk, "seconds": 4, "mode": "last"},
        content_type="application/json",
    )

    assert response.status_code == 202, (response.json(), server.output())
    status = wait_ready(client, response.json()["status_url"])
    assert status["status"] == "ready", (status, server.output())
    clip = Clip.objects.get(pk=status["id"])
    path = storage / clip.file
    duration = float(ffprobe(path)["format"]["duration"])
    assert 4.0 - 0.1 <= duration <= 4.0 + GOP_S + 0.1
    assert decodes_cleanly(path)
    download = client.get(status["download_url"])
    assert hashlib.sha256(b"".join(download.streaming_content)).hexdigest() == status["sha256"]  # type: ignore[attr-defined]
    saved = AuditEntry.objects.get(action="clip.saved", object_id=str(clip.pk))
    assert (saved.actor, saved.details["mode"], saved.details["sha256"]) == ("user:op-a", "last", clip.sha256)


def wait_ready(client: Client, status_url: str, timeout: float = 20.0) -> dict:
    deadline = time.monotonic() + timeout
    status = client.get(status_url).json()
    while status["status"] in ("pending", "recording") and time.monotonic() < deadline:
        time.sleep(0.2)
        status = client.get(status_url).json()
    return status


# -- refusals ---------------------------------------------------------------------------------


def test_nobody_watching_the_camera_refuses_the_last_seconds_and_writes_nothing(centre, camera):
    client = logged_in(operator_of(centre, "op-a"))

    response = client.post(
        f"/incidents/{incident_at(centre).pk}/clips/",
        {"camera_id": camera.pk, "seconds": 10, "mode": "last"},
        content_type="application/json",
    )

    assert response.status_code == 409
    assert response.json()["code"] == "not_buffered"
    assert "next seconds" in response.json()["error"]
    assert not Clip.objects.exists()


@pytest.mark.django_db(transaction=True)
def test_a_relay_that_does_not_answer_fails_the_clip_with_the_reason(centre, camera, settings):
    settings.CLIP_LAST_ANSWER_S = 0.3
    cache.set(RELAY_LIVE_KEY.format(camera.pk), 1, timeout=30)  # a stale "live" from a process now gone

    with pytest.raises(ClipNotBuffered, match="no video relay"):
        clip_request(
            user=operator_of(centre, "op-a"),
            incident_id=incident_at(centre).pk,
            camera_id=camera.pk,
            seconds=5,
            mode=ClipMode.LAST,
        )

    clip = Clip.objects.get()
    assert (clip.status, clip.error) == (ClipStatus.FAILED, "no video relay answered")


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ({"mode": "previous", "seconds": 5}, "mode"),
        ({"mode": "last", "seconds": 31}, "seconds"),  # longer than the relays keep (30 s)
    ],
)
def test_bad_modes_and_lengths_are_400(centre, camera, payload, field, settings):
    settings.RELAY_BUFFER_SECONDS = 30
    client = logged_in(operator_of(centre, "op-a"))

    response = client.post(
        f"/incidents/{incident_at(centre).pk}/clips/",
        {"camera_id": camera.pk, **payload},
        content_type="application/json",
    )

    assert response.status_code == 400
    assert field in response.json()["errors"]


def test_the_recorder_task_leaves_last_seconds_clips_alone(centre, camera):
    clip = Clip.objects.create(
        camera=camera, requested_seconds=5, mode=ClipMode.LAST, expires_at=timezone.now()
    )

    clip_record(clip_id=clip.pk)

    assert Clip.objects.get(pk=clip.pk).status == ClipStatus.PENDING


def test_last_seconds_clips_a_vanished_relay_left_unfinished_are_failed(centre, camera):
    old = timezone.now() - dt.timedelta(minutes=10)
    stalled = Clip.objects.create(
        camera=camera, requested_seconds=5, mode=ClipMode.LAST, status=ClipStatus.RECORDING, expires_at=old
    )
    fresh = Clip.objects.create(
        camera=camera, requested_seconds=5, mode=ClipMode.LAST, status=ClipStatus.RECORDING, expires_at=old
    )
    recording_next = Clip.objects.create(
        camera=camera, requested_seconds=5, status=ClipStatus.RECORDING, expires_at=old
    )
    Clip.objects.filter(pk__in=[stalled.pk, recording_next.pk]).update(created_at=old)

    assert clips_fail_stalled() == 1

    assert Clip.objects.get(pk=stalled.pk).status == ClipStatus.FAILED
    assert Clip.objects.get(pk=fresh.pk).status == ClipStatus.RECORDING
    assert Clip.objects.get(pk=recording_next.pk).status == ClipStatus.RECORDING
