"""A partner downloads a saved clip through its share link: allowed, audited as a provision, or refused."""

from __future__ import annotations

import datetime as dt
import hashlib

import pytest
from django.test import Client
from django.utils import timezone

from audit.ledger import LedgerFilters, ledger_entries, ledger_rows
from audit.models import AuditEntry
from cameras.models import Clip
from incidents.models import Incident
from partners.admin import event_type_errors
from partners.demo import seed
from partners.models import AgreementEventType, Partner, Share
from partners.sharing import share_revoke, share_token
from tests.clips.conftest import incident_at, make_clip, operator_of
from tests.partners.conftest import partner_with_agreement
from tests.shares.conftest import api_of

pytestmark = pytest.mark.django_db

NEAR_CITY_HALL = (37.5664, 126.9779)
CONTENT = b"\x00\x00\x00\x18ftypisom clip bytes"


@pytest.fixture
def police() -> Partner:
    partner = partner_with_agreement("police-112", "police")
    AgreementEventType.objects.filter(agreement__partner=partner, event_type="police.emergency_video").update(
        allow_clips=True
    )
    return partner


@pytest.fixture
def hall_cameras(centre, camera_factory):
    return [camera_factory(lat=lat, lon=NEAR_CITY_HALL[1], center=centre) for lat in (37.5664, 37.5666)]


@pytest.fixture
def shared(police, hall_cameras) -> tuple[Incident, Share, str]:
    """A police event at city hall, shared back to the police at intake (on event)."""
    body = api_of(police).event(location={"lat": NEAR_CITY_HALL[0], "lon": NEAR_CITY_HALL[1]}).json()
    share = Share.objects.get(incident_id=body["id"])
    return Incident.objects.get(pk=body["id"]), share, share_token(share.token_nonce)


def clip_url(token: str, clip: Clip) -> str:
    return f"/shared/{token}/clips/{clip.pk}/"


def refusals() -> list[str]:
    return list(
        AuditEntry.objects.filter(action="clip.download_refused")
        .order_by("id")
        .values_list("details__code", flat=True)
    )


def test_the_viewer_lists_the_incidents_clips_and_the_partner_downloads_one(
    shared, hall_cameras, clip_storage
):
    incident, share, token = shared
    clip = make_clip(
        hall_cameras[0], clip_storage, expires_in=dt.timedelta(days=20), incident=incident, content=CONTENT
    )

    state = Client().get(f"/shared/{token}/state.json").json()
    page = Client().get(f"/shared/{token}/").content.decode()
    response = Client().get(state["clips"][0]["url"])

    assert state["clips_allowed"] is True
    assert [(c["id"], c["camera"]) for c in state["clips"]] == [(clip.pk, hall_cameras[0].pk)]
    assert state["clips"][0]["url"] == clip_url(token, clip)
    assert f'href="{clip_url(token, clip)}"' in page
    assert response.status_code == 200
    assert b"".join(response.streaming_content) == CONTENT  # type: ignore[attr-defined]
    assert response["X-Content-SHA256"] == hashlib.sha256(CONTENT).hexdigest()
    assert response["Content-Type"] == "video/mp4" and "no-store" in response["Cache-Control"]
    entry = AuditEntry.objects.get(action="clip.downloaded")
    assert (entry.actor, entry.partner_id, entry.object_id) == (
        "partner:police-112",
        share.partner_id,
        str(clip.pk),
    )
    assert entry.details["share_id"] == share.pk and entry.details["sha256"] == clip.sha256
    assert not refusals()


def test_a_share_download_is_a_provision_to_the_partner_in_the_ledger(shared, hall_cameras, clip_storage):
    incident, _share, token = shared
    clip = make_clip(hall_cameras[0], clip_storage, expires_in=dt.timedelta(days=20), incident=incident)
    assert Client().get(clip_url(token, clip)).status_code == 200

    entries = list(ledger_entries(filters=LedgerFilters(kind="provide")).filter(action="clip.downloaded"))
    [row] = ledger_rows(entries)

    assert (row.kind, row.form, row.recipient) == ("제공", "녹화영상", "police-112")
    assert clip.file.rsplit("/", 1)[1] in row.subject and hall_cameras[0].code in row.subject
    assert f"police.emergency_video #{incident.pk}" in row.basis
    assert row.period.startswith(timezone.localtime(clip.period_start).strftime("%Y-%m-%d %H:%M"))


def test_an_expired_or_revoked_share_downloads_nothing_and_the_refusal_is_audited(
    shared, hall_cameras, clip_storage, centre
):
    incident, share, token = shared
    clip = make_clip(hall_cameras[0], clip_storage, expires_in=dt.timedelta(days=20), incident=incident)
    Share.objects.filter(pk=share.pk).update(expires_at=timezone.now() - dt.timedelta(seconds=1))

    expired = Client().get(clip_url(token, clip))

    Share.objects.filter(pk=share.pk).update(expires_at=timezone.now() + dt.timedelta(minutes=30))
    share_revoke(user=operator_of(centre, "op-a"), share_id=share.pk, reason="done")
    revoked = Client().get(clip_url(token, clip))

    assert (expired.status_code, expired.json()["code"]) == (403, "share_ended")
    assert (revoked.status_code, revoked.json()["code"]) == (403, "share_ended")
    assert refusals() == ["share_ended", "share_ended"]
    assert not AuditEntry.objects.filter(action="clip.downloaded").exists()


def test_clips_of_another_incident_or_of_a_camera_outside_the_share_are_not_found(
    shared, police, hall_cameras, centre, camera_factory, clip_storage
):
    incident, _share, token = shared
    other_incident = incident_at(centre, partner=police)
    elsewhere = camera_factory(lat=37.575, lon=127.02, center=centre)
    foreign = make_clip(
        hall_cameras[0], clip_storage, expires_in=dt.timedelta(days=20), incident=other_incident
    )
    unshared = make_clip(elsewhere, clip_storage, expires_in=dt.timedelta(days=20), incident=incident)

    answers = [Client().get(clip_url(token, clip)) for clip in (foreign, unshared)]
    missing = Client().get(f"/shared/{token}/clips/999999/")

    assert [a.status_code for a in answers] == [404, 404]
    assert missing.status_code == 404
    assert refusals() == ["not_in_share"] * 3
    assert Client().get(f"/shared/{token}/state.json").json()["clips"] == []


def test_a_share_whose_agreement_does_not_allow_clips_offers_and_gives_none(
    shared, police, hall_cameras, clip_storage
):
    incident, _share, token = shared
    AgreementEventType.objects.filter(agreement__partner=police).update(allow_clips=False)
    clip = make_clip(hall_cameras[0], clip_storage, expires_in=dt.timedelta(days=20), incident=incident)

    state = Client().get(f"/shared/{token}/state.json").json()
    response = Client().get(clip_url(token, clip))

    assert (state["clips_allowed"], state["clips"]) == (False, [])
    assert (response.status_code, response.json()["code"]) == (403, "clips_not_allowed")
    assert refusals() == ["clips_not_allowed"]


def test_a_destroyed_clip_is_gone_for_the_partner_too(shared, hall_cameras, clip_storage):
    incident, _share, token = shared
    clip = make_clip(
        hall_cameras[0], clip_storage, expires_in=dt.timedelta(days=-1), incident=incident, destroyed=True
    )

    response = Client().get(clip_url(token, clip))

    assert (response.status_code, response.json()["code"]) == (410, "destroyed")
    assert refusals() == ["destroyed"]
    assert Client().get(f"/shared/{token}/state.json").json()["clips"] == []


def test_an_unknown_link_gets_404_and_writes_nothing(shared, hall_cameras, clip_storage):
    incident, _share, _token = shared
    clip = make_clip(hall_cameras[0], clip_storage, expires_in=dt.timedelta(days=20), incident=incident)
    before = AuditEntry.objects.count()

    response = Client().get(clip_url("A" * 43, clip))

    assert response.status_code == 404
    assert AuditEntry.objects.count() == before


def test_the_staff_download_url_takes_no_share_token(shared, hall_cameras, clip_storage):
    incident, _share, token = shared
    clip = make_clip(hall_cameras[0], clip_storage, expires_in=dt.timedelta(days=20), incident=incident)

    assert Client().get(f"/cameras/clips/{clip.pk}/download/?share={token}").status_code == 401


def test_clips_are_on_by_default_only_for_the_polices_on_event_types(db):
    seed(stdout_write=lambda _line: None)

    allowed = set(
        AgreementEventType.objects.filter(allow_clips=True).values_list(
            "agreement__partner__slug", "event_type"
        )
    )

    assert allowed == {("police-112", "police.emergency_video"), ("police-112", "police.dispatch")}


def test_the_admin_refuses_clips_where_the_policy_makes_no_share():
    refused = event_type_errors(
        partner_kind="police",
        event_type="police.wanted_vehicle",
        share_policy="search_only",
        allow_clips=True,
    )
    allowed = event_type_errors(
        partner_kind="fire", event_type="fire.dispatch", share_policy="on_event", allow_clips=True
    )

    assert set(refused) == {"allow_clips"}
    assert allowed == {}
