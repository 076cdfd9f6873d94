"""Spatial reads: every query that asks "what is near this point" lives here.

All of them use the GiST index on the geography columns: KNN ordering with
`GeometryDistance` (PostGIS `<->`) and `dwithin` on geography. Never order by
`Distance(...)`: it computes the distance of every row (330 ms vs 2.5 ms at 100k rows).
Distances are in metres.
"""

from __future__ import annotations

from dataclasses import dataclass

from django.contrib.gis.db.models.functions import Distance, GeometryDistance
from django.contrib.gis.geos import Point
from django.contrib.gis.measure import D
from django.db.models import F, FloatField, Func, Q, QuerySet

from cameras.models import Camera, CameraStatus, Center


def make_point(*, lat: float, lon: float) -> Point:
    """A WGS84 point; note GEOS takes (x=lon, y=lat)."""
    return Point(lon, lat, srid=4326)


def camera_base_queryset() -> QuerySet[Camera]:
    # Never the stream URL (a secret) nor the centre's jurisdiction polygon, which would be
    # parsed once per camera row for nothing.
    # Whether there is a stream is public (the dashboard offers live video); the URL is not.
    return (
        Camera.objects.select_related("center")
        .defer("stream_url", "center__jurisdiction")
        .annotate(stream_present=~Q(stream_url=""))
    )


def camera_has_stream(camera: Camera) -> bool:
    """Whether the camera has a stream, without loading its (deferred, secret) URL."""
    present: bool | None = getattr(camera, "stream_present", None)
    return bool(camera.stream_url) if present is None else present


def coordinate(axis: str) -> Func:
    """Latitude (`ST_Y`) or longitude (`ST_X`) of a camera's position, computed in SQL."""
    return Func(
        F("location"),
        function=axis,
        template="%(function)s(%(expressions)s::geometry)",
        output_field=FloatField(),
    )


def camera_position(camera: Camera) -> tuple[float, float]:
    """(lat, lon) of a camera: read as plain numbers where the query gave them (see
    `cameras_nearest`), else from its GEOS point."""
    lat: float | None = getattr(camera, "lat", None)
    lon: float | None = getattr(camera, "lon", None)
    if lat is not None and lon is not None:
        return lat, lon
    return camera.location.y, camera.location.x


@dataclass(frozen=True)
class NearbyCamera:
    camera: Camera
    distance_m: float


def with_distances(queryset: QuerySet[Camera]) -> list[NearbyCamera]:
    # The index orders by distance on a sphere, `Distance` measures on the spheroid:
    # near-ties (~0.1 m apart) can come back swapped, so sort the few rows exactly.
    found = [NearbyCamera(camera=c, distance_m=c.distance.m) for c in queryset]  # type: ignore[attr-defined]
    return sorted(found, key=lambda near: near.distance_m)


# The nearest list looks this many times further down the KNN order for online cameras
# to put before offline ones: ordering by status inside SQL would sort every row within
# reach instead of walking the index, so the few extra rows are re-ranked here.
NEAREST_OVERFETCH = 3


def cameras_nearest(
    *, point: Point, limit: int = 10, max_distance_m: float | None = None
) -> list[NearbyCamera]:
    """The `limit` cameras nearest to `point`, with their distances; offline ones last.

    Working cameras come first, nearest first, then offline ones (an operator wants a
    picture): among the `limit × NEAREST_OVERFETCH` nearest, an online camera a little
    further away ranks before an offline one close by. With `max_distance_m`, only
    cameras within that many metres.
    """
    # No centre join, and the position as two numbers rather than a GEOS point: every
    # event ranks limit × NEAREST_OVERFETCH rows, and building a Center and a GEOS
    # geometry for each (a dozen GEOS calls a row) was most of the intake's Python time.
    queryset = (
        Camera.objects.defer("stream_url", "location")
        .annotate(stream_present=~Q(stream_url=""))
        .annotate(lat=coordinate("ST_Y"), lon=coordinate("ST_X"))
    )
    if max_distance_m is not None:
        queryset = queryset.filter(location__dwithin=(point, D(m=max_distance_m)))
    queryset = queryset.annotate(distance=Distance("location", point)).order_by(
        GeometryDistance("location", point)
    )
    nearest = with_distances(queryset[:limit])
    if all(near.camera.status != CameraStatus.OFFLINE for near in nearest):
        return nearest  # the usual case: no offline camera to push down, nothing to re-rank
    found = with_distances(queryset[: limit * NEAREST_OVERFETCH])
    # sorted() is stable: within each group the exact distance order stays.
    ranked = sorted(found, key=lambda near: near.camera.status == CameraStatus.OFFLINE)
    return ranked[:limit]


def cameras_within(*, point: Point, radius_m: float) -> list[NearbyCamera]:
    """Every camera within `radius_m` metres of `point`, nearest first, with distances."""
    queryset = (
        camera_base_queryset()
        .filter(location__dwithin=(point, D(m=radius_m)))
        .annotate(distance=Distance("location", point))
        .order_by(GeometryDistance("location", point))
    )
    return with_distances(queryset)


@dataclass(frozen=True)
class Routing:
    """Which centre an event at a point belongs to."""

    center: Center | None
    outside_jurisdiction: bool
    distance_m: float


def center_for_point(*, point: Point) -> Routing:
    """The centre whose jurisdiction covers `point`.

    When none does, the nearest centre, flagged `outside_jurisdiction` so the operator
    knows the event was routed by proximity; `center` is None only if there are no
    centres at all.
    """
    # The jurisdiction polygon stays in the database: a city boundary has thousands of
    # vertices that GEOS would parse on every event for nothing.
    centers = Center.objects.defer("jurisdiction")
    covering = centers.filter(jurisdiction__covers=point).order_by("pk").first()
    if covering is not None:
        return Routing(center=covering, outside_jurisdiction=False, distance_m=0.0)
    nearest = (
        centers.annotate(distance=Distance("jurisdiction", point))
        .order_by(GeometryDistance("jurisdiction", point))
        .first()
    )
    if nearest is None:
        return Routing(center=None, outside_jurisdiction=True, distance_m=0.0)
    return Routing(center=nearest, outside_jurisdiction=True, distance_m=nearest.distance.m)
