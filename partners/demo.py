"""Demo data for `seed_demo`: one partner of each kind, with agreements following DESIGN §3.

Idempotent: a second run updates the same rows. No API keys by default: a key is a
secret printed once, and `make run` output is not the place for it unless asked for
(DEMO_API_KEYS=1, then each partner without an active key gets one, printed here).
"""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Callable

from django.conf import settings
from django.db import transaction

from incidents.catalogue import PartnerKind, default_types_for
from partners.models import Agreement, AgreementEventType, CapEventMapping, Partner
from partners.services import api_key_create

DEMO_PARTNERS = (
    # slug, kind, name
    ("police-112", PartnerKind.POLICE, "경찰청 112 종합상황실"),
    ("fire-119", PartnerKind.FIRE, "소방청 119 종합상황실"),
    ("disaster-room", PartnerKind.DISASTER, "재난안전상황실"),
    ("moj-tracking", PartnerKind.MOJ, "법무부 위치추적관제센터"),
    ("safety-app", PartnerKind.SAFETY_APP, "안심이 앱"),
    ("telecom", PartnerKind.TELECOM, "통신사 실종아동 찾기"),
    ("security-s1", PartnerKind.SECURITY, "에스원 (S1)"),
    ("market-sensor", PartnerKind.SENSOR, "전통시장 화재감지"),
)

AGREEMENT_TITLE = "기본 협약"
AGREEMENT_VALID_FROM = dt.date(2024, 1, 1)

# CAP 1.2 `info/event` names (English and the Korean ones the national systems use).
CAP_MAPPINGS = {
    "disaster-room": {
        event: "disaster.response"
        for event in (
            "Flood",
            "홍수",
            "Heavy Rain",
            "호우",
            "Typhoon",
            "태풍",
            "Earthquake",
            "지진",
            "Landslide",
            "산사태",
            "Fire",
            "화재",
            "Heavy Snow",
            "대설",
        )
    },
    "fire-119": {event: "fire.dispatch" for event in ("Fire", "화재", "Rescue", "구조")},
}


def seed(*, stdout_write: Callable[[str], object] = print) -> None:
    """Create or refresh the demo partners, their agreements and CAP mappings."""
    with transaction.atomic():
        partners = [partner_upsert(slug=slug, kind=kind, name=name) for slug, kind, name in DEMO_PARTNERS]
        for partner in partners:
            agreement_upsert(partner=partner)
            cap_mappings_upsert(partner=partner)
        keys = demo_keys_create(partners=partners) if demo_api_keys_enabled() else []
    stdout_write(f"demo: {len(partners)} partners with agreements following the event catalogue")
    for slug, raw in keys:
        stdout_write(f"demo API key for {slug}: {raw}")


def demo_api_keys_enabled() -> bool:
    default = os.environ.get("DEMO_API_KEYS", "").strip().lower() in {"1", "true", "yes", "on"}
    return bool(getattr(settings, "DEMO_API_KEYS", default))


def partner_upsert(*, slug: str, kind: PartnerKind, name: str) -> Partner:
    partner, _ = Partner.objects.update_or_create(
        slug=slug, defaults={"kind": kind, "name": name, "is_active": True}
    )
    return partner


def agreement_upsert(*, partner: Partner) -> Agreement:
    agreement, _ = Agreement.objects.update_or_create(
        partner=partner,
        title=AGREEMENT_TITLE,
        defaults={
            "valid_from": AGREEMENT_VALID_FROM,
            "valid_to": None,
            "curfew_start": dt.time(0, 0),
            "curfew_end": dt.time(6, 0),
            "max_share_minutes": 60,
        },
    )
    agreement.centers.clear()  # empty: every centre
    types = default_types_for(partner.kind)
    for entry in types:
        AgreementEventType.objects.update_or_create(
            agreement=agreement,
            event_type=entry.code,
            defaults={"share_policy": entry.policy, "allow_clips": entry.clips},
        )
    agreement.event_types.exclude(event_type__in=[e.code for e in types]).delete()
    return agreement


def cap_mappings_upsert(*, partner: Partner) -> None:
    for cap_event, event_type in CAP_MAPPINGS.get(partner.slug, {}).items():
        CapEventMapping.objects.update_or_create(
            partner=partner, cap_event=cap_event, cap_category="", defaults={"event_type": event_type}
        )


def demo_keys_create(*, partners: list[Partner]) -> list[tuple[str, str]]:
    """One key for each partner that has no active key yet, as (slug, key) pairs."""
    created = []
    for partner in partners:
        if not partner.api_keys.filter(revoked_at__isnull=True).exists():
            _key, raw = api_key_create(partner=partner, name="demo", actor="system:seed_demo")
            created.append((partner.slug, raw))
    return created
