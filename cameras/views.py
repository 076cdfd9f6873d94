"""Pages of the camera registry."""

from __future__ import annotations

from django.contrib.auth import logout
from django.contrib.auth.decorators import login_required
from django.db.models import Count, Q
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_POST

from cameras.models import CameraStatus, Center
from cameras.sessions import sessions_end_all


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
