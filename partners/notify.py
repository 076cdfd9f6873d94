"""What partners hear about their incidents by webhook: status changes and dispatch requests.

A dispatch request from the dashboard ("relay to 112/119") is the operator confirming
the event: the 112/119 partner gets the incident summary and, when the gate allows,
a live share link in the same message.
"""

from __future__ import annotations

from typing import Any

from django.contrib.auth.models import AbstractBaseUser

from incidents.catalogue import EVENT_TYPES, PartnerKind
from incidents.models import Incident
from partners.models import Partner
from partners.sharing import ShareDecision, Trigger, share_active_for, share_decide
from partners.webhooks import VIEWER_URL_PENDING, webhook_enqueue

DISPATCH_KINDS = {"112": PartnerKind.POLICE, "119": PartnerKind.FIRE}


def incident_brief(incident: Incident) -> dict[str, Any]:
    return {
        "id": incident.pk,
        "type": incident.type,
        "label": EVENT_TYPES[incident.type].label if incident.type in EVENT_TYPES else incident.type,
        "priority": incident.priority,
        "status": incident.status,
        "address": incident.address,
        "summary": incident.summary,
        "location": {
            "lat": incident.location.y,
            "lon": incident.location.x,
            "accuracy_m": incident.accuracy_m,
        },
        "occurred_at": incident.occurred_at.isoformat(),
        "center": incident.center.slug if incident.center else None,
    }


def incident_status_notify(*, incident: Incident) -> None:
    """Tell the sending partner its incident's status changed (inside the action's transaction)."""
    webhook_enqueue(
        partner=incident.partner,
        event="incident.status",
        payload={
            "incident": {
                "id": incident.pk,
                "external_id": incident.external_id,
                "status": incident.status,
                "outcome": incident.outcome,
            }
        },
    )


def dispatch_partner(*, incident: Incident, target: str) -> Partner | None:
    kind = DISPATCH_KINDS.get(target)
    if kind is None:
        return None
    if incident.partner.kind == kind:
        return incident.partner
    return Partner.objects.filter(kind=kind, is_active=True).order_by("name").first()


def dispatch_relay(
    *, incident: Incident, user: AbstractBaseUser, target: str, reason: str
) -> ShareDecision | None:
    """Send the dispatch request to 112/119 with a share link when the law allows one."""
    partner = dispatch_partner(incident=incident, target=target)
    if partner is None:
        return None
    share = share_active_for(incident=incident, partner=partner)
    decision = None
    if share is None:
        decision = share_decide(
            incident=incident,
            partner=partner,
            trigger=Trigger.OPERATOR,
            user=user,
            reason=reason or f"{target} 출동 요청",
        )
        share = decision.share
    payload: dict[str, Any] = {
        "target": target,
        "reason": reason,
        "requested_by": user.get_username(),
        "incident": incident_brief(incident),
        "share": None,
    }
    if incident.partner_id == partner.pk:
        payload["incident"]["external_id"] = incident.external_id
    if share is not None:
        payload["share"] = {
            "id": share.pk,
            "viewer_url": VIEWER_URL_PENDING,
            "expires_at": share.expires_at.isoformat(),
            "cameras": list(share.share_cameras.order_by("rank").values_list("camera_id", flat=True)),
        }
    elif decision is not None:
        payload["share_refused"] = decision.reason
    webhook_enqueue(partner=partner, event="dispatch.requested", payload=payload)
    return decision
