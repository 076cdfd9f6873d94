"""`/ws/operator/`: pushes a centre's incidents to its operators. Authorises, subscribes, forwards."""

from __future__ import annotations

import asyncio
import time
import weakref
from typing import Any

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncJsonWebsocketConsumer

from cameras.models import Center
from cameras.sessions import user_group
from incidents.realtime import (
    ALL_CENTERS_GROUP,
    SnapshotMessage,
    center_group,
    incident_payload,
)
from incidents.selectors import incidents_open_at, watched_center_ids
from smartcity.consumers import DispatchWithoutDatabase
from smartcity.metrics import operator_sockets
from smartcity.wsdirect import DirectSocket

CLOSE_UNAUTHENTICATED = 4401
CLOSE_FORBIDDEN = 4403
CLOSE_RESYNC = 1012  # "service restart": come back and resync


class OperatorConsumer(DispatchWithoutDatabase, AsyncJsonWebsocketConsumer):
    groups_joined: list[str]
    counted = False
    direct: DirectSocket | None = None

    async def connect(self) -> None:
        user = self.scope.get("user")
        if user is None or not user.is_authenticated:
            await self.close(code=CLOSE_UNAUTHENTICATED)
            return
        centers, self.groups_joined = await self.groups_for(user)
        if not self.groups_joined:
            await self.close(code=CLOSE_FORBIDDEN)
            return
        # Subscribe before the snapshot: a push racing the snapshot may arrive twice
        # (the browser keeps the newest `updated_at`), but can never be missed.
        # The user's own group carries "your session was ended" (log out everywhere).
        self.groups_joined.append(user_group(user.pk))
        for group in self.groups_joined:
            await self.channel_layer.group_add(group, self.channel_name)
        subscribed_at = time.monotonic()
        await self.accept()
        operator_sockets.inc()
        self.counted = True
        await self.send_json(await snapshot_shared(centers, subscribed_at=subscribed_at))
        # From here pushes are written as they arrive, by the process's one delivery, not
        # by this consumer's dispatch (smartcity/layers.py, smartcity/wsdirect.py).
        self.direct = DirectSocket.of(self.base_send)
        direct_add = getattr(self.channel_layer, "direct_add", None)
        if self.direct is not None and direct_add is not None:
            direct_add(self.channel_name, self.push_direct)

    async def disconnect(self, code: int) -> None:
        direct_discard = getattr(self.channel_layer, "direct_discard", None)
        if self.direct is not None and direct_discard is not None:
            direct_discard(self.channel_name)
            self.direct = None
        if getattr(self, "counted", False):
            operator_sockets.dec()
            self.counted = False
        for group in getattr(self, "groups_joined", []):
            await self.channel_layer.group_discard(group, self.channel_name)

    async def receive_json(self, content: Any, **kwargs: Any) -> None:
        # Operators act through the HTTP endpoints (CSRF, audit); the socket only listens.
        if isinstance(content, dict) and content.get("type") == "ping":
            await self.send_json({"type": "pong"})

    async def push(self, event: dict[str, Any]) -> None:
        await self.send(text_data=event["text"])  # encoded once by realtime.group_send

    def push_direct(self, event: dict[str, Any]) -> bool:
        """A push, written at once (the other message types go through `dispatch`)."""
        if event.get("type") != "push" or self.direct is None:
            return False
        self.direct.send_text(event["text"])  # a socket already closing drops it, as Daphne would
        return True

    async def session_ended(self, event: dict[str, Any]) -> None:
        await self.close(code=CLOSE_UNAUTHENTICATED)

    async def layer_lost(self, event: dict[str, Any]) -> None:
        """Redis was away (smartcity/layers.py): pushes may be lost. The browser reconnects
        with its backoff and the snapshot it gets then brings what this socket missed."""
        await self.close(code=CLOSE_RESYNC)

    @database_sync_to_async
    def groups_for(self, user: Any) -> tuple[list[int] | None, list[str]]:
        """The centres the user watches (None: all) and the groups that carries."""
        centers = watched_center_ids(user)
        if centers is None:
            return None, [
                ALL_CENTERS_GROUP,
                *(center_group(pk) for pk in Center.objects.values_list("pk", flat=True)),
            ]
        # Supervisors get escalations through their centre's group like everyone there:
        # a centre's messages never reach another centre's screens.
        return centers, [center_group(center_id) for center_id in centers]


def snapshot_of(centers: list[int] | None) -> SnapshotMessage:
    return {"type": "snapshot", "incidents": [incident_payload(i) for i in incidents_open_at(centers)[:200]]}


class SnapshotRun:
    """One read of a snapshot: when it began reading (None: still queued), and its result."""

    def __init__(self, centers: list[int] | None) -> None:
        self.began: float | None = None
        self.future: asyncio.Future[SnapshotMessage] = asyncio.ensure_future(
            database_sync_to_async(self.read)(centers)
        )

    def read(self, centers: list[int] | None) -> SnapshotMessage:
        self.began = time.monotonic()  # in the sync thread, just before the queries
        return snapshot_of(centers)

    def serves(self, subscribed_at: float) -> bool:
        """Whether a socket subscribed at `subscribed_at` may take this read's result."""
        future = self.future
        if future.done() and (future.cancelled() or future.exception() is not None):
            return False  # a failed read is read again
        began = self.began
        return began is None or began >= subscribed_at  # queued reads begin later still


# Per event loop: for each set of centres, the latest snapshot read.
_SNAPSHOTS: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[Any, SnapshotRun]] = (
    weakref.WeakKeyDictionary()
)


async def snapshot_shared(centers: list[int] | None, *, subscribed_at: float) -> SnapshotMessage:
    """The open incidents of these centres, read after `subscribed_at`; shared between sockets.

    When a control room's dashboards all reconnect at once (a restart, a Redis blip),
    each used to read the same snapshot in turn through the process's one sync thread:
    100 dashboards took ~13 s. A socket may instead take the result of a read of the
    same centres that began *after this socket had subscribed* (or is still queued) —
    whatever committed before that read is in it, whatever commits later is pushed to
    this socket — so nothing is missed, and a storm of reconnections reads a few
    snapshots instead of one each.
    """
    runs = _SNAPSHOTS.setdefault(asyncio.get_running_loop(), {})
    key = None if centers is None else tuple(sorted(centers))
    run = runs.get(key)
    if run is None or not run.serves(subscribed_at):
        run = runs[key] = SnapshotRun(centers)
    return await asyncio.shield(run.future)  # a socket that leaves cancels only its own wait
