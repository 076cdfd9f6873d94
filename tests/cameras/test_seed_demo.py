"""`seed_demo`: the demo a new user sees after `make run`, safe to load again and again."""

from __future__ import annotations

from io import StringIO

import pytest
from django.contrib.auth import authenticate
from django.core.management import call_command
from django.test import RequestFactory

from cameras.models import Camera, Center, StaffProfile, StaffRole
from cameras.selectors import center_for_point


def request():
    # The login throttle (django-axes) needs to know where an attempt comes from.
    return RequestFactory().post("/login/")


def seed() -> str:
    out = StringIO()
    call_command("seed_demo", stdout=out)
    return out.getvalue()


@pytest.mark.django_db
def test_second_run_duplicates_nothing():
    seed()
    counts = (Center.objects.count(), Camera.objects.count(), StaffProfile.objects.count())
    seed()
    assert (Center.objects.count(), Camera.objects.count(), StaffProfile.objects.count()) == counts
    assert counts[0] == 3
    assert counts[1] > 3000


@pytest.mark.django_db
def test_demo_users_log_in_with_the_demo_password_and_have_their_roles(settings):
    settings.DEMO_PASSWORD = "a-different-demo-pass"
    seed()

    operator = authenticate(request(), username="operator", password="a-different-demo-pass")
    operator2 = authenticate(request(), username="operator2", password="a-different-demo-pass")
    admin = authenticate(request(), username="admin", password="a-different-demo-pass")
    privacy = authenticate(request(), username="privacy", password="a-different-demo-pass")

    assert operator and operator.staff.role == StaffRole.OPERATOR
    assert operator2 and operator2.staff.role == StaffRole.OPERATOR
    assert operator.staff.center != operator2.staff.center
    assert admin and admin.is_superuser
    assert privacy and privacy.staff.role == StaffRole.PRIVACY_OFFICER
    assert authenticate(request(), username="operator", password="safenet-demo") is None


@pytest.mark.django_db
def test_demo_live_cameras_point_at_the_demo_rtsp_server_and_lie_in_their_centre(settings):
    settings.DEMO_RTSP_PORT = 18554
    seed()

    live = list(Camera.objects.filter(code__startswith="DEMO-").select_related("center"))

    assert len(live) == settings.DEMO_RTSP_STREAMS
    for index, camera in enumerate(sorted(live, key=lambda c: c.code), start=1):
        assert camera.stream_url == f"rtsp://{settings.DEMO_RTSP_HOST}:18554/cam{index}"
        assert center_for_point(point=camera.location).center == camera.center


@pytest.mark.django_db
def test_every_seeded_camera_lies_inside_its_centres_jurisdiction():
    seed()
    for center in Center.objects.all():
        inside = Camera.objects.filter(center=center, location__coveredby=center.jurisdiction)
        assert inside.count() == center.cameras.count() > 0, center.slug
