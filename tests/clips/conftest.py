"""Centres, operators, incidents and clips for the clip and retention tests."""

from __future__ import annotations

import datetime as dt
import hashlib
import itertools
from pathlib import Path

import pytest
from django.utils import timezone

from cameras.models import Camera, Clip, ClipStatus
from tests.incidents.conftest import incident_at, operator_of

__all__ = ["incident_at", "make_clip", "operator_of"]

_n = itertools.count(1)


@pytest.fixture(autouse=True)
def clip_storage(settings, tmp_path) -> Path:
    settings.CLIP_STORAGE_DIR = tmp_path / "clips"
    return Path(settings.CLIP_STORAGE_DIR)


@pytest.fixture
def centre(center_factory):
    return center_factory("centre-a", (126.96, 37.54, 127.03, 37.58), retention_days=30)


@pytest.fixture
def other_centre(center_factory):
    return center_factory("centre-b", (126.89, 37.36, 126.99, 37.44))


@pytest.fixture
def camera(centre, camera_factory) -> Camera:
    return camera_factory(lat=37.5663, lon=126.9779, center=centre, stream_url="rtsp://127.0.0.1:9/none")


def make_clip(
    camera: Camera,
    storage: Path,
    *,
    expires_in: dt.timedelta,
    incident=None,
    legal_hold: bool = False,
    destroyed: bool = False,
    content: bytes | None = None,
) -> Clip:
    """A finished clip with a small file, as the recorder leaves it."""
    n = next(_n)
    content = content if content is not None else f"not really an mp4 {n}".encode() * 10
    name = f"2026/11/22/clip-test-{n}.mp4"
    (storage / name).parent.mkdir(parents=True, exist_ok=True)
    (storage / name).write_bytes(content)
    now = timezone.now()
    return Clip.objects.create(
        camera=camera,
        incident=incident,
        requested_seconds=10,
        status=ClipStatus.DESTROYED if destroyed else ClipStatus.READY,
        period_start=now - dt.timedelta(days=30),
        period_end=now - dt.timedelta(days=30) + dt.timedelta(seconds=10),
        file=name,
        size_bytes=len(content),
        sha256=hashlib.sha256(content).hexdigest(),
        expires_at=now + expires_in,
        legal_hold=legal_hold,
        legal_hold_reason="court order 2026-123" if legal_hold else "",
        destroyed_at=now if destroyed else None,
    )
