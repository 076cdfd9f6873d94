"""CAP 1.2 alerts into incidents, with sample documents written from the OASIS CAP 1.2 spec.

The samples live in tests/data/cap/. Variants (another event, a future time …) are the
same samples with one string replaced, so each test shows exactly what it changes.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
from django.db import connection
from django.utils import timezone

from audit.models import AuditEntry
from cameras.models import Center
from incidents.models import Incident, IncidentStatus, LocationFix
from partners.cap import CapError, CapTypeNotAllowed, cap_alert_process
from partners.models import Agreement, AgreementEventType, CapEventMapping, Partner

DATA = Path(__file__).resolve().parent.parent / "data" / "cap"
CIRCLE = "<circle>37.4563,126.7052 0.5</circle>"


def sample(name: str, *replacements: tuple[str, str]) -> bytes:
    text = (DATA / name).read_text(encoding="utf-8")
    for old, new in replacements:
        assert old in text, f"{old!r} not in {name}"
        text = text.replace(old, new)
    return text.encode()


def geography_distance_m(a: tuple[float, float], b: tuple[float, float]) -> float:
    """PostGIS's spheroid distance between two (lat, lon) points: an independent yardstick."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT ST_Distance(ST_MakePoint(%s, %s)::geography, ST_MakePoint(%s, %s)::geography)",
            [a[1], a[0], b[1], b[0]],
        )
        return float(cursor.fetchone()[0])


@pytest.fixture
def incheon(center_factory) -> Center:
    return center_factory("incheon", (126.5, 37.3, 126.9, 37.7))


@pytest.fixture
def agreement(db) -> Agreement:
    partner = Partner.objects.create(kind="disaster", slug="disaster-room", name="재난안전상황실")
    agreement = Agreement.objects.create(
        partner=partner, title="재난 영상 공유", valid_from=timezone.localdate() - dt.timedelta(days=1)
    )
    AgreementEventType.objects.create(
        agreement=agreement, event_type="disaster.response", share_policy="on_event"
    )
    CapEventMapping.objects.create(
        partner=partner, cap_event="Flood", cap_category="", event_type="disaster.response"
    )
    return agreement


@pytest.fixture
def partner(agreement: Agreement, incheon: Center) -> Partner:
    return agreement.partner


def test_alert_with_circle_creates_incident_at_its_centre(partner, incheon):
    result = cap_alert_process(partner=partner, body=sample("alert_circle.xml"), request_id="req-1")

    incident = result.incident
    assert (result.created, result.action) == (True, "alert")
    assert incident.external_id == "KR-DSR-2026-0001"
    assert incident.type == "disaster.response"
    assert (incident.location.y, incident.location.x) == pytest.approx((37.4563, 126.7052))
    assert incident.accuracy_m == pytest.approx(500)  # 0.5 km
    assert incident.center == incheon
    assert incident.outside_jurisdiction is False
    assert incident.occurred_at == dt.datetime(2026, 11, 22, 3, 30, tzinfo=dt.UTC)
    assert incident.address == "인천광역시 미추홀구 승기천 일대"
    assert incident.summary.startswith("승기천 범람\n\n승기천 수위가")
    assert incident.priority == 1  # Immediate + Extreme


def test_alert_with_polygon_is_placed_at_its_centroid(partner, incheon):
    incident = cap_alert_process(partner=partner, body=sample("alert_polygon.xml")).incident

    assert (incident.location.y, incident.location.x) == pytest.approx((37.45, 126.71))
    corner = geography_distance_m((37.45, 126.71), (37.44, 126.70))
    assert incident.accuracy_m == pytest.approx(corner, rel=0.005)
    assert incident.center == incheon
    assert incident.priority == 2  # Expected + Moderate: the catalogue's priority for disaster.response


def test_same_alert_twice_is_one_incident(partner):
    first = cap_alert_process(partner=partner, body=sample("alert_circle.xml"))
    second = cap_alert_process(partner=partner, body=sample("alert_circle.xml"))

    assert second.created is False
    assert second.incident.pk == first.incident.pk
    assert Incident.objects.count() == 1


def test_update_moves_the_referenced_incident(partner):
    created = cap_alert_process(partner=partner, body=sample("alert_circle.xml")).incident

    result = cap_alert_process(partner=partner, body=sample("update.xml"))

    assert (result.action, result.created, result.incident.pk) == ("update", False, created.pk)
    created.refresh_from_db()
    assert (created.location.y, created.location.x) == pytest.approx((37.4650, 126.6800))
    assert created.accuracy_m == pytest.approx(200)
    fix = LocationFix.objects.get(incident=created)
    assert fix.observed_at == dt.datetime(2026, 11, 22, 3, 50, tzinfo=dt.UTC)
    assert Incident.objects.count() == 1  # the Update's own identifier makes no incident


def test_cancel_withdraws_the_incident(partner):
    created = cap_alert_process(partner=partner, body=sample("alert_circle.xml")).incident
    cap_alert_process(partner=partner, body=sample("update.xml"))

    result = cap_alert_process(partner=partner, body=sample("cancel.xml"))

    assert (result.action, result.incident.pk) == ("cancel", created.pk)
    created.refresh_from_db()
    assert created.status == IncidentStatus.CANCELLED


def test_update_of_cancelled_incident_is_refused(partner):
    cap_alert_process(partner=partner, body=sample("alert_circle.xml"))
    cap_alert_process(partner=partner, body=sample("cancel.xml"))

    with pytest.raises(CapError, match="already closed"):
        cap_alert_process(partner=partner, body=sample("update.xml"))


def test_update_referencing_unknown_alert_is_refused(partner):
    with pytest.raises(CapError, match="references no earlier alert of yours"):
        cap_alert_process(partner=partner, body=sample("update_unknown_reference.xml"))


def test_update_cannot_reach_another_partners_incident(partner):
    other = Partner.objects.create(kind="disaster", slug="other-room", name="Other")
    cap_alert_process(partner=partner, body=sample("alert_circle.xml"))

    with pytest.raises(CapError, match="references no earlier alert of yours"):
        cap_alert_process(partner=other, body=sample("cancel.xml"))
    assert Incident.objects.get().status == IncidentStatus.NEW


@pytest.mark.parametrize(
    ("name", "reason"),
    [
        ("bomb.xml", "DTDs are not accepted"),
        ("external_entity.xml", "DTDs are not accepted"),
        ("wrong_namespace.xml", "CAP 1.2 namespace"),
    ],
)
def test_hostile_or_foreign_xml_is_refused_and_writes_nothing(partner, name, reason):
    with pytest.raises(CapError, match=reason):
        cap_alert_process(partner=partner, body=sample(name))

    assert Incident.objects.count() == 0
    assert AuditEntry.objects.count() == 0


def test_entity_without_dtd_is_not_well_formed(partner):
    body = sample("alert_circle.xml", ("<headline>승기천 범람</headline>", "<headline>&xxe;</headline>"))

    with pytest.raises(CapError, match="XML is not well-formed"):
        cap_alert_process(partner=partner, body=body)


def test_exercise_alert_never_becomes_an_incident(partner):
    with pytest.raises(CapError, match="Exercise alerts are not turned into incidents"):
        cap_alert_process(partner=partner, body=sample("exercise.xml"))
    assert Incident.objects.count() == 0


def test_event_without_mapping_is_not_allowed(partner):
    body = sample("alert_circle.xml", ("<event>Flood</event>", "<event>Earthquake</event>"))

    with pytest.raises(CapTypeNotAllowed, match="no CAP mapping"):
        cap_alert_process(partner=partner, body=body)


def test_mapping_with_category_wins_over_blank_one(partner, agreement):
    AgreementEventType.objects.create(
        agreement=agreement, event_type="fire.dispatch", share_policy="on_event"
    )
    CapEventMapping.objects.create(
        partner=partner, cap_event="Flood", cap_category="Rescue", event_type="fire.dispatch"
    )
    body = sample(
        "alert_circle.xml",
        ("<category>Met</category>", "<category>Met</category><category>Rescue</category>"),
    )

    assert cap_alert_process(partner=partner, body=body).incident.type == "fire.dispatch"


def test_mapped_type_outside_a_valid_agreement_is_not_allowed(partner, agreement):
    today = timezone.localdate()
    Agreement.objects.filter(pk=agreement.pk).update(
        valid_from=today - dt.timedelta(days=30), valid_to=today - dt.timedelta(days=1)
    )

    with pytest.raises(CapTypeNotAllowed, match="not allowed"):
        cap_alert_process(partner=partner, body=sample("alert_circle.xml"))
    assert Incident.objects.count() == 0


def test_naive_time_is_refused(partner):
    with pytest.raises(CapError, match="sent has no UTC offset"):
        cap_alert_process(partner=partner, body=sample("naive_time.xml"))


def test_utc_written_as_z_or_minus_zero_is_accepted(partner):
    for identifier, sent in (("A-Z", "2026-11-22T03:30:00Z"), ("A-0", "2026-11-22T03:30:00-00:00")):
        body = sample(
            "alert_circle.xml",
            ("KR-DSR-2026-0001", identifier),
            ("2026-11-22T12:30:00+09:00", sent),
        )
        incident = cap_alert_process(partner=partner, body=body).incident
        assert incident.occurred_at == dt.datetime(2026, 11, 22, 3, 30, tzinfo=dt.UTC)


def test_time_in_the_future_is_refused(partner):
    later = (timezone.now() + dt.timedelta(hours=1)).astimezone(dt.timezone(dt.timedelta(hours=9)))
    body = sample("alert_circle.xml", ("2026-11-22T12:30:00+09:00", later.isoformat(timespec="seconds")))

    with pytest.raises(CapError, match="in the future"):
        cap_alert_process(partner=partner, body=body)


def test_latitude_out_of_range_is_refused(partner):
    with pytest.raises(CapError, match="latitude must be within"):
        cap_alert_process(partner=partner, body=sample("lat_out_of_range.xml"))


@pytest.mark.parametrize(
    ("area", "reason"),
    [
        ("<circle>nan,126.7 0.5</circle>", "malformed number"),
        ("<circle>37.45,126.7 -1</circle>", "must not be negative"),
        ("<circle>37.45;126.7 0.5</circle>", "lat,lon pairs"),
        ("<circle>37.45,126.7</circle>", "radius_km"),
        ("<polygon>37.44,126.70 37.44,126.72 37.46,126.72 37.46,126.70</polygon>", "first equal to the last"),
        (
            "<polygon>37.44,126.70 37.46,126.72 37.44,126.72 37.46,126.70 37.44,126.70</polygon>",
            "simple ring",
        ),
        ("<geocode><valueName>SAME</valueName><value>006113</value></geocode>", "<circle> or a <polygon>"),
    ],
)
def test_unusable_area_is_refused(partner, area, reason):
    with pytest.raises(CapError, match=reason):
        cap_alert_process(partner=partner, body=sample("alert_circle.xml", (CIRCLE, area)))


def test_missing_required_element_is_named(partner):
    body = sample("alert_circle.xml", ("<scope>Restricted</scope>", ""))

    with pytest.raises(CapError, match="<alert> needs <scope>"):
        cap_alert_process(partner=partner, body=body)


def test_ack_is_not_supported(partner):
    body = sample("alert_circle.xml", ("<msgType>Alert</msgType>", "<msgType>Ack</msgType>"))

    with pytest.raises(CapError, match="msgType Ack is not supported"):
        cap_alert_process(partner=partner, body=body)


def test_non_utf8_body_is_refused(partner):
    latin1 = '<alert xmlns="urn:oasis:names:tc:emergency:cap:1.2">crue à l\'été</alert>'.encode("latin-1")

    with pytest.raises(CapError, match="must be UTF-8"):
        cap_alert_process(partner=partner, body=latin1)


def test_declared_encoding_other_than_utf8_is_refused(partner):
    body = sample("alert_circle.xml", ('encoding="UTF-8"', 'encoding="ISO-8859-1"'))

    with pytest.raises(CapError, match="must be UTF-8 encoded, not 'ISO-8859-1'"):
        cap_alert_process(partner=partner, body=body)
