"""Camera health against real gst-rtsp-server cameras: probes, status changes, pushes, ranking."""

from __future__ import annotations

import asyncio
import contextlib
import json
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from channels.layers import DEFAULT_CHANNEL_LAYER, channel_layers
from django.db import connection, connections, transaction

from cameras import health, relay
from cameras.models import Camera, CameraStatus
from cameras.selectors import cameras_nearest, make_point
from incidents.realtime import center_group
from tests.fixtures.celery_worker import celery_worker  # noqa: F401  (fixture)
from tests.fixtures.rtsp import free_port

SMALL = {"width": 320, "height": 240, "fps": 15}
ORIGIN = (37.5665, 126.9780)
DEG_PER_M_LAT = 1 / 110_950

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(autouse=True)
def quick_probes(settings: Any) -> None:
    settings.CAMERA_PROBE_TIMEOUT_S = 3.0
    settings.CAMERA_PROBE_CONCURRENCY = 4


class Listener:
    """A channel in a centre's group, as an operator's dashboard is, on a loop of its own.

    channels_redis binds its connections to one event loop, so the listener keeps one
    (in a thread) for its whole life instead of one per async_to_sync call.
    """

    def __init__(self, center_id: int) -> None:
        self.received: list[dict[str, Any]] = []
        self.loop = asyncio.new_event_loop()
        self.layer = channel_layers.make_backend(DEFAULT_CHANNEL_LAYER)  # its own, not the shared one
        self.task: asyncio.Task[None] | None = None
        ready = threading.Event()
        threading.Thread(target=self.run, args=(center_id, ready), daemon=True).start()
        assert ready.wait(5)

    def run(self, center_id: int, ready: threading.Event) -> None:
        async def listen() -> None:
            channel = await self.layer.new_channel()
            await self.layer.group_add(center_group(center_id), channel)
            ready.set()
            while True:
                event = await self.layer.receive(channel)
                self.received.append(json.loads(event["text"]))

        self.task = self.loop.create_task(listen())
        with contextlib.suppress(asyncio.CancelledError):
            self.loop.run_until_complete(self.task)

    def close(self) -> None:
        if self.task is not None:
            self.loop.call_soon_threadsafe(self.task.cancel)

    def messages(self, wait_s: float = 1.0) -> list[dict[str, Any]]:
        """What arrived since the last call, after `wait_s` of quiet for stragglers."""
        time.sleep(wait_s)
        taken, self.received[:] = list(self.received), []
        return taken


@pytest.fixture
def listen() -> Iterator[Callable[[int], Listener]]:
    listeners: list[Listener] = []

    def make(center_id: int) -> Listener:
        listeners.append(Listener(center_id))
        return listeners[-1]

    yield make
    for listener in listeners:
        listener.close()


def north_of(metres: float) -> float:
    return ORIGIN[0] + metres * DEG_PER_M_LAT


def dead_url() -> str:
    return f"rtsp://127.0.0.1:{free_port()}/cam1"  # nothing listens there


def test_a_probe_sees_a_live_camera_up_and_a_closed_port_down(rtsp_server_factory):
    server = rtsp_server_factory(**SMALL)

    started = time.monotonic()
    assert health.camera_probe(url=server.url(), timeout_s=3) is True
    assert health.camera_probe(url=dead_url(), timeout_s=3) is False
    assert time.monotonic() - started < 6


def test_a_wrong_password_is_offline(rtsp_server_factory):
    server = rtsp_server_factory(user="viewer", password="right", **SMALL)
    assert health.camera_probe(url=server.url(), timeout_s=3) is True
    assert health.camera_probe(url=server.url().replace("right", "wrong"), timeout_s=3) is False


def test_a_round_marks_statuses_and_pushes_each_change_once(
    rtsp_server_factory, center_factory, camera_factory, listen
):
    server = rtsp_server_factory(**SMALL)
    centre = center_factory("centre-a", (126.9, 37.4, 127.1, 37.7))
    up = camera_factory(lat=ORIGIN[0], lon=ORIGIN[1], center=centre, stream_url=server.url())
    down = camera_factory(lat=ORIGIN[0], lon=ORIGIN[1], center=centre, stream_url=dead_url())
    no_stream = camera_factory(lat=ORIGIN[0], lon=ORIGIN[1], center=centre)
    listener = listen(centre.pk)

    changes = health.cameras_probe()

    assert {(c.camera_id, c.status) for c in changes} == {(up.pk, "online"), (down.pk, "offline")}
    up.refresh_from_db(), down.refresh_from_db(), no_stream.refresh_from_db()
    assert (up.status, down.status, no_stream.status) == ("online", "offline", "unknown")
    assert up.last_seen_at is not None and down.last_seen_at is None
    pushed = listener.messages()
    assert sorted(pushed, key=lambda m: m["camera"]) == [
        {
            "type": "camera.status",
            "camera": up.pk,
            "status": "online",
            "last_seen_at": up.last_seen_at.isoformat(),
        },
        {"type": "camera.status", "camera": down.pk, "status": "offline", "last_seen_at": None},
    ]
    assert "rtsp://" not in json.dumps(pushed)

    # Nothing changed: no push, but the live camera's last-seen time moves on.
    seen_before = up.last_seen_at
    assert health.cameras_probe() == []
    assert listener.messages(wait_s=0.5) == []
    up.refresh_from_db()
    assert up.last_seen_at > seen_before

    # The camera dies: one change, one push.
    server.stop()
    changes = health.cameras_probe()
    assert [(c.camera_id, c.status) for c in changes] == [(up.pk, "offline")]
    assert [m["camera"] for m in listener.messages()] == [up.pk]


def test_two_workers_recording_the_same_round_push_each_change_once(center_factory, camera_factory, listen):
    centre = center_factory("centre-a", (126.9, 37.4, 127.1, 37.7))
    cameras = [
        camera_factory(lat=ORIGIN[0], lon=ORIGIN[1], center=centre, stream_url=f"rtsp://x/{n}")
        for n in range(6)
    ]
    online, offline = [c.pk for c in cameras[:3]], [c.pk for c in cameras[3:]]
    listener = listen(centre.pk)
    barrier = threading.Barrier(2)
    results: list[list[health.StatusChange]] = []

    def worker() -> None:
        barrier.wait()
        try:
            results.append(health.camera_statuses_record(online_ids=online, offline_ids=offline))
        finally:
            connections.close_all()

    threads = [threading.Thread(target=worker) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    changed = sorted(c.camera_id for result in results for c in result)
    assert changed == sorted(online + offline)  # each camera changed by exactly one of them
    assert sorted(m["camera"] for m in listener.messages()) == sorted(online + offline)


def test_nothing_is_pushed_when_the_transaction_rolls_back(center_factory, camera_factory, listen):
    centre = center_factory("centre-a", (126.9, 37.4, 127.1, 37.7))
    camera = camera_factory(lat=ORIGIN[0], lon=ORIGIN[1], center=centre, stream_url="rtsp://x/1")
    listener = listen(centre.pk)

    with pytest.raises(RuntimeError), transaction.atomic():
        health.camera_statuses_record(online_ids=[camera.pk], offline_ids=[])
        raise RuntimeError("the caller failed")

    camera.refresh_from_db()
    assert camera.status == CameraStatus.UNKNOWN
    assert listener.messages(wait_s=0.5) == []


def test_a_camera_another_process_relays_live_is_online_without_a_probe(center_factory, camera_factory):
    centre = center_factory("centre-a", (126.9, 37.4, 127.1, 37.7))
    camera = camera_factory(lat=ORIGIN[0], lon=ORIGIN[1], center=centre, stream_url=dead_url())
    from django.core.cache import cache

    cache.set(relay.RELAY_LIVE_KEY.format(camera.pk), 1, timeout=30)  # what a Daphne's heartbeat writes

    changes = health.cameras_probe()

    assert [(c.camera_id, c.status) for c in changes] == [(camera.pk, "online")]


def test_a_round_is_skipped_while_another_runs(settings):
    from django.core.cache import cache

    cache.add(health.ROUND_LOCK_KEY, 1, timeout=30)
    assert health.cameras_probe_round() is None


def test_a_real_celery_worker_runs_the_probe_task(
    rtsp_server_factory,
    center_factory,
    camera_factory,
    celery_worker,  # noqa: F811
):
    from cameras.tasks import probe_cameras

    server = rtsp_server_factory(**SMALL)
    centre = center_factory("centre-a", (126.9, 37.4, 127.1, 37.7))
    up = camera_factory(lat=ORIGIN[0], lon=ORIGIN[1], center=centre, stream_url=server.url())
    down = camera_factory(lat=ORIGIN[0], lon=ORIGIN[1], center=centre, stream_url=dead_url())

    probe_cameras.delay()

    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        statuses = dict(Camera.objects.filter(pk__in=[up.pk, down.pk]).values_list("pk", "status"))
        if "unknown" not in statuses.values():
            break
        time.sleep(0.2)
    assert statuses == {up.pk: "online", down.pk: "offline"}


def test_the_probe_is_in_the_beat_schedule(settings):
    entry = settings.CELERY_BEAT_SCHEDULE["cameras-probe"]
    assert entry["task"] == "cameras.tasks.probe_cameras"
    assert entry["schedule"] == settings.CAMERA_PROBE_EVERY_S


# -- ranking ------------------------------------------------------------------------------


def test_offline_cameras_rank_after_online_ones_in_the_nearest_list(camera_factory):
    near_offline = camera_factory(lat=north_of(50), lon=ORIGIN[1], code="NEAR-OFF", status="offline")
    mid_online = camera_factory(lat=north_of(100), lon=ORIGIN[1], code="MID-ON", status="online")
    far_unknown = camera_factory(lat=north_of(150), lon=ORIGIN[1], code="FAR-UNKNOWN")

    found = cameras_nearest(point=make_point(lat=ORIGIN[0], lon=ORIGIN[1]), limit=3)

    assert [n.camera.code for n in found] == [mid_online.code, far_unknown.code, near_offline.code]
    assert found[2].distance_m == pytest.approx(50, rel=0.01)
    # A limit that leaves no room: online cameras a little further away win the places.
    two = cameras_nearest(point=make_point(lat=ORIGIN[0], lon=ORIGIN[1]), limit=2)
    assert [n.camera.code for n in two] == [mid_online.code, far_unknown.code]


def test_nearest_still_walks_the_gist_index(camera_factory):
    for n in range(50):
        camera_factory(lat=north_of(10 * n), lon=ORIGIN[1], status="offline" if n % 3 else "online")
    captured: list[tuple[str, Any]] = []

    def capture(execute: Any, sql: str, params: Any, many: bool, context: Any) -> Any:
        captured.append((sql, params))
        return execute(sql, params, many, context)

    with connection.execute_wrapper(capture):
        cameras_nearest(point=make_point(lat=ORIGIN[0], lon=ORIGIN[1]), limit=5)
    sql, params = next((s, p) for s, p in captured if "cameras_camera" in s)
    with transaction.atomic(), connection.cursor() as cursor:
        # 50 rows fit in one page, where a sequential scan is cheapest; forbid it to see
        # whether the query *can* use the index (on a big table the planner picks it).
        cursor.execute("SET LOCAL enable_seqscan = off")
        cursor.execute("EXPLAIN " + sql, params)
        plan = "\n".join(row[0] for row in cursor.fetchall())
    assert "Index Scan using" in plan and "location" in plan, plan
    assert "Order By" in plan and "Sort" not in plan, plan  # KNN: the index yields rows in order
