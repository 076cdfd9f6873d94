"""Admin for partners, keys, agreements, incidents and the audit log; `partner_key`; demo partners."""

from __future__ import annotations

import datetime as dt
import hashlib
import re
from io import StringIO
from typing import Any

import pytest
from django import forms as django_forms
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.core.management.base import CommandError
from django.utils import timezone

from audit.models import AuditEntry
from cameras.selectors import make_point
from incidents.catalogue import EVENT_TYPES, default_types_for
from incidents.models import Incident, IncidentCamera, TimelineEntry, TimelineKind
from partners.models import Agreement, AgreementEventType, ApiKey, CapEventMapping, Partner
from partners.selectors import API_KEY_COLUMNS, PARTNER_COLUMNS, api_key_check
from partners.services import api_key_create

from .conftest import partner_with_agreement

SECRET = "police-signing-secret-do-not-show-0123456789"
KEY_PATTERN = re.compile(r"scn_[0-9a-f]{8}_[A-Za-z0-9_-]{43}")
DEMO_SLUGS = {
    "police-112": "police",
    "fire-119": "fire",
    "disaster-room": "disaster",
    "moj-tracking": "moj",
    "safety-app": "safety_app",
    "telecom": "telecom",
    "security-s1": "security",
    "market-sensor": "sensor",
}


@pytest.fixture
def boss(db):
    return get_user_model().objects.create_superuser("boss", "boss@example.test", "pw-long-enough-123")


@pytest.fixture
def staff_client(client, boss):
    client.force_login(boss)
    return client


@pytest.fixture
def police_partner(db) -> Partner:
    partner = partner_with_agreement("police-112", "police", secret=SECRET)
    CapEventMapping.objects.create(partner=partner, cap_event="Robbery", event_type="police.dispatch")
    return partner


@pytest.fixture
def police_key(police_partner) -> tuple[ApiKey, str]:
    return api_key_create(partner=police_partner, name="production")


@pytest.fixture
def incident(police_partner, center_factory, camera_factory) -> Incident:
    center = center_factory("junggu", (126.96, 37.54, 127.03, 37.58))
    camera = camera_factory(lat=37.5665, lon=126.9780, center=center, stream_url="rtsp://u:CamPass@10.0.0.1/")
    incident = Incident.objects.create(
        partner=police_partner,
        external_id="ext-1",
        type="police.emergency_video",
        priority=1,
        center=center,
        location=make_point(lat=37.5663, lon=126.9779),
        occurred_at=timezone.now(),
        address="서울특별시 중구 세종대로 110",
    )
    TimelineEntry.objects.create(incident=incident, kind=TimelineKind.RECEIVED, actor="partner:police-112")
    IncidentCamera.objects.create(incident=incident, camera=camera, rank=1, distance_m=22.5)
    return incident


def post_data(page) -> dict[str, Any]:
    """What the browser would send back for an admin change page, unchanged."""
    forms = [page.context["adminform"].form]
    for inline in page.context["inline_admin_formsets"]:
        forms += [inline.formset.management_form, *inline.formset.forms]
    data: dict[str, Any] = {}
    for form in forms:
        for name, field in form.fields.items():
            value = form[name].value()
            if isinstance(field.widget, django_forms.PasswordInput):
                continue  # a password box comes back empty
            if value is None or value is False or value == []:
                continue
            data[form.add_prefix(name)] = "on" if value is True else value
    return data


def inline_prefix(page, model: type) -> str:
    return next(i.formset.prefix for i in page.context["inline_admin_formsets"] if i.formset.model is model)


def admin_entries(object_type: str) -> list[AuditEntry]:
    return list(AuditEntry.objects.filter(action="admin.change", object_type=object_type))


# --- pages ---------------------------------------------------------------------------


ADMIN_PAGES = [
    "/admin/partners/partner/",
    "/admin/partners/partner/add/",
    "/admin/partners/partner/{partner}/change/",
    "/admin/partners/apikey/",
    "/admin/partners/apikey/{key}/change/",
    "/admin/partners/agreement/",
    "/admin/partners/agreement/add/",
    "/admin/partners/agreement/{agreement}/change/",
    "/admin/incidents/incident/",
    "/admin/incidents/incident/{incident}/change/",
    "/admin/audit/auditentry/",
    "/admin/audit/auditentry/{audit}/change/",
]


@pytest.fixture
def page_ids(police_partner, police_key, incident) -> dict[str, int]:
    return {
        "partner": police_partner.pk,
        "key": police_key[0].pk,
        "agreement": police_partner.agreements.get().pk,
        "incident": incident.pk,
        "audit": AuditEntry.objects.latest("id").pk,
    }


@pytest.mark.parametrize("url", ADMIN_PAGES)
def test_admin_pages_load_for_a_superuser(staff_client, page_ids, url):
    response = staff_client.get(url.format(**page_ids))
    assert response.status_code == 200


@pytest.mark.parametrize("url", ADMIN_PAGES)
def test_signing_secret_and_key_hashes_never_appear_in_admin_html(staff_client, page_ids, police_key, url):
    key, raw = police_key
    html = staff_client.get(url.format(**page_ids)).content.decode()
    assert SECRET not in html
    assert key.key_hash not in html
    assert raw not in html
    assert "CamPass" not in html


def test_incident_page_shows_the_location_on_a_local_map_and_the_timeline(staff_client, incident):
    html = staff_client.get(f"/admin/incidents/incident/{incident.pk}/change/").content.decode()
    assert "leaflet" in html.lower() and "cdn" not in html.lower()
    assert "partner:police-112" in html  # timeline inline
    assert "22.5" in html  # ranked camera's distance
    assert 'name="_save"' not in html


def test_incident_admin_refuses_changes(staff_client, incident):
    response = staff_client.post(
        f"/admin/incidents/incident/{incident.pk}/change/", {"location": incident.location.geojson}
    )
    assert response.status_code == 403
    assert staff_client.get("/admin/incidents/incident/add/").status_code == 403
    assert staff_client.get(f"/admin/incidents/incident/{incident.pk}/delete/").status_code == 403


# --- partner and its signing secret ----------------------------------------------------


def test_saving_a_partner_without_retyping_the_secret_keeps_it_and_is_audited(
    staff_client, boss, police_partner
):
    url = f"/admin/partners/partner/{police_partner.pk}/change/"
    data = post_data(staff_client.get(url))
    data["name"] = "경찰청 112"

    response = staff_client.post(url, data)

    assert response.status_code == 302, response.context["adminform"].form.errors
    police_partner.refresh_from_db()
    assert police_partner.name == "경찰청 112"
    assert police_partner.signing_secret == SECRET
    [entry] = admin_entries("partner")
    assert entry.actor == "user:boss" and entry.user_id == boss.pk
    assert entry.object_id == str(police_partner.pk)
    assert entry.details["changed"] == ["name"]


def test_generating_a_signing_secret_shows_it_once_and_audits_only_the_field_name(
    staff_client, police_partner
):
    url = f"/admin/partners/partner/{police_partner.pk}/change/"
    data = post_data(staff_client.get(url)) | {"generate_signing_secret": "on"}

    response = staff_client.post(url, data)

    assert response.status_code == 200
    police_partner.refresh_from_db()
    new_secret = police_partner.signing_secret
    assert new_secret != SECRET and len(new_secret) >= 43
    assert new_secret in response.content.decode()
    assert "no-store" in response["Cache-Control"]
    assert new_secret not in staff_client.get(url).content.decode()  # shown once only
    [entry] = admin_entries("partner")
    assert entry.details["changed"] == ["signing_secret"]
    assert new_secret not in str(entry.details) and SECRET not in str(entry.details)


def test_a_typed_secret_replaces_the_old_one_and_a_short_one_is_refused(staff_client, police_partner):
    url = f"/admin/partners/partner/{police_partner.pk}/change/"
    data = post_data(staff_client.get(url))

    short = staff_client.post(url, data | {"signing_secret": "tooShort42"})
    typed = staff_client.post(url, data | {"signing_secret": "a-new-shared-secret-of-enough-length"})

    assert short.status_code == 200
    assert "signing_secret" in short.context["adminform"].form.errors
    assert "tooShort42" not in short.content.decode()
    assert typed.status_code == 302
    police_partner.refresh_from_db()
    assert police_partner.signing_secret == "a-new-shared-secret-of-enough-length"


def test_adding_a_partner_with_a_cap_mapping_is_audited(staff_client):
    page = staff_client.get("/admin/partners/partner/add/")
    cap = inline_prefix(page, CapEventMapping)
    data = post_data(page) | {
        "kind": "fire",
        "slug": "fire-gyeonggi",
        "name": "경기 119",
        "rate_limit_per_minute": "600",
        "is_active": "on",
        f"{cap}-TOTAL_FORMS": "1",
        f"{cap}-0-cap_event": "Fire",
        f"{cap}-0-event_type": "fire.dispatch",
    }

    response = staff_client.post("/admin/partners/partner/add/", data)

    assert response.status_code == 302, response.context["errors"]
    partner = Partner.objects.get(slug="fire-gyeonggi")
    assert partner.signing_secret == ""
    assert [e.details["op"] for e in admin_entries("partner")] == ["add"]
    [mapping_entry] = admin_entries("capeventmapping")
    assert mapping_entry.details["op"] == "add"
    assert mapping_entry.object_id == str(partner.cap_mappings.get().pk)


def test_cap_mapping_to_another_kinds_event_type_is_refused(staff_client, police_partner):
    url = f"/admin/partners/partner/{police_partner.pk}/change/"
    page = staff_client.get(url)
    cap = inline_prefix(page, CapEventMapping)
    data = post_data(page) | {f"{cap}-0-event_type": "fire.dispatch"}

    response = staff_client.post(url, data)

    assert response.status_code == 200
    assert police_partner.cap_mappings.get().event_type == "police.dispatch"


# --- API keys --------------------------------------------------------------------------


def test_create_key_action_shows_the_key_once_and_stores_only_its_hash(staff_client, police_partner):
    response = staff_client.post(
        "/admin/partners/partner/",
        {"action": "create_api_key", "_selected_action": [police_partner.pk]},
    )

    assert response.status_code == 200
    [raw] = KEY_PATTERN.findall(response.content.decode())
    [key] = police_partner.api_keys.all()
    assert key.key_hash == hashlib.sha256(raw.encode()).hexdigest()
    assert api_key_check(raw=raw) == key
    assert raw not in staff_client.get("/admin/partners/partner/").content.decode()  # once only
    dump = StringIO()
    call_command("dumpdata", stdout=dump)  # every table, sessions and admin log included
    assert raw not in dump.getvalue()
    assert raw.split("_", 2)[2] not in dump.getvalue()
    created = AuditEntry.objects.get(action="apikey.create")
    assert created.actor == "user:boss"
    assert created.details == {"prefix": key.prefix, "name": key.name}


def test_the_written_out_key_lookup_reads_the_key_and_its_partner_whole(police_key):
    # from_db takes the row positionally: a field added to either model must be added to the SQL.
    assert tuple(field.attname for field in ApiKey._meta.concrete_fields) == API_KEY_COLUMNS
    assert tuple(field.attname for field in Partner._meta.concrete_fields) == PARTNER_COLUMNS
    key, raw = police_key
    found = api_key_check(raw=raw)
    assert found is not None
    stored = ApiKey.objects.select_related("partner").get(pk=key.pk)
    assert [getattr(found, name) for name in API_KEY_COLUMNS] == [
        getattr(stored, name) for name in API_KEY_COLUMNS
    ]
    assert [getattr(found.partner, name) for name in PARTNER_COLUMNS] == [
        getattr(stored.partner, name) for name in PARTNER_COLUMNS
    ]
    assert api_key_check(raw=raw[:-1] + ("A" if raw[-1] != "A" else "B")) is None  # same prefix, wrong secret


def test_revoke_action_revokes_the_key_and_it_stops_working(staff_client, police_key):
    key, raw = police_key
    assert api_key_check(raw=raw) == key

    response = staff_client.post(
        "/admin/partners/apikey/", {"action": "revoke_selected", "_selected_action": [key.pk]}, follow=True
    )

    assert response.status_code == 200
    key.refresh_from_db()
    assert key.revoked_at is not None
    assert api_key_check(raw=raw) is None
    assert AuditEntry.objects.get(action="apikey.revoke").actor == "user:boss"


def test_api_keys_cannot_be_added_edited_or_deleted_in_the_admin(staff_client, police_key):
    key, _raw = police_key
    url = f"/admin/partners/apikey/{key.pk}/change/"
    assert staff_client.get("/admin/partners/apikey/add/").status_code == 403
    assert staff_client.post(url, {"name": "renamed"}).status_code == 403
    assert staff_client.get(f"/admin/partners/apikey/{key.pk}/delete/").status_code == 403
    key.refresh_from_db()
    assert key.name == "production"


# --- agreements ------------------------------------------------------------------------


def agreement_page(staff_client, partner: Partner):
    agreement = partner.agreements.get()
    url = f"/admin/partners/agreement/{agreement.pk}/change/"
    page = staff_client.get(url)
    forms = page.context["inline_admin_formsets"][0].formset.forms
    index = {form["event_type"].value(): i for i, form in enumerate(forms)}
    return url, post_data(page), inline_prefix(page, AgreementEventType), index


def test_agreement_inline_refuses_a_share_policy_wider_than_the_catalogue(staff_client, police_partner):
    url, data, prefix, index = agreement_page(staff_client, police_partner)
    data[f"{prefix}-{index['police.wanted_vehicle']}-share_policy"] = "on_event"

    response = staff_client.post(url, data)

    assert response.status_code == 200
    assert "wider than the catalogue allows" in response.content.decode()
    assert "법적 근거보다 넓은 공유 정책은 허용되지 않습니다" in response.content.decode()
    row = AgreementEventType.objects.get(
        agreement__partner=police_partner, event_type="police.wanted_vehicle"
    )
    assert row.share_policy == "search_only"
    assert not admin_entries("agreementeventtype")


def test_agreement_inline_accepts_a_narrower_policy_and_audits_it(staff_client, police_partner):
    url, data, prefix, index = agreement_page(staff_client, police_partner)
    data[f"{prefix}-{index['police.dispatch']}-share_policy"] = "never"

    response = staff_client.post(url, data)

    assert response.status_code == 302, response.context["errors"]
    row = AgreementEventType.objects.get(agreement__partner=police_partner, event_type="police.dispatch")
    assert row.share_policy == "never"
    [entry] = admin_entries("agreementeventtype")
    assert entry.details["op"] == "change" and entry.details["changed"] == ["share_policy"]
    assert entry.object_id == str(row.pk)


def test_agreement_inline_refuses_an_event_type_of_another_partner_kind(staff_client, police_partner):
    url, data, prefix, index = agreement_page(staff_client, police_partner)
    new = len(index)
    data |= {
        f"{prefix}-TOTAL_FORMS": str(new + 1),
        f"{prefix}-{new}-event_type": "moj.device_tamper",
        f"{prefix}-{new}-share_policy": "on_event",
    }

    response = staff_client.post(url, data)

    assert response.status_code == 200
    assert "moj.device_tamper is sent by moj partners, not police" in response.content.decode()
    assert not AgreementEventType.objects.filter(event_type="moj.device_tamper").exists()


def test_adding_an_agreement_with_types_validates_against_the_chosen_partner(staff_client, police_partner):
    page = staff_client.get("/admin/partners/agreement/add/")
    prefix = inline_prefix(page, AgreementEventType)
    data = post_data(page) | {
        "partner": police_partner.pk,
        "title": "2025 협약",
        "valid_from": "2025-01-01",
        "curfew_start": "00:00",
        "curfew_end": "06:00",
        "max_share_minutes": "30",
        f"{prefix}-TOTAL_FORMS": "2",
        f"{prefix}-0-event_type": "police.dispatch",
        f"{prefix}-0-share_policy": "on_event",
        f"{prefix}-1-event_type": "safety.sos",
        f"{prefix}-1-share_policy": "never",
    }

    refused = staff_client.post("/admin/partners/agreement/add/", data)
    data[f"{prefix}-TOTAL_FORMS"] = "1"
    accepted = staff_client.post("/admin/partners/agreement/add/", data)

    assert refused.status_code == 200
    assert accepted.status_code == 302, accepted.context["errors"]
    agreement = Agreement.objects.get(title="2025 협약")
    assert list(agreement.event_types.values_list("event_type", flat=True)) == ["police.dispatch"]
    assert [e.details["op"] for e in admin_entries("agreement")] == ["add"]
    assert [e.details["op"] for e in admin_entries("agreementeventtype")] == ["add"]


def test_deleting_an_agreement_is_audited(staff_client, police_partner):
    agreement = police_partner.agreements.get()
    response = staff_client.post(f"/admin/partners/agreement/{agreement.pk}/delete/", {"post": "yes"})

    assert response.status_code == 302
    assert not Agreement.objects.filter(pk=agreement.pk).exists()
    [entry] = admin_entries("agreement")
    assert entry.details["op"] == "delete" and entry.object_id == str(agreement.pk)


# --- audit admin ---------------------------------------------------------------------


def test_audit_admin_is_read_only(staff_client, police_key):
    entry = AuditEntry.objects.get(action="apikey.create")
    url = f"/admin/audit/auditentry/{entry.pk}/change/"

    assert staff_client.get("/admin/audit/auditentry/add/").status_code == 403
    assert staff_client.get(f"/admin/audit/auditentry/{entry.pk}/delete/").status_code == 403
    assert staff_client.post(url, {"action": "tampered", "actor": "nobody"}).status_code == 403
    changelist = staff_client.get("/admin/audit/auditentry/").content.decode()
    assert "delete_selected" not in changelist
    page = staff_client.get(url).content.decode()
    assert 'name="_save"' not in page
    assert AuditEntry.objects.get(pk=entry.pk).action == "apikey.create"
    assert staff_client.get("/admin/audit/auditentry/", {"q": "apikey"}).status_code == 200


# --- partner_key -----------------------------------------------------------------------


def test_partner_key_prints_the_key_alone_on_the_last_line(police_partner):
    out = StringIO()
    call_command("partner_key", "police-112", "--name", "ops", stdout=out)

    lines = out.getvalue().strip().splitlines()
    raw = lines[-1]
    key = api_key_check(raw=raw)
    assert key is not None and key.partner == police_partner and key.name == "ops"
    assert KEY_PATTERN.fullmatch(raw)
    assert all(raw not in line for line in lines[:-1])
    assert key.prefix in lines[0]


def test_partner_key_for_an_unknown_slug_lists_the_known_ones(police_partner):
    Partner.objects.create(slug="fire-119", name="119", kind="fire")
    with pytest.raises(CommandError, match=r"fire-119, police-112"):
        call_command("partner_key", "nope", stdout=StringIO())


def test_partner_key_revoke_by_prefix(police_key):
    key, raw = police_key
    out = StringIO()
    call_command("partner_key", "police-112", "--revoke", key.prefix, stdout=out)

    assert api_key_check(raw=raw) is None
    assert "Revoked" in out.getvalue()
    with pytest.raises(CommandError):
        call_command("partner_key", "police-112", "--revoke", "00000000", stdout=StringIO())


# --- demo data -------------------------------------------------------------------------


@pytest.mark.django_db
def test_seed_demo_twice_gives_one_partner_of_each_kind_with_catalogue_agreements():
    call_command("seed_demo", stdout=StringIO())
    counts = (AgreementEventType.objects.count(), CapEventMapping.objects.count())
    call_command("seed_demo", stdout=StringIO())

    assert dict(Partner.objects.values_list("slug", "kind")) == DEMO_SLUGS
    assert (AgreementEventType.objects.count(), CapEventMapping.objects.count()) == counts
    assert counts[0] == len(EVENT_TYPES)
    for partner in Partner.objects.all():
        [agreement] = partner.agreements.all()
        assert agreement.valid_from == dt.date(2024, 1, 1) and agreement.valid_to is None
        assert (agreement.curfew_start, agreement.curfew_end) == (dt.time(0), dt.time(6))
        assert not agreement.centers.exists()
        expected = {e.code: e.policy for e in default_types_for(partner.kind)}
        assert dict(agreement.event_types.values_list("event_type", "share_policy")) == expected
    disaster = CapEventMapping.objects.filter(partner__slug="disaster-room")
    assert set(disaster.values_list("event_type", flat=True)) == {"disaster.response"}
    assert {"Flood", "Earthquake", "Fire"} <= set(disaster.values_list("cap_event", flat=True))
    assert (
        CapEventMapping.objects.get(partner__slug="fire-119", cap_event="Fire").event_type == "fire.dispatch"
    )
    assert not ApiKey.objects.exists()  # keys are secrets: none unless asked for


@pytest.mark.django_db
def test_demo_api_keys_are_made_once_when_asked_for(settings):
    from partners import demo

    settings.DEMO_API_KEYS = True
    first: list[str] = []
    demo.seed(stdout_write=first.append)
    second: list[str] = []
    demo.seed(stdout_write=second.append)

    keys = [KEY_PATTERN.search(line) for line in first]
    raws = [m.group(0) for m in keys if m]
    assert len(raws) == len(DEMO_SLUGS) == ApiKey.objects.count()
    assert {api_key_check(raw=raw).partner.slug for raw in raws} == set(DEMO_SLUGS)  # type: ignore[union-attr]
    assert not any(KEY_PATTERN.search(line) for line in second)
