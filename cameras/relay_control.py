"""Each process's mailbox on the channel layer, for the cameras it relays: "save the last N seconds".

The last N seconds of a camera exist only in memory, in whichever Daphne process relays
that camera right now (`cameras/recent.py`): maybe several processes, maybe none. The
request can reach any process, or a Celery worker, or a test. So every process that
relays a camera joins the channel-layer group `relay.camera.<id>` with one channel of
its own. `cameras.clips.clip_request` (mode "last") sends `clip.last` to the camera's
group; each process that holds the camera snapshots its buffer and tries to claim the
clip row (a conditional UPDATE: exactly one wins, however many answer); the winner
writes the MP4 and finishes the clip the same way the Celery recorder does (SHA-256,
expiry, `clip.saved` audit). The requester fails the clip if nobody has taken it within
CLIP_LAST_ANSWER_S.

The memberships are renewed every hour, and every few seconds after a failure or a lost
subscription (Redis away, `layer.lost`) until they hold again; meanwhile "the last N
seconds" is unavailable, and live video is not affected.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any, Literal, TypedDict

from channels.db import database_sync_to_async
from channels.layers import BaseChannelLayer, get_channel_layer
from django.utils import timezone

from cameras import relay
from cameras.clips import clip_claim, clip_record_recent
from cameras.models import ClipMode
from smartcity.layers import LAYER_LOST

log = logging.getLogger(__name__)

RENEW_EVERY_S = 3600.0
RETRY_S = 5.0


class ClipLastMessage(TypedDict):
    """Sent to `relay.camera.<id>`: save the last `seconds` of the camera into clip `clip_id`."""

    type: Literal["clip.last"]
    clip_id: int
    camera_id: int
    seconds: int


def camera_group(camera_id: int) -> str:
    return f"relay.camera.{camera_id}"


class RelayControl:
    """The mailbox of one event loop's relays (one per Daphne process)."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.cameras: set[int] = set()
        self.channel: str | None = None
        self._changes: asyncio.Queue[int] = asyncio.Queue()
        self._renew_now = asyncio.Event()
        self._tasks: set[asyncio.Task[Any]] = set()
        self._main = loop.create_task(self._run())

    def opened(self, camera_id: int) -> None:
        self.cameras.add(camera_id)
        self._changes.put_nowait(camera_id)

    def closed(self, camera_id: int) -> None:
        self.cameras.discard(camera_id)
        self._changes.put_nowait(camera_id)

    async def stop(self) -> None:
        tasks = [self._main, *self._tasks]
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task

    def _spawn(self, coroutine: Any) -> asyncio.Task[Any]:
        task = self.loop.create_task(coroutine)
        self._tasks.add(task)  # held: the loop keeps only weak references to tasks
        task.add_done_callback(self._tasks.discard)
        return task

    async def _run(self) -> None:
        layer = get_channel_layer()
        if layer is None:
            return  # no channel layer configured: nothing can ask
        while True:
            try:
                await self._serve(layer)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # Redis away: live video goes on, "last N" waits for it
                log.warning("relay mailbox: channel layer unavailable (%s); retrying", type(exc).__name__)
                self.channel = None
                await asyncio.sleep(RETRY_S)

    async def _serve(self, layer: BaseChannelLayer) -> None:
        self.channel = channel = await layer.new_channel("relay.")
        helpers = [self._spawn(self._renew(layer, channel)), self._spawn(self._apply_changes(layer, channel))]
        try:
            while True:
                message = await layer.receive(channel)
                if message.get("type") == "clip.last":
                    self._spawn(self._clip_last(message))
                elif message.get("type") == LAYER_LOST:
                    self._renew_now.set()
        finally:
            for helper in helpers:
                helper.cancel()

    async def _renew(self, layer: BaseChannelLayer, channel: str) -> None:
        while True:
            delay = RENEW_EVERY_S
            try:
                for camera_id in list(self.cameras):
                    await layer.group_add(camera_group(camera_id), channel)
            except Exception as exc:  # Redis away: again soon, until it holds
                log.warning("relay mailbox: could not renew memberships (%s)", type(exc).__name__)
                delay = RETRY_S
            self._renew_now.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._renew_now.wait(), delay)

    async def _apply_changes(self, layer: BaseChannelLayer, channel: str) -> None:
        # One at a time, each as the camera is *now*: an open, close and reopen in quick
        # succession always ends with the camera in its group.
        while True:
            camera_id = await self._changes.get()
            try:
                if camera_id in self.cameras:
                    await layer.group_add(camera_group(camera_id), channel)
                else:
                    await layer.group_discard(camera_group(camera_id), channel)
            except Exception as exc:  # Redis away: the renewal adds it once it is back
                log.warning("relay mailbox: camera %s not (un)registered (%s)", camera_id, type(exc).__name__)
                self._renew_now.set()

    async def _clip_last(self, message: ClipLastMessage) -> None:
        try:
            await clip_last_answer(message, self.loop)
        except Exception:  # one clip's trouble must not take the mailbox down
            log.exception("clip %s: saving the last seconds failed", message.get("clip_id"))


async def clip_last_answer(message: ClipLastMessage, loop: asyncio.AbstractEventLoop) -> bool:
    """Save the clip from this process's buffer if it has the camera live; whether it did."""
    upstream = relay.upstream_of(int(message["camera_id"]))
    if (
        upstream is None
        or upstream.loop is not loop
        or upstream.stopped
        or upstream.recent is None
        or upstream.state != relay.StreamState.LIVE
    ):
        return False  # another process may hold it; if none does, the requester says so
    # Taken on the loop, where the buffer is written: a consistent copy, at once.
    footage = upstream.recent.snapshot(seconds=float(message["seconds"]), now=timezone.now())
    if footage is None:
        return False
    # Not the process's one sync thread: a request thread may be busy waiting for this claim.
    claimed = await database_sync_to_async(clip_claim, thread_sensitive=False)(
        clip_id=int(message["clip_id"]), mode=ClipMode.LAST
    )
    if not claimed:
        return False  # another process was first, or the requester gave up
    await database_sync_to_async(clip_record_recent, thread_sensitive=False)(
        clip_id=int(message["clip_id"]), footage=footage
    )
    return True


# One mailbox per event loop that runs relays (Daphne's one; each async test its own).
_CONTROL: RelayControl | None = None


def control() -> RelayControl:
    global _CONTROL
    loop = asyncio.get_running_loop()
    if _CONTROL is None or _CONTROL.loop is not loop:
        _CONTROL = RelayControl(loop)
    return _CONTROL


def camera_opened(camera_id: int) -> None:
    control().opened(camera_id)


def camera_closed(camera_id: int) -> None:
    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:
        return
    if _CONTROL is not None and _CONTROL.loop is loop:
        _CONTROL.closed(camera_id)


async def control_shutdown() -> None:
    """Stop this loop's mailbox (process exit, tests)."""
    global _CONTROL
    current, _CONTROL = _CONTROL, None
    if current is not None and current.loop is asyncio.get_running_loop():
        await current.stop()
