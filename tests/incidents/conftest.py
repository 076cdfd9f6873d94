"""Centres, operators and incidents for the operator-side tests."""

from __future__ import annotations

import datetime as dt
import itertools

import pytest
from django.contrib.auth import get_user_model
from django.utils import timezone

from cameras.models import StaffProfile, StaffRole
from cameras.selectors import make_point
from incidents.models import Incident
from tests.partners.conftest import partner_with_agreement

_ids = itertools.count(1)


def operator_of(center, username: str, role: str = StaffRole.OPERATOR):
    user = get_user_model().objects.create_user(username, password="pw-long-enough-123")
    StaffProfile.objects.create(user=user, role=role, center=center)
    return user


def incident_at(center, *, partner=None, received_ago_s: float = 0, **extra) -> Incident:
    partner = partner or partner_with_agreement(f"police-{next(_ids)}", "police")
    incident = Incident.objects.create(
        partner=partner,
        external_id=f"ext-{next(_ids)}",
        type=extra.pop("type", "police.emergency_video"),
        priority=extra.pop("priority", 1),
        center=center,
        location=make_point(lat=37.5663, lon=126.9779),
        occurred_at=timezone.now(),
        **extra,
    )
    if received_ago_s:
        Incident.objects.filter(pk=incident.pk).update(
            received_at=timezone.now() - dt.timedelta(seconds=received_ago_s)
        )
        incident.refresh_from_db()
    return incident


@pytest.fixture
def two_centres(center_factory):
    a = center_factory("centre-a", (126.96, 37.54, 127.03, 37.58))
    b = center_factory("centre-b", (126.89, 37.36, 126.99, 37.44))
    return a, b
