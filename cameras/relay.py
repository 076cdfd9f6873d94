"""Live video relay: one upstream RTSP session per camera per process, shared by its viewers.

The first viewer of a camera opens its `Upstream`; the last one leaving starts a short
idle timer (`RELAY_IDLE_CLOSE_S`) after which it closes. An upstream's thread runs
PyAV's blocking demux and the remux to fMP4 (`cameras/fmp4.py`) and hands every piece to
the event loop, which keeps the init segment and the current GOP (so a new viewer starts
at once, from the last keyframe), the last RELAY_BUFFER_SECONDS of fragments
(`cameras/recent.py`: "save the last N seconds", asked for through the channel layer,
`cameras/relay_control.py`), and fills each viewer's bounded `ViewerQueue`.

The stream URL carries the camera's credentials: it is used to connect and nothing else.
Logs name the camera by id and `stream_url_redacted`; PyAV's error text (which may quote
the URL) is never logged.
"""

from __future__ import annotations

import asyncio
import enum
import logging
import random
import threading
import time
from collections import deque
from dataclasses import dataclass
from typing import Any

import av
import av.error
from django.conf import settings
from django.core.cache import cache

from cameras.fmp4 import Fragment, InitSegment, Remuxer, stream_signature
from cameras.recent import RecentBuffer

log = logging.getLogger(__name__)

# "timeout" is FFmpeg's RTSP socket I/O timeout in µs (connect, handshake and every read;
# PyAV 18 ignores the old "stimeout"). It is the relay's only timeout on purpose: PyAV's
# own `timeout=` installs an interrupt callback that takes the GIL on every network wait,
# many times per frame, and the relay's threads then fight over it (measured: ~0.1 % of
# a core per stream). analyzeduration/probesize at their minimum: the SDP already names
# codec and size.
RTSP_OPTIONS = {"rtsp_transport": "tcp", "timeout": "5000000", "analyzeduration": "0", "probesize": "32"}
# Waits between reconnection attempts; the last one repeats. Each is jittered ±25 % so
# the cameras behind one failed switch don't all come back at the same instant. The
# longest wait bounds how late viewers notice a camera's return: 10 s (12.5 with
# jitter) keeps that within the 15 s the fault suite promises, at the cost of one
# connection attempt per 10 s to a camera that is down while someone watches it.
RECONNECT_BACKOFF_S: tuple[float, ...] = (1.0, 5.0, 10.0)
# ~2 s of video at 60 fps, ~5 s at 25 fps: a viewer further behind skips to a keyframe.
VIEWER_QUEUE_FRAGMENTS = 120
# A GOP longer than this (a camera with a keyframe every 20 s at 30 fps) is not cached:
# its new viewers wait for the next keyframe instead.
GOP_CACHE_FRAGMENTS = 600
# A viewer written to directly (ViewerQueue.feed) whose socket holds more than this,
# unsent, is slow: what comes next queues (and, past VIEWER_QUEUE_FRAGMENTS, skips to a
# keyframe) until the client has taken it. ~0.5–2 s of a camera's video.
SINK_BACKLOG_BYTES = 512 * 1024
SINK_POLL_S = 0.02  # how often a backed-up viewer's socket is looked at again
THREAD_JOIN_TIMEOUT_S = 12.0


class StreamState(enum.StrEnum):
    CONNECTING = "connecting"
    LIVE = "live"
    OFFLINE = "offline"


@dataclass(frozen=True)
class StatusChange:
    state: StreamState


QueueItem = InitSegment | Fragment | StatusChange


class ViewerSink:
    """Where a viewer's items go when they can be written at once (a viewer's socket)."""

    def write(self, item: QueueItem) -> None:
        raise NotImplementedError

    def backlog(self) -> int:
        """Bytes written but not yet taken by the client."""
        raise NotImplementedError


class Mailbox:
    """How the relay threads of one event loop hand it their output: in order, in batches.

    A thread appends `(callback, argument)` and wakes the loop only if no delivery is
    due already; the loop then runs everything queued by then, for every camera. Each
    wake-up costs the loop a self-pipe write and read, an epoll round and a pass through
    its scheduler, and the thread its trip into the kernel — on this kind of machine more
    than the frame's own work.

    While hand-overs are sparse (one camera: a frame every 40 ms) the first item wakes
    the loop at once. Once two deliveries come closer together than `batch_s` (several
    cameras), the loop stops being woken and collects every `batch_s` instead: one
    wake-up for all the frames of that interval, each frame held at most `batch_s`. A
    collection that finds nothing returns to waking. Four cameras at 25 fps, 20 ms: the
    relay process's context switches fell ~27 % and its CPU ~9 % (README, issue 5).
    """

    def __init__(self, loop: asyncio.AbstractEventLoop, batch_s: float | None = None) -> None:
        self.loop = loop
        self.batch_s = settings.RELAY_BATCH_MS / 1000 if batch_s is None else batch_s
        self.items: deque[tuple[Any, Any]] = deque()
        self.scheduled = False  # a delivery is due (woken or timed): threads need not wake the loop
        self.closed = False
        self._timer: asyncio.TimerHandle | None = None  # the next timed collection
        self._last_delivery = -1e9

    def post(self, callback: Any, argument: Any) -> None:
        """Thread side. A race between two threads costs at most one extra wake-up."""
        self.items.append((callback, argument))
        if not self.scheduled:
            self.scheduled = True
            try:
                self.loop.call_soon_threadsafe(self._deliver)
            except RuntimeError:  # the loop is closed: nobody is left to watch
                self.closed = True

    def _collect(self) -> None:
        self._timer = None
        self._deliver(timed=True)

    def _deliver(self, timed: bool = False) -> None:
        # Cleared before looking: an item appended from now on either is drained below
        # or wakes the loop itself (at worst once more than needed).
        self.scheduled = False
        items = self.items
        if not items:
            return
        now = self.loop.time()
        if self._timer is None and (timed or now - self._last_delivery < self.batch_s):
            # Dense: collect what comes next in one go, a batch interval from now.
            self.scheduled = True
            self._timer = self.loop.call_later(self.batch_s, self._collect)
        self._last_delivery = now
        while items:
            callback, argument = items.popleft()
            try:
                callback(argument)
            except Exception:  # one camera's failure must not hold back the others' frames
                log.exception("relay: handing over a camera's output failed")


_MAILBOXES: dict[asyncio.AbstractEventLoop, Mailbox] = {}


def mailbox_for(loop: asyncio.AbstractEventLoop) -> Mailbox:
    mailbox = _MAILBOXES.get(loop)
    if mailbox is None or mailbox.closed:
        for old in [old for old in _MAILBOXES if old.is_closed()]:
            del _MAILBOXES[old]
        mailbox = _MAILBOXES[loop] = Mailbox(loop)
    return mailbox


class ViewerQueue:
    """What one viewer has still to be sent: bounded, and always decodable from its head.

    A viewer starts at a keyframe. One that falls `limit` fragments behind loses what it
    has queued and resumes at the next keyframe: it skips ahead, and nobody waits for it.
    """

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.items: deque[QueueItem] = deque()
        self.fragments = 0
        self.skips = 0
        self.waiting_for_keyframe = True
        # The forward task waiting for an item, if any: a bare future (asyncio.Event's
        # set/wait/clear cost more, and this runs for every frame of every viewer).
        self._waiter: asyncio.Future[None] | None = None
        self.sink: ViewerSink | None = None  # set while `feed` runs

    def put_init(self, init: InitSegment) -> None:
        # Whatever was queued belongs to the previous stream: a slow viewer drops it.
        self.items.clear()
        self.fragments = 0
        self.waiting_for_keyframe = True
        self._append(init)

    def put_status(self, change: StatusChange) -> None:
        if self.items and isinstance(self.items[-1], StatusChange):
            self.items.pop()  # only the latest state matters
        self._append(change)

    def put_fragment(self, fragment: Fragment) -> None:
        if self.fragments >= self.limit:
            self.items = deque(item for item in self.items if not isinstance(item, Fragment))
            self.fragments = 0
            self.skips += 1
            self.waiting_for_keyframe = True
        if self.waiting_for_keyframe:
            if not fragment.keyframe:
                return
            self.waiting_for_keyframe = False
        if self._append(fragment):
            self.fragments += 1

    async def get(self) -> QueueItem:
        while not self.items:
            await self._wait()
        item = self.items.popleft()
        if isinstance(item, Fragment):
            self.fragments -= 1
        return item

    async def feed(self, sink: ViewerSink) -> None:
        """Write this viewer's items to `sink` from now on, until cancelled.

        Items then go to the sink the moment they are put (no task wakes up per frame for
        each viewer). Only while the sink is backed up — its client slower than the camera —
        do they queue here as for any viewer, bounded and skipping to a keyframe; this
        task writes them once the client has taken what it had.
        """
        self.sink = sink
        try:
            while True:
                self._flush()
                if self.items:
                    await asyncio.sleep(SINK_POLL_S)
                else:
                    await self._wait()
        finally:
            self.sink = None

    def _flush(self) -> None:
        sink = self.sink
        if sink is None:
            return
        items = self.items
        while items and sink.backlog() < SINK_BACKLOG_BYTES:
            item = items.popleft()
            if isinstance(item, Fragment):
                self.fragments -= 1
            sink.write(item)

    async def _wait(self) -> None:
        self._waiter = asyncio.get_running_loop().create_future()
        try:
            await self._waiter
        finally:
            self._waiter = None

    def _append(self, item: QueueItem) -> bool:
        """Queue `item`, or write it at once when a sink with room is attached and nothing
        is queued ahead of it. True when it was queued."""
        sink = self.sink
        if sink is not None and not self.items and sink.backlog() < SINK_BACKLOG_BYTES:
            sink.write(item)
            return False
        self.items.append(item)
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)
        return True


class Upstream:
    """One camera's RTSP session and the viewers it feeds, in this process.

    Loop side (public methods and the `_on_*` callbacks): viewers, init segment, GOP
    cache, state. Thread side (`_thread_*`): connect, demux, remux, reconnect with
    backoff; it reaches the loop only through `_thread_post` (the loop's `Mailbox`).
    """

    def __init__(self, camera_id: int, url: str, url_redacted: str, loop: asyncio.AbstractEventLoop) -> None:
        self.camera_id = camera_id
        self.url = url
        self.url_redacted = url_redacted
        self.loop = loop
        self.mailbox = mailbox_for(loop)
        self.viewers: set[ViewerQueue] = set()
        self.state = StreamState.CONNECTING
        self.init: InitSegment | None = None
        self.gop: list[Fragment] = []
        self.recent = recent_buffer()
        self.sessions = 0  # RTSP connections made, for tests and status
        # Preloaded (CAMERA_PRELOAD_CODES): stays open without viewers, so the first one
        # starts from the GOP cache instead of waiting for a connection and a keyframe.
        self.pinned = False
        # Thread side only: the remuxer outlives connections while the stream's parameters
        # stay the same, so viewers keep one init segment and one timeline.
        self._remuxer: Remuxer | None = None
        self._went_live = False  # the current connection produced video
        self._stopping = threading.Event()
        self._idle_timer: asyncio.TimerHandle | None = None
        self._thread = threading.Thread(
            target=self._thread_run, name=f"relay-camera-{camera_id}", daemon=True
        )

    # -- loop side ---------------------------------------------------------------

    def start(self) -> None:
        self._thread.start()

    @property
    def stopped(self) -> bool:
        return self._stopping.is_set()

    def add_viewer(self) -> ViewerQueue:
        if self._idle_timer is not None:
            self._idle_timer.cancel()
            self._idle_timer = None
        viewer = ViewerQueue(VIEWER_QUEUE_FRAGMENTS)
        if self.init is not None:
            viewer.put_init(self.init)
        viewer.put_status(StatusChange(self.state))
        for fragment in self.gop:
            viewer.put_fragment(fragment)
        self.viewers.add(viewer)
        return viewer

    def remove_viewer(self, viewer: ViewerQueue) -> None:
        self.viewers.discard(viewer)
        if not self.viewers and not self.stopped and not self.pinned and self._idle_timer is None:
            idle_s = float(getattr(settings, "RELAY_IDLE_CLOSE_S", 10))
            self._idle_timer = self.loop.call_later(idle_s, self._close_if_idle)

    def stop(self) -> None:
        """Ask the thread to hang up; it does within a frame (or a read timeout)."""
        self._stopping.set()
        if self._idle_timer is not None:
            self._idle_timer.cancel()
            self._idle_timer = None
        if _UPSTREAMS.get(self.camera_id) is self:
            del _UPSTREAMS[self.camera_id]
            control_camera(self.camera_id, opened=False)

    async def join(self, timeout: float = THREAD_JOIN_TIMEOUT_S) -> None:
        if self._thread.is_alive():
            await asyncio.to_thread(self._thread.join, timeout)

    def _close_if_idle(self) -> None:
        self._idle_timer = None
        if not self.viewers:
            log.info("camera %s: no viewers left, closing %s", self.camera_id, self.url_redacted)
            self.stop()

    def _on_init(self, init: InitSegment) -> None:
        self.init = init
        self.gop.clear()
        if self.recent is not None:
            self.recent.reset(init)
        for viewer in self.viewers:
            viewer.put_init(init)

    def _on_state(self, state: StreamState) -> None:
        if state == self.state:
            return
        self.state = state
        if state != StreamState.LIVE:
            self.gop.clear()  # stale: the next viewer must start at the next keyframe
            if self.recent is not None:
                # A gap in the footage: the remuxer's timeline would hide it (it carries
                # on one frame later), so "the last N seconds" starts again from here.
                self.recent.reset(self.init)
        change = StatusChange(state)
        for viewer in self.viewers:
            viewer.put_status(change)

    def _on_fragment(self, fragment: Fragment) -> None:
        if fragment.keyframe:
            self.gop = [fragment]
        elif self.gop:
            self.gop.append(fragment)
            if len(self.gop) > GOP_CACHE_FRAGMENTS:
                self.gop.clear()
        if self.recent is not None:
            self.recent.append(fragment)
        for viewer in self.viewers:
            viewer.put_fragment(fragment)

    # -- thread side -------------------------------------------------------------

    def _thread_post(self, callback: Any, argument: Any) -> None:
        self.mailbox.post(callback, argument)
        if self.mailbox.closed:
            self._stopping.set()

    def _thread_run(self) -> None:
        failures = 0
        try:
            while not self._stopping.is_set():
                self._went_live = False
                try:
                    self._thread_session()
                    if not self._stopping.is_set():
                        log.info("camera %s: stream %s ended", self.camera_id, self.url_redacted)
                except Exception as exc:  # any failure of the camera: go offline and retry
                    log.warning(
                        "camera %s: stream %s failed: %s", self.camera_id, self.url_redacted, describe(exc)
                    )
                if self._stopping.is_set():
                    break
                self._thread_post(self._on_state, StreamState.OFFLINE)
                # A stream that played counts its end as the first failure: retry soon.
                failures = 1 if self._went_live else failures + 1
                self._stopping.wait(reconnect_delay(failures))
        finally:
            if self._remuxer is not None:
                self._remuxer.close()

    def _thread_session(self) -> None:
        """One RTSP connection, until it ends or we stop."""
        container = av.open(self.url, options=RTSP_OPTIONS)
        self.sessions += 1
        try:
            stream = container.streams.video[0]
            remuxer = self._remuxer
            if remuxer is None or remuxer.signature != stream_signature(stream):
                # New or changed stream parameters: a new init segment for everyone.
                if remuxer is not None:
                    remuxer.close()
                remuxer = self._remuxer = Remuxer(stream)
            else:
                remuxer.new_session()
            self._thread_relay(container, stream, remuxer)
        finally:
            container.close()

    def _thread_relay(self, container: Any, stream: Any, remuxer: Remuxer) -> None:
        """Packets to fragments to the loop, until the stream ends or we stop.

        This loop runs for every frame: what it needs is looked up once, before it.
        """
        stopping, mailbox = self._stopping, self.mailbox
        mux, post, on_fragment = remuxer.mux, mailbox.post, self._on_fragment
        started = live = False
        for packet in container.demux(stream):
            if stopping.is_set():
                break
            if mailbox.closed:
                stopping.set()
                break
            if not packet.size:
                continue
            if not started:
                # Joining a running stream starts mid-GOP: nothing decodes before a keyframe.
                if not packet.is_keyframe:
                    continue
                started = True
            init, fragment = mux(packet)
            if init is not None:
                post(self._on_init, init)
            if not live:
                live = self._went_live = True
                post(self._on_state, StreamState.LIVE)
            post(on_fragment, fragment)


def recent_buffer() -> RecentBuffer | None:
    """A buffer of the last RELAY_BUFFER_SECONDS for a new upstream (None when set to 0)."""
    seconds = float(getattr(settings, "RELAY_BUFFER_SECONDS", 0))
    if seconds <= 0:
        return None
    max_bytes = int(float(getattr(settings, "RELAY_BUFFER_MAX_MB", 16)) * 2**20)
    return RecentBuffer(seconds=seconds, max_bytes=max_bytes)


def control_camera(camera_id: int, *, opened: bool) -> None:
    """Tell this process's channel-layer mailbox which cameras it relays (for "the last N seconds")."""
    from cameras import relay_control  # it imports the clip services, which import this module

    if opened:
        relay_control.camera_opened(camera_id)
    else:
        relay_control.camera_closed(camera_id)


def reconnect_delay(failures: int) -> float:
    """Seconds to wait before the next attempt, after `failures` (≥ 1) failed attempts in a row."""
    schedule = RECONNECT_BACKOFF_S
    base = schedule[min(max(failures - 1, 0), len(schedule) - 1)]
    return base * random.uniform(0.75, 1.25)


def describe(exc: BaseException) -> str:
    """An error without its arguments: FFmpeg's messages quote the URL, credentials and all."""
    if isinstance(exc, av.error.FFmpegError):
        return f"{type(exc).__name__} ({exc.strerror})"
    return type(exc).__name__


# Streams currently pulled by this process, keyed by camera id. Touched only from the
# event loop; relay_status() reads a copy from other threads.
_UPSTREAMS: dict[int, Upstream] = {}

# Every process that relays a camera says so in Redis, so the health probe (in a Celery
# worker, elsewhere) counts it online without opening one more session on a camera that
# accepts few. Written by one thread per process: a slow Redis never stalls the video.
RELAY_LIVE_KEY = "relay:live:{}"
HEARTBEAT_EVERY_S = 10.0
_heartbeat_started = threading.Lock()
_heartbeat_thread: threading.Thread | None = None


def _heartbeat_run() -> None:
    while True:
        upstreams = list(_UPSTREAMS.values())
        live = {RELAY_LIVE_KEY.format(u.camera_id): 1 for u in upstreams if u.state == StreamState.LIVE}
        try:
            if live:
                cache.set_many(live, timeout=HEARTBEAT_EVERY_S * 3)
        except Exception as exc:  # Redis away: the probe will simply open the camera itself
            log.debug("relay heartbeat failed: %s", type(exc).__name__)
        time.sleep(HEARTBEAT_EVERY_S)


def _heartbeat_ensure() -> None:
    global _heartbeat_thread
    with _heartbeat_started:
        if _heartbeat_thread is None:
            _heartbeat_thread = threading.Thread(target=_heartbeat_run, name="relay-heartbeat", daemon=True)
            _heartbeat_thread.start()


def relay_live_camera_ids(camera_ids: list[int]) -> set[int]:
    """Which of these cameras some process (this one included) is relaying live right now."""
    live = {u.camera_id for u in list(_UPSTREAMS.values()) if u.state == StreamState.LIVE}
    try:
        found = cache.get_many([RELAY_LIVE_KEY.format(pk) for pk in camera_ids])
    except Exception:  # Redis away: only what this process knows
        found = {}
    live.update(int(key.rsplit(":", 1)[1]) for key in found)
    return live & set(camera_ids)


def viewer_join(camera_id: int, url: str, url_redacted: str) -> tuple[Upstream, ViewerQueue]:
    """Attach a viewer to the camera's upstream, opening it if this is the first viewer."""
    upstream = upstream_open(camera_id, url, url_redacted)
    return upstream, upstream.add_viewer()


def upstream_preload(camera_id: int, url: str, url_redacted: str) -> Upstream:
    """Open the camera's upstream now and keep it open with or without viewers."""
    upstream = upstream_open(camera_id, url, url_redacted)
    upstream.pinned = True
    if upstream._idle_timer is not None:
        upstream._idle_timer.cancel()
        upstream._idle_timer = None
    return upstream


def upstream_open(camera_id: int, url: str, url_redacted: str) -> Upstream:
    """The camera's running upstream in this process (on this loop), started if need be."""
    loop = asyncio.get_running_loop()
    upstream = _UPSTREAMS.get(camera_id)
    if upstream is not None and (upstream.loop is not loop or upstream.stopped):
        upstream.stop()
        upstream = None
    if upstream is None:
        log.info("camera %s: opening %s", camera_id, url_redacted)
        upstream = Upstream(camera_id, url, url_redacted, loop)
        _UPSTREAMS[camera_id] = upstream
        upstream.start()
        _heartbeat_ensure()
        if upstream.recent is not None:
            control_camera(camera_id, opened=True)
    elif upstream.url != url:
        upstream.url = url  # the camera was edited: used from the next reconnection on
        upstream.url_redacted = url_redacted
    return upstream


def viewer_leave(upstream: Upstream, viewer: ViewerQueue) -> None:
    upstream.remove_viewer(viewer)


def upstream_of(camera_id: int) -> Upstream | None:
    return _UPSTREAMS.get(camera_id)


async def relay_shutdown() -> None:
    """Close every upstream now and wait for their threads (process exit, tests)."""
    from cameras import relay_control

    upstreams = list(_UPSTREAMS.values())
    for upstream in upstreams:
        upstream.stop()
    await relay_control.control_shutdown()
    for upstream in upstreams:
        await upstream.join()


def relay_status() -> dict[str, Any]:
    """Whether this process can relay video (PyAV demuxes RTSP, muxes MP4) and what it relays now."""
    can_demux_rtsp = "rtsp" in av.formats_available
    can_mux_mp4 = "mp4" in av.formats_available
    upstreams = list(_UPSTREAMS.values())
    return {
        "ok": can_demux_rtsp and can_mux_mp4,
        "pyav": av.__version__,
        "upstreams": len(upstreams),
        "live": sum(1 for upstream in upstreams if upstream.state == StreamState.LIVE),
        "viewers": sum(len(upstream.viewers) for upstream in upstreams),
    }
