"""The event catalogue (DESIGN §3): every event type a partner may send.

Share policies here are the legal ceiling: an admin may narrow a partner's agreement,
never widen it past what this table allows.
"""

from __future__ import annotations

from dataclasses import dataclass

from django.db import models
from django.utils.translation import gettext_lazy as _


class PartnerKind(models.TextChoices):
    POLICE = "police", _("police 112")
    FIRE = "fire", _("fire 119")
    DISASTER = "disaster", _("disaster safety room")
    MOJ = "moj", _("Ministry of Justice tracking centre")
    SAFETY_APP = "safety_app", _("safety app")
    TELECOM = "telecom", _("telecom")
    SECURITY = "security", _("private security company")
    SENSOR = "sensor", _("fire sensor")


class SharePolicy(models.TextChoices):
    """How live video may go out for an event, from the narrowest to the widest."""

    NEVER = "never", _("never")
    SEARCH_ONLY = "search_only", _("operator search only")
    AFTER_CONFIRMATION = "after_confirmation", _("to police/fire after operator confirmation")
    CURFEW_WINDOW = "curfew_window", _("on event, inside the curfew window only")
    ON_EVENT = "on_event", _("on event")


# Order of SharePolicy from narrowest to widest, used to refuse widening.
POLICY_RANK = {
    SharePolicy.NEVER: 0,
    SharePolicy.SEARCH_ONLY: 1,
    SharePolicy.AFTER_CONFIRMATION: 2,
    SharePolicy.CURFEW_WINDOW: 3,
    SharePolicy.ON_EVENT: 4,
}


@dataclass(frozen=True)
class EventType:
    code: str
    kind: PartnerKind
    policy: SharePolicy
    priority: int  # 1 = most urgent
    label: str
    # Whether a new agreement lets the sender also download the incident's saved clips
    # through its share (AgreementEventType.allow_clips). On only for the police's
    # on-event types: an investigating agency receiving footage as evidence of the crime
    # it was called to (개인정보보호법 §18②7). Everyone else gets live video only unless
    # an administrator turns clips on for their agreement.
    clips: bool = False


EVENT_TYPES: dict[str, EventType] = {
    e.code: e
    for e in (
        EventType(
            "police.emergency_video",
            PartnerKind.POLICE,
            SharePolicy.ON_EVENT,
            1,
            "112 긴급영상 요청",
            clips=True,
        ),
        EventType("police.dispatch", PartnerKind.POLICE, SharePolicy.ON_EVENT, 2, "112 출동", clips=True),
        EventType("police.wanted_vehicle", PartnerKind.POLICE, SharePolicy.SEARCH_ONLY, 3, "수배차량 검색"),
        EventType("fire.dispatch", PartnerKind.FIRE, SharePolicy.ON_EVENT, 1, "119 출동"),
        EventType("disaster.response", PartnerKind.DISASTER, SharePolicy.ON_EVENT, 2, "재난 대응"),
        EventType("moj.device_tamper", PartnerKind.MOJ, SharePolicy.ON_EVENT, 2, "전자발찌 훼손"),
        EventType("moj.curfew_violation", PartnerKind.MOJ, SharePolicy.CURFEW_WINDOW, 2, "외출제한 위반"),
        EventType("moj.exclusion_zone", PartnerKind.MOJ, SharePolicy.ON_EVENT, 2, "접근금지구역 진입"),
        EventType("moj.victim_approach", PartnerKind.MOJ, SharePolicy.ON_EVENT, 1, "피해자 접근"),
        EventType("safety.sos", PartnerKind.SAFETY_APP, SharePolicy.AFTER_CONFIRMATION, 1, "안심이 긴급신고"),
        EventType("safety.safe_return", PartnerKind.SAFETY_APP, SharePolicy.NEVER, 4, "안심귀가 모니터링"),
        EventType(
            "vulnerable.missing_person", PartnerKind.TELECOM, SharePolicy.AFTER_CONFIRMATION, 2, "실종자 수색"
        ),
        EventType(
            "security.alarm", PartnerKind.SECURITY, SharePolicy.AFTER_CONFIRMATION, 3, "보안업체 경보 확인"
        ),
        EventType(
            "market.fire_alarm", PartnerKind.SENSOR, SharePolicy.AFTER_CONFIRMATION, 1, "전통시장 화재경보"
        ),
    )
}

EVENT_TYPE_CHOICES = [(code, f"{code} — {e.label}") for code, e in EVENT_TYPES.items()]


def default_types_for(kind: str) -> list[EventType]:
    """The catalogue's event types a partner of `kind` sends."""
    return [e for e in EVENT_TYPES.values() if e.kind == kind]
