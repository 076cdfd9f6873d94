"""`/ws/cameras/<id>/live/?share=<token>` against a real RTSP camera and the real relay.

A partner viewer's socket opens with an active share's token only, records the viewing
with the share's id, and closes (4410) within a second or two of revocation, expiry, or
the subject moving away from its camera.
"""

from __future__ import annotations

import datetime as dt
import secrets
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest
import pytest_asyncio
from asgiref.sync import sync_to_async
from channels.db import database_sync_to_async
from channels.routing import URLRouter
from channels.testing import WebsocketCommunicator
from django.contrib.auth.models import AnonymousUser
from django.db import connections
from django.utils import timezone

from audit.models import AuditEntry
from cameras import relay
from cameras.models import Camera
from cameras.selectors import make_point
from incidents.services import incident_cameras_rank, incident_location_add
from partners.models import Share
from partners.sharing import Trigger, share_decide, share_revoke, share_token
from smartcity.routing import websocket_urlpatterns
from tests.conftest import box
from tests.partners.conftest import partner_with_agreement
from tests.shares.conftest import incident_of, operator_of

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.asyncio, pytest.mark.rtsp]

SMALL = {"width": 320, "height": 240, "fps": 15}


@pytest_asyncio.fixture(autouse=True)
async def clean_up() -> AsyncIterator[None]:
    yield
    await relay.relay_shutdown()
    await sync_to_async(connections.close_all)()


@pytest_asyncio.fixture
async def sockets() -> AsyncIterator[list[WebsocketCommunicator]]:
    opened: list[WebsocketCommunicator] = []
    yield opened
    for communicator in opened:
        if not communicator.future.done():
            await communicator.disconnect(timeout=3)


def shared_scene(stream_url: str) -> dict[str, Any]:
    """A police incident at a camera streaming `stream_url`, shared with the police on event."""
    from cameras.models import Center

    center = Center.objects.create(slug="junggu", name="중구", jurisdiction=box(126.96, 37.54, 127.03, 37.58))
    camera = Camera.objects.create(
        code="S-1",
        name="시청앞",
        center=center,
        location=make_point(lat=37.5664, lon=126.9779),
        stream_url=stream_url,
    )
    far = Camera.objects.create(
        code="S-2",
        name="서울역",
        center=center,
        location=make_point(lat=37.5547, lon=126.9707),
        stream_url=stream_url,
    )
    police = partner_with_agreement("police-112", "police")
    incident = incident_of(police, center, "police.emergency_video")
    incident_cameras_rank(incident=incident, fresh=True)
    decision = share_decide(incident=incident, partner=police, trigger=Trigger.EVENT)
    assert decision.share is not None
    return {
        "camera": camera,
        "far": far,
        "incident": incident,
        "share": decision.share,
        "token": share_token(decision.share.token_nonce),
        "operator": operator_of(center, "kim"),
    }


async def connect(camera_id: int, token: str) -> tuple[WebsocketCommunicator, tuple[bool, int | None]]:
    communicator = WebsocketCommunicator(
        URLRouter(websocket_urlpatterns), f"/ws/cameras/{camera_id}/live/?share={token}"
    )
    communicator.scope["user"] = AnonymousUser()
    return communicator, await communicator.connect(timeout=5)


async def watching(camera_id: int, token: str, sockets: list[WebsocketCommunicator]) -> WebsocketCommunicator:
    communicator, (connected, code) = await connect(camera_id, token)
    assert connected, f"refused with {code}"
    sockets.append(communicator)
    binaries = 0
    deadline = time.monotonic() + 10
    while binaries < 5:
        message = await communicator.receive_output(max(0.1, deadline - time.monotonic()))
        assert message["type"] == "websocket.send", message
        binaries += message.get("bytes") is not None
    return communicator


async def closed_within(communicator: WebsocketCommunicator, seconds: float) -> tuple[int, float]:
    """Drain video until the server closes the socket: (close code, seconds it took)."""
    started = time.monotonic()
    while True:
        remaining = seconds - (time.monotonic() - started)
        assert remaining > 0, f"still open after {seconds} s"
        message = await communicator.receive_output(remaining)
        if message["type"] == "websocket.close":
            return message["code"], time.monotonic() - started


async def refused(camera_id: int, token: str) -> int | None:
    """The close code of a refused socket: accepted, then closed at once with nothing sent
    (so the browser's player can read the code; see LiveVideoConsumer.refuse)."""
    communicator, (connected, code) = await connect(camera_id, token)
    if connected:
        message = await communicator.receive_output(5)
        assert message["type"] == "websocket.close", f"sent {message['type']} before refusing"
        code = message.get("code")
    await communicator.disconnect(timeout=0.1)
    return code


async def test_a_share_token_opens_its_camera_and_the_viewing_is_recorded_with_the_share(
    rtsp_server_factory, sockets
):
    server = rtsp_server_factory(**SMALL)
    scene = await database_sync_to_async(shared_scene)(server.url())

    sock = await watching(scene["camera"].pk, scene["token"], sockets)
    await sock.disconnect()

    entries = await database_sync_to_async(list)(
        AuditEntry.objects.filter(action__startswith="video.")
        .order_by("id")
        .values("action", "actor", "partner_id", "details")
    )
    assert [e["action"] for e in entries] == ["video.view_start", "video.view_stop"]
    assert {e["actor"] for e in entries} == {"partner:police-112"}
    assert all(e["details"]["share_id"] == scene["share"].pk for e in entries)
    assert all(e["details"]["incident_id"] == scene["incident"].pk for e in entries)


async def test_revocation_closes_the_open_socket_at_once_and_the_token_stays_dead(
    rtsp_server_factory, sockets
):
    server = rtsp_server_factory(**SMALL)
    scene = await database_sync_to_async(shared_scene)(server.url())
    sock = await watching(scene["camera"].pk, scene["token"], sockets)

    await database_sync_to_async(share_revoke)(user=scene["operator"], share_id=scene["share"].pk)

    code, took = await closed_within(sock, 2.0)
    assert code == 4410
    assert took < 1.0, f"closed {took:.2f} s after the revocation"
    assert await refused(scene["camera"].pk, scene["token"]) == 4403


async def test_expiry_closes_the_open_socket_within_two_seconds(rtsp_server_factory, sockets):
    server = rtsp_server_factory(**SMALL)
    scene = await database_sync_to_async(shared_scene)(server.url())
    expires = timezone.now() + dt.timedelta(seconds=2)
    await database_sync_to_async(Share.objects.filter(pk=scene["share"].pk).update)(expires_at=expires)
    sock = await watching(scene["camera"].pk, scene["token"], sockets)

    code, _took = await closed_within(sock, 6.0)

    late = (timezone.now() - expires).total_seconds()
    assert code == 4410
    assert late < 1.5, f"closed {late:.2f} s after expiry"  # no beat task involved: the socket's own clock
    assert await refused(scene["camera"].pk, scene["token"]) == 4403


async def test_the_socket_of_a_camera_the_subject_left_closes(rtsp_server_factory, sockets):
    server = rtsp_server_factory(**SMALL)
    scene = await database_sync_to_async(shared_scene)(server.url())
    sock = await watching(scene["camera"].pk, scene["token"], sockets)

    # The subject walks to Seoul station: the share now covers the camera there.
    await database_sync_to_async(incident_location_add)(
        incident=scene["incident"], lat=37.5548, lon=126.9707, accuracy_m=10, observed_at=timezone.now()
    )

    code, took = await closed_within(sock, 2.0)
    assert code == 4410 and took < 1.0
    await watching(scene["far"].pk, scene["token"], sockets)


async def test_guessed_tokens_and_cameras_outside_the_share_are_refused(rtsp_server_factory):
    server = rtsp_server_factory(**SMALL)
    scene = await database_sync_to_async(shared_scene)(server.url())

    assert await refused(scene["camera"].pk, secrets.token_urlsafe(32)) == 4403
    token = scene["token"]
    assert await refused(scene["camera"].pk, token[:-1] + ("B" if token.endswith("A") else "A")) == 4403
    assert await refused(scene["far"].pk, scene["token"]) == 4403  # not (yet) in the share
    assert await refused(scene["camera"].pk, "") == 4401  # no token, no login
    assert relay.relay_status()["upstreams"] == 0
