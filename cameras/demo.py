"""Demo data for `seed_demo`: three centres, a few thousand cameras, demo users.

Deterministic (fixed random seed, stable codes) and idempotent: running it again
updates the same rows instead of adding new ones. Never called from migrations.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.gis.geos import MultiPolygon, Point, Polygon
from django.db import transaction

from cameras.models import Camera, CameraPurpose, Center, StaffProfile, StaffRole


@dataclass(frozen=True)
class DemoCenter:
    slug: str
    name: str
    # Approximate outline, (lon, lat) pairs; good enough to route demo events.
    outline: tuple[tuple[float, float], ...]
    cameras: int


DEMO_CENTERS = (
    DemoCenter(
        slug="seoul-junggu",
        name="서울 중구 스마트도시통합센터",
        outline=(
            (126.9634, 37.5547),
            (126.9700, 37.5470),
            (126.9890, 37.5440),
            (127.0060, 37.5460),
            (127.0250, 37.5530),
            (127.0260, 37.5640),
            (127.0110, 37.5710),
            (126.9880, 37.5720),
            (126.9700, 37.5700),
            (126.9634, 37.5547),
        ),
        cameras=1800,
    ),
    DemoCenter(
        slug="anyang",
        name="안양시 스마트도시통합운영센터",
        outline=(
            (126.8900, 37.3950),
            (126.9100, 37.3700),
            (126.9500, 37.3650),
            (126.9850, 37.3800),
            (126.9900, 37.4050),
            (126.9700, 37.4350),
            (126.9300, 37.4400),
            (126.9000, 37.4250),
            (126.8900, 37.3950),
        ),
        cameras=1500,
    ),
    DemoCenter(
        slug="incheon-bupyeong",
        name="인천 부평구 CCTV통합관제센터",
        outline=(
            (126.6850, 37.4750),
            (126.7050, 37.4700),
            (126.7400, 37.4750),
            (126.7500, 37.4950),
            (126.7400, 37.5200),
            (126.7100, 37.5250),
            (126.6900, 37.5100),
            (126.6850, 37.4750),
        ),
        cameras=1200,
    ),
)

# Cameras wired to the demo RTSP streams (scripts/rtsp_server.py serves /cam1../camN).
DEMO_LIVE_CAMERAS = (
    ("DEMO-001", "서울시청 앞 교차로", "seoul-junggu", 37.5663, 126.9779),
    ("DEMO-002", "명동역 6번 출구", "seoul-junggu", 37.5609, 126.9863),
    ("DEMO-003", "안양역 광장", "anyang", 37.4016, 126.9227),
    ("DEMO-004", "부평역 지하상가 입구", "incheon-bupyeong", 37.4895, 126.7245),
)

DEMO_USERS = (
    # username, role, centre slug, is_superuser
    ("admin", StaffRole.ADMIN, None, True),
    ("operator", StaffRole.OPERATOR, "seoul-junggu", False),
    ("operator2", StaffRole.OPERATOR, "anyang", False),
    ("privacy", StaffRole.PRIVACY_OFFICER, None, False),
)

PURPOSE_WEIGHTS = (
    (CameraPurpose.CRIME_PREVENTION, 70),
    (CameraPurpose.TRAFFIC, 12),
    (CameraPurpose.FACILITY_SAFETY, 8),
    (CameraPurpose.FIRE, 4),
    (CameraPurpose.DISASTER, 3),
    (CameraPurpose.OTHER, 3),
)


def seed(*, stdout_write: Callable[[str], object] = print) -> None:
    """Create or refresh every demo row of the camera registry."""
    with transaction.atomic():
        centers = {c.slug: center_upsert(demo=c) for c in DEMO_CENTERS}
        for demo in DEMO_CENTERS:
            cameras_upsert_random(center=centers[demo.slug], demo=demo)
        live_cameras_upsert(centers=centers)
        users_upsert(centers=centers)
    stdout_write(
        f"demo: {len(centers)} centres, {Camera.objects.count()} cameras "
        f"({Camera.objects.filter(code__startswith='DEMO-').count()} live), {len(DEMO_USERS)} users"
    )


def center_upsert(*, demo: DemoCenter) -> Center:
    outline = MultiPolygon(Polygon(demo.outline), srid=4326)
    center, _ = Center.objects.update_or_create(
        slug=demo.slug, defaults={"name": demo.name, "jurisdiction": outline}
    )
    return center


def random_point_in(*, polygon: Polygon, rng: random.Random) -> Point:
    lon0, lat0, lon1, lat1 = polygon.extent
    while True:
        point = Point(rng.uniform(lon0, lon1), rng.uniform(lat0, lat1), srid=4326)
        if polygon.contains(point):
            return point


def cameras_upsert_random(*, center: Center, demo: DemoCenter) -> None:
    rng = random.Random(demo.slug)  # same cameras on every run and every machine
    polygon = Polygon(demo.outline, srid=4326)
    purposes = [p for p, _ in PURPOSE_WEIGHTS]
    weights = [w for _, w in PURPOSE_WEIGHTS]
    batch = []
    for n in range(1, demo.cameras + 1):
        purpose = rng.choices(purposes, weights)[0]
        batch.append(
            Camera(
                code=f"SEED-{demo.slug}-{n:05d}",
                name=f"{demo.name.split()[0]} {CameraPurpose(purpose).label} {n:04d}",
                center=center,
                location=random_point_in(polygon=polygon, rng=rng),
                purpose=purpose,
                bearing_deg=rng.choice([0, 45, 90, 135, 180, 225, 270, 315]),
                fov_deg=rng.choice([60, 75, 90]),
                range_m=rng.choice([30, 50, 80]),
                ptz=rng.random() < 0.2,
                managing_agency=demo.name,
            )
        )
    Camera.objects.bulk_create(
        batch,
        batch_size=1000,
        update_conflicts=True,
        unique_fields=["code"],
        update_fields=["name", "center", "location", "purpose", "bearing_deg", "fov_deg", "range_m", "ptz"],
    )


def live_cameras_upsert(*, centers: dict[str, Center]) -> None:
    host, port = settings.DEMO_RTSP_HOST, settings.DEMO_RTSP_PORT
    for index, (code, name, slug, lat, lon) in enumerate(DEMO_LIVE_CAMERAS[: settings.DEMO_RTSP_STREAMS]):
        Camera.objects.update_or_create(
            code=code,
            defaults={
                "name": name,
                "center": centers[slug],
                "location": Point(lon, lat, srid=4326),
                "stream_url": f"rtsp://{host}:{port}/cam{index + 1}",
                "purpose": CameraPurpose.CRIME_PREVENTION,
                "bearing_deg": 90,
                "fov_deg": 90,
                "range_m": 60,
                "ptz": True,
            },
        )


def users_upsert(*, centers: dict[str, Center]) -> None:
    user_model = get_user_model()
    for username, role, center_slug, superuser in DEMO_USERS:
        user, _ = user_model.objects.get_or_create(username=username)
        user.is_staff = superuser
        user.is_superuser = superuser
        user.set_password(settings.DEMO_PASSWORD)
        user.save()
        StaffProfile.objects.update_or_create(
            user=user, defaults={"role": role, "center": centers[center_slug] if center_slug else None}
        )
