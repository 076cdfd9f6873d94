"""`/ws/cameras/<id>/live/`: one viewer of a camera's live video. Authorises, attaches, forwards.

Messages, in order: a JSON `init` (`{"type": "init", "mime": "video/mp4; codecs=\\"avc1.…\\""}`)
followed by the init segment as a binary message, then one binary fMP4 fragment per
frame, starting at a keyframe. JSON `status` messages (`connecting`, `live`, `offline`)
come in between; a viewer joining a camera that is not streaming hears its status first
and the `init` once the stream starts. After a reconnection with different stream
parameters a new `init` and init segment come before the next fragments. The stream URL
and its credentials never leave the server.

Partner staff connect with `?share=<token>` instead of a login: the share must be
active and include the camera. Their socket joins the share's group and closes (4410)
when the share is revoked, ends, expires, or stops covering the camera; it also
re-reads the share every SHARE_SOCKET_RECHECK_S and at its expiry, so it closes on
time even if a group message is lost.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from typing import Any, Literal, TypedDict
from urllib.parse import parse_qs

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncWebsocketConsumer
from django.conf import settings
from django.utils import timezone

from audit.services import audit_record
from cameras import relay
from cameras.access import ShareGrant, camera_viewable_by, share_grant
from cameras.fmp4 import Fragment, InitSegment
from cameras.models import Camera
from cameras.sessions import user_group
from partners.sharing import share_group
from smartcity.consumers import DispatchWithoutDatabase
from smartcity.wsdirect import DirectSocket

log = logging.getLogger(__name__)

CLOSE_UNAUTHENTICATED = 4401
CLOSE_FORBIDDEN = 4403
CLOSE_NOT_FOUND = 4404
CLOSE_SHARE_ENDED = 4410


class InitMessage(TypedDict):
    type: Literal["init"]
    mime: str


class StatusMessage(TypedDict):
    type: Literal["status"]
    state: str


def item_messages(item: relay.QueueItem) -> list[str | bytes]:
    """The WebSocket messages of one queued item: text (JSON) or binary (fMP4)."""
    if isinstance(item, Fragment):
        return [item.data]
    if isinstance(item, InitSegment):
        init: InitMessage = {"type": "init", "mime": item.mime}
        return [json.dumps(init), item.data]
    status: StatusMessage = {"type": "status", "state": item.state.value}
    return [json.dumps(status)]


class VideoSink(relay.ViewerSink):
    """A viewer's socket, written directly (smartcity/wsdirect.py), as `send_item` would."""

    __slots__ = ("socket",)

    def __init__(self, socket: DirectSocket) -> None:
        self.socket = socket

    def write(self, item: relay.QueueItem) -> None:
        if isinstance(item, Fragment):  # nearly every item: no detour
            self.socket.send_bytes(item.data)
            return
        for part in item_messages(item):
            if isinstance(part, str):
                self.socket.send_text(part)
            else:
                self.socket.send_bytes(part)

    def backlog(self) -> int:
        return self.socket.buffered()


class LiveVideoConsumer(DispatchWithoutDatabase, AsyncWebsocketConsumer):
    camera: Camera | None = None
    upstream: relay.Upstream | None = None
    viewer: relay.ViewerQueue | None = None
    forwarder: asyncio.Task[None] | None = None
    started_at: float | None = None
    groups_joined: list[str]
    share: ShareGrant | None = None
    share_token: str = ""
    share_watch: asyncio.Task[None] | None = None

    async def connect(self) -> None:
        self.groups_joined = []
        user = self.scope.get("user")
        camera_id = int(self.scope["url_route"]["kwargs"]["camera_id"])
        query = parse_qs(self.scope.get("query_string", b"").decode(errors="replace"))
        if query.get("share"):
            await self.connect_shared(camera_id, query["share"][0])
            return
        if user is None or not user.is_authenticated:
            await self.refuse(CLOSE_UNAUTHENTICATED)
            return
        camera = await self.camera_for(camera_id)
        if camera is None:
            await self.refuse(CLOSE_NOT_FOUND)
            return
        if not await database_sync_to_async(camera_viewable_by)(user, camera):
            await self.refuse(CLOSE_FORBIDDEN)
            return
        # "Log out everywhere" ends the video too (see cameras.sessions).
        self.groups_joined = [user_group(user.pk)]
        for group in self.groups_joined:
            await self.channel_layer.group_add(group, self.channel_name)
        await self.start(camera)

    async def connect_shared(self, camera_id: int, token: str) -> None:
        """A partner viewer: the share token is the only credential."""
        client = self.scope.get("client") or ("", 0)
        grant = await database_sync_to_async(share_grant)(token, camera_id, client[0])
        camera = await self.camera_for(camera_id) if grant is not None else None
        if grant is None or camera is None:
            # One answer for unknown token, ended share, camera not in it: nothing to probe.
            await self.refuse(CLOSE_FORBIDDEN)
            return
        self.share, self.share_token = grant, token
        self.groups_joined = [share_group(grant.share_id)]
        await self.channel_layer.group_add(self.groups_joined[0], self.channel_name)
        await self.start(camera)
        self.share_watch = asyncio.create_task(self.watch_share())

    async def start(self, camera: Camera) -> None:
        await self.accept()
        self.camera = camera
        self.started_at = time.monotonic()
        await self.record("video.view_start")
        self.upstream, self.viewer = relay.viewer_join(
            camera.pk, camera.stream_url, camera.stream_url_redacted
        )
        # Under Daphne the relay writes each frame to the socket as it comes (no task per
        # frame per viewer); elsewhere (the test communicator) this consumer sends it.
        direct = DirectSocket.of(self.base_send)
        self.forwarder = asyncio.create_task(
            self.viewer.feed(VideoSink(direct)) if direct is not None else self.forward(self.viewer)
        )

    async def refuse(self, code: int) -> None:
        """Accept, then close with `code`: the player can tell "refused" from a dead server.

        A handshake rejected before accept() reaches a browser as a bare 1006 with no
        reason; a close frame after accept() carries 4401/4403/4404 to `CloseEvent.code`.
        Nothing was attached and nothing is recorded: no video left the server.
        """
        await self.accept()
        await self.close(code=code)

    async def watch_share(self) -> None:
        """Close at the share's expiry, and notice changes even if a group message was lost."""
        while self.share is not None:
            left = (self.share.expires_at - timezone.now()).total_seconds()
            await asyncio.sleep(max(0.05, min(settings.SHARE_SOCKET_RECHECK_S, left + 0.05)))
            if not await self.share_still_allows():
                await self.end_shared()
                return

    async def share_still_allows(self) -> bool:
        if self.share is None or self.camera is None:
            return False
        grant = await database_sync_to_async(share_grant)(self.share_token, self.camera.pk)
        if grant is not None:
            self.share = grant
        return grant is not None

    async def end_shared(self) -> None:
        self.detach()
        await self.close(code=CLOSE_SHARE_ENDED)

    async def share_ended(self, event: dict[str, Any]) -> None:
        await self.end_shared()

    async def share_updated(self, event: dict[str, Any]) -> None:
        # Extended, or re-ranked as the subject moved: this camera may have left the share.
        if not await self.share_still_allows():
            await self.end_shared()

    async def disconnect(self, code: int) -> None:
        if self.share_watch is not None and self.share_watch is not asyncio.current_task():
            self.share_watch.cancel()
        self.detach()
        for group in self.groups_joined:
            await self.channel_layer.group_discard(group, self.channel_name)
        if self.started_at is not None:
            duration = round(time.monotonic() - self.started_at, 1)
            self.started_at = None
            await self.record("video.view_stop", {"duration_s": duration})

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        pass  # viewers only watch

    async def session_ended(self, event: dict[str, Any]) -> None:
        self.detach()
        await self.close(code=CLOSE_UNAUTHENTICATED)

    async def layer_lost(self, event: dict[str, Any]) -> None:
        """Redis was away (smartcity/layers.py): a revocation or a logout may have been lost."""
        if self.share is not None:
            if not await self.share_still_allows():
                await self.end_shared()
            return
        session = self.scope.get("session")
        key = getattr(session, "session_key", None)
        if session is None or not key or not await database_sync_to_async(session.exists)(key):
            await self.session_ended(event)

    def detach(self) -> None:
        """Stop forwarding and leave the camera's upstream (which may then idle out)."""
        if self.forwarder is not None:
            self.forwarder.cancel()
            self.forwarder = None
        if self.upstream is not None and self.viewer is not None:
            relay.viewer_leave(self.upstream, self.viewer)
        self.upstream = self.viewer = None

    async def forward(self, viewer: relay.ViewerQueue) -> None:
        """Send what the relay queues for this viewer, in order, as fast as the client takes it."""
        try:
            while True:
                await self.send_item(await viewer.get())
        except Exception as exc:  # the client went away mid-send; disconnect() cleans up
            log.debug("live video forwarding stopped: %s", type(exc).__name__)

    async def send_item(self, item: relay.QueueItem) -> None:
        for part in item_messages(item):
            if isinstance(part, str):
                await self.send(text_data=part)
            else:
                await self.send(bytes_data=part)

    @database_sync_to_async
    def camera_for(self, camera_id: int) -> Camera | None:
        return Camera.objects.filter(pk=camera_id).exclude(stream_url="").first()

    async def record(self, action: str, details: dict[str, Any] | None = None) -> None:
        camera = self.camera
        assert camera is not None
        details = dict(details or {})
        if self.share is not None:
            actor, user_id, partner_id = f"partner:{self.share.partner_slug}", None, self.share.partner_id
            details |= {"share_id": self.share.share_id, "incident_id": self.share.incident_id}
        else:
            user = self.scope["user"]
            actor, user_id, partner_id = f"user:{user.get_username()}", user.pk, None
        log.info("%s camera %s (%s) by %s", action, camera.pk, camera.stream_url_redacted, actor)
        await database_sync_to_async(audit_record)(
            action=action,
            actor=actor,
            user_id=user_id,
            partner_id=partner_id,
            object_type="camera",
            object_id=camera.pk,
            details=details,
        )
