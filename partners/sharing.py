"""Video shares: the legal-basis gate and every write on a share.

`share_decide` is the one door: every share, automatic at intake or asked for by an
operator, goes through it, and every decision — granted or refused — is audited with
its reason. `share_rules` holds the rules themselves (DESIGN §3, issue 6) and only
reads, so the table can be read top to bottom:

- the incident must be open and the recipient partner active;
- back to the sender: only where the policy (the catalogue's, narrowed by the sender's
  agreement) is "on event", or "curfew window" with the event's time inside the
  agreement's window (Asia/Seoul); "after confirmation" types never go back to their
  sender (a security company never gets public video); "never"/"search only" never;
- to another partner (an operator's relay): only "after confirmation" types, only to
  the kinds the catalogue names (police and/or fire), only with the operator's reason;
- the recipient's agreement must be valid today and cover the incident's centre, and
  bounds the share's duration.
"""

from __future__ import annotations

import base64
import copy
import datetime as dt
import hashlib
import hmac
import logging
import secrets
from dataclasses import dataclass
from enum import StrEnum
from typing import Any
from zoneinfo import ZoneInfo

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.db import connection, transaction
from django.utils import timezone

from audit.services import audit_record
from incidents.catalogue import EVENT_TYPES, POLICY_RANK, PartnerKind, SharePolicy
from incidents.models import OPEN_STATUSES, Incident, TimelineEntry, TimelineKind
from incidents.realtime import ShareMessage, SharePayload, group_of, group_send
from incidents.timeline import timeline_add
from partners.models import Agreement, Partner, Share, ShareCamera
from partners.webhooks import VIEWER_URL_PENDING, webhook_enqueue
from smartcity.memo import memo_set
from smartcity.sql import Prepared, instance_insert, instance_insert_soon, rows_insert_soon

log = logging.getLogger(__name__)

SEOUL = ZoneInfo("Asia/Seoul")

# Who may receive an operator's relay of an "after confirmation" event (DESIGN §3).
RELAY_RECIPIENTS: dict[str, frozenset[str]] = {
    "safety.sos": frozenset({PartnerKind.POLICE}),
    "vulnerable.missing_person": frozenset({PartnerKind.POLICE}),
    "security.alarm": frozenset({PartnerKind.POLICE, PartnerKind.FIRE}),
    "market.fire_alarm": frozenset({PartnerKind.FIRE}),
}
AUTOMATIC_POLICIES = (SharePolicy.ON_EVENT, SharePolicy.CURFEW_WINDOW)


class Trigger(StrEnum):
    EVENT = "event"  # the rule engine, at intake
    OPERATOR = "operator"  # an operator's "share now", relay or dispatch request


@dataclass(frozen=True)
class ShareDecision:
    """What the gate said: `code` for machines and tests, `reason` for people and the ledger."""

    granted: bool
    code: str
    reason: str
    agreement: Agreement | None = None
    minutes: int = 0
    share: Share | None = None


def refused(code: str, reason: str) -> ShareDecision:
    return ShareDecision(granted=False, code=code, reason=reason)


class ShareError(Exception):
    """An operator action on a share that cannot be done; the message is shown."""


# --- tokens --------------------------------------------------------------------------


def share_token(nonce: str) -> str:
    """The link token for a share's nonce: 256 bits, URL-safe, re-derivable only with the secret."""
    digest = hmac.new(settings.SHARE_TOKEN_SECRET.encode(), f"share:{nonce}".encode(), hashlib.sha256)
    return base64.urlsafe_b64encode(digest.digest()).rstrip(b"=").decode()


def share_token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def share_viewer_url(share: Share) -> str:
    return f"{settings.PUBLIC_BASE_URL}/shared/{share_token(share.token_nonce)}/"


# --- the rules -----------------------------------------------------------------------


def narrowest(*policies: str) -> str:
    return min(policies, key=lambda policy: POLICY_RANK[SharePolicy(policy)])


def in_curfew_window(moment: dt.datetime, agreement: Agreement) -> bool:
    """Whether `moment` falls inside the agreement's curfew window, read in Asia/Seoul.

    A window whose end is before its start (22:00–06:00) crosses midnight.
    """
    local = moment.astimezone(SEOUL).time()
    start, end = agreement.curfew_start, agreement.curfew_end
    if start <= end:
        return start <= local < end
    return local >= start or local < end


# Every partner event reads its sender's agreements: written out, as the ORM spent
# longer composing this query than PostgreSQL took to answer it. Columns in the order
# of Agreement's concrete fields (Agreement.from_db), then its centres and the type's policy.
AGREEMENTS_SQL = """
SELECT a.id, a.partner_id, a.title, a.valid_from, a.valid_to, a.curfew_start, a.curfew_end,
       a.max_share_minutes, a.viewer_networks, a.created_at,
       ARRAY(SELECT c.center_id FROM partners_agreement_centers c WHERE c.agreement_id = a.id),
       {policy}
FROM partners_agreement a {join}
WHERE a.partner_id = {partner}
ORDER BY a.valid_from DESC, a.id DESC
"""
AGREEMENTS_OF_TYPE = {
    "policy": "t.share_policy",
    "join": "JOIN partners_agreementeventtype t ON t.agreement_id = a.id AND t.event_type = %(event_type)s",
    "partner": "%(partner_id)s",
}
AGREEMENTS_ALL = {"policy": "NULL", "join": "", "partner": "%(partner_id)s"}
# Every agreement of the partner holding the API key %(prefix)s, with each type it lists
# and that type's policy: read with the key itself (partners.selectors.api_key_check).
AGREEMENTS_OF_KEY_SQL = AGREEMENTS_SQL.format(
    policy=(
        "ARRAY(SELECT t.event_type FROM partners_agreementeventtype t WHERE t.agreement_id = a.id),"
        " ARRAY(SELECT t.share_policy FROM partners_agreementeventtype t WHERE t.agreement_id = a.id)"
    ),
    join="",
    partner="(SELECT k.partner_id FROM partners_apikey k WHERE k.prefix = %(prefix)s)",
)
AGREEMENT_COLUMNS = (
    "id", "partner_id", "title", "valid_from", "valid_to", "curfew_start", "curfew_end",
    "max_share_minutes", "viewer_networks", "created_at",
)  # fmt: skip


def agreements_of(*, partner_id: int, event_type: str | None) -> list[Agreement]:
    """A partner's agreements (listing `event_type` when given), newest first, in one query.

    Each carries `center_ids` (the centres it covers; empty: every centre) and, with
    `event_type`, `type_policy` (the share policy it sets for that type).
    """
    sql = AGREEMENTS_SQL.format(**(AGREEMENTS_ALL if event_type is None else AGREEMENTS_OF_TYPE))
    with connection.cursor() as cursor:
        cursor.execute(sql, {"partner_id": partner_id, "event_type": event_type})
        rows = cursor.fetchall()
    width = len(AGREEMENT_COLUMNS)
    agreements = []
    for row in rows:
        agreement = Agreement.from_db(connection.alias, AGREEMENT_COLUMNS, row[:width])
        agreement.center_ids = list(row[width] or [])  # type: ignore[attr-defined]
        if event_type is not None:
            agreement.type_policy = row[width + 1]  # type: ignore[attr-defined]
        agreements.append(agreement)
    return agreements


def agreements_of_key_read(rows: list[tuple[Any, ...]]) -> list[tuple[Agreement, dict[str, str]]]:
    """AGREEMENTS_OF_KEY_SQL's rows: each agreement (with `center_ids`) and its {type: policy}."""
    width = len(AGREEMENT_COLUMNS)
    found = []
    for row in rows:
        agreement = Agreement.from_db(connection.alias, AGREEMENT_COLUMNS, row[:width])
        agreement.center_ids = list(row[width] or [])  # type: ignore[attr-defined]
        found.append((agreement, dict(zip(row[width + 1], row[width + 2], strict=True))))
    return found


def agreements_listing(
    agreements: list[tuple[Agreement, dict[str, str]]], event_type: str
) -> list[Agreement]:
    """What `agreements_of(event_type=…)` answers, from all of a partner's agreements and their types.

    Copies: asking for another type does not change the agreements an earlier answer holds.
    """
    listing = []
    for agreement, policies in agreements:
        if event_type in policies:
            listed = copy.copy(agreement)
            listed.type_policy = policies[event_type]  # type: ignore[attr-defined]
            listing.append(listed)
    return listing


def allows_type_on(agreements: list[Agreement], day: dt.date) -> bool:
    """Whether any of a partner's agreements listing a type (`agreements_of`) is valid on `day`."""
    return any(agreement.is_valid_on(day) for agreement in agreements)


def agreement_for(
    *, agreements: list[Agreement], partner: Partner, center_id: int | None, day: dt.date
) -> Agreement | ShareDecision:
    """The recipient's agreement (of `agreements_of`) that may carry this share, or the refusal saying why not."""
    if not agreements:
        return refused("no_agreement", f"{partner.slug} has no agreement for this")
    valid = [a for a in agreements if a.is_valid_on(day)]
    if not valid:
        return refused("agreement_not_valid", f"{partner.slug}'s agreement is not valid on {day.isoformat()}")
    for agreement in valid:
        centers: list[int] = agreement.center_ids  # type: ignore[attr-defined]
        if not centers or center_id in centers:
            return agreement
    return refused("centre_not_covered", f"{partner.slug}'s agreement does not cover this incident's centre")


def sender_policy(incident: Incident, sender_agreements: list[Agreement]) -> str:
    """The catalogue's policy for the incident's type, narrowed by the sender's own (newest) agreement."""
    catalogue = EVENT_TYPES[incident.type].policy
    entry: str | None = sender_agreements[0].type_policy if sender_agreements else None  # type: ignore[attr-defined]
    return narrowest(catalogue, entry or SharePolicy.NEVER)


def share_rules(
    *,
    incident: Incident,
    partner: Partner,
    trigger: Trigger,
    reason: str = "",
    minutes: int | None = None,
    now: dt.datetime | None = None,
    sender_agreements: list[Agreement] | None = None,
) -> ShareDecision:
    """Decide whether `partner` may get live video of `incident` now. Reads only.

    `sender_agreements`: the sender's `agreements_of` its incident's type, when the
    caller has just read them (the intake has): not read again.
    """
    now = now or timezone.now()
    if incident.type not in EVENT_TYPES:
        return refused("unknown_type", f"{incident.type} is not in the event catalogue")
    if incident.status not in OPEN_STATUSES:
        return refused("incident_closed", f"the incident is {incident.status}")
    if not partner.is_active:
        return refused("partner_inactive", f"{partner.slug} is not active")
    # One query for the sender's agreements: its policy for the type, and (a share back
    # to it) the agreement that carries the share.
    if sender_agreements is None:
        sender_agreements = agreements_of(partner_id=incident.partner_id, event_type=incident.type)
    policy = sender_policy(incident, sender_agreements)
    to_sender = partner.pk == incident.partner_id
    if to_sender:
        refusal = sender_refusal(incident, policy)
    else:
        refusal = relay_refusal(incident, partner, policy, trigger, reason)
    if refusal is not None:
        return refusal
    found = agreement_for(
        agreements=sender_agreements if to_sender else agreements_of(partner_id=partner.pk, event_type=None),
        partner=partner,
        center_id=incident.center_id,
        day=timezone.localdate(now),
    )
    if isinstance(found, ShareDecision):
        return found
    if policy == SharePolicy.CURFEW_WINDOW and not in_curfew_window(incident.occurred_at, found):
        window = f"{found.curfew_start:%H:%M}–{found.curfew_end:%H:%M}"
        return refused(
            "outside_curfew_window", f"the event's time is outside the agreement's curfew window {window}"
        )
    if found.max_share_minutes < 1:
        return refused("no_share_time", "the agreement allows no share time")
    allowed = min(minutes or found.max_share_minutes, found.max_share_minutes)
    basis = "on event" if to_sender else "relayed after operator confirmation"
    return ShareDecision(
        granted=True, code="granted", reason=f"{incident.type}: {basis}", agreement=found, minutes=allowed
    )


def sender_refusal(incident: Incident, policy: str) -> ShareDecision | None:
    if policy in AUTOMATIC_POLICIES:
        return None
    if policy == SharePolicy.AFTER_CONFIRMATION:
        return refused(
            "not_to_sender",
            f"video of {incident.type} goes only to police/fire after an operator confirms, never to the sender",
        )
    if policy == SharePolicy.SEARCH_ONLY:
        return refused("search_only", f"{incident.type} allows an operator search only, no video share")
    return refused("policy_never", f"{incident.type} never allows a video share")


def relay_refusal(
    incident: Incident, partner: Partner, policy: str, trigger: Trigger, reason: str
) -> ShareDecision | None:
    if policy != SharePolicy.AFTER_CONFIRMATION:
        return refused("not_relayable", f"the legal basis of {incident.type} covers no other recipient")
    if trigger != Trigger.OPERATOR:
        return refused("needs_confirmation", "a relay needs an operator's confirmation")
    kinds = RELAY_RECIPIENTS.get(incident.type, frozenset())
    if partner.kind not in kinds:
        allowed = "/".join(sorted(kinds))
        return refused("recipient_not_allowed", f"{incident.type} may be relayed to {allowed} only")
    if not reason.strip():
        return refused("reason_required", "a relay needs the operator's stated reason")
    return None


# --- writes --------------------------------------------------------------------------


def actor_of(user: AbstractBaseUser | None) -> str:
    return f"user:{user.get_username()}" if user is not None else "system:rules"


def share_decide(
    *,
    incident: Incident,
    partner: Partner,
    trigger: Trigger,
    user: AbstractBaseUser | None = None,
    reason: str = "",
    purpose: str = "",
    minutes: int | None = None,
    request_id: str = "",
    sender_agreements: list[Agreement] | None = None,
    share_id: int | None = None,
) -> ShareDecision:
    """Decide a share, audit the decision, and create the share when granted.

    Runs inside the caller's transaction when there is one (intake, dispatch request) so
    the share exists exactly when the incident or action does. `share_id`: a key drawn
    for it beforehand (see `shares_on_intake`).
    """
    reason = reason.strip()[:1000]
    # No savepoint: a failure anywhere fails the caller's whole action (nothing half-written).
    with transaction.atomic(savepoint=False):
        if trigger == Trigger.OPERATOR:
            # Two operators pressing "share" at once: the second sees the first's share.
            incident = Incident.objects.select_for_update().select_related("partner").get(pk=incident.pk)
        decision = share_rules(
            incident=incident,
            partner=partner,
            trigger=trigger,
            reason=reason,
            minutes=minutes,
            sender_agreements=sender_agreements,
        )
        # At intake the incident is seconds old and cannot have a share yet: no query.
        duplicate = trigger == Trigger.OPERATOR and share_active_for(incident=incident, partner=partner)
        if decision.granted and duplicate:
            decision = refused("already_shared", f"{partner.slug} already has an active share; extend it")
        if not decision.granted:
            share_refusal_record(incident, partner, decision, user, request_id)
            return decision
        assert decision.agreement is not None
        share = share_create(
            incident=incident,
            partner=partner,
            decision=decision,
            user=user,
            reason=reason,
            purpose=purpose or EVENT_TYPES[incident.type].label,
            request_id=request_id,
            share_id=share_id,
        )
    return ShareDecision(
        granted=True,
        code=decision.code,
        reason=decision.reason,
        agreement=decision.agreement,
        minutes=decision.minutes,
        share=share,
    )


def share_refusal_record(
    incident: Incident,
    partner: Partner,
    decision: ShareDecision,
    user: AbstractBaseUser | None,
    request_id: str,
) -> None:
    audit_record(
        action="share.refused",
        actor=actor_of(user),
        user_id=user.pk if user is not None else None,
        partner_id=partner.pk,
        object_type="incident",
        object_id=incident.pk,
        details={
            "incident_id": incident.pk,
            "event_type": incident.type,
            "partner": partner.slug,
            "code": decision.code,
            "reason": decision.reason,
        },
        request_id=request_id,
    )


def share_create(
    *,
    incident: Incident,
    partner: Partner,
    decision: ShareDecision,
    user: AbstractBaseUser | None,
    reason: str,
    purpose: str,
    request_id: str,
    share_id: int | None = None,
) -> Share:
    now = timezone.now()
    nonce = secrets.token_urlsafe(32)
    relayed = partner.pk != incident.partner_id
    basis = f"{incident.type} #{incident.pk}" + (f" — {reason}" if relayed else "")
    assert decision.agreement is not None
    share = Share(
        id=share_id,
        incident=incident,
        partner=partner,
        agreement=decision.agreement,
        event_type=incident.type,
        legal_basis=basis[:300],
        reason=reason,
        purpose=purpose[:200],
        created_by=user,  # type: ignore[misc]
        starts_at=now,
        expires_at=now + dt.timedelta(minutes=decision.minutes),
        token_nonce=nonce,
        token_hash=share_token_hash(share_token(nonce)),
    )
    if share.pk is None:
        instance_insert(share)
    else:  # its key was drawn with the incident's INSERT: the row waits for the commit's round trip
        instance_insert_soon(share)
    camera_ids = share_cameras_set(share=share, camera_ids=incident_camera_ids(incident), fresh=True)
    minutes = decision.minutes
    timeline_add(
        incident_id=incident.pk,
        kind=TimelineKind.SHARE,
        actor=user.get_username() if user is not None else "system",
        text=f"영상 제공 → {partner.name} ({minutes}분)",
        partner_visible=not relayed,
    )
    audit_record(
        action="share.granted",
        actor=actor_of(user),
        user_id=user.pk if user is not None else None,
        partner_id=partner.pk,
        object_type="share",
        object_id=share.pk,
        details=share_audit_details(share, camera_ids, reason=reason or decision.reason),
        request_id=request_id,
    )
    memo_set(incident, _NEW_SHARES, [*(shares_created_here(incident) or []), (share, camera_ids)])
    share_announce_on_commit(share, "share.created", camera_ids=camera_ids)
    return share


def share_audit_details(share: Share, camera_ids: list[int], *, reason: str) -> dict[str, Any]:
    return {
        "incident_id": share.incident_id,
        "event_type": share.event_type,
        "partner": share.partner.slug,
        "camera_ids": camera_ids,
        "reason": reason,
        "legal_basis": share.legal_basis,
        "expires_at": share.expires_at.isoformat(),
        "purpose": share.purpose,
    }


def incident_camera_ids(incident: Incident) -> list[int]:
    from incidents.selectors import incident_ranked_camera_ids

    return incident_ranked_camera_ids(incident, limit=settings.SHARE_CAMERA_COUNT)


# Shares created for an incident in this request, with their cameras: the intake's 201
# lists them without reading back what it has just written.
_NEW_SHARES = "_new_shares_in_memory"


def shares_created_here(incident: Incident) -> list[tuple[Share, list[int]]] | None:
    """The (share, camera ids) pairs this process created for `incident` just now, if any were."""
    created: list[tuple[Share, list[int]]] | None = getattr(incident, _NEW_SHARES, None)
    return created


def share_cameras_set(*, share: Share, camera_ids: list[int], fresh: bool = False) -> list[int]:
    camera_ids = camera_ids[: settings.SHARE_CAMERA_COUNT]
    if not fresh:
        ShareCamera.objects.filter(share=share).delete()
    if camera_ids:
        rows_insert_soon(SHARE_CAMERAS_INSERT, [share.pk, camera_ids])
    return camera_ids


# Written out, as the intake runs it for every event that shares (see smartcity/sql.py).
SHARE_CAMERAS_INSERT = Prepared(
    "smartcity_share_cameras_insert",
    """
    INSERT INTO partners_sharecamera (share_id, camera_id, rank)
    SELECT %s::bigint, camera_id, rank FROM unnest(%s::bigint[]) WITH ORDINALITY AS ranked (camera_id, rank)
    """,
)


def share_active_for(*, incident: Incident, partner: Partner) -> Share | None:
    now = timezone.now()
    return (
        Share.objects.filter(
            incident=incident, partner=partner, ended_at__isnull=True, starts_at__lte=now, expires_at__gt=now
        )
        .order_by("-expires_at")
        .first()
    )


def shares_on_intake(
    *,
    incident: Incident,
    request_id: str = "",
    sender_agreements: list[Agreement] | None = None,
    share_id: int | None = None,
) -> ShareDecision | None:
    """The rule engine at intake: an automatic share to the sender where its policy says "on event".

    Types that never share automatically cost no query here (intake stays fast).
    `share_id`: a key drawn for the share with the incident's INSERT (`shares_automatic`),
    so the share's row can go with the transaction's last round trip.
    """
    if not shares_automatic(incident.type):
        return None
    return share_decide(
        incident=incident,
        partner=incident.partner,
        trigger=Trigger.EVENT,
        request_id=request_id,
        sender_agreements=sender_agreements,
        share_id=share_id,
    )


def shares_automatic(event_type: str) -> bool:
    """Whether an event of this type may share with its sender at intake (the rules still decide)."""
    catalogue = EVENT_TYPES.get(event_type)
    return catalogue is not None and catalogue.policy in AUTOMATIC_POLICIES


def shares_follow(*, incident: Incident) -> None:
    """The subject moved and the incident's cameras were re-ranked: following shares switch too."""
    shares = list(
        Share.objects.filter(
            incident=incident, follows_subject=True, ended_at__isnull=True, expires_at__gt=timezone.now()
        )
    )
    if not shares:
        return
    ranked = incident_camera_ids(incident)
    for share in shares:
        current = list(share.share_cameras.order_by("rank").values_list("camera_id", flat=True))
        if current != ranked:
            share_cameras_set(share=share, camera_ids=ranked)
            share_signal_on_commit(share.pk, {"type": "share.updated"})


def share_for_operator(*, user: AbstractBaseUser, share_id: int) -> Share:
    from incidents.selectors import watched_center_ids

    share = Share.objects.select_for_update().filter(pk=share_id).first()
    if share is None:
        raise ShareError("no such share")
    centers = watched_center_ids(user)
    if centers is not None and share.incident.center_id not in centers:
        raise ShareError("not a share of your centre")
    return share


def share_extend(*, user: AbstractBaseUser, share_id: int, minutes: int) -> Share:
    """Give an active share more time; never more than the agreement's maximum from now."""
    if minutes < 1:
        raise ShareError("minutes must be at least 1")
    with transaction.atomic():
        share = share_for_operator(user=user, share_id=share_id)
        now = timezone.now()
        if not share.is_active(now):
            raise ShareError("the share has ended")
        limit = now + dt.timedelta(minutes=share.agreement.max_share_minutes)
        share.expires_at = min(share.expires_at + dt.timedelta(minutes=minutes), limit)
        share.save(update_fields=["expires_at"])
        share_operator_record(share, user, "share.extended", f"영상 제공 연장 → {share.expires_at:%H:%M}")
        share_signal_on_commit(share.pk, {"type": "share.updated"})
    return share


def share_revoke(*, user: AbstractBaseUser, share_id: int, reason: str = "") -> Share:
    """End a share at once: its page and every open video socket close."""
    with transaction.atomic():
        share = share_for_operator(user=user, share_id=share_id)
        if share.ended_at is not None:
            raise ShareError("the share has already ended")
        now = timezone.now()
        share.revoked_at = share.ended_at = now
        share.revoked_by = user  # type: ignore[assignment]
        share.end_reason = Share.EndReason.REVOKED
        share.save(update_fields=["revoked_at", "ended_at", "revoked_by", "end_reason"])
        share_operator_record(share, user, "share.revoked", "영상 제공 철회", reason=reason.strip()[:500])
        share_announce_on_commit(share, "share.ended")
    return share


def share_operator_record(
    share: Share, user: AbstractBaseUser, action: str, text: str, reason: str = ""
) -> None:
    TimelineEntry.objects.create(
        incident_id=share.incident_id,
        kind=TimelineKind.SHARE,
        actor=user.get_username(),
        text=f"{text}: {share.partner.name}",
        partner_visible=share.partner_id == share.incident.partner_id,
    )
    camera_ids = list(share.share_cameras.values_list("camera_id", flat=True))
    audit_record(
        action=action,
        actor=actor_of(user),
        user_id=user.pk,
        partner_id=share.partner_id,
        object_type="share",
        object_id=share.pk,
        details=share_audit_details(share, camera_ids, reason=reason),
    )


def shares_end(*, queryset: Any, reason: str, now: dt.datetime | None = None) -> list[int]:
    """End every share of `queryset` not yet ended: once each, however many workers try."""
    now = now or timezone.now()
    ended = []
    for share_id in list(queryset.filter(ended_at__isnull=True).values_list("pk", flat=True)):
        with transaction.atomic():
            claimed = Share.objects.filter(pk=share_id, ended_at__isnull=True).update(
                ended_at=now, end_reason=reason
            )
            if not claimed:
                continue
            share = Share.objects.select_related("partner", "incident").get(pk=share_id)
            camera_ids = list(share.share_cameras.values_list("camera_id", flat=True))
            audit_record(
                action="share.ended",
                actor="system",
                partner_id=share.partner_id,
                object_type="share",
                object_id=share.pk,
                details=share_audit_details(share, camera_ids, reason=reason),
            )
            share_announce_on_commit(share, "share.ended")
        ended.append(share_id)
    return ended


def shares_expire(*, now: dt.datetime | None = None) -> list[int]:
    """Celery beat: end the shares whose time ran out."""
    now = now or timezone.now()
    return shares_end(
        queryset=Share.objects.filter(expires_at__lte=now), reason=Share.EndReason.EXPIRED, now=now
    )


def shares_end_for_incident(*, incident_id: int) -> list[int]:
    """The incident closed or was cancelled: nothing of it stays shared."""
    return shares_end(
        queryset=Share.objects.filter(incident_id=incident_id), reason=Share.EndReason.INCIDENT_CLOSED
    )


# --- announcements (after commit) ----------------------------------------------------


def share_group(share_id: int) -> str:
    """The channel group of a share's open video sockets (they close on "share.ended")."""
    return f"share.{share_id}"


def share_payload(share: Share, *, camera_ids: list[int] | None = None) -> SharePayload:
    """`camera_ids`: the share's cameras when the caller has them (it just set them)."""
    if camera_ids is None:
        camera_ids = list(share.share_cameras.order_by("rank").values_list("camera_id", flat=True))
    return {
        "id": share.pk,
        "partner": share.partner.slug,
        "partner_name": share.partner.name,
        "cameras": camera_ids,
        "legal_basis": share.legal_basis,
        "created_by": share.created_by.get_username() if share.created_by else None,
        "starts_at": share.starts_at.isoformat(),
        "expires_at": share.expires_at.isoformat(),
        "ended_at": share.ended_at.isoformat() if share.ended_at else None,
        "end_reason": share.end_reason,
        "active": share.is_active(),
    }


def share_signal_on_commit(share_id: int, message: dict[str, Any]) -> None:
    transaction.on_commit(lambda: share_signal(share_id, message))


def share_signal(share_id: int, message: dict[str, Any]) -> None:
    layer = get_channel_layer()
    if layer is None:
        return
    try:
        async_to_sync(layer.group_send)(share_group(share_id), message)
    except Exception:  # Redis away: sockets still re-read their share every few seconds
        log.warning("could not signal share %s sockets", share_id, exc_info=True)


def share_announce_on_commit(share: Share, event: str, *, camera_ids: list[int] | None = None) -> None:
    """share.created / share.ended: to the centre's dashboards, the share's sockets, the partner.

    `camera_ids` (a share just created, its partner and creator in memory): the
    dashboards' message is built from memory rather than read back after the commit.
    """
    webhook_enqueue(partner=share.partner, event=event, payload=share_webhook_payload(share, event))
    share_id, center_id = share.pk, share.incident.center_id

    def announce() -> None:
        if camera_ids is not None:
            fresh: Share | None = share
        else:
            fresh = Share.objects.select_related("partner", "created_by").filter(pk=share_id).first()
        if fresh is None:
            return
        message: ShareMessage = {
            "type": "share.created" if event == "share.created" else "share.ended",
            "incident": fresh.incident_id,
            "share": share_payload(fresh, camera_ids=camera_ids),
        }
        group_send([group_of(center_id)], message)
        if event == "share.ended":
            share_signal(share_id, {"type": "share.ended"})

    transaction.on_commit(announce)


def share_webhook_payload(share: Share, event: str) -> dict[str, Any]:
    body: dict[str, Any] = {
        "share": {
            "id": share.pk,
            "incident_id": share.incident_id,
            "legal_basis": share.legal_basis,
            "expires_at": share.expires_at.isoformat(),
        }
    }
    if share.partner_id == share.incident.partner_id:
        body["share"]["external_id"] = share.incident.external_id
    if event == "share.created":
        body["share"]["viewer_url"] = VIEWER_URL_PENDING
        body["incident"] = {
            "id": share.incident_id,
            "type": share.incident.type,
            "address": share.incident.address,
            "summary": share.incident.summary,
            "location": {"lat": share.incident.location.y, "lon": share.incident.location.x},
        }
    else:
        body["share"]["ended_at"] = share.ended_at.isoformat() if share.ended_at else None
        body["share"]["end_reason"] = share.end_reason
    return body
