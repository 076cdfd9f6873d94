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
from cameras.access import camera_viewable_by, share_allows
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
    allowed = camera is not None and (
        (request.user.is_authenticated and camera_viewable_by(request.user, camera))
        or (bool(token) and share_allows(token, camera.pk))
    )
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
    snapshot_record(request, camera, shared=not camera_viewable_by(request.user, camera))
    response = HttpResponse(jpeg, content_type="image/jpeg")
    response["Cache-Control"] = f"private, max-age={int(settings.CAMERA_SNAPSHOT_CACHE_S)}"
    return response


def snapshot_record(request: HttpRequest, camera: Camera, *, shared: bool) -> None:
    """A still is a viewing too: the ledger lists it like a live view."""
    user = request.user
    with transaction.atomic():
        audit_record(
            action="video.snapshot",
            actor="share" if shared else f"user:{user.get_username()}",
            user_id=None if shared else user.pk,
            object_type="camera",
            object_id=camera.pk,
            details={"share": shared},
        )
