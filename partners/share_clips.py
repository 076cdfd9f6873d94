"""Saved clips through a video share: which clips a partner's share link may download.

A partner gets a clip only through an active share (not expired, revoked or ended) of
the clip's own incident that carries the clip's camera right now, and only where the
share's agreement allows clips for the share's event type
(`AgreementEventType.allow_clips`, off unless granted; the catalogue turns it on for a
new agreement only where DESIGN §3 and the law make footage evidence: the police's
on-event types). A relay's share (to police for a safety-app SOS, say) rides on the
recipient's agreement, which lists only the types that partner sends: live video only.

Every refusal of a known share is audited (`clip.download_refused`, with the reason);
the download itself is audited by `cameras.clips.clip_download_start` as
`clip.downloaded` with the partner as recipient: a 제공 row of the ledger.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from django.db.models import QuerySet

from audit.services import audit_record
from cameras.clips import ClipError, clip_download_start
from cameras.models import Clip, ClipStatus
from partners.models import AgreementEventType, Share, ShareCamera


@dataclass(frozen=True)
class ShareClipDecision:
    """What a share link may do with one clip: `status` 200 with the file, or the refusal."""

    status: int
    code: str
    reason: str
    clip: Clip | None = None
    path: Path | None = None


def share_clips_allowed(share: Share) -> bool:
    """Whether the share's agreement lets its partner download clips of its event type."""
    return AgreementEventType.objects.filter(
        agreement_id=share.agreement_id, event_type=share.event_type, allow_clips=True
    ).exists()


def share_clips(share: Share) -> QuerySet[Clip]:
    """The clips the share offers: ready, of its incident, from the cameras it carries now."""
    cameras = ShareCamera.objects.filter(share=share).values("camera_id")
    return (
        Clip.objects.filter(
            incident_id=share.incident_id,
            camera_id__in=cameras,
            status=ClipStatus.READY,
            destroyed_at__isnull=True,
        )
        .select_related("camera")
        .order_by("-period_start", "-pk")
    )


def share_clip_open(
    *, share: Share, clip_id: int, link_status: int = 200, reason: str = "", request_id: str = ""
) -> ShareClipDecision:
    """Check a share link's download of a clip; audit the refusal, or the download it allows.

    `link_status` is what the link itself came to (`partners.views.shared_lookup`):
    403 from outside the agreement's networks, 410 once the share has ended.
    """
    decision = share_clip_check(share=share, clip_id=clip_id, link_status=link_status)
    if decision.status == 200:
        assert decision.clip is not None
        try:
            path = clip_download_start(clip=decision.clip, share=share, reason=reason)
        except ClipError as exc:  # the file went between the check and now (a purge)
            decision = ShareClipDecision(409, "clip_unavailable", str(exc), decision.clip)
        else:
            return ShareClipDecision(200, "granted", "", decision.clip, path)
    share_clip_refusal_record(share=share, clip_id=clip_id, decision=decision, request_id=request_id)
    return decision


def share_clip_check(*, share: Share, clip_id: int, link_status: int) -> ShareClipDecision:
    """The rules, in order; reads only. 404 never says whether a clip exists elsewhere."""
    if link_status == 403:
        return ShareClipDecision(403, "network_not_allowed", "this share cannot be opened from your network")
    if link_status != 200 or not share.is_active():
        return ShareClipDecision(403, "share_ended", "this share has ended")
    if not share_clips_allowed(share):
        return ShareClipDecision(403, "clips_not_allowed", "this share does not include saved clips")
    clip = (
        Clip.objects.select_related("camera")
        .filter(pk=clip_id, incident_id=share.incident_id)
        .filter(camera_id__in=ShareCamera.objects.filter(share=share).values("camera_id"))
        .first()
    )
    if clip is None:
        return ShareClipDecision(404, "not_in_share", "no such clip in this share")
    if clip.destroyed_at is not None:
        return ShareClipDecision(
            410, "destroyed", "the clip was destroyed at the end of its retention period", clip
        )
    if clip.status != ClipStatus.READY:
        return ShareClipDecision(409, "not_ready", "the clip is not ready", clip)
    return ShareClipDecision(200, "allowed", "", clip)


def share_clip_refusal_record(
    *, share: Share, clip_id: int, decision: ShareClipDecision, request_id: str
) -> None:
    audit_record(
        action="clip.download_refused",
        actor=f"partner:{share.partner.slug}",
        partner_id=share.partner_id,
        object_type="clip",
        object_id=clip_id,
        details={
            "share_id": share.pk,
            "incident_id": share.incident_id,
            "partner": share.partner.slug,
            "code": decision.code,
            "reason": decision.reason,
        },
        request_id=request_id,
    )
