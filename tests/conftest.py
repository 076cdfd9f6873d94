"""Shared fixtures. Tests run against real PostGIS and Redis (see scripts/test.sh)."""

from __future__ import annotations

import pytest
from django.contrib.gis.geos import MultiPolygon, Polygon
from django.core.cache import cache

from cameras.models import Camera, Center
from cameras.selectors import make_point

pytest_plugins = ["tests.fixtures.rtsp"]


def box(lon0: float, lat0: float, lon1: float, lat1: float) -> MultiPolygon:
    ring = ((lon0, lat0), (lon1, lat0), (lon1, lat1), (lon0, lat1), (lon0, lat0))
    return MultiPolygon(Polygon(ring), srid=4326)


@pytest.fixture(autouse=True)
def empty_redis():
    # Tests have a Redis database of their own (scripts/test.sh); rate-limit windows and
    # replay records from one test (or an earlier run reusing ids) must not leak into the next.
    cache.clear()


@pytest.fixture(autouse=True)
def fast_password_hashing(settings):
    # PBKDF2's deliberate slowness protects real passwords; in tests it only costs time.
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture
def center_factory(db):
    def make(slug: str, bounds: tuple[float, float, float, float], **extra: object) -> Center:
        extra.setdefault("name", slug.title())
        return Center.objects.create(slug=slug, jurisdiction=box(*bounds), **extra)

    return make


@pytest.fixture
def camera_factory(db):
    counter = {"n": 0}

    def make(*, lat: float, lon: float, **extra: object) -> Camera:
        counter["n"] += 1
        extra.setdefault("code", f"T-{counter['n']:05d}")
        extra.setdefault("name", f"Test camera {counter['n']}")
        return Camera.objects.create(location=make_point(lat=lat, lon=lon), **extra)

    return make
