"""Pushes from request threads, sent by the process's event loop without making the thread wait.

A partner's event is pushed to dashboards after its commit, from the thread that
served the request. Sending through `async_to_sync` hands the send to the event loop
and blocks the thread until Redis has answered: two thread switches and a GIL
hand-off per push, while the request (and its database connection) waits for
something its answer does not depend on.

Inside a Daphne process the thread instead queues the push for the loop and goes on;
one task on the loop sends the queue in order, so one incident's pushes still leave in
the order they were made (incident.created before its share.created). Elsewhere (a
Celery worker, a management command, tests without a server) there is no loop to hand
to, and the push is sent at once as before. A push that fails is logged and dropped:
the event is stored, and dashboards resync from their snapshot when they reconnect
(smartcity/layers.py tells them when the channel layer was lost).
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections import deque
from typing import Any

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer

log = logging.getLogger(__name__)

# Pushes waiting for the loop; beyond this (Redis stuck, not down) the oldest are dropped
# with a warning: a dashboard that misses one resyncs when its socket reconnects.
QUEUE_LIMIT = 10_000


class LoopPublisher:
    """The queue of one process's pushes, drained by one task on its event loop."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.pending: deque[tuple[str, dict[str, Any]]] = deque()
        self.sending = False

    def submit(self, group: str, message: dict[str, Any]) -> None:
        """From any thread: queue the push; the loop sends it soon, in order."""
        self.loop.call_soon_threadsafe(self._enqueue, group, message)

    def _enqueue(self, group: str, message: dict[str, Any]) -> None:
        if len(self.pending) >= QUEUE_LIMIT:
            self.pending.popleft()
            log.warning("push queue full; dropped the oldest push (dashboards resync on reconnect)")
        self.pending.append((group, message))
        if not self.sending:
            self.sending = True
            self.loop.create_task(self._drain())

    async def _drain(self) -> None:
        """Send what is queued, in order: everything queued by now in one batch (one round
        trip to Redis where the layer can), then what was queued meanwhile."""
        layer = get_channel_layer()
        send_many = getattr(layer, "group_send_many", None)
        try:
            while self.pending:
                batch = list(self.pending)
                self.pending.clear()
                try:
                    if layer is None:
                        continue
                    if send_many is not None:
                        await send_many(batch)
                    else:
                        for group, message in batch:
                            await layer.group_send(group, message)
                except Exception:  # Redis away: the incidents are stored; dashboards resync on reconnect.
                    groups = ", ".join(sorted({group for group, _ in batch}))
                    log.warning(
                        "push to %s failed (%d pushes); dashboards will resync",
                        groups,
                        len(batch),
                        exc_info=True,
                    )
        finally:
            self.sending = False


_publisher: LoopPublisher | None = None
_bind_lock = threading.Lock()


def publisher_bind(loop: asyncio.AbstractEventLoop) -> None:
    """Called on the serving loop (smartcity/http.py): request threads hand their pushes to it."""
    global _publisher
    if _publisher is None or _publisher.loop is not loop:
        with _bind_lock:
            _publisher = LoopPublisher(loop)


def channel_send(group: str, message: dict[str, Any]) -> None:
    """Send `message` to a channel-layer group: queued for the loop when called from a
    request thread of a serving process, else at once. Never raises for Redis trouble."""
    publisher = _publisher
    if publisher is not None and publisher.loop.is_running() and not on_loop_thread(publisher.loop):
        publisher.submit(group, message)
        return
    layer = get_channel_layer()
    if layer is None:
        return
    try:
        async_to_sync(layer.group_send)(group, message)
    except Exception:  # Redis away: the incident is stored; dashboards resync on reconnect.
        log.warning("push to %s failed; dashboards will resync", group, exc_info=True)


def on_loop_thread(loop: asyncio.AbstractEventLoop) -> bool:
    try:
        return asyncio.get_running_loop() is loop
    except RuntimeError:
        return False
