"""Saved clips over HTTP: request (202), status, download (audited), and the due-soon warning.

Session login, CSRF on POST (Django's middleware); every refusal is a 4xx with a reason.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from django.conf import settings
from django.contrib.auth.decorators import login_required
from django.contrib.auth.models import AbstractBaseUser
from django.http import FileResponse, HttpRequest, JsonResponse
from django.http.response import HttpResponseBase
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.http import require_GET, require_http_methods

from cameras.clips import (
    ClipError,
    ClipNotAllowed,
    ClipNotBuffered,
    clip_download_start,
    clip_downloadable_by,
    clip_request,
    clip_seconds_limit,
)
from cameras.models import Clip, ClipMode
from cameras.retention import clips_due_soon
from incidents.selectors import incidents_visible


def clip_payload(clip: Clip) -> dict[str, Any]:
    return {
        "id": clip.pk,
        "status": clip.status,
        "camera": clip.camera_id,
        "incident": clip.incident_id,
        "requested_seconds": clip.requested_seconds,
        "mode": clip.mode,
        "period_start": clip.period_start.isoformat() if clip.period_start else None,
        "period_end": clip.period_end.isoformat() if clip.period_end else None,
        "size_bytes": clip.size_bytes,
        "sha256": clip.sha256 or None,
        "expires_at": clip.expires_at.isoformat(),
        "legal_hold": clip.legal_hold,
        "destroyed_at": clip.destroyed_at.isoformat() if clip.destroyed_at else None,
        "error": clip.error or None,
        "status_url": reverse("clip-status", args=[clip.pk]),
        "download_url": reverse("clip-download", args=[clip.pk]),
    }


def request_data(request: HttpRequest) -> dict[str, Any] | None:
    if request.content_type == "application/json":
        try:
            data = json.loads(request.body or b"{}")
        except ValueError:
            return None
        return data if isinstance(data, dict) else None
    return request.POST.dict()


def positive_int(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    try:
        number = int(str(value).strip())
    except (TypeError, ValueError):
        return None
    return number if number > 0 else None


def user_of(request: HttpRequest) -> AbstractBaseUser:
    user = request.user
    assert isinstance(user, AbstractBaseUser)  # login_required ran first
    return user


@login_required
@require_http_methods(["GET", "POST"])
def incident_clips(request: HttpRequest, incident_id: int) -> JsonResponse:
    """GET: the incident's clips. POST {camera_id, seconds, mode?}: save the next (default)
    or the last `seconds` → 202; "last" with no relay holding the camera → 409 not_buffered.
    """
    if request.method == "GET":
        if not incidents_visible(request.user).filter(pk=incident_id).exists():
            return JsonResponse({"error": "no such incident at your centre"}, status=404)
        clips = Clip.objects.filter(incident_id=incident_id).order_by("-created_at")[:100]
        return JsonResponse({"clips": [clip_payload(clip) for clip in clips]})
    data = request_data(request)
    if data is None:
        return JsonResponse({"error": "the body must be a JSON object or a form"}, status=400)
    camera_id, seconds = positive_int(data.get("camera_id")), positive_int(data.get("seconds", 30))
    mode = data.get("mode") or ClipMode.NEXT
    errors = {}
    if camera_id is None:
        errors["camera_id"] = ["a camera id is required"]
    if mode not in ClipMode.values:
        errors["mode"] = ["'next' (the default) or 'last'"]
    limit = clip_seconds_limit(mode) if mode in ClipMode.values else int(settings.CLIP_MAX_SECONDS)
    if seconds is None or seconds > max(limit, 1):
        errors["seconds"] = [f"a whole number of seconds from 1 to {max(limit, 1)}"]
    if errors:
        return JsonResponse({"errors": errors}, status=400)
    assert camera_id is not None and seconds is not None
    try:
        clip = clip_request(
            user=user_of(request), incident_id=incident_id, camera_id=camera_id, seconds=seconds, mode=mode
        )
    except ClipNotAllowed as exc:
        return JsonResponse({"error": str(exc)}, status=404 if "no such" in str(exc) else 403)
    except ClipNotBuffered as exc:
        return JsonResponse({"error": str(exc), "code": "not_buffered"}, status=409)
    except ClipError as exc:
        return JsonResponse({"error": str(exc)}, status=409)
    return JsonResponse(clip_payload(clip), status=202)


@login_required
@require_GET
def clip_status(request: HttpRequest, clip_id: int) -> JsonResponse:
    clip = Clip.objects.select_related("camera").filter(pk=clip_id).first()
    if clip is None or not clip_downloadable_by(user_of(request), clip):
        return JsonResponse({"error": "no such clip"}, status=404)
    return JsonResponse(clip_payload(clip))


@require_GET
def clip_download(request: HttpRequest, clip_id: int) -> HttpResponseBase:
    """The MP4 for authorised staff (audited).

    Partners download through their share link instead (`/shared/<token>/clips/<id>/`,
    partners.views), so a token never sits in a query string that reaches access logs.
    """
    user = request.user if isinstance(request.user, AbstractBaseUser) else None
    if user is None:
        return JsonResponse({"error": "log in or use a share link"}, status=401)
    clip = Clip.objects.select_related("camera").filter(pk=clip_id).first()
    if clip is None or not clip_downloadable_by(user, clip):
        return JsonResponse({"error": "no such clip"}, status=404)
    try:
        path = clip_download_start(clip=clip, user=user, reason=request.GET.get("reason", "")[:200])
    except ClipError as exc:
        return JsonResponse({"error": str(exc)}, status=410 if clip.destroyed_at else 409)
    return clip_file_response(clip, path)


def clip_file_response(clip: Clip, path: Path) -> FileResponse:
    """The clip's file as an attachment, never cached, with its SHA-256 for the recipient to check."""
    filename = f"clip-{clip.pk}-{timezone.localtime(clip.period_start or clip.created_at):%Y%m%dT%H%M%S}.mp4"
    response = FileResponse(path.open("rb"), as_attachment=True, filename=filename, content_type="video/mp4")
    response["X-Content-SHA256"] = clip.sha256
    response["Cache-Control"] = "no-store"
    return response


@login_required
@require_GET
def clips_due_json(request: HttpRequest) -> JsonResponse:
    """Clips of open incidents the purge destroys within CLIP_DUE_WARNING_HOURS (dashboard warning)."""
    clips = clips_due_soon(user=request.user)[:100]
    return JsonResponse({"clips": [clip_payload(clip) for clip in clips]})
