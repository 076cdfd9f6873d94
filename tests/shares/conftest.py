"""Partners of every kind, a centre, operators and incidents for the sharing tests."""

from __future__ import annotations

import datetime as dt
import itertools
from typing import Any

import pytest
from django.contrib.auth import get_user_model
from django.test import Client
from django.utils import timezone

from cameras.models import StaffProfile, StaffRole
from cameras.selectors import make_point
from incidents.catalogue import PartnerKind
from incidents.models import Incident
from partners.models import Partner
from partners.services import api_key_create
from tests.partners.conftest import PartnerApi, partner_with_agreement

_ids = itertools.count(1)

SLUGS = {
    PartnerKind.POLICE: "police-112",
    PartnerKind.FIRE: "fire-119",
    PartnerKind.DISASTER: "disaster-room",
    PartnerKind.MOJ: "moj-tracking",
    PartnerKind.SAFETY_APP: "safety-app",
    PartnerKind.TELECOM: "telecom",
    PartnerKind.SECURITY: "security-s1",
    PartnerKind.SENSOR: "market-sensor",
}


@pytest.fixture
def junggu(center_factory):
    return center_factory("seoul-junggu", (126.96, 37.54, 127.03, 37.58), name="서울 중구")


@pytest.fixture
def partners(db) -> dict[str, Partner]:
    """One partner of each kind, each with an agreement following the catalogue (valid since 2024)."""
    return {kind: partner_with_agreement(slug, kind) for kind, slug in SLUGS.items()}


def incident_of(
    partner: Partner, center, event_type: str, *, occurred_at: dt.datetime | None = None, **extra: Any
):
    return Incident.objects.create(
        partner=partner,
        external_id=f"ext-{next(_ids)}",
        type=event_type,
        priority=2,
        center=center,
        location=make_point(lat=37.5663, lon=126.9779),
        occurred_at=occurred_at or timezone.now(),
        **extra,
    )


def operator_of(center, username: str, role: str = StaffRole.OPERATOR):
    user = get_user_model().objects.create_user(username, password="pw-long-enough-123")
    StaffProfile.objects.create(user=user, role=role, center=center)
    return user


def logged_in(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def api_of(partner: Partner) -> PartnerApi:
    _, raw = api_key_create(partner=partner)
    return PartnerApi(client=Client(), partner=partner, key=raw, secret=partner.signing_secret)
