"""The operator dashboard page and its JSON endpoints (session login, CSRF on every POST).

Reads come from selectors, actions go to incidents.workflow; each action answers with
the incident as operators see it, or {"error": ...} with 400/403/404/409.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from django.contrib.auth import get_user_model
from django.contrib.auth.decorators import login_required
from django.contrib.auth.models import AbstractBaseUser
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render
from django.views.decorators.http import require_GET, require_POST

from cameras.models import Camera, Center
from incidents import workflow
from incidents.realtime import incident_load, incident_payload
from incidents.selectors import incidents_open, incidents_visible, staff_of, watched_center_ids


@login_required
@require_GET
def dashboard(request: HttpRequest) -> HttpResponse:
    staff = staff_of(request.user)
    return render(
        request,
        "incidents/dashboard.html",
        {"staff": staff, "center": staff.center if staff else None},
    )


@login_required
@require_GET
def incidents_json(request: HttpRequest) -> JsonResponse:
    """The open queue (what the socket's snapshot holds), for polling clients and resyncs."""
    return JsonResponse({"incidents": [incident_payload(i) for i in incidents_open(request.user)[:200]]})


@login_required
@require_GET
def incident_json(request: HttpRequest, incident_id: int) -> JsonResponse:
    incident = incidents_visible(request.user).filter(pk=incident_id).first()
    if incident is None:
        return JsonResponse({"error": "not found"}, status=404)
    body: dict[str, Any] = dict(incident_payload(incident))
    body["timeline"] = [
        {"at": t.at.isoformat(), "kind": t.kind, "actor": t.actor, "text": t.text}
        for t in incident.timeline.order_by("at", "pk")
    ]
    return JsonResponse(body)


@login_required
@require_GET
def cameras_geojson(request: HttpRequest) -> JsonResponse:
    """The cameras of the operator's centre(s) for the map. No stream URLs, ever."""
    centers = watched_center_ids(request.user)
    cameras = Camera.objects.all() if centers is None else Camera.objects.filter(center_id__in=centers)
    rows = cameras.values_list("pk", "name", "status", "location", "bearing_deg", "fov_deg", "range_m", "ptz")
    features = [
        {
            "type": "Feature",
            "id": pk,
            "geometry": {"type": "Point", "coordinates": [round(point.x, 6), round(point.y, 6)]},
            "properties": {
                "name": name,
                "status": status,
                "bearing": bearing,
                "fov": fov,
                "range": rng,
                "ptz": ptz,
            },
        }
        for pk, name, status, point, bearing, fov, rng, ptz in rows
    ]
    return JsonResponse({"type": "FeatureCollection", "features": features})


@login_required
@require_GET
def centers_geojson(request: HttpRequest) -> JsonResponse:
    centers = watched_center_ids(request.user)
    queryset = Center.objects.all() if centers is None else Center.objects.filter(pk__in=centers)
    features = [
        {
            "type": "Feature",
            "id": center.pk,
            "geometry": json.loads(center.jurisdiction.geojson),
            "properties": {"name": center.name, "slug": center.slug},
        }
        for center in queryset
    ]
    return JsonResponse({"type": "FeatureCollection", "features": features})


def body_of(request: HttpRequest) -> dict[str, Any]:
    if request.content_type == "application/json":
        try:
            data = json.loads(request.body or b"{}")
        except ValueError:
            return {}
        return data if isinstance(data, dict) else {}
    return request.POST.dict()


Action = Callable[[HttpRequest, int, dict[str, Any]], Any]


def action_view(action: Action) -> Callable[[HttpRequest, int], JsonResponse]:
    """Wrap a workflow call: login, POST only, JSON in and out, errors as 4xx with a reason."""

    @login_required
    @require_POST
    def view(request: HttpRequest, incident_id: int) -> JsonResponse:
        try:
            action(request, incident_id, body_of(request))
        except workflow.AlreadyAcknowledged as exc:
            return JsonResponse({"error": str(exc), "by": exc.by}, status=409)
        except workflow.NotAllowed as exc:
            return JsonResponse({"error": str(exc)}, status=404 if "no such" in str(exc) else 403)
        except workflow.WorkflowError as exc:
            return JsonResponse({"error": str(exc)}, status=400)
        incident = incident_load(incident_id)
        assert incident is not None
        return JsonResponse(dict(incident_payload(incident)))

    return view


def operator_of(request: HttpRequest) -> AbstractBaseUser:
    user = request.user
    assert isinstance(user, AbstractBaseUser)  # login_required ran first
    return user


def do_acknowledge(request: HttpRequest, incident_id: int, data: dict[str, Any]) -> Any:
    return workflow.incident_acknowledge(user=operator_of(request), incident_id=incident_id)


def do_assign(request: HttpRequest, incident_id: int, data: dict[str, Any]) -> Any:
    username = str(data.get("username") or request.user.get_username())
    assignee = get_user_model().objects.filter(username=username).first()
    if assignee is None:
        raise workflow.WorkflowError(f"no user {username!r}")
    return workflow.incident_assign(user=operator_of(request), incident_id=incident_id, assignee=assignee)


def do_note(request: HttpRequest, incident_id: int, data: dict[str, Any]) -> Any:
    text = str(data.get("text", ""))
    return workflow.incident_note(user=operator_of(request), incident_id=incident_id, text=text)


def do_dispatch(request: HttpRequest, incident_id: int, data: dict[str, Any]) -> Any:
    return workflow.incident_request_dispatch(
        user=operator_of(request),
        incident_id=incident_id,
        target=str(data.get("target", "")),
        reason=str(data.get("reason", ""))[:500],
    )


def do_close(request: HttpRequest, incident_id: int, data: dict[str, Any]) -> Any:
    return workflow.incident_close(
        user=operator_of(request),
        incident_id=incident_id,
        outcome=str(data.get("outcome", "")),
        text=str(data.get("text", ""))[:500],
    )


acknowledge = action_view(do_acknowledge)
assign = action_view(do_assign)
note = action_view(do_note)
dispatch = action_view(do_dispatch)
close = action_view(do_close)
