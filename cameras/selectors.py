"""Spatial reads: every query that asks "what is near this point" lives here.

All of them use the GiST index on the geography columns: KNN ordering with
`GeometryDistance` (PostGIS `<->`) and `dwithin` on geography. Never order by
`Distance(...)`: it computes the distance of every row (330 ms vs 2.5 ms at 100k rows).
Distances are in metres.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from django.contrib.gis.db.models.functions import Distance, GeometryDistance
from django.contrib.gis.geos import Point
from django.contrib.gis.measure import D
from django.db import connection
from django.db.models import Q, QuerySet

from cameras.models import Camera, CameraStatus, Center
from smartcity.sql import Prepared


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


# The nearest list is the intake's hottest query (every event, every location fix), so
# it is written out rather than built by the ORM: building this query with three
# spatial expressions cost more Python time than PostgreSQL took to answer it. Same
# plan as the ORM's: the KNN `<->` walks the GiST index, `ST_DWithin` on geography
# bounds it, `ST_Distance` (spheroid) gives the metres. The position comes back as two
# numbers, not a GEOS point (a dozen GEOS calls a row), and never the stream URL.
NEAREST_SQL = """
    SELECT id, code, name, center_id, status, bearing_deg, fov_deg, range_m,
           stream_url <> '' AS stream_present,
           ST_Y(location::geometry) AS lat, ST_X(location::geometry) AS lon,
           ST_Distance(location, %(point)s::geography) AS distance_m
      FROM cameras_camera
     {where}
     ORDER BY location <-> %(point)s::geography
     LIMIT %(limit)s
"""
NEAREST_WITHIN = "WHERE ST_DWithin(location, %(point)s::geography, %(radius)s)"


def cameras_nearest(
    *, point: Point, limit: int = 10, max_distance_m: float | None = None
) -> list[NearbyCamera]:
    """The `limit` cameras nearest to `point`, with their distances; offline ones last.

    Working cameras come first, nearest first, then offline ones (an operator wants a
    picture): among the `limit × NEAREST_OVERFETCH` nearest, an online camera a little
    further away ranks before an offline one close by. With `max_distance_m`, only
    cameras within that many metres.
    """
    nearest = nearest_rows(point=point, limit=limit, max_distance_m=max_distance_m)
    return offline_last(nearest, point=point, limit=limit, max_distance_m=max_distance_m)


def offline_last(
    nearest: list[NearbyCamera], *, point: Point, limit: int, max_distance_m: float | None
) -> list[NearbyCamera]:
    """`cameras_nearest`'s order from its first `limit` rows (a second query only if one is offline)."""
    if all(near.camera.status != CameraStatus.OFFLINE for near in nearest):
        return nearest  # the usual case: no offline camera to push down, nothing to re-rank
    found = nearest_rows(point=point, limit=limit * NEAREST_OVERFETCH, max_distance_m=max_distance_m)
    # sorted() is stable: within each group the exact distance order stays.
    ranked = sorted(found, key=lambda near: near.camera.status == CameraStatus.OFFLINE)
    return ranked[:limit]


def nearest_rows(*, point: Point, limit: int, max_distance_m: float | None) -> list[NearbyCamera]:
    sql = NEAREST_SQL.format(where=NEAREST_WITHIN if max_distance_m is not None else "")
    params: dict[str, str | float | None] = {"point": point.ewkt, "limit": limit, "radius": max_distance_m}
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return by_distance(nearest_camera_of(row) for row in cursor.fetchall())


def by_distance(found: Iterable[NearbyCamera]) -> list[NearbyCamera]:
    # The index orders by distance on a sphere, `ST_Distance` measures on the spheroid:
    # near-ties (~0.1 m apart) can come back swapped, so sort the few rows exactly.
    return sorted(found, key=lambda near: near.distance_m)


# NEAREST_SQL's columns: the first eight are Camera's (the rest deferred), then annotations.
NEAREST_CAMERA_FIELDS = ["id", "code", "name", "center_id", "status", "bearing_deg", "fov_deg", "range_m"]


def nearest_camera_of(row: Sequence[Any]) -> NearbyCamera:
    """A NEAREST_SQL row as a (partly deferred) Camera with its annotations and distance."""
    fields = len(NEAREST_CAMERA_FIELDS)
    camera = Camera.from_db(connection.alias, NEAREST_CAMERA_FIELDS, list(row[:fields]))
    camera.stream_present, camera.lat, camera.lon, camera.distance_m = row[fields:]  # type: ignore[attr-defined]
    return NearbyCamera(camera=camera, distance_m=camera.distance_m)  # type: ignore[attr-defined]


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


COVERING_SQL = """
    SELECT id, name, slug, retention_days FROM cameras_center
     WHERE ST_Covers(jurisdiction, %(point)s::geography) ORDER BY id LIMIT 1
"""


# The two reads of every partner event and location fix, prepared once per connection.
PLACE_COVERING = Prepared("smartcity_place_covering", COVERING_SQL, ("point",))
PLACE_NEAREST = Prepared(
    "smartcity_place_nearest", NEAREST_SQL.format(where=NEAREST_WITHIN), ("point", "radius", "limit")
)


@dataclass(frozen=True)
class EventPlace:
    """Where an event lands: the centre it is routed to, and its nearest cameras."""

    routing: Routing
    nearest: list[NearbyCamera]


def event_place(*, point: Point, limit: int, max_distance_m: float) -> EventPlace:
    """`center_for_point` and `cameras_nearest` at once: both queries in one round trip.

    Every partner event asks both; each round trip inside a request costs the server two
    context switches and a GIL hand-off besides the query.
    """
    params: dict[str, str | float] = {"point": point.ewkt, "limit": limit, "radius": max_distance_m}
    with connection.cursor() as cursor:
        # Client-side binding sends both as one query; psycopg returns one result set each.
        cursor.execute(f"{PLACE_COVERING.ready(cursor)}; {PLACE_NEAREST.ready(cursor)}", params)
        covering_row = cursor.fetchone()
        cursor.nextset()
        nearest = by_distance(nearest_camera_of(row) for row in cursor.fetchall())
    if covering_row is None:
        routing = center_nearest(point=point)
    else:
        center = Center.from_db(connection.alias, COVERING_FIELDS, list(covering_row))
        routing = Routing(center=center, outside_jurisdiction=False, distance_m=0.0)
    nearest = offline_last(nearest, point=point, limit=limit, max_distance_m=max_distance_m)
    return EventPlace(routing=routing, nearest=nearest)


COVERING_FIELDS = ["id", "name", "slug", "retention_days"]


def center_for_point(*, point: Point) -> Routing:
    """The centre whose jurisdiction covers `point`.

    When none does, the nearest centre, flagged `outside_jurisdiction` so the operator
    knows the event was routed by proximity; `center` is None only if there are no
    centres at all.
    """
    # Written out like NEAREST_SQL (every event routes), and the jurisdiction polygon
    # stays in the database: a city boundary has thousands of vertices that GEOS would
    # parse on every event for nothing.
    covering = next(iter(Center.objects.raw(COVERING_SQL, {"point": point.ewkt})), None)
    if covering is not None:
        return Routing(center=covering, outside_jurisdiction=False, distance_m=0.0)
    return center_nearest(point=point)


def center_nearest(*, point: Point) -> Routing:
    """The centre nearest to `point`, which no jurisdiction covers (flagged outside)."""
    nearest = (
        Center.objects.defer("jurisdiction")
        .annotate(distance=Distance("jurisdiction", point))
        .order_by(GeometryDistance("jurisdiction", point))
        .first()
    )
    if nearest is None:
        return Routing(center=None, outside_jurisdiction=True, distance_m=0.0)
    return Routing(center=nearest, outside_jurisdiction=True, distance_m=nearest.distance.m)
