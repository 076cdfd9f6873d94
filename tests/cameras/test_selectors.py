"""The spatial selectors against real PostGIS, with geometry whose answers are known."""

from __future__ import annotations

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from cameras.models import Camera, CameraStatus, Center
from cameras.selectors import (
    COVERING_FIELDS,
    NEAREST_CAMERA_FIELDS,
    camera_has_stream,
    camera_position,
    cameras_nearest,
    cameras_within,
    center_for_point,
    event_place,
    make_point,
)

# One metre of latitude near 37.5°N is about 1/110,950 of a degree.
DEG_PER_M_LAT = 1 / 110_950
ORIGIN = (37.5665, 126.9780)  # Seoul City Hall


def north_of(metres: float) -> tuple[float, float]:
    return ORIGIN[0] + metres * DEG_PER_M_LAT, ORIGIN[1]


@pytest.mark.django_db
def test_camera_100m_away_ranks_before_one_200m_away(camera_factory):
    far = camera_factory(lat=north_of(200)[0], lon=ORIGIN[1], code="FAR")
    near = camera_factory(lat=north_of(100)[0], lon=ORIGIN[1], code="NEAR")
    camera_factory(lat=ORIGIN[0] + 0.5, lon=ORIGIN[1], code="VERY-FAR")

    found = cameras_nearest(point=make_point(lat=ORIGIN[0], lon=ORIGIN[1]), limit=2)

    assert [n.camera.code for n in found] == [near.code, far.code]
    assert found[0].distance_m == pytest.approx(100, rel=0.01)
    assert found[1].distance_m == pytest.approx(200, rel=0.01)


@pytest.mark.django_db
def test_nearest_respects_maximum_distance(camera_factory):
    camera_factory(lat=north_of(100)[0], lon=ORIGIN[1], code="IN")
    camera_factory(lat=north_of(900)[0], lon=ORIGIN[1], code="OUT")

    found = cameras_nearest(point=make_point(lat=ORIGIN[0], lon=ORIGIN[1]), limit=8, max_distance_m=500)

    assert [n.camera.code for n in found] == ["IN"]


@pytest.mark.django_db
def test_within_includes_a_camera_just_inside_the_radius_and_not_one_just_outside(camera_factory):
    camera = camera_factory(lat=north_of(150)[0], lon=ORIGIN[1], code="EDGE")
    point = make_point(lat=ORIGIN[0], lon=ORIGIN[1])
    exact = cameras_within(point=point, radius_m=1000)[0].distance_m
    assert exact == pytest.approx(150, rel=0.01)

    assert [n.camera.code for n in cameras_within(point=point, radius_m=exact + 0.05)] == [camera.code]
    assert cameras_within(point=point, radius_m=exact - 0.05) == []


@pytest.mark.django_db
def test_point_inside_a_jurisdiction_routes_to_that_centre(center_factory):
    west = center_factory("west", (126.90, 37.50, 126.98, 37.60))
    center_factory("east", (126.98, 37.50, 127.06, 37.60))

    routing = center_for_point(point=make_point(lat=37.55, lon=126.95))

    assert routing.center == west
    assert routing.outside_jurisdiction is False


@pytest.mark.django_db
def test_points_either_side_of_a_shared_border_route_to_different_centres(center_factory):
    west = center_factory("west", (126.90, 37.50, 126.98, 37.60))
    east = center_factory("east", (126.98, 37.50, 127.06, 37.60))

    assert center_for_point(point=make_point(lat=37.55, lon=126.9799)).center == west
    assert center_for_point(point=make_point(lat=37.55, lon=126.9801)).center == east


@pytest.mark.django_db
def test_point_outside_every_jurisdiction_goes_to_the_nearest_centre_flagged(center_factory):
    center_factory("seoul", (126.90, 37.50, 127.00, 37.60))
    incheon = center_factory("incheon", (126.60, 37.40, 126.70, 37.50))

    # 0.01° west of Incheon's western edge: about 880 m away from it, far from Seoul.
    routing = center_for_point(point=make_point(lat=37.45, lon=126.59))

    assert routing.center == incheon
    assert routing.outside_jurisdiction is True
    assert routing.distance_m == pytest.approx(884, rel=0.02)


@pytest.mark.django_db
def test_no_centres_at_all_routes_nowhere():
    routing = center_for_point(point=make_point(lat=37.5, lon=127.0))
    assert routing.center is None
    assert routing.outside_jurisdiction is True


@pytest.mark.django_db
def test_nearest_query_uses_knn_ordering_not_a_distance_sort(camera_factory):
    camera_factory(lat=ORIGIN[0], lon=ORIGIN[1])
    with CaptureQueriesContext(connection) as ctx:
        cameras_nearest(point=make_point(lat=ORIGIN[0], lon=ORIGIN[1]), limit=5)
    sql = ctx.captured_queries[-1]["sql"]
    assert "<->" in sql
    assert "ORDER BY ST_Distance" not in sql.replace('"', "")


@pytest.mark.django_db
def test_selectors_never_load_the_stream_url(camera_factory):
    camera_factory(lat=ORIGIN[0], lon=ORIGIN[1], stream_url="rtsp://admin:s3cret@10.0.0.5/live")
    with CaptureQueriesContext(connection) as ctx:
        nearby = cameras_nearest(point=make_point(lat=ORIGIN[0], lon=ORIGIN[1]), limit=5)
    sql = ctx.captured_queries[-1]["sql"]
    # Only whether there is a stream is asked (`stream_url = ''`); the URL itself is never selected.
    assert '"cameras_camera"."stream_url",' not in sql
    assert "s3cret" not in sql
    assert "stream_url" in nearby[0].camera.get_deferred_fields()
    with CaptureQueriesContext(connection) as after:
        assert camera_has_stream(nearby[0].camera) is True
    assert not after.captured_queries  # answered from the annotation, no lazy load of the URL


def attnames_in_model_order(model: type[Camera] | type[Center], names: list[str]) -> list[str]:
    return [field.attname for field in model._meta.concrete_fields if field.attname in names]


def test_the_rows_read_by_hand_list_their_columns_in_the_models_order():
    # Model.from_db matches a partial row to fields by position, in the model's order.
    assert attnames_in_model_order(Camera, NEAREST_CAMERA_FIELDS) == NEAREST_CAMERA_FIELDS
    assert attnames_in_model_order(Center, COVERING_FIELDS) == COVERING_FIELDS


@pytest.mark.django_db
@pytest.mark.parametrize("lat_lon", [(37.55, 126.95), (37.55, 127.01), (37.80, 127.20)], ids=str)
def test_event_place_answers_as_routing_and_nearest_do_in_one_round_trip(
    lat_lon, center_factory, camera_factory
):
    center_factory("west", (126.90, 37.50, 126.98, 37.60), retention_days=21)
    center_factory("east", (126.98, 37.50, 127.06, 37.60))
    lat, lon = lat_lon
    for n in range(5):
        camera_factory(lat=lat + n * 0.0005, lon=lon, status=CameraStatus.OFFLINE if n == 0 else "online")
    camera_factory(lat=lat + 0.01, lon=lon, code="FAR-AWAY")  # ~1.1 km: beyond the radius
    point = make_point(lat=lat, lon=lon)
    event_place(point=point, limit=5, max_distance_m=500)  # a connection prepares the reads once

    with CaptureQueriesContext(connection) as queries:
        place = event_place(point=point, limit=5, max_distance_m=500)

    routing = center_for_point(point=point)
    assert place.routing.outside_jurisdiction == routing.outside_jurisdiction
    assert place.routing.distance_m == pytest.approx(routing.distance_m)
    assert place.routing.center is not None and routing.center is not None
    assert (place.routing.center.pk, place.routing.center.slug, place.routing.center.retention_days) == (
        routing.center.pk,
        routing.center.slug,
        routing.center.retention_days,
    )
    expected = cameras_nearest(point=point, limit=5, max_distance_m=500)
    assert [(n.camera.pk, n.camera.status) for n in place.nearest] == [
        (n.camera.pk, n.camera.status) for n in expected
    ]
    assert [n.distance_m for n in place.nearest] == pytest.approx([n.distance_m for n in expected])
    assert place.nearest[-1].camera.status == CameraStatus.OFFLINE  # the offline one ranks last
    first = place.nearest[0].camera
    assert camera_position(first) == pytest.approx((first.location.y, first.location.x))
    assert camera_has_stream(first) is False and "stream_url" in first.get_deferred_fields()
    # Routing and the nearest list in one round trip; the offline camera costs the
    # re-ranking query, a point outside every jurisdiction the nearest-centre one.
    assert len(queries) == 1 + 1 + (lat_lon == (37.80, 127.20))
