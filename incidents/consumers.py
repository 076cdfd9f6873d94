"""`/ws/operator/`: pushes a centre's incidents to its operators. Authorises, subscribes, forwards."""

from __future__ import annotations

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
from incidents.selectors import incidents_open, watched_center_ids
from smartcity.consumers import DispatchWithoutDatabase
from smartcity.metrics import operator_sockets

CLOSE_UNAUTHENTICATED = 4401
CLOSE_FORBIDDEN = 4403
CLOSE_RESYNC = 1012  # "service restart": come back and resync


class OperatorConsumer(DispatchWithoutDatabase, AsyncJsonWebsocketConsumer):
    groups_joined: list[str]
    counted = False

    async def connect(self) -> None:
        user = self.scope.get("user")
        if user is None or not user.is_authenticated:
            await self.close(code=CLOSE_UNAUTHENTICATED)
            return
        self.groups_joined = await self.groups_for(user)
        if not self.groups_joined:
            await self.close(code=CLOSE_FORBIDDEN)
            return
        # Subscribe before the snapshot: a push racing the snapshot may arrive twice
        # (the browser keeps the newest `updated_at`), but can never be missed.
        # The user's own group carries "your session was ended" (log out everywhere).
        self.groups_joined.append(user_group(user.pk))
        for group in self.groups_joined:
            await self.channel_layer.group_add(group, self.channel_name)
        await self.accept()
        operator_sockets.inc()
        self.counted = True
        await self.send_json(await self.snapshot(user))

    async def disconnect(self, code: int) -> None:
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

    async def session_ended(self, event: dict[str, Any]) -> None:
        await self.close(code=CLOSE_UNAUTHENTICATED)

    async def layer_lost(self, event: dict[str, Any]) -> None:
        """Redis was away (smartcity/layers.py): pushes may be lost. The browser reconnects
        with its backoff and the snapshot it gets then brings what this socket missed."""
        await self.close(code=CLOSE_RESYNC)

    @database_sync_to_async
    def groups_for(self, user: Any) -> list[str]:
        centers = watched_center_ids(user)
        if centers is None:
            return [
                ALL_CENTERS_GROUP,
                *(center_group(pk) for pk in Center.objects.values_list("pk", flat=True)),
            ]
        # Supervisors get escalations through their centre's group like everyone there:
        # a centre's messages never reach another centre's screens.
        return [center_group(center_id) for center_id in centers]

    @database_sync_to_async
    def snapshot(self, user: Any) -> SnapshotMessage:
        return {"type": "snapshot", "incidents": [incident_payload(i) for i in incidents_open(user)[:200]]}
