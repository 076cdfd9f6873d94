"""Partners with agreements and keys, and a client that speaks the partner API."""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import json
import time
from dataclasses import dataclass
from typing import Any

import pytest
from django.test import Client

from incidents.catalogue import EVENT_TYPES
from partners.models import Agreement, AgreementEventType, Partner
from partners.services import api_key_create

SEOUL_CITY_HALL = {"lat": 37.5663, "lon": 126.9779}


@dataclass
class PartnerApi:
    """A partner's view of the API: its key, its secret, and signed requests."""

    client: Client
    partner: Partner
    key: str
    secret: str = ""

    def headers(self, body: bytes, *, timestamp: int | None = None) -> dict[str, str]:
        headers = {"HTTP_AUTHORIZATION": f"Bearer {self.key}"}
        if self.secret:
            ts = str(timestamp if timestamp is not None else int(time.time()))
            digest = hmac.new(self.secret.encode(), ts.encode() + b"." + body, hashlib.sha256).hexdigest()
            headers |= {"HTTP_X_TIMESTAMP": ts, "HTTP_X_SIGNATURE": f"sha256={digest}"}
        return headers

    def post(
        self,
        path: str,
        payload: Any = None,
        *,
        raw: bytes | None = None,
        content_type: str = "application/json",
        **extra: Any,
    ):
        body = raw if raw is not None else json.dumps(payload).encode()
        return self.client.post(path, body, content_type=content_type, **(self.headers(body) | extra))

    def get(self, path: str, **extra: Any):
        return self.client.get(path, **(self.headers(b"") | extra))

    def event(self, **overrides: Any):
        """POST an event; HTTP_* keyword arguments are headers, the rest override body fields."""
        headers = {k: v for k, v in overrides.items() if k.startswith("HTTP_")}
        fields = {k: v for k, v in overrides.items() if not k.startswith("HTTP_")}
        return self.post("/api/v1/events/", event_body(**fields), **headers)


def event_body(**overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "external_id": f"ext-{time.monotonic_ns()}",
        "type": "police.emergency_video",
        "occurred_at": dt.datetime.now(dt.UTC).isoformat(),
        "location": dict(SEOUL_CITY_HALL, accuracy_m=15),
        "address": "서울특별시 중구 세종대로 110",
        "summary": "강도 신고",
    }
    body.update(overrides)
    return body


def partner_with_agreement(
    slug: str, kind: str, *, secret: str = "", valid_to: dt.date | None = None
) -> Partner:
    partner = Partner.objects.create(slug=slug, name=slug, kind=kind, signing_secret=secret)
    agreement = Agreement.objects.create(
        partner=partner, title="test", valid_from=dt.date(2024, 1, 1), valid_to=valid_to
    )
    for code, event_type in EVENT_TYPES.items():
        if event_type.kind == kind:
            AgreementEventType.objects.create(
                agreement=agreement, event_type=code, share_policy=event_type.policy
            )
    return partner


@pytest.fixture
def junggu(center_factory):
    return center_factory("seoul-junggu", (126.96, 37.54, 127.03, 37.58), name="서울 중구")


@pytest.fixture
def police(db, client) -> PartnerApi:
    partner = partner_with_agreement("police-112", "police")
    _, raw = api_key_create(partner=partner)
    return PartnerApi(client=client, partner=partner, key=raw)


@pytest.fixture
def fire(db) -> PartnerApi:
    partner = partner_with_agreement("fire-119", "fire")
    _, raw = api_key_create(partner=partner)
    return PartnerApi(client=Client(), partner=partner, key=raw)


@pytest.fixture
def signed_moj(db) -> PartnerApi:
    partner = partner_with_agreement("moj-tracking", "moj", secret="moj-shared-secret-0123456789")
    _, raw = api_key_create(partner=partner)
    return PartnerApi(client=Client(), partner=partner, key=raw, secret=partner.signing_secret)
