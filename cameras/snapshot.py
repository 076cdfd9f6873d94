"""One still picture of a camera, as JPEG, for map popups and thumbnails.

Only a keyframe is ever decoded (no other frame can be decoded on its own, and decoding
is 5–20× dearer than the relay's remux). The picture comes from the relay's GOP cache
when this process streams the camera (init segment + keyframe fragment are a complete
fMP4), otherwise from a short RTSP pull. The JPEG is cached for a few seconds so a wall
of thumbnails costs a camera one session, not one per viewer; a camera that cannot be
reached is remembered as such for the same time.
"""

from __future__ import annotations

import io
import logging
import threading
from fractions import Fraction

import av
import av.error
from av.video.frame import VideoFrame
from django.conf import settings
from django.core.cache import cache

from cameras.health import probe_options
from cameras.relay import StreamState, describe, upstream_of

log = logging.getLogger(__name__)

JPEG_QSCALE = 4  # FFmpeg's `-q:v` for mjpeg: 2 (best) … 31
FF_QP2LAMBDA = 118  # FFmpeg's scale between a quantiser and `global_quality`

_pull_locks: dict[int, threading.Lock] = {}
_pull_locks_guard = threading.Lock()


class SnapshotUnavailable(Exception):
    """The camera gave no picture (down, wrong credentials, no keyframe in time)."""


def cache_key(camera_id: int) -> str:
    return f"snapshot:{camera_id}"


def snapshot_get(*, camera_id: int, url: str) -> bytes:
    """A JPEG of the camera now (a few seconds old at most); SnapshotUnavailable if none.

    One pull per camera at a time in a process: concurrent requests wait for it and
    then take the cached result.
    """
    cached = cache_read(camera_id)
    if cached is not None:
        return unwrap(cached)
    with pull_lock(camera_id):
        cached = cache_read(camera_id)
        if cached is not None:
            return unwrap(cached)
        try:
            jpeg = snapshot_take(camera_id=camera_id, url=url)
        except SnapshotUnavailable:
            cache_write(camera_id, b"")  # "down": don't retry on every request
            raise
        cache_write(camera_id, jpeg)
        return jpeg


def unwrap(cached: bytes) -> bytes:
    if not cached:
        raise SnapshotUnavailable
    return cached


def cache_read(camera_id: int) -> bytes | None:
    try:
        value = cache.get(cache_key(camera_id))
    except Exception:  # Redis away: take a fresh picture
        return None
    return value if isinstance(value, bytes) else None


def cache_write(camera_id: int, jpeg: bytes) -> None:
    try:
        cache.set(cache_key(camera_id), jpeg, timeout=float(settings.CAMERA_SNAPSHOT_CACHE_S))
    except Exception:
        log.debug("snapshot cache unavailable")


def pull_lock(camera_id: int) -> threading.Lock:
    with _pull_locks_guard:
        return _pull_locks.setdefault(camera_id, threading.Lock())


def snapshot_take(*, camera_id: int, url: str) -> bytes:
    frame = keyframe_from_relay(camera_id)
    if frame is None:
        frame = keyframe_from_camera(url, float(settings.CAMERA_SNAPSHOT_TIMEOUT_S))
    return jpeg_encode(frame)


def keyframe_from_relay(camera_id: int) -> VideoFrame | None:
    """The keyframe of the GOP the relay of this process holds for the camera, decoded."""
    upstream = upstream_of(camera_id)
    if upstream is None or upstream.state != StreamState.LIVE:
        return None
    # Copies: the relay's event loop replaces (or clears) these while we read.
    init, gop = upstream.init, list(upstream.gop)
    if init is None or not gop or not gop[0].keyframe:
        return None
    try:
        with av.open(io.BytesIO(init.data + gop[0].data), mode="r", format="mp4") as container:
            return first_keyframe(container)
    except (av.error.FFmpegError, SnapshotUnavailable) as exc:
        log.info("camera %s: relay keyframe did not decode (%s); pulling", camera_id, describe(exc))
        return None


def keyframe_from_camera(url: str, timeout_s: float) -> VideoFrame:
    """Open the camera, skip to its first keyframe, decode that one frame, hang up."""
    try:
        with av.open(url, options=probe_options(timeout_s), timeout=(timeout_s, timeout_s)) as container:
            return first_keyframe(container, max_packets=int(timeout_s * 120))
    except av.error.FFmpegError as exc:
        raise SnapshotUnavailable(describe(exc)) from None


def first_keyframe(container: av.container.InputContainer, max_packets: int = 1000) -> VideoFrame:
    if not container.streams.video:
        raise SnapshotUnavailable("no video stream")
    stream = container.streams.video[0]
    context = stream.codec_context
    # One thread: frame threading would hold the picture back until more packets came.
    context.thread_count = 1
    for n, packet in enumerate(container.demux(stream)):
        if n >= max_packets:
            break
        if not packet.size or not packet.is_keyframe:
            continue
        frames = list(context.decode(packet)) or list(context.decode(None))
        if frames:
            return frames[0]
    raise SnapshotUnavailable("no keyframe")


def jpeg_encode(frame: VideoFrame) -> bytes:
    """Baseline JPEG at the frame's own size, through FFmpeg's mjpeg encoder (no Pillow)."""
    encoder = av.CodecContext.create("mjpeg", "w")
    encoder.width, encoder.height = frame.width, frame.height
    encoder.pix_fmt = "yuvj420p"
    encoder.time_base = Fraction(1, 25)
    encoder.qscale = True  # a fixed quantiser, as `-q:v` does
    encoder.global_quality = JPEG_QSCALE * FF_QP2LAMBDA
    picture = frame.reformat(format="yuvj420p")
    picture.pts = 0
    packets = [*encoder.encode(picture), *encoder.encode(None)]
    return b"".join(bytes(packet) for packet in packets)
