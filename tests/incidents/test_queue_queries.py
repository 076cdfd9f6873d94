"""The live queue costs the same few queries however long it is (no N+1)."""

from __future__ import annotations

import pytest
from django.test import Client
from django.utils import timezone

from cameras.models import Camera
from cameras.selectors import make_point
from incidents.models import IncidentCamera, LocationFix
from tests.incidents.conftest import incident_at, operator_of

pytestmark = pytest.mark.django_db


def queue_with(count: int, centre) -> None:
    camera = Camera.objects.create(
        code=f"Q-{count}", name="시청 앞", center=centre, location=make_point(lat=37.5665, lon=126.978)
    )
    for _ in range(count):
        incident = incident_at(centre)
        IncidentCamera.objects.create(incident=incident, camera=camera, rank=1, distance_m=12.0)
        LocationFix.objects.create(
            incident=incident, location=make_point(lat=37.5664, lon=126.9779), observed_at=timezone.now()
        )


def test_queue_json_query_count_does_not_grow_with_the_queue(
    client: Client, center_factory, django_assert_max_num_queries
) -> None:
    centre = center_factory("seoul-junggu", (126.96, 37.54, 127.03, 37.58))
    client.force_login(operator_of(centre, "op-queue"))
    queue_with(3, centre)
    with django_assert_max_num_queries(12) as few:
        response = client.get("/dashboard/incidents.json")
    assert len(response.json()["incidents"]) == 3
    queue_with(30, centre)
    with django_assert_max_num_queries(len(few.captured_queries)):
        response = client.get("/dashboard/incidents.json")
    incidents = response.json()["incidents"]
    assert len(incidents) == 33
    assert all(len(i["cameras"]) == 1 and len(i["track"]) == 1 for i in incidents)


def test_the_open_queue_is_read_off_its_own_index(center_factory) -> None:
    """However many incidents a centre has, its dashboards' snapshot reads the open ones
    in queue order from `incident_open_queue` instead of sorting all of them."""
    from django.db import connection

    from incidents.selectors import incidents_open_at

    centre = center_factory("seoul-junggu", (126.96, 37.54, 127.03, 37.58))
    queue_with(3, centre)
    sql, params = incidents_open_at([centre.pk])[:200].query.sql_with_params()
    with connection.cursor() as cursor:
        cursor.execute("SET LOCAL enable_seqscan = off")  # a three-row table would be scanned anyway
        cursor.execute("SET LOCAL enable_bitmapscan = off")
        cursor.execute(f"EXPLAIN {sql}", params)
        plan = "\n".join(row[0] for row in cursor.fetchall())

    assert "incident_open_queue" in plan, plan
    assert "Sort" not in plan.split("incident_open_queue")[0], plan  # the order comes from the index


def test_the_snapshot_shows_each_cameras_place_and_whether_it_streams_but_never_its_url(
    center_factory,
) -> None:
    from incidents.consumers import snapshot_of

    centre = center_factory("seoul-junggu", (126.96, 37.54, 127.03, 37.58))
    incident = incident_at(centre)
    secret = "rtsp://admin:hunter2@10.0.0.5/stream1"
    streaming = Camera.objects.create(
        code="S-1",
        name="시청 앞",
        center=centre,
        location=make_point(lat=37.5661, lon=126.9771),
        stream_url=secret,
    )
    silent = Camera.objects.create(
        code="S-2", name="광장", center=centre, location=make_point(lat=37.5669, lon=126.9783)
    )
    IncidentCamera.objects.create(incident=incident, camera=streaming, rank=1, distance_m=10.0)
    IncidentCamera.objects.create(incident=incident, camera=silent, rank=2, distance_m=20.0)

    snapshot = snapshot_of([centre.pk])

    cameras = snapshot["incidents"][0]["cameras"]
    assert [(c["id"], c["has_stream"]) for c in cameras] == [(streaming.pk, True), (silent.pk, False)]
    assert (cameras[0]["lat"], cameras[0]["lon"]) == pytest.approx((37.5661, 126.9771))
    assert (cameras[1]["lat"], cameras[1]["lon"]) == pytest.approx((37.5669, 126.9783))
    assert "hunter2" not in str(snapshot) and "rtsp://" not in str(snapshot)
