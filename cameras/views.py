"""Pages of the camera registry."""

from __future__ import annotations

from django.conf import settings
from django.contrib.auth import logout
from django.contrib.auth.decorators import login_required
from django.db import transaction
from django.db.models import Count, Q
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import redirect, render
from django.utils.translation import gettext as _
from django.views.decorators.http import require_GET, require_POST

from audit.services import audit_record
from cameras.access import ShareGrant, camera_viewable_by, share_grant
from cameras.models import Camera, CameraStatus, Center
from cameras.sessions import sessions_end_all
from cameras.snapshot import SnapshotUnavailable, snapshot_get


@login_required
def overview(request: HttpRequest) -> HttpResponse:
    """Centres with their camera counts by status: the landing page after login."""
    centers = Center.objects.annotate(
        total=Count("cameras"),
        online=Count("cameras", filter=Q(cameras__status=CameraStatus.ONLINE)),
        offline=Count("cameras", filter=Q(cameras__status=CameraStatus.OFFLINE)),
        unknown=Count("cameras", filter=Q(cameras__status=CameraStatus.UNKNOWN)),
    ).order_by("name")
    return render(request, "overview.html", {"centers": centers})


@login_required
@require_POST
def logout_everywhere(request: HttpRequest) -> HttpResponse:
    """End this user's sessions on every device (a lost phone, a shared console)."""
    sessions_end_all(user=request.user)  # type: ignore[arg-type]
    logout(request)
    return redirect("login")


def error(status: int, message: str, **headers: str) -> JsonResponse:
    response = JsonResponse({"error": message}, status=status)
    for name, value in headers.items():
        response[name] = value
    return response


@require_GET
def snapshot(request: HttpRequest, camera_id: int) -> HttpResponse:
    """`/cameras/<id>/snapshot.jpg`: one keyframe as JPEG, for whoever may watch the camera live.

    Same rule as the live socket: an operator of the camera's centre, an administrator,
    or `?share=<token>` of an active share covering the camera. Nobody learns whether a
    camera exists before showing who they are.
    """
    token = request.GET.get("share", "")
    if not request.user.is_authenticated and not token:
        return error(403, _("Log in or open a share link to see this camera."))
    camera = Camera.objects.filter(pk=camera_id).only("id", "center_id", "stream_url", "status").first()
    as_staff = camera is not None and camera_viewable_by(request.user, camera)
    # A share is held to its agreement's networks here as on the live socket.
    grant = (
        share_grant(token, camera.pk, request.META.get("REMOTE_ADDR", ""))
        if camera is not None and token and not as_staff
        else None
    )
    allowed = as_staff or grant is not None
    if camera is None or (allowed and not camera.stream_url):
        return error(404, _("No such camera, or it has no video stream."))
    if not allowed:
        return error(403, _("You may not see this camera."))
    retry = str(int(settings.CAMERA_SNAPSHOT_CACHE_S) or 1)
    if camera.status == CameraStatus.OFFLINE:
        return error(503, _("The camera is offline."), **{"Retry-After": retry})
    try:
        jpeg = snapshot_get(camera_id=camera.pk, url=camera.stream_url)
    except SnapshotUnavailable:
        return error(503, _("The camera is offline."), **{"Retry-After": retry})
    snapshot_record(request, camera, grant=None if as_staff else grant)
    response = HttpResponse(jpeg, content_type="image/jpeg")
    response["Cache-Control"] = f"private, max-age={int(settings.CAMERA_SNAPSHOT_CACHE_S)}"
    return response


def snapshot_record(request: HttpRequest, camera: Camera, *, grant: ShareGrant | None) -> None:
    """A still is a viewing too: the ledger lists it like a live view, with the share and partner."""
    user = request.user
    details: dict[str, object] = {"share": grant is not None}
    if grant is not None:
        details |= {
            "share_id": grant.share_id,
            "incident_id": grant.incident_id,
            "partner": grant.partner_slug,
        }
    with transaction.atomic():
        audit_record(
            action="video.snapshot",
            actor=f"share:{grant.partner_slug}" if grant is not None else f"user:{user.get_username()}",
            user_id=None if grant is not None else user.pk,
            partner_id=grant.partner_id if grant is not None else None,
            object_type="camera",
            object_id=camera.pk,
            details=details,
        )
