"""Two workers and one beat: what must happen once happens once.

Beat fires every periodic task several times a second (tests/scale/conftest.py) and the
tests add bursts of the same task on top, so both workers run it at the same moment.
Each test counts the effects a person would notice — audit entries, timeline lines,
pushes to dashboards on both instances, requests at the partner's server, files on
disk — and checks that both workers really took part.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import socketserver
import threading
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from celery import Task
from django.db import transaction
from django.utils import timezone

from audit.models import AuditEntry
from audit.verify import audit_chain_verify
from cameras.models import Camera, CameraStatus, Clip, ClipStatus
from cameras.retention import clips_purge_due
from cameras.tasks import probe_cameras, purge_footage
from incidents.models import Incident, TimelineEntry, TimelineKind
from incidents.tasks import escalate_overdue
from partners.models import Partner, Share, WebhookDelivery, WebhookMessage
from partners.sharing import Trigger, share_decide
from partners.tasks import shares_expire, webhook_deliver
from partners.webhooks import webhook_enqueue
from tests.incidents.conftest import incident_at, operator_of
from tests.incidents.test_scale_out import session_cookie
from tests.partners.conftest import partner_with_agreement
from tests.scale.cluster import Cluster, Screen, SocketLoop, wait_until
from tests.shares.conftest import incident_of
from tests.shares.test_webhooks import PartnerServer, partner_server  # noqa: F401  (fixture)

pytestmark = pytest.mark.django_db(transaction=True)

JUNGGU = (126.96, 37.54, 127.03, 37.58)


def burst(task: Task, times: int, args: tuple[Any, ...] = ()) -> None:
    """Queue the same task `times` times at once: both workers pick copies up together."""
    for _ in range(times):
        task.apply_async(args)


def screens_on_every_instance(cluster: Cluster, sockets: SocketLoop, centre: Any, name: str) -> list[Screen]:
    cookie = session_cookie(operator_of(centre, name))
    screens = [Screen(server, cookie).open(sockets) for server in cluster.web]
    for screen in screens:
        screen.wait_ready()
    return screens


def assert_both_workers_ran(cluster: Cluster, task_name: str, before: dict[str, int]) -> None:
    """Each worker ran the task during this test (Celery's counters, read before and after)."""
    after = cluster.tasks_run(task_name)
    assert len(after) == 2 and all(n > before.get(name, 0) for name, n in after.items()), (before, after)


def test_each_overdue_incident_escalates_exactly_once(cluster, sockets, center_factory):
    before = cluster.tasks_run("incidents.tasks.escalate_overdue")
    centre = center_factory("seoul-junggu", JUNGGU)
    police = partner_with_agreement("police-112", "police")
    screens = screens_on_every_instance(cluster, sockets, centre, "op-escalation")
    with transaction.atomic():  # all overdue at the same instant: every run sees all of them
        ids = {incident_at(centre, partner=police, received_ago_s=600).pk for _ in range(40)}

    burst(escalate_overdue, 8)
    wait_until(
        lambda: not Incident.objects.filter(pk__in=ids, escalated_at__isnull=True).exists(), 30, "escalation"
    )
    wait_until(
        lambda: all(len(s.of_type("incident.escalated")) >= len(ids) for s in screens), 10, "the pushes"
    )
    time.sleep(1.5)  # several more beat rounds on both workers

    once = {pk: 1 for pk in ids}
    audited = Counter(
        AuditEntry.objects.filter(action="incident.escalate").values_list("object_id", flat=True)
    )
    assert audited == {str(pk): 1 for pk in ids}
    timeline = TimelineEntry.objects.filter(kind=TimelineKind.ESCALATED).values_list("incident_id", flat=True)
    assert Counter(timeline) == once
    for screen in screens:
        assert Counter(m["incident"]["id"] for m in screen.of_type("incident.escalated")) == once
    assert_both_workers_ran(cluster, "incidents.tasks.escalate_overdue", before)


def expired_clips(camera: Camera, storage: Path, *, count: int, **extra: Any) -> list[Clip]:
    """Finished clips with small files on disk, as the recorder leaves them, in one INSERT."""
    now = timezone.now()
    clips = []
    for n in range(count):
        content = f"footage {n} {extra}".encode() * 8
        name = f"scale/{time.monotonic_ns()}-{n}.mp4"
        (storage / name).parent.mkdir(parents=True, exist_ok=True)
        (storage / name).write_bytes(content)
        clips.append(
            Clip(
                camera=camera,
                requested_seconds=10,
                status=ClipStatus.READY,
                period_start=now - dt.timedelta(days=31),
                period_end=now - dt.timedelta(days=31) + dt.timedelta(seconds=10),
                file=name,
                size_bytes=len(content),
                sha256=hashlib.sha256(content).hexdigest(),
                expires_at=extra.get("expires_at", now - dt.timedelta(minutes=1)),
                legal_hold=extra.get("legal_hold", False),
                legal_hold_reason="court order 2026-77" if extra.get("legal_hold") else "",
            )
        )
    return Clip.objects.bulk_create(clips)


def test_two_workers_destroy_each_expired_clip_once(cluster, clip_dir, center_factory, camera_factory):
    before = cluster.tasks_run("cameras.tasks.purge_footage")
    centre = center_factory("seoul-junggu", JUNGGU)
    camera = camera_factory(lat=37.5663, lon=126.9779, center=centre)  # no stream: probes leave it alone
    # More than two purge batches (1,000 each), so both workers hold batches at once.
    expired = expired_clips(camera, clip_dir, count=2400)
    kept = expired_clips(camera, clip_dir, count=5, legal_hold=True) + expired_clips(
        camera, clip_dir, count=5, expires_at=timezone.now() + dt.timedelta(days=1)
    )

    burst(purge_footage, 6)
    wait_until(lambda: not clips_purge_due().exists(), 90, "the purge")
    time.sleep(1.5)

    destroyed = Counter(
        AuditEntry.objects.filter(action="clip.destroyed").values_list("object_id", flat=True)
    )
    assert destroyed == {str(clip.pk): 1 for clip in expired}  # one 파기 record each, none for the kept
    assert Clip.objects.filter(pk__in=[c.pk for c in expired], status=ClipStatus.DESTROYED).count() == 2400
    assert not [c.file for c in expired if (clip_dir / c.file).exists()]
    assert all((clip_dir / c.file).exists() for c in kept)
    assert not Clip.objects.filter(pk__in=[c.pk for c in kept], destroyed_at__isnull=False).exists()
    assert audit_chain_verify().intact  # two writers, one unbroken chain
    assert_both_workers_ran(cluster, "cameras.tasks.purge_footage", before)


def test_each_webhook_reaches_the_partner_once_per_idempotency_key(cluster, partner_server):  # noqa: F811
    before = cluster.tasks_run("partners.tasks.webhook_deliver")
    partner_server.failures = 6  # the first attempts fail: retries are spread over both workers
    partner = Partner.objects.create(
        slug="police-112", name="112", kind="police", webhook_url=partner_server.url, signing_secret="s" * 32
    )
    with transaction.atomic():
        messages = [
            webhook_enqueue(partner=partner, event="incident.status", payload={"n": n}) for n in range(30)
        ]
    keys = {m.idempotency_key: m.pk for m in messages if m is not None}
    for message_id in keys.values():
        burst(webhook_deliver, 2, (message_id,))  # duplicates, as a sweep or a redelivery would queue

    wait_until(
        lambda: WebhookMessage.objects.filter(state=WebhookMessage.State.DELIVERED).count() == 30,
        40,
        "delivery",
    )
    time.sleep(1.5)  # beat's sweeper runs meanwhile: nothing is sent again

    delivered = Counter(r.headers["Idempotency-Key"] for r in partner_server.succeeded())
    assert delivered == {key: 1 for key in keys}
    # Every request the partner saw is an attempt in the delivery log, and no attempt was doubled.
    assert WebhookDelivery.objects.count() == len(partner_server.received)
    assert WebhookDelivery.objects.filter(succeeded=True).count() == 30
    assert_both_workers_ran(cluster, "partners.tasks.webhook_deliver", before)


def test_each_share_ends_once_when_it_expires(cluster, sockets, center_factory, partner_server):  # noqa: F811
    before = cluster.tasks_run("partners.tasks.shares_expire")
    centre = center_factory("seoul-junggu", JUNGGU)
    police = partner_with_agreement("police-112", "police")
    Partner.objects.filter(pk=police.pk).update(webhook_url=partner_server.url)
    police.refresh_from_db()
    incident = incident_of(police, centre, "police.emergency_video")
    screens = screens_on_every_instance(cluster, sockets, centre, "op-shares")
    ids = set()
    for _ in range(10):
        share = share_decide(incident=incident, partner=police, trigger=Trigger.EVENT).share
        assert share is not None
        ids.add(share.pk)
    Share.objects.filter(pk__in=ids).update(expires_at=timezone.now() - dt.timedelta(seconds=1))
    burst(shares_expire, 8)  # on top of beat's runs: both workers end the same shares at once

    wait_until(lambda: not Share.objects.filter(pk__in=ids, ended_at__isnull=True).exists(), 20, "expiry")
    wait_until(lambda: all(len(s.of_type("share.ended")) >= 10 for s in screens), 10, "the pushes")
    wait_until(lambda: len(ended_webhooks(partner_server)) >= 10, 20, "the share.ended webhooks")
    time.sleep(1.5)

    once = {pk: 1 for pk in ids}
    audited = Counter(AuditEntry.objects.filter(action="share.ended").values_list("object_id", flat=True))
    assert audited == {str(pk): 1 for pk in ids}
    for screen in screens:
        assert Counter(m["share"]["id"] for m in screen.of_type("share.ended")) == once
    assert Counter(ended_webhooks(partner_server)) == once
    assert_both_workers_ran(cluster, "partners.tasks.shares_expire", before)


def ended_webhooks(server: PartnerServer) -> list[int]:
    bodies = [json.loads(r.body) for r in server.succeeded()]
    return [b["data"]["share"]["id"] for b in bodies if b["event"] == "share.ended"]


def statuses_pushed(screen: Screen) -> Counter[tuple[int, str]]:
    return Counter((m["camera"], m["status"]) for m in screen.of_type("camera.status"))


@pytest.mark.rtsp
def test_camera_health_pushes_each_status_change_once(
    cluster, sockets, center_factory, camera_factory, rtsp_server_factory
):
    before = cluster.tasks_run("cameras.tasks.probe_cameras")
    rtsp = rtsp_server_factory(streams=3, width=320, height=240, fps=15)
    centre = center_factory("seoul-junggu", JUNGGU)
    up = [
        camera_factory(lat=37.5663, lon=126.9779, center=centre, stream_url=rtsp.url(n)).pk for n in (1, 2, 3)
    ]
    # Port 9 refuses at once: a camera that is down.
    down = [
        camera_factory(lat=37.5663, lon=126.9779, center=centre, stream_url="rtsp://127.0.0.1:9/cam1").pk
        for _ in range(2)
    ]
    screens = screens_on_every_instance(cluster, sockets, centre, "op-health")

    def statuses_are(online: list[int], offline: list[int]) -> bool:
        rows = dict(Camera.objects.filter(pk__in=up + down).values_list("pk", "status"))
        return all(rows[pk] == CameraStatus.ONLINE for pk in online) and all(
            rows[pk] == CameraStatus.OFFLINE for pk in offline
        )

    burst(probe_cameras, 6)
    wait_until(lambda: statuses_are(up, down), 40, "the first probe round")
    time.sleep(3.5)  # at least two more rounds, some overlapping

    first = {(pk, CameraStatus.ONLINE): 1 for pk in up} | {(pk, CameraStatus.OFFLINE): 1 for pk in down}
    for screen in screens:
        assert statuses_pushed(screen) == first

    rtsp.stop()  # the three cameras go down
    burst(probe_cameras, 6)
    wait_until(lambda: statuses_are([], up + down), 40, "the cameras to be seen offline")
    time.sleep(3.5)

    for screen in screens:
        assert statuses_pushed(screen) == first | {(pk, CameraStatus.OFFLINE): 1 for pk in up}
    assert_both_workers_ran(cluster, "cameras.tasks.probe_cameras", before)


# --- a partner slower than the delivery lease ----------------------------------------


@dataclass
class SlowPartner:
    """A webhook endpoint that answers its first request one header line at a time, for `drip_s`.

    It records every request it started, and which answers it finished writing: a
    finished answer is a delivery the partner processed.
    """

    drip_s: float = 15.0
    started: list[str] = field(default_factory=list)
    finished: list[str] = field(default_factory=list)
    broken: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    server: socketserver.ThreadingTCPServer | None = None

    @property
    def url(self) -> str:
        assert self.server is not None
        return f"http://127.0.0.1:{self.server.server_address[1]}/hooks"

    def ended(self) -> int:
        return len(self.finished) + len(self.broken)


@pytest.fixture
def slow_partner() -> Iterator[SlowPartner]:
    state = SlowPartner()

    class Handler(socketserver.StreamRequestHandler):
        def handle(self) -> None:
            headers = {}
            while (line := self.rfile.readline().decode()) not in ("\r\n", ""):
                name, _, value = line.partition(":")
                headers[name.strip().lower()] = value.strip()
            self.rfile.read(int(headers.get("content-length", 0)))
            key = headers.get("idempotency-key", "")
            with state.lock:
                state.started.append(key)
                first = len(state.started) == 1
            try:
                self.wfile.write(b"HTTP/1.1 200 OK\r\n")
                deadline = time.monotonic() + (state.drip_s if first else 0)
                while time.monotonic() < deadline:  # alive, but never finishing
                    self.wfile.write(b"X-Still-Working: yes\r\n")
                    self.wfile.flush()
                    time.sleep(0.5)
                self.wfile.write(b"Content-Length: 0\r\nConnection: close\r\n\r\n")
                self.wfile.flush()
            except OSError:
                state.broken.append(key)  # the sender gave up on this attempt
            else:
                state.finished.append(key)

    socketserver.ThreadingTCPServer.daemon_threads = True
    state.server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=state.server.serve_forever, daemon=True).start()
    yield state
    state.server.shutdown()
    state.server.server_close()


def test_a_partner_slower_than_the_lease_gets_one_finished_delivery(cluster, slow_partner):
    """WEBHOOK_TIMEOUT_S=1 gives a 12 s lease; the partner keeps the first attempt busy 15 s.

    Past the lease the sweeper hands the message to the other worker: if the first attempt
    were still running, the partner would process the same message twice.
    """
    partner = Partner.objects.create(slug="slow", name="slow", kind="police", webhook_url=slow_partner.url)
    with transaction.atomic():
        message = webhook_enqueue(partner=partner, event="incident.status", payload={"n": 1})
    assert message is not None

    def settled() -> bool:
        delivered = WebhookMessage.objects.get(pk=message.pk).state == WebhookMessage.State.DELIVERED
        return delivered and slow_partner.ended() == len(slow_partner.started)

    wait_until(settled, 40, "the delivery, and every attempt to end")
    time.sleep(1.0)

    assert set(slow_partner.started) == {message.idempotency_key}
    assert slow_partner.finished == [message.idempotency_key], slow_partner
    assert WebhookDelivery.objects.filter(succeeded=True).count() == 1
