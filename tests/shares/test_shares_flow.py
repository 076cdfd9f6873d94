"""Shares end to end over HTTP: intake, the partner API, the viewer, operator controls, expiry."""

from __future__ import annotations

import datetime as dt
import secrets
from zoneinfo import ZoneInfo

import pytest
from django.test import Client
from django.utils import timezone

from audit.models import AuditEntry
from cameras.models import StaffRole
from incidents.catalogue import PartnerKind
from incidents.models import Incident, TimelineKind
from partners.models import Agreement, Share
from partners.sharing import share_token, shares_expire
from tests.shares.conftest import api_of, incident_of, logged_in, operator_of

pytestmark = pytest.mark.django_db

SEOUL = ZoneInfo("Asia/Seoul")
NEAR_CITY_HALL = (37.5664, 126.9779)
NEAR_STATION = (37.5547, 126.9707)  # Seoul Station, ~1.4 km south


@pytest.fixture
def cameras(junggu, camera_factory):
    """Two cameras at city hall, two at Seoul station: a subject walking between them switches sets."""
    return {
        "hall": [camera_factory(lat=lat, lon=NEAR_CITY_HALL[1], center=junggu) for lat in (37.5664, 37.5666)],
        "station": [
            camera_factory(lat=lat, lon=NEAR_STATION[1], center=junggu) for lat in (37.5547, 37.5549)
        ],
    }


def path_of(viewer_url: str) -> str:
    return viewer_url.removeprefix("http://127.0.0.1:8000")


def token_of(viewer_url: str) -> str:
    return viewer_url.rstrip("/").rsplit("/", 1)[1]


# --- intake and the partner API -----------------------------------------------------------


def test_an_on_event_type_is_shared_at_intake_and_the_link_opens_the_viewer(partners, cameras):
    police = api_of(partners[PartnerKind.POLICE])

    body = police.event(location={"lat": NEAR_CITY_HALL[0], "lon": NEAR_CITY_HALL[1]}).json()

    [share] = body["shares"]
    assert share["cameras"] == [c.pk for c in cameras["hall"]]
    expires = dt.datetime.fromisoformat(share["expires_at"])
    assert dt.timedelta(minutes=59) < expires - timezone.now() <= dt.timedelta(minutes=60)
    row = Share.objects.get()
    assert row.created_by is None and row.legal_basis == f"police.emergency_video #{body['id']}"
    token = token_of(share["viewer_url"])
    assert len(token) == 43 and token not in str(Share.objects.values().get())  # only its hash is stored
    page = Client().get(path_of(share["viewer_url"]))
    assert page.status_code == 200
    assert "no-store" in page["Cache-Control"]
    state = Client().get(path_of(share["viewer_url"]) + "state.json").json()
    assert state["active"] is True
    assert [c["id"] for c in state["cameras"]] == share["cameras"]
    assert state["incident"]["summary"] == "강도 신고"
    assert "stream_url" not in page.content.decode() and "rtsp://" not in page.content.decode()
    audit = AuditEntry.objects.get(action="share.granted")
    assert audit.actor == "system:rules" and audit.details["camera_ids"] == share["cameras"]


def test_curfew_violation_outside_the_window_is_accepted_but_not_shared_and_the_refusal_audited(
    partners, junggu
):
    moj = api_of(partners[PartnerKind.MOJ])
    noon = dt.datetime.now(SEOUL).replace(hour=12, minute=0, second=0, microsecond=0)
    if noon > dt.datetime.now(SEOUL):
        noon -= dt.timedelta(days=1)

    response = moj.event(type="moj.curfew_violation", occurred_at=noon.isoformat())

    assert response.status_code == 201
    assert response.json()["shares"] == []
    refusal = AuditEntry.objects.get(action="share.refused")
    assert refusal.details["code"] == "outside_curfew_window"
    assert refusal.details["partner"] == "moj-tracking"
    assert "00:00–06:00" in refusal.details["reason"]


def test_an_sos_is_not_shared_at_intake_and_a_relay_to_police_stays_invisible_to_the_app(
    partners, junggu, cameras
):
    app = api_of(partners[PartnerKind.SAFETY_APP])
    created = app.event(type="safety.sos").json()
    assert created["shares"] == []
    assert not AuditEntry.objects.filter(action__startswith="share.").exists()  # nothing to decide yet
    kim = logged_in(operator_of(junggu, "kim"))

    relay = kim.post(
        f"/incidents/{created['id']}/shares/",
        {"partner": "police-112", "reason": "CCTV로 폭행 확인"},
        content_type="application/json",
    )

    assert relay.status_code == 201, relay.content
    assert relay.json()["partner"] == "police-112"
    assert Client().get(path_of(relay.json()["viewer_url"])).status_code == 200
    # The app (the sender) sees its incident, never the share that went to the police.
    detail = app.get(f"/api/v1/events/{created['id']}/").json()
    assert detail["shares"] == []
    assert "share" not in [entry["kind"] for entry in detail["timeline"]]
    # And the police cannot read the app's incident through the API at all.
    police = api_of(partners[PartnerKind.POLICE])
    assert police.get(f"/api/v1/events/{created['id']}/").status_code == 404


def test_a_security_company_never_gets_video_back(partners, junggu, cameras):
    s1 = api_of(partners[PartnerKind.SECURITY])
    created = s1.event(type="security.alarm").json()
    kim = logged_in(operator_of(junggu, "kim"))

    refused = kim.post(
        f"/incidents/{created['id']}/shares/",
        {"partner": "security-s1", "reason": "확인"},
        content_type="application/json",
    )

    assert refused.status_code == 403
    assert refused.json()["code"] == "not_to_sender"
    assert not Share.objects.exists()


# --- following the subject ----------------------------------------------------------------


def test_the_share_follows_a_moving_subject(partners, cameras):
    moj = api_of(partners[PartnerKind.MOJ])
    created = moj.event(
        type="moj.exclusion_zone", location={"lat": NEAR_CITY_HALL[0], "lon": NEAR_CITY_HALL[1]}
    ).json()
    state_url = path_of(created["shares"][0]["viewer_url"]) + "state.json"
    viewer = Client()
    assert [c["id"] for c in viewer.get(state_url).json()["cameras"]] == [c.pk for c in cameras["hall"]]

    moved = moj.post(
        f"/api/v1/events/{created['id']}/locations/", {"lat": NEAR_STATION[0], "lon": NEAR_STATION[1]}
    )

    assert moved.status_code == 201
    assert [c["id"] for c in viewer.get(state_url).json()["cameras"]] == [c.pk for c in cameras["station"]]
    assert moved.json()["shares"][0]["cameras"] == [c.pk for c in cameras["station"]]


# --- tokens --------------------------------------------------------------------------------


def test_guessed_tokens_are_404_then_throttled(partners, junggu, settings):
    settings.SHARE_GUESS_LIMIT_PER_MINUTE = 5
    guesser = Client()
    codes = [guesser.get(f"/shared/{secrets.token_urlsafe(32)}/").status_code for _ in range(5)]
    assert codes == [404] * 5
    assert guesser.get(f"/shared/{secrets.token_urlsafe(32)}/state.json").status_code == 429
    assert guesser.get("/shared/short/").status_code == 429
    assert Client(REMOTE_ADDR="10.1.2.3").get(f"/shared/{secrets.token_urlsafe(32)}/").status_code == 404


def test_a_revoked_token_is_refused_for_good(partners, junggu, cameras):
    police = api_of(partners[PartnerKind.POLICE])
    created = police.event().json()
    url = path_of(created["shares"][0]["viewer_url"])
    share = Share.objects.get()
    kim = logged_in(operator_of(junggu, "kim"))

    revoked = kim.post(
        f"/shares/{share.pk}/revoke/", {"reason": "오인 신고"}, content_type="application/json"
    )

    assert revoked.status_code == 200 and revoked.json()["active"] is False
    assert Client().get(url).status_code == 410
    assert Client().get(url + "state.json").json() == {"active": False, "error": "this share has ended"}
    assert police.get(f"/api/v1/events/{created['id']}/").json()["shares"] == []
    assert (
        kim.post(f"/shares/{share.pk}/extend/", {"minutes": 5}, content_type="application/json").status_code
        == 409
    )
    audit = AuditEntry.objects.get(action="share.revoked")
    assert (audit.actor, audit.details["reason"]) == ("user:kim", "오인 신고")
    # A new share is a new token: the old link never comes back.
    again = kim.post(f"/incidents/{created['id']}/shares/", {}, content_type="application/json")
    assert again.status_code == 201
    assert token_of(again.json()["viewer_url"]) != token_of(url)
    assert Client().get(url).status_code == 410


def test_the_token_depends_on_the_secret(settings):
    nonce = "n" * 43
    first = share_token(nonce)
    settings.SHARE_TOKEN_SECRET = "another-secret"
    assert share_token(nonce) != first


def test_the_viewer_can_be_bound_to_the_partners_networks(partners, junggu, cameras):
    police = api_of(partners[PartnerKind.POLICE])
    Agreement.objects.filter(partner=police.partner).update(viewer_networks="10.20.0.0/16\n192.0.2.7/32")
    url = path_of(police.event().json()["shares"][0]["viewer_url"])

    assert Client(REMOTE_ADDR="127.0.0.1").get(url).status_code == 403
    assert Client(REMOTE_ADDR="10.20.3.4").get(url).status_code == 200
    assert Client(REMOTE_ADDR="192.0.2.7").get(url + "state.json").status_code == 200


# --- operator controls ---------------------------------------------------------------------


def test_operator_extends_within_the_maximum_and_the_timeline_says_who(partners, junggu, cameras):
    police = partners[PartnerKind.POLICE]
    Agreement.objects.filter(partner=police).update(max_share_minutes=30)
    incident = incident_of(police, junggu, "police.dispatch")
    kim = logged_in(operator_of(junggu, "kim"))

    created = kim.post(f"/incidents/{incident.pk}/shares/", {"minutes": 10}, content_type="application/json")
    assert created.status_code == 201
    share_id = created.json()["id"]
    duplicate = kim.post(f"/incidents/{incident.pk}/shares/", {}, content_type="application/json")
    assert (duplicate.status_code, duplicate.json()["code"]) == (409, "already_shared")
    extended = kim.post(f"/shares/{share_id}/extend/", {"minutes": 120}, content_type="application/json")

    assert extended.status_code == 200
    left = dt.datetime.fromisoformat(extended.json()["expires_at"]) - timezone.now()
    assert dt.timedelta(minutes=29) < left <= dt.timedelta(minutes=30)  # capped at the maximum from now
    timeline = list(Incident.objects.get(pk=incident.pk).timeline.filter(kind=TimelineKind.SHARE))
    assert [entry.actor for entry in timeline] == ["kim", "kim"]
    assert [e.action for e in AuditEntry.objects.filter(action__startswith="share.").order_by("id")] == [
        "share.granted",
        "share.refused",
        "share.extended",
    ]
    listing = kim.get(f"/incidents/{incident.pk}/shares.json").json()
    assert [s["id"] for s in listing["shares"]] == [share_id]
    assert listing["recipients"][0] == {
        "slug": "police-112",
        "name": "police-112",
        "kind": "police",
        "sender": True,
    }


@pytest.mark.parametrize(
    ("body", "status"),
    [
        ({"minutes": "abc"}, 400),
        ({"minutes": 0}, 400),
        ({"minutes": True}, 400),
        ({"partner": "nobody"}, 400),
    ],
)
def test_bad_operator_input_is_a_clear_4xx(partners, junggu, body, status):
    incident = incident_of(partners[PartnerKind.POLICE], junggu, "police.dispatch")
    kim = logged_in(operator_of(junggu, "kim"))
    response = kim.post(f"/incidents/{incident.pk}/shares/", body, content_type="application/json")
    assert response.status_code == status
    assert "error" in response.json()
    assert not Share.objects.exists()


def test_only_operators_of_the_centre_control_its_shares(partners, junggu, center_factory, cameras):
    anyang = center_factory("anyang", (126.89, 37.36, 126.99, 37.44))
    incident = incident_of(partners[PartnerKind.POLICE], junggu, "police.dispatch")
    owner = logged_in(operator_of(junggu, "kim"))
    share_id = owner.post(f"/incidents/{incident.pk}/shares/", {}, content_type="application/json").json()[
        "id"
    ]

    stranger = logged_in(operator_of(anyang, "lee"))
    privacy = logged_in(operator_of(None, "privacy", role=StaffRole.PRIVACY_OFFICER))
    for client in (stranger, privacy):
        assert (
            client.post(f"/incidents/{incident.pk}/shares/", {}, content_type="application/json").status_code
            == 404
        )
        assert (
            client.post(f"/shares/{share_id}/revoke/", {}, content_type="application/json").status_code == 403
        )
        assert client.get(f"/incidents/{incident.pk}/shares.json").status_code == 404
    assert Client().post(f"/shares/{share_id}/revoke/").status_code == 302  # to the login page
    csrf_checked = Client(enforce_csrf_checks=True)
    csrf_checked.force_login(operator_of(junggu, "park"))
    assert csrf_checked.post(f"/shares/{share_id}/revoke/").status_code == 403
    assert Share.objects.get().revoked_at is None


# --- ending --------------------------------------------------------------------------------


def test_expired_shares_end_once_however_often_the_task_runs(partners, junggu, cameras):
    police = api_of(partners[PartnerKind.POLICE])
    url = path_of(police.event().json()["shares"][0]["viewer_url"])
    Share.objects.update(expires_at=timezone.now() - dt.timedelta(seconds=1))

    assert Client().get(url).status_code == 410  # the page goes by the clock, not the task
    assert len(shares_expire()) == 1
    assert shares_expire() == []
    share = Share.objects.get()
    assert (share.end_reason, share.ended_at is not None) == ("expired", True)
    assert AuditEntry.objects.filter(action="share.ended").count() == 1


def test_closing_the_incident_ends_its_shares(partners, junggu, cameras):
    police = api_of(partners[PartnerKind.POLICE])
    created = police.event().json()
    kim = logged_in(operator_of(junggu, "kim"))

    kim.post(f"/incidents/{created['id']}/close/", {"outcome": "resolved"}, content_type="application/json")

    assert Share.objects.get().end_reason == "incident_closed"
    assert Client().get(path_of(created["shares"][0]["viewer_url"])).status_code == 410
    assert police.get(f"/api/v1/events/{created['id']}/").json()["shares"] == []


def test_the_partner_can_cancel_and_its_share_ends(partners, junggu, cameras):
    police = api_of(partners[PartnerKind.POLICE])
    created = police.event().json()
    assert police.post(f"/api/v1/events/{created['id']}/cancel/", {}).status_code == 200
    assert Share.objects.get().end_reason == "incident_closed"


def test_dispatch_request_relays_a_share_to_police_for_an_sos(partners, junggu, cameras):
    app = api_of(partners[PartnerKind.SAFETY_APP])
    created = app.event(type="safety.sos", **{"summary": "귀갓길 긴급신고"}).json()
    kim = logged_in(operator_of(junggu, "kim"))

    kim.post(
        f"/incidents/{created['id']}/dispatch/",
        {"target": "112", "reason": "폭행"},
        content_type="application/json",
    )

    share = Share.objects.get()
    assert share.partner.slug == "police-112"
    assert share.created_by is not None and share.created_by.username == "kim"
    assert "폭행" in share.legal_basis
