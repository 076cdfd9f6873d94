"""Pages and JSON endpoints of sharing.

- `/shared/<token>/` and its `state.json`: the partner viewer. No login: the token is
  the credential (and the agreement's IP ranges, when set). Unknown tokens count
  against the caller's address, so guessing is throttled on top of being hopeless.
- `/shared/<token>/clips/<id>/`: a saved clip of the incident, where the share's
  agreement allows clips (`partners.share_clips`); refusals are audited.
- Operator endpoints (session login, CSRF): list an incident's shares, share now,
  extend, revoke. Every answer is JSON; errors are {"error", "code"?} with 4xx.
"""

from __future__ import annotations

import json
import logging
import time
from typing import Any

from django.conf import settings
from django.contrib.auth.decorators import login_required
from django.contrib.auth.models import AbstractBaseUser
from django.core.cache import cache
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.http.response import HttpResponseBase
from django.shortcuts import render
from django.templatetags.static import static
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET, require_POST

from cameras.clip_views import clip_file_response
from incidents.catalogue import EVENT_TYPES
from incidents.models import Incident
from incidents.selectors import incidents_visible
from partners.models import Partner, Share
from partners.selectors import address_allowed, share_by_token
from partners.share_clips import share_clip_open, share_clips, share_clips_allowed
from partners.sharing import (
    RELAY_RECIPIENTS,
    ShareError,
    Trigger,
    share_decide,
    share_extend,
    share_payload,
    share_revoke,
    share_viewer_url,
)

log = logging.getLogger(__name__)


# --- the partner viewer --------------------------------------------------------------


def client_address(request: HttpRequest) -> str:
    return str(request.META.get("REMOTE_ADDR", ""))


def guessing_blocked(request: HttpRequest) -> bool:
    try:
        return int(cache.get(guess_key(request)) or 0) >= settings.SHARE_GUESS_LIMIT_PER_MINUTE
    except Exception:  # Redis away: tokens are 256-bit, so failing open costs nothing real
        return False


def guess_key(request: HttpRequest) -> str:
    return f"shareguess:{client_address(request)}:{int(time.time() // 60)}"


def guess_count(request: HttpRequest) -> None:
    try:
        key = guess_key(request)
        cache.add(key, 0, timeout=120)
        cache.incr(key)
    except Exception:
        log.debug("share guess counter unavailable")


def shared_lookup(request: HttpRequest, token: str) -> tuple[Share | None, int, str]:
    """(share, status, error): 200 for an open share, else 429/404/403/410 and why."""
    if guessing_blocked(request):
        return None, 429, "too many unknown links from your address; wait a minute"
    share = share_by_token(token)
    if share is None:
        guess_count(request)
        return None, 404, "no such share"
    if not address_allowed(agreement=share.agreement, address=client_address(request)):
        return None, 403, "this share cannot be opened from your network"
    if not share.is_active():
        return share, 410, "this share has ended"
    return share, 200, ""


def share_state(share: Share, token: str) -> dict[str, Any]:
    """What the partner's page may know: the shared cameras, the incident's place and summary."""
    incident = share.incident
    cameras = share.share_cameras.select_related("camera").order_by("rank")
    label = EVENT_TYPES[incident.type].label if incident.type in EVENT_TYPES else incident.type
    return {
        "active": share.is_active(),
        "expires_at": share.expires_at.isoformat(),
        "seconds_left": max(0, int((share.expires_at - timezone.now()).total_seconds())),
        "share": token,
        "incident": {
            "type": incident.type,
            "label": label,
            "status": incident.status,
            "address": incident.address,
            "summary": incident.summary,
            "location": {
                "lat": incident.location.y,
                "lon": incident.location.x,
                "accuracy_m": incident.accuracy_m,
            },
        },
        "cameras": [
            {
                "id": link.camera_id,
                "name": link.camera.name,
                "lat": link.camera.location.y,
                "lon": link.camera.location.x,
            }
            for link in cameras
        ],
        **shared_clips_state(share, token),
    }


SHARED_CLIPS_LISTED = 50


def shared_clips_state(share: Share, token: str) -> dict[str, Any]:
    """The saved clips the partner may download through this link (none unless allowed)."""
    if not share_clips_allowed(share):
        return {"clips_allowed": False, "clips": []}
    clips = share_clips(share)[:SHARED_CLIPS_LISTED]
    return {
        "clips_allowed": True,
        "clips": [
            {
                "id": clip.pk,
                "camera": clip.camera_id,
                "camera_name": clip.camera.name,
                "period_start": clip.period_start.isoformat() if clip.period_start else None,
                "period_end": clip.period_end.isoformat() if clip.period_end else None,
                "size_bytes": clip.size_bytes,
                "sha256": clip.sha256,
                "url": reverse("shared-clip", args=[token, clip.pk]),
            }
            for clip in clips
        ],
    }


def no_store(response: HttpResponse) -> HttpResponse:
    response["Cache-Control"] = "no-store"
    response["X-Robots-Tag"] = "noindex, nofollow"
    return response


def player_available() -> bool:
    """Whether the live player script is deployed (it ships with the video work)."""
    try:
        static("js/player.js")
    except ValueError:  # not in the static manifest
        return False
    return True


@require_GET
@never_cache
def shared_viewer(request: HttpRequest, token: str) -> HttpResponse:
    share, status, error = shared_lookup(request, token)
    context: dict[str, Any] = {"error": error, "status": status, "player_js": player_available()}
    if share is not None and status == 200:
        context["state"] = share_state(share, token)
    return no_store(render(request, "partners/shared.html", context, status=status))


@require_GET
@never_cache
def shared_state(request: HttpRequest, token: str) -> JsonResponse:
    share, status, error = shared_lookup(request, token)
    if share is None or status != 200:
        response = JsonResponse({"active": False, "error": error}, status=status)
    else:
        response = JsonResponse(share_state(share, token))
    no_store(response)
    return response


@require_GET
@never_cache
def shared_clip_download(request: HttpRequest, token: str, clip_id: int) -> HttpResponseBase:
    """A saved clip through the share link: the MP4, or a refusal (audited) saying why."""
    share, status, error = shared_lookup(request, token)
    if share is None:  # an unknown link (or guessing): nobody to attribute a refusal to
        return no_store(JsonResponse({"error": error}, status=status))
    decision = share_clip_open(
        share=share,
        clip_id=clip_id,
        link_status=status,
        reason=request.GET.get("reason", "")[:200],
        request_id=str(getattr(request, "request_id", "")),
    )
    if decision.clip is None or decision.path is None:
        return no_store(
            JsonResponse({"error": decision.reason, "code": decision.code}, status=decision.status)
        )
    response = clip_file_response(decision.clip, decision.path)
    response["X-Robots-Tag"] = "noindex, nofollow"
    return response


# --- operator controls ---------------------------------------------------------------


def body_of(request: HttpRequest) -> dict[str, Any]:
    try:
        data = json.loads(request.body or b"{}")
    except ValueError:
        return {}
    return data if isinstance(data, dict) else {}


def operator(request: HttpRequest) -> AbstractBaseUser:
    user = request.user
    assert isinstance(user, AbstractBaseUser)
    return user


def minutes_of(data: dict[str, Any]) -> int | None:
    value = data.get("minutes")
    if value is None or value == "":
        return None
    if isinstance(value, bool) or not isinstance(value, int | str) or not str(value).isdigit():
        raise ShareError("minutes must be a whole number")
    minutes = int(value)
    if not 1 <= minutes <= 24 * 60:
        raise ShareError("minutes must be between 1 and 1440")
    return minutes


def recipients_for(incident: Incident) -> list[Partner]:
    """Who an operator may offer video to: the sender, and the relay recipients the catalogue names."""
    kinds = RELAY_RECIPIENTS.get(incident.type, frozenset())
    others = Partner.objects.filter(is_active=True, kind__in=list(kinds)).exclude(pk=incident.partner_id)
    return [incident.partner, *others.order_by("kind", "name")]


@login_required
@require_GET
def incident_shares(request: HttpRequest, incident_id: int) -> JsonResponse:
    incident = incidents_visible(request.user).filter(pk=incident_id).first()
    if incident is None:
        return JsonResponse({"error": "not found"}, status=404)
    shares = (
        Share.objects.filter(incident=incident)
        .select_related("partner", "created_by")
        .order_by("-created_at")
    )
    return JsonResponse(
        {
            "shares": [share_payload(share) for share in shares[:50]],
            "recipients": [
                {"slug": p.slug, "name": p.name, "kind": p.kind, "sender": p.pk == incident.partner_id}
                for p in recipients_for(incident)
            ],
        }
    )


@login_required
@require_POST
def share_now(request: HttpRequest, incident_id: int) -> JsonResponse:
    """Share with the sender, or relay to police/fire (the operator's confirmation and reason)."""
    data = body_of(request)
    incident = incidents_visible(request.user).filter(pk=incident_id).first()
    if incident is None:
        return JsonResponse({"error": "not found"}, status=404)
    slug = str(data.get("partner") or incident.partner.slug)
    partner = Partner.objects.filter(slug=slug).first()
    if partner is None:
        return JsonResponse({"error": f"no partner {slug!r}"}, status=400)
    try:
        minutes = minutes_of(data)
    except ShareError as exc:
        return JsonResponse({"error": str(exc)}, status=400)
    decision = share_decide(
        incident=incident,
        partner=partner,
        trigger=Trigger.OPERATOR,
        user=operator(request),
        reason=str(data.get("reason", ""))[:1000],
        purpose=str(data.get("purpose", ""))[:200],
        minutes=minutes,
        request_id=str(getattr(request, "request_id", "")),
    )
    if not decision.granted or decision.share is None:
        status = 409 if decision.code in ("already_shared", "incident_closed") else 403
        return JsonResponse({"error": decision.reason, "code": decision.code}, status=status)
    body: dict[str, Any] = dict(share_payload(decision.share))
    # Shown once to the operator, who may have to read it to the partner over the phone.
    body["viewer_url"] = share_viewer_url(decision.share)
    return JsonResponse(body, status=201)


def share_action(request: HttpRequest, share_id: int, action: str) -> JsonResponse:
    data = body_of(request)
    try:
        if action == "extend":
            share = share_extend(user=operator(request), share_id=share_id, minutes=minutes_of(data) or 15)
        else:
            share = share_revoke(
                user=operator(request), share_id=share_id, reason=str(data.get("reason", ""))
            )
    except ShareError as exc:
        message = str(exc)
        status = 404 if message.startswith("no such") else 403 if message.startswith("not a share") else 409
        if "minutes" in message:
            status = 400
        return JsonResponse({"error": message}, status=status)
    share.refresh_from_db()
    return JsonResponse(dict(share_payload(share)))


@login_required
@require_POST
def extend(request: HttpRequest, share_id: int) -> JsonResponse:
    return share_action(request, share_id, "extend")


@login_required
@require_POST
def revoke(request: HttpRequest, share_id: int) -> JsonResponse:
    return share_action(request, share_id, "revoke")
