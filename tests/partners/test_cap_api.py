"""`POST /api/v1/cap/` over HTTP: the status codes a CAP-speaking partner sees."""

from __future__ import annotations

from pathlib import Path

import pytest
from django.test import Client

from incidents.models import Incident
from partners.models import CapEventMapping
from partners.services import api_key_create
from tests.partners.conftest import PartnerApi, partner_with_agreement

pytestmark = pytest.mark.django_db
CAP = Path(__file__).resolve().parents[1] / "data" / "cap"


@pytest.fixture
def disaster(center_factory) -> PartnerApi:
    center_factory("incheon", (126.60, 37.40, 126.80, 37.55))
    partner = partner_with_agreement("disaster-room", "disaster")
    CapEventMapping.objects.create(partner=partner, cap_event="Flood", event_type="disaster.response")
    _, raw = api_key_create(partner=partner)
    return PartnerApi(client=Client(), partner=partner, key=raw)


def post_cap(api: PartnerApi, name: str, *, content_type: str = "application/cap+xml"):
    return api.post("/api/v1/cap/", raw=(CAP / name).read_bytes(), content_type=content_type)


def test_cap_alert_creates_an_incident_then_the_same_alert_returns_it(disaster):
    first = post_cap(disaster, "alert_circle.xml")
    again = post_cap(disaster, "alert_circle.xml")

    assert (first.status_code, again.status_code) == (201, 200)
    body = first.json()
    assert body["type"] == "disaster.response"
    assert body["center"] == "incheon"
    assert body["location"] == {"lat": 37.4563, "lon": 126.7052, "accuracy_m": 500.0}
    assert again.json()["id"] == body["id"]


def test_cap_cancel_withdraws_the_alerts_incident(disaster):
    created = post_cap(disaster, "alert_circle.xml").json()
    post_cap(disaster, "update.xml")

    response = post_cap(disaster, "cancel.xml")

    assert response.status_code == 200
    assert response.json()["id"] == created["id"]
    assert response.json()["status"] == "cancelled"


@pytest.mark.parametrize("name", ["bomb.xml", "external_entity.xml", "wrong_namespace.xml", "exercise.xml"])
def test_hostile_or_unusable_cap_is_400_with_a_reason(disaster, name):
    response = post_cap(disaster, name)

    assert response.status_code == 400
    assert response.json()["errors"]["cap"][0]
    assert not Incident.objects.exists()


def test_cap_with_the_wrong_content_type_is_415(disaster):
    assert post_cap(disaster, "alert_circle.xml", content_type="application/json").status_code == 415


def test_cap_event_without_a_mapping_is_403(disaster):
    CapEventMapping.objects.all().delete()
    assert post_cap(disaster, "alert_circle.xml").status_code == 403


def test_cap_needs_a_key(db):
    body = (CAP / "alert_circle.xml").read_bytes()
    assert Client().post("/api/v1/cap/", body, content_type="application/cap+xml").status_code == 401
