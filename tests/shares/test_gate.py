"""The legal-basis gate: every event type × recipient × trigger, time windows, validity, centres."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

import pytest
from django.utils import timezone

from audit.models import AuditEntry
from incidents.catalogue import EVENT_TYPES, PartnerKind, SharePolicy
from incidents.models import IncidentStatus
from partners.auth import PartnerUser
from partners.models import Agreement, AgreementEventType, Share
from partners.selectors import api_key_check
from partners.services import api_key_create, api_key_revoke
from partners.sharing import AGREEMENT_COLUMNS, Trigger, agreements_of, share_decide, share_rules
from tests.shares.conftest import incident_of

pytestmark = pytest.mark.django_db

SEOUL = ZoneInfo("Asia/Seoul")
G = "granted"
NR = "not_relayable"
RNA = "recipient_not_allowed"

# What an operator (or the rule engine, for the sender) gets, per event type and recipient.
# "sender" is the partner that reported the event; police/fire are other partners.
TABLE: dict[str, dict[str, str]] = {
    "police.emergency_video": {"sender": G, "fire": NR},
    "police.dispatch": {"sender": G, "fire": NR},
    "police.wanted_vehicle": {"sender": "search_only", "fire": NR},
    "fire.dispatch": {"sender": G, "police": NR},
    "disaster.response": {"sender": G, "police": NR, "fire": NR},
    "moj.device_tamper": {"sender": G, "police": NR, "fire": NR},
    "moj.curfew_violation": {"sender": G, "police": NR, "fire": NR},  # at 02:00, inside 00–06
    "moj.exclusion_zone": {"sender": G, "police": NR, "fire": NR},
    "moj.victim_approach": {"sender": G, "police": NR, "fire": NR},
    "safety.sos": {"sender": "not_to_sender", "police": G, "fire": RNA},
    "safety.safe_return": {"sender": "policy_never", "police": NR, "fire": NR},
    "vulnerable.missing_person": {"sender": "not_to_sender", "police": G, "fire": RNA},
    "security.alarm": {"sender": "not_to_sender", "police": G, "fire": G},
    "market.fire_alarm": {"sender": "not_to_sender", "police": RNA, "fire": G},
}
CASES = [(event_type, recipient) for event_type, row in TABLE.items() for recipient in row]
AT_2AM = dt.datetime(2026, 11, 22, 2, 0, tzinfo=SEOUL)


def test_the_written_out_agreement_query_reads_every_field_in_model_order(partners, junggu):
    # Agreement.from_db takes the row positionally: a new field must be added to the SQL too.
    assert tuple(field.attname for field in Agreement._meta.concrete_fields) == AGREEMENT_COLUMNS
    police = partners["police"]
    Agreement.objects.get(partner=police).centers.set([junggu])
    expected = list(Agreement.objects.filter(partner=police).order_by("-valid_from", "-pk"))
    assert expected
    for read, model in zip(agreements_of(partner_id=police.pk, event_type=None), expected, strict=True):
        assert [getattr(read, name) for name in AGREEMENT_COLUMNS] == [
            getattr(model, name) for name in AGREEMENT_COLUMNS
        ]
        assert getattr(read, "center_ids", None) == [junggu.pk]
    listing = agreements_of(partner_id=police.pk, event_type="police.emergency_video")
    assert [getattr(a, "type_policy", None) for a in listing] == [SharePolicy.ON_EVENT]
    assert agreements_of(partner_id=police.pk, event_type="safety.safe_return") == []


def described(agreement: Agreement) -> tuple[object, ...]:
    return agreement.pk, getattr(agreement, "type_policy", None), getattr(agreement, "center_ids", None)


def test_agreements_read_with_the_api_key_answer_as_agreements_of_does(partners, junggu):
    police = partners["police"]
    current = Agreement.objects.get(partner=police)
    current.centers.set([junggu])
    older = Agreement.objects.create(
        partner=police, title="older", valid_from=dt.date(2020, 1, 1), valid_to=dt.date(2021, 1, 1)
    )
    AgreementEventType.objects.create(
        agreement=older, event_type="police.dispatch", share_policy=SharePolicy.SEARCH_ONLY
    )
    Agreement.objects.create(partner=partners["fire"], title="someone else's", valid_from=dt.date(2024, 1, 1))
    _, raw = api_key_create(partner=police)

    key = api_key_check(raw=raw, with_agreements=True)

    assert key is not None and key.partner == police
    user = PartnerUser(partner=key.partner, key=key)
    for event_type in [*EVENT_TYPES, "no.such_type"]:
        expected = agreements_of(partner_id=police.pk, event_type=event_type)
        read = user.agreements_of(event_type)
        assert [described(a) for a in read] == [described(a) for a in expected], event_type
    dispatch = user.agreements_of("police.dispatch")
    assert [a.pk for a in dispatch] == [current.pk, older.pk]
    user.agreements_of("police.wanted_vehicle")  # another type (policy search_only) leaves this one alone
    assert [described(a)[1] for a in dispatch] == [
        AgreementEventType.objects.get(agreement=current, event_type="police.dispatch").share_policy,
        SharePolicy.SEARCH_ONLY,
    ]
    assert user.agreements_of("safety.safe_return") == []


def test_a_revoked_key_brings_no_agreements(partners):
    key, raw = api_key_create(partner=partners["police"])
    api_key_revoke(key=key, actor="test")

    assert api_key_check(raw=raw, with_agreements=True) is None


def test_the_table_covers_the_whole_catalogue():
    assert set(TABLE) == set(EVENT_TYPES)


def recipient_of(partners, incident, recipient: str):
    return incident.partner if recipient == "sender" else partners[recipient]


def sender_of(partners, event_type: str):
    return partners[EVENT_TYPES[event_type].kind]


@pytest.mark.parametrize("trigger", list(Trigger))
@pytest.mark.parametrize(("event_type", "recipient"), CASES)
def test_gate_table(partners, junggu, event_type, recipient, trigger):
    incident = incident_of(sender_of(partners, event_type), junggu, event_type, occurred_at=AT_2AM)
    partner = recipient_of(partners, incident, recipient)

    decision = share_rules(incident=incident, partner=partner, trigger=trigger, reason="현장 확인됨")

    expected = TABLE[event_type][recipient]
    relayable = EVENT_TYPES[event_type].policy == SharePolicy.AFTER_CONFIRMATION
    if trigger == Trigger.EVENT and recipient != "sender" and relayable:
        expected = "needs_confirmation"  # the rule engine never relays by itself
    assert (decision.code, decision.granted) == (expected, expected == G), decision.reason
    assert decision.reason


VALIDITY: dict[str, tuple[dict[str, object], str]] = {
    "expired": ({"valid_to": dt.date(2025, 12, 31)}, "agreement_not_valid"),
    "not_yet_valid": ({"valid_from": dt.date(2099, 1, 1)}, "agreement_not_valid"),
    "valid_until_today": ({"valid_to": "today"}, G),
    "other_centre_only": ({"centers": "other"}, "centre_not_covered"),
    "this_centre": ({"centers": "this"}, G),
}


def granting_recipient(event_type: str) -> str | None:
    return next((r for r, code in TABLE[event_type].items() if code == G), None)


@pytest.mark.parametrize("validity", list(VALIDITY))
@pytest.mark.parametrize("event_type", list(TABLE))
def test_gate_validity_dates_and_centres(partners, junggu, center_factory, event_type, validity):
    changes, expected = VALIDITY[validity]
    recipient = granting_recipient(event_type) or "sender"
    incident = incident_of(sender_of(partners, event_type), junggu, event_type, occurred_at=AT_2AM)
    partner = recipient_of(partners, incident, recipient)
    agreement = Agreement.objects.get(partner=partner)
    for name, value in changes.items():
        if name == "centers":
            other = center_factory("anyang", (126.89, 37.36, 126.99, 37.44))
            agreement.centers.set([other if value == "other" else junggu])
        else:
            setattr(agreement, name, timezone.localdate() if value == "today" else value)
    agreement.save()

    decision = share_rules(incident=incident, partner=partner, trigger=Trigger.OPERATOR, reason="확인")

    if granting_recipient(event_type) is None:
        expected = TABLE[event_type]["sender"]  # refused by policy before any agreement matters
    assert decision.code == expected, decision.reason


@pytest.mark.parametrize(
    ("window", "local_time", "granted"),
    [
        (None, "00:00", True),
        (None, "02:30", True),
        (None, "05:59", True),
        (None, "06:00", False),
        (None, "13:00", False),
        (None, "23:59", False),
        (("22:00", "06:00"), "23:00", True),
        (("22:00", "06:00"), "03:00", True),
        (("22:00", "06:00"), "21:59", False),
        (("22:00", "06:00"), "12:00", False),
    ],
)
def test_curfew_violation_shares_only_inside_the_agreements_window_in_seoul_time(
    partners, junggu, window, local_time, granted
):
    moj = partners[PartnerKind.MOJ]
    if window:
        Agreement.objects.filter(partner=moj).update(
            curfew_start=dt.time.fromisoformat(window[0]), curfew_end=dt.time.fromisoformat(window[1])
        )
    hour, minute = map(int, local_time.split(":"))
    # Sent in UTC: the window is read in Asia/Seoul whatever offset the partner used.
    occurred = dt.datetime(2026, 11, 22, hour, minute, tzinfo=SEOUL).astimezone(dt.UTC)
    incident = incident_of(moj, junggu, "moj.curfew_violation", occurred_at=occurred)

    decision = share_rules(incident=incident, partner=moj, trigger=Trigger.EVENT)

    assert decision.granted is granted
    if not granted:
        assert decision.code == "outside_curfew_window"
        assert "curfew window" in decision.reason


def test_an_agreement_narrowed_to_never_refuses_what_the_catalogue_would_allow(partners, junggu):
    moj = partners[PartnerKind.MOJ]
    AgreementEventType.objects.filter(agreement__partner=moj, event_type="moj.device_tamper").update(
        share_policy=SharePolicy.NEVER
    )
    incident = incident_of(moj, junggu, "moj.device_tamper")
    assert share_rules(incident=incident, partner=moj, trigger=Trigger.EVENT).code == "policy_never"


def test_a_sender_narrowing_sos_to_never_stops_the_relay_to_police(partners, junggu):
    app = partners[PartnerKind.SAFETY_APP]
    AgreementEventType.objects.filter(agreement__partner=app, event_type="safety.sos").update(
        share_policy=SharePolicy.NEVER
    )
    incident = incident_of(app, junggu, "safety.sos")
    decision = share_rules(
        incident=incident, partner=partners[PartnerKind.POLICE], trigger=Trigger.OPERATOR, reason="확인"
    )
    assert decision.code == NR


def test_a_relay_needs_the_operators_reason(partners, junggu):
    incident = incident_of(partners[PartnerKind.SECURITY], junggu, "security.alarm")
    decision = share_rules(
        incident=incident, partner=partners[PartnerKind.POLICE], trigger=Trigger.OPERATOR, reason="  "
    )
    assert decision.code == "reason_required"


@pytest.mark.parametrize("status", [IncidentStatus.CLOSED, IncidentStatus.CANCELLED])
def test_a_closed_or_cancelled_incident_shares_nothing(partners, junggu, status):
    police = partners[PartnerKind.POLICE]
    incident = incident_of(police, junggu, "police.emergency_video", status=status)
    assert share_rules(incident=incident, partner=police, trigger=Trigger.OPERATOR).code == "incident_closed"


def test_an_inactive_recipient_gets_nothing(partners, junggu):
    police = partners[PartnerKind.POLICE]
    incident = incident_of(partners[PartnerKind.SAFETY_APP], junggu, "safety.sos")
    police.is_active = False
    police.save()
    decision = share_rules(incident=incident, partner=police, trigger=Trigger.OPERATOR, reason="확인")
    assert decision.code == "partner_inactive"


def test_the_share_lasts_at_most_the_agreements_maximum(partners, junggu):
    police = partners[PartnerKind.POLICE]
    Agreement.objects.filter(partner=police).update(max_share_minutes=30)
    incident = incident_of(police, junggu, "police.dispatch")
    assert share_rules(incident=incident, partner=police, trigger=Trigger.OPERATOR, minutes=600).minutes == 30
    assert share_rules(incident=incident, partner=police, trigger=Trigger.OPERATOR, minutes=10).minutes == 10
    assert share_rules(incident=incident, partner=police, trigger=Trigger.EVENT).minutes == 30


def test_every_decision_is_audited_with_its_reason(partners, junggu, camera_factory):
    camera = camera_factory(lat=37.5664, lon=126.9779, center=junggu)
    from incidents.services import incident_cameras_rank

    app = partners[PartnerKind.SAFETY_APP]
    incident = incident_of(app, junggu, "safety.sos")
    incident_cameras_rank(incident=incident, fresh=True)

    refused = share_decide(incident=incident, partner=app, trigger=Trigger.OPERATOR, reason="x")
    granted = share_decide(
        incident=incident, partner=partners[PartnerKind.POLICE], trigger=Trigger.OPERATOR, reason="비명 확인"
    )
    again = share_decide(
        incident=incident, partner=partners[PartnerKind.POLICE], trigger=Trigger.OPERATOR, reason="비명 확인"
    )

    assert (refused.granted, granted.granted, again.code) == (False, True, "already_shared")
    entries = list(AuditEntry.objects.filter(action__startswith="share.").order_by("id"))
    assert [e.action for e in entries] == ["share.refused", "share.granted", "share.refused"]
    assert entries[0].object_type == "incident" and entries[0].details["code"] == "not_to_sender"
    share = Share.objects.get()
    assert entries[1].object_type == "share" and entries[1].object_id == str(share.pk)
    assert entries[1].details == {
        "incident_id": incident.pk,
        "event_type": "safety.sos",
        "partner": "police-112",
        "camera_ids": [camera.pk],
        "reason": "비명 확인",
        "legal_basis": f"safety.sos #{incident.pk} — 비명 확인",
        "expires_at": share.expires_at.isoformat(),
        "purpose": EVENT_TYPES["safety.sos"].label,
    }
    assert share.created_by is None and share.partner.slug == "police-112"
