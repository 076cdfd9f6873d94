"""`POST /api/v1/events/` and friends: the partner API contract (DESIGN §4)."""

from __future__ import annotations

import datetime as dt
import json

import pytest
from django.test import Client

from audit.models import AuditEntry
from incidents.models import Incident, IncidentStatus, LocationFix
from partners.services import api_key_create, api_key_revoke
from tests.partners.conftest import SEOUL_CITY_HALL, PartnerApi, event_body, partner_with_agreement

pytestmark = pytest.mark.django_db


def test_event_becomes_an_incident_at_the_covering_centre_with_nearest_cameras(
    police, junggu, camera_factory
):
    near = camera_factory(lat=37.5668, lon=126.9779, center=junggu, name="시청앞")
    camera_factory(lat=37.5700, lon=126.9779, center=junggu, name="too far (≈410 m) but within 500")
    camera_factory(lat=37.6000, lon=126.9779, name="3.7 km away")

    response = police.event(external_id="112-0001")

    assert response.status_code == 201
    body = response.json()
    assert body["type"] == "police.emergency_video"
    assert body["status"] == "new"
    assert body["center"] == "seoul-junggu"
    assert body["outside_jurisdiction"] is False
    assert body["location"] == {"lat": 37.5663, "lon": 126.9779, "accuracy_m": 15}
    assert [c["id"] for c in body["cameras"]][:1] == [near.pk]
    assert len(body["cameras"]) == 2
    assert body["cameras"][0]["distance_m"] == pytest.approx(55.5, abs=1)
    assert set(body["cameras"][0]) == {"id", "name", "distance_m"}
    # police.emergency_video shares live video with its sender on event (DESIGN §3).
    [share] = body["shares"]
    assert set(share) == {"viewer_url", "cameras", "expires_at"}
    assert share["cameras"] == [c["id"] for c in body["cameras"]]
    assert share["viewer_url"].startswith("http://127.0.0.1:8000/shared/")
    assert Incident.objects.filter(pk=body["id"], center=junggu).exists()


def test_same_external_id_again_returns_200_and_the_same_incident(police, junggu):
    first = police.event(external_id="dup-1")
    second = police.event(external_id="dup-1", summary="resent")

    assert (first.status_code, second.status_code) == (201, 200)
    assert first.json()["id"] == second.json()["id"]
    assert Incident.objects.filter(external_id="dup-1").count() == 1


def test_two_partners_may_use_the_same_external_id(police, fire, junggu):
    a = police.event(external_id="shared-1")
    b = fire.event(external_id="shared-1", type="fire.dispatch")
    assert (a.status_code, b.status_code) == (201, 201)
    assert a.json()["id"] != b.json()["id"]


def test_outside_every_jurisdiction_routes_to_the_nearest_centre_flagged(police, junggu):
    response = police.event(location={"lat": 37.40, "lon": 127.10})

    assert response.status_code == 201
    assert response.json()["center"] == "seoul-junggu"
    assert response.json()["outside_jurisdiction"] is True


def test_events_either_side_of_a_border_reach_different_centres(police, center_factory):
    center_factory("west", (126.90, 37.50, 126.98, 37.60))
    center_factory("east", (126.98, 37.50, 127.06, 37.60))

    west = police.event(location={"lat": 37.55, "lon": 126.9799})
    east = police.event(location={"lat": 37.55, "lon": 126.9801})

    assert (west.json()["center"], east.json()["center"]) == ("west", "east")


def test_intake_is_audited_with_the_request_id(police, junggu):
    response = police.event(external_id="audit-1", HTTP_X_REQUEST_ID="req-abc-123")

    entry = AuditEntry.objects.get(action="incident.intake", object_id=str(response.json()["id"]))
    assert entry.partner_id == police.partner.pk
    assert entry.request_id == "req-abc-123"
    assert entry.details["external_id"] == "audit-1"
    assert response["X-Request-ID"] == "req-abc-123"


def test_type_outside_the_agreement_is_403_and_writes_nothing(police, junggu):
    response = police.event(type="fire.dispatch")
    assert response.status_code == 403
    assert "fire.dispatch" in response.json()["errors"]["detail"][0]
    assert not Incident.objects.exists()


def test_expired_agreement_is_403(db, junggu):
    partner = partner_with_agreement("old-police", "police", valid_to=dt.date.today() - dt.timedelta(days=1))
    _, raw = api_key_create(partner=partner)
    api = PartnerApi(client=Client(), partner=partner, key=raw)

    assert api.event().status_code == 403
    assert not Incident.objects.exists()


# --- bad input: a clear 4xx, nothing written ------------------------------------------

BAD_BODIES = [
    ("lat out of range", {"location": {"lat": 91, "lon": 127}}, "location"),
    ("lon out of range", {"location": {"lat": 37.5, "lon": -181}}, "location"),
    ("string for a number", {"location": {"lat": "37.5", "lon": 127}}, "location"),
    ("boolean for a number", {"location": {"lat": True, "lon": 127}}, "location"),
    ("string for priority", {"priority": "1"}, "priority"),
    ("priority out of range", {"priority": 9}, "priority"),
    ("unknown type", {"type": "police.pizza"}, "type"),
    ("time without offset", {"occurred_at": "2026-11-22T13:05:00"}, "occurred_at"),
    ("time far in the future", {"occurred_at": "2099-01-01T00:00:00+09:00"}, "occurred_at"),
    ("not a time", {"occurred_at": "yesterday"}, "occurred_at"),
    ("number for a time", {"occurred_at": 1763780000}, "occurred_at"),
    ("empty external id", {"external_id": "   "}, "external_id"),
    ("over-long external id", {"external_id": "x" * 129}, "external_id"),
    ("subject not an object", {"subject": ["a"]}, "subject"),
    ("location not an object", {"location": "37.5,127"}, "location"),
]


@pytest.mark.parametrize(("case", "overrides", "field"), BAD_BODIES, ids=[c[0] for c in BAD_BODIES])
def test_bad_field_is_400_naming_the_field_and_writes_nothing(police, junggu, case, overrides, field):
    response = police.event(**overrides)

    assert response.status_code == 400, case
    assert field in response.json()["errors"], response.json()
    assert not Incident.objects.exists()


def test_missing_fields_are_all_reported_at_once(police, junggu):
    response = police.post("/api/v1/events/", {"summary": "no fields"})

    assert response.status_code == 400
    assert {"external_id", "type", "occurred_at", "location"} <= set(response.json()["errors"])


@pytest.mark.parametrize(
    ("case", "raw"),
    [
        (
            "NaN literal",
            b'{"external_id": "n", "type": "police.dispatch", "occurred_at": "2026-01-01T00:00:00Z", "location": {"lat": NaN, "lon": 127}}',
        ),
        ("Infinity literal", b'{"location": {"lat": Infinity, "lon": 127}}'),
        ("broken JSON", b'{"external_id": '),
        ("duplicate JSON keys", b'{"type": "police.dispatch", "type": "fire.dispatch"}'),
        ("non-UTF-8 bytes", b'{"external_id": "\xff\xfe"}'),
        ("deeply nested", b'{"subject": ' + b"[" * 50_000 + b"]" * 50_000 + b"}"),
        ("empty body", b""),
    ],
)
def test_malformed_body_is_400(police, junggu, case, raw):
    response = police.post("/api/v1/events/", raw=raw)
    assert response.status_code in (400, 413), case
    assert response.status_code == 400 or case == "deeply nested"
    assert "errors" in response.json()
    assert not Incident.objects.exists()


@pytest.mark.parametrize("payload", [[1, 2, 3], "a string", 42, None])
def test_json_that_is_not_an_object_is_400(police, payload):
    response = police.post("/api/v1/events/", payload)
    assert response.status_code == 400
    assert "non_field_errors" in response.json()["errors"]


def test_body_over_64_kib_is_413(police, junggu):
    response = police.event(summary="가" * 30_000)  # 90 KB of UTF-8
    assert response.status_code == 413
    assert not Incident.objects.exists()


def test_wrong_content_type_is_415(police):
    response = police.post(
        "/api/v1/events/", raw=b"external_id=1", content_type="application/x-www-form-urlencoded"
    )
    assert response.status_code == 415


@pytest.mark.parametrize(
    "authorization",
    [None, "", "Bearer", "Basic dXNlcjpwYXNz", "Bearer scn_nope_nope", "Bearer not-a-key"],
)
def test_missing_or_unknown_key_is_401(db, authorization):
    extra = {} if authorization is None else {"HTTP_AUTHORIZATION": authorization}
    response = Client().post(
        "/api/v1/events/", json.dumps(event_body()), content_type="application/json", **extra
    )
    assert response.status_code == 401
    assert "Bearer" in response["WWW-Authenticate"]


def test_revoked_key_is_401(police, junggu):
    key = police.partner.api_keys.get()
    api_key_revoke(key=key)
    assert police.event().status_code == 401


def test_duplicated_authorization_header_is_401(police, junggu):
    # ASGI servers join repeated headers with a comma; such a key never matches.
    response = police.event(HTTP_AUTHORIZATION=f"Bearer {police.key},Bearer {police.key}")
    assert response.status_code == 401


def test_rate_limit_gives_429_with_retry_after(police, junggu):
    police.partner.rate_limit_per_minute = 3
    police.partner.save()

    statuses = [police.event().status_code for _ in range(5)]

    assert statuses[:3] == [201, 201, 201]
    assert statuses[3:] == [429, 429]
    last = police.event()
    assert 1 <= int(last["Retry-After"]) <= 60


# --- signatures -------------------------------------------------------------------------


def test_signed_partner_with_a_good_signature_is_accepted(signed_moj, junggu):
    assert signed_moj.event(type="moj.device_tamper").status_code == 201


def test_signed_partner_without_signature_is_401(signed_moj, junggu):
    body = json.dumps(event_body(type="moj.device_tamper")).encode()
    response = signed_moj.client.post(
        "/api/v1/events/",
        body,
        content_type="application/json",
        HTTP_AUTHORIZATION=f"Bearer {signed_moj.key}",
    )
    assert response.status_code == 401


def test_stale_signature_is_401(signed_moj, junggu):
    body = json.dumps(event_body(type="moj.device_tamper")).encode()
    headers = signed_moj.headers(body, timestamp=int(dt.datetime.now().timestamp()) - 301)
    response = signed_moj.client.post("/api/v1/events/", body, content_type="application/json", **headers)
    assert response.status_code == 401
    assert not Incident.objects.exists()


def test_wrong_signature_is_401(signed_moj, junggu):
    body = json.dumps(event_body(type="moj.device_tamper")).encode()
    headers = signed_moj.headers(body) | {"HTTP_X_SIGNATURE": "sha256=" + "0" * 64}
    assert (
        signed_moj.client.post(
            "/api/v1/events/", body, content_type="application/json", **headers
        ).status_code
        == 401
    )


def test_altered_body_breaks_the_signature(signed_moj, junggu):
    body = json.dumps(event_body(type="moj.device_tamper")).encode()
    headers = signed_moj.headers(body)
    altered = body.replace(b"37.5663", b"37.5664")
    response = signed_moj.client.post("/api/v1/events/", altered, content_type="application/json", **headers)
    assert response.status_code == 401


def test_replayed_signature_is_401(signed_moj, junggu):
    body = json.dumps(event_body(type="moj.device_tamper")).encode()
    headers = signed_moj.headers(body)
    first = signed_moj.client.post("/api/v1/events/", body, content_type="application/json", **headers)
    again = signed_moj.client.post("/api/v1/events/", body, content_type="application/json", **headers)
    assert (first.status_code, again.status_code) == (201, 401)


# --- reading, moving, cancelling ----------------------------------------------------------


def test_partner_reads_its_own_incident_with_timeline(police, junggu):
    created = police.event(external_id="read-1").json()

    response = police.get(f"/api/v1/events/{created['id']}/")

    assert response.status_code == 200
    body = response.json()
    assert body["id"] == created["id"]
    assert body["status"] == "new"
    assert [entry["kind"] for entry in body["timeline"]] == ["received", "share"]
    assert [(share["viewer_url"], share["cameras"]) for share in body["shares"]] == [
        (share["viewer_url"], share["cameras"]) for share in created["shares"]
    ]


def test_another_partners_incident_is_404(police, fire, junggu):
    created = police.event().json()
    assert fire.get(f"/api/v1/events/{created['id']}/").status_code == 404
    assert fire.post(f"/api/v1/events/{created['id']}/cancel/", {}).status_code == 404
    assert fire.post(f"/api/v1/events/{created['id']}/locations/", SEOUL_CITY_HALL).status_code == 404


def test_unknown_incident_is_404(police):
    assert police.get("/api/v1/events/999999/").status_code == 404


def test_location_fix_moves_the_incident_and_reranks_cameras(police, junggu, camera_factory):
    first_camera = camera_factory(lat=37.5665, lon=126.9779, center=junggu)
    second_camera = camera_factory(lat=37.5605, lon=126.9900, center=junggu)
    created = police.event().json()
    assert created["cameras"][0]["id"] == first_camera.pk

    response = police.post(
        f"/api/v1/events/{created['id']}/locations/",
        {
            "lat": 37.5606,
            "lon": 126.9900,
            "accuracy_m": 8,
            "observed_at": dt.datetime.now(dt.UTC).isoformat(),
        },
    )

    assert response.status_code == 201
    assert response.json()["cameras"][0]["id"] == second_camera.pk
    assert response.json()["location"]["lat"] == 37.5606
    assert LocationFix.objects.filter(incident_id=created["id"]).count() == 1


def test_out_of_order_fix_joins_the_track_but_does_not_move_the_incident(police, junggu):
    created = police.event().json()
    now = dt.datetime.now(dt.UTC)
    path = f"/api/v1/events/{created['id']}/locations/"
    police.post(path, {"lat": 37.561, "lon": 126.99, "observed_at": now.isoformat()})
    police.post(
        path, {"lat": 37.550, "lon": 126.97, "observed_at": (now - dt.timedelta(minutes=1)).isoformat()}
    )

    incident = Incident.objects.get(pk=created["id"])
    assert incident.location.y == pytest.approx(37.561)
    assert incident.fixes.count() == 2


def test_bad_location_fix_is_400_and_writes_nothing(police, junggu):
    created = police.event().json()
    response = police.post(f"/api/v1/events/{created['id']}/locations/", {"lat": 100, "lon": "x"})
    assert response.status_code == 400
    assert {"lat", "lon"} <= set(response.json()["errors"])
    assert not LocationFix.objects.exists()


def test_cancel_withdraws_the_event_and_is_repeatable(police, junggu):
    created = police.event().json()

    first = police.post(f"/api/v1/events/{created['id']}/cancel/", {})
    second = police.post(f"/api/v1/events/{created['id']}/cancel/", {})

    assert (first.status_code, second.status_code) == (200, 200)
    assert first.json()["status"] == IncidentStatus.CANCELLED
    assert police.post(f"/api/v1/events/{created['id']}/locations/", SEOUL_CITY_HALL).status_code == 409


def test_events_are_still_accepted_when_redis_is_down(police, junggu, signed_moj, settings):
    settings.REDIS_URL = "redis://127.0.0.1:1/0"
    settings.CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": "redis://127.0.0.1:1/0",  # nothing listens there
            "OPTIONS": {"socket_connect_timeout": 0.2, "socket_timeout": 0.2},
        }
    }

    assert police.event(external_id="no-redis-1").status_code == 201
    assert signed_moj.event(type="moj.device_tamper").status_code == 201
    assert Incident.objects.count() == 2


@pytest.mark.parametrize(
    "when",
    [
        "2024-01-01T00:00:00+16:00",
        "2024-01-01T00:00:00-13:00",
        "0001-01-01T00:00:00+05:00",
        "1899-12-31T23:00:00Z",
    ],
)
def test_times_the_database_cannot_hold_are_400(police, junggu, when):
    response = police.event(occurred_at=when)
    assert response.status_code == 400
    assert "occurred_at" in response.json()["errors"]


def test_external_id_sent_as_a_number_is_400(police, junggu):
    assert police.event(external_id=12345).status_code == 400
