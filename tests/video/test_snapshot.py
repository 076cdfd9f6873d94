"""`GET /cameras/<id>/snapshot.jpg` against real gst-rtsp-server cameras."""

from __future__ import annotations

import asyncio
import io
import threading
from collections.abc import Iterator
from typing import Any

import av
import pytest
from django.test import Client
from django.utils import timezone

from audit.models import AuditEntry
from cameras import access, relay
from cameras.models import Camera, Center
from cameras.selectors import make_point
from incidents.services import EventIn, incident_intake
from partners.models import Agreement, Share
from partners.sharing import share_token
from tests.conftest import box
from tests.fixtures.rtsp import free_port
from tests.incidents.conftest import operator_of
from tests.partners.conftest import partner_with_agreement

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.rtsp]

SMALL = {"width": 320, "height": 240, "fps": 15}


def centre(slug: str, west: float) -> Center:
    return Center.objects.create(slug=slug, name=slug.title(), jurisdiction=box(west, 37.4, west + 0.1, 37.6))


def camera_of(center: Center | None, url: str, **extra: Any) -> Camera:
    n = Camera.objects.count() + 1
    extra.setdefault("location", make_point(lat=37.5, lon=126.95))
    return Camera.objects.create(code=f"S-{n:04d}", name=f"Snap {n}", center=center, stream_url=url, **extra)


def logged_in(user: Any) -> Client:
    client = Client()
    client.force_login(user)
    return client


def jpeg_size(data: bytes) -> tuple[int, int]:
    assert data[:2] == b"\xff\xd8" and data[-2:] == b"\xff\xd9", "not a JPEG"
    with av.open(io.BytesIO(data), mode="r", format="jpeg_pipe") as container:
        frame = next(container.decode(video=0))
        return frame.width, frame.height


@pytest.fixture
def mine() -> Center:
    return centre("centre-a", 126.9)


def test_an_operator_of_the_centre_gets_a_jpeg_of_the_streams_size(rtsp_server_factory, mine):
    server = rtsp_server_factory(**SMALL)
    camera = camera_of(mine, server.url())
    client = logged_in(operator_of(mine, "op-a"))

    response = client.get(f"/cameras/{camera.pk}/snapshot.jpg")

    assert response.status_code == 200
    assert response["Content-Type"] == "image/jpeg"
    assert response["Cache-Control"].startswith("private")
    assert jpeg_size(response.content) == (320, 240)
    entry = AuditEntry.objects.get(action="video.snapshot")
    assert (entry.object_type, entry.object_id, entry.actor) == ("camera", str(camera.pk), "user:op-a")


def test_a_second_request_within_the_cache_time_does_not_call_the_camera_again(rtsp_server_factory, mine):
    server = rtsp_server_factory(**SMALL)
    camera = camera_of(mine, server.url())
    client = logged_in(operator_of(mine, "op-a"))

    first = client.get(f"/cameras/{camera.pk}/snapshot.jpg")
    second = client.get(f"/cameras/{camera.pk}/snapshot.jpg")

    assert first.content == second.content
    assert "CLIENT 2" not in server.stdout()  # one RTSP session for both


def test_a_camera_with_a_password_works_and_the_password_stays_on_the_server(rtsp_server_factory, mine):
    server = rtsp_server_factory(user="viewer", password="s3cret", **SMALL)
    camera = camera_of(mine, server.url())

    response = logged_in(operator_of(mine, "op-a")).get(f"/cameras/{camera.pk}/snapshot.jpg")

    assert response.status_code == 200
    assert b"s3cret" not in response.content and "s3cret" not in str(response.headers)


def test_the_relays_gop_cache_is_used_when_the_camera_is_being_watched(rtsp_server_factory, mine):
    server = rtsp_server_factory(**SMALL)
    camera = camera_of(mine, server.url())
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()

    async def watch() -> relay.ViewerQueue:
        _upstream, viewer = relay.viewer_join(camera.pk, camera.stream_url, camera.stream_url_redacted)
        while True:  # until a keyframe fragment has gone by
            item = await viewer.get()
            if isinstance(item, relay.Fragment) and item.keyframe:
                return viewer

    try:
        asyncio.run_coroutine_threadsafe(watch(), loop).result(timeout=10)
        response = logged_in(operator_of(mine, "op-a")).get(f"/cameras/{camera.pk}/snapshot.jpg")
        assert response.status_code == 200
        assert jpeg_size(response.content) == (320, 240)
        assert "CLIENT 2" not in server.stdout()  # the relay's session was the only one
    finally:
        asyncio.run_coroutine_threadsafe(relay.relay_shutdown(), loop).result(timeout=15)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(5)


def test_another_centres_operator_is_refused(mine):
    theirs = centre("centre-b", 127.1)
    camera = camera_of(theirs, "rtsp://127.0.0.1:9/cam1")

    response = logged_in(operator_of(mine, "op-a")).get(f"/cameras/{camera.pk}/snapshot.jpg")

    assert response.status_code == 403
    assert "rtsp" not in response.content.decode()


def test_anonymous_is_refused_without_learning_whether_the_camera_exists(mine):
    camera = camera_of(mine, "rtsp://127.0.0.1:9/cam1")
    client = Client()
    assert client.get(f"/cameras/{camera.pk}/snapshot.jpg").status_code == 403
    assert client.get(f"/cameras/{camera.pk + 999}/snapshot.jpg").status_code == 403


def test_a_share_link_opens_its_cameras_from_the_agreements_networks_and_is_audited(
    rtsp_server_factory, mine
):
    server = rtsp_server_factory(**SMALL)
    camera = camera_of(mine, server.url())
    far = camera_of(mine, server.url(), location=make_point(lat=37.55, lon=126.95))  # ~5.5 km away
    police = partner_with_agreement("police-112", "police")
    Agreement.objects.filter(partner=police).update(viewer_networks="10.20.0.0/16")
    incident, _ = incident_intake(
        partner=police,
        event=EventIn(
            external_id="snap-1", type="police.dispatch", occurred_at=timezone.now(), lat=37.5, lon=126.95
        ),
    )
    share = Share.objects.get(incident=incident)
    token = share_token(share.token_nonce)
    inside = Client(REMOTE_ADDR="10.20.1.2")

    assert (
        Client(REMOTE_ADDR="127.0.0.1").get(f"/cameras/{camera.pk}/snapshot.jpg?share={token}").status_code
        == 403
    )
    assert inside.get(f"/cameras/{far.pk}/snapshot.jpg?share={token}").status_code == 403
    assert inside.get(f"/cameras/{camera.pk}/snapshot.jpg?share=not-a-token").status_code == 403
    response = inside.get(f"/cameras/{camera.pk}/snapshot.jpg?share={token}")
    assert response.status_code == 200
    assert jpeg_size(response.content) == (320, 240)
    entry = AuditEntry.objects.get(action="video.snapshot")
    assert entry.actor == "share:police-112" and entry.partner_id == police.pk
    assert entry.details["share_id"] == share.pk and entry.details["incident_id"] == incident.pk


def test_without_shares_no_token_opens_a_camera(mine):
    camera = camera_of(mine, "rtsp://127.0.0.1:9/cam1")
    assert access.share_allows("anything", camera.pk) is False
    assert Client().get(f"/cameras/{camera.pk}/snapshot.jpg?share=anything").status_code == 403


def test_unknown_camera_or_one_without_a_stream_is_404(mine):
    client = logged_in(operator_of(mine, "op-a"))
    no_stream = camera_of(mine, "")
    assert client.get(f"/cameras/{no_stream.pk}/snapshot.jpg").status_code == 404
    assert client.get(f"/cameras/{no_stream.pk + 999}/snapshot.jpg").status_code == 404


def test_an_offline_camera_is_503_at_once_with_a_reason(mine):
    camera = camera_of(mine, "rtsp://127.0.0.1:9/cam1", status="offline")

    response = logged_in(operator_of(mine, "op-a")).get(f"/cameras/{camera.pk}/snapshot.jpg")

    assert response.status_code == 503
    assert response.json()["error"]
    assert "Retry-After" in response


def test_a_camera_that_does_not_answer_is_503_not_500(mine, settings):
    settings.CAMERA_SNAPSHOT_TIMEOUT_S = 2
    camera = camera_of(mine, f"rtsp://127.0.0.1:{free_port()}/cam1")
    client = logged_in(operator_of(mine, "op-a"))

    assert client.get(f"/cameras/{camera.pk}/snapshot.jpg").status_code == 503
    assert client.get(f"/cameras/{camera.pk}/snapshot.jpg").status_code == 503  # remembered briefly


def test_only_get_is_allowed(mine):
    camera = camera_of(mine, "rtsp://127.0.0.1:9/cam1")
    assert logged_in(operator_of(mine, "op-a")).post(f"/cameras/{camera.pk}/snapshot.jpg").status_code == 405


@pytest.fixture(autouse=True)
def no_relay_left() -> Iterator[None]:
    yield
    assert relay.relay_status()["upstreams"] == 0
