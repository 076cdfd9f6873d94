"""Every message the operator WebSocket carries, defined once, and the one way to send them.

Producers call `incident_publish` (through `transaction.on_commit`, never before the
commit); `incidents.consumers.OperatorConsumer` only authorises, subscribes and forwards.
Groups: `center.<id>` for a centre's operators and supervisors (administrators join
all of them), `centers.all` for incidents no centre covers.
"""

from __future__ import annotations

import json
from typing import Literal, TypedDict

from django.db import transaction

from cameras.selectors import camera_has_stream, camera_position
from incidents.catalogue import EVENT_TYPES
from incidents.models import Incident, IncidentCamera, LocationFix
from incidents.selectors import incident_ranked_cameras, incident_track
from smartcity.publisher import channel_send

ALL_CENTERS_GROUP = "centers.all"


def center_group(center_id: int) -> str:
    return f"center.{center_id}"


def group_of(center_id: int | None) -> str:
    """One group per message: administrators join every centre's group (and the
    unrouted one) rather than receiving a second copy of every push."""
    return ALL_CENTERS_GROUP if center_id is None else center_group(center_id)


class LocationPayload(TypedDict):
    lat: float
    lon: float
    accuracy_m: float | None


class CameraPayload(TypedDict):
    id: int
    name: str
    distance_m: float
    status: str
    lat: float
    lon: float
    bearing_deg: float | None
    fov_deg: float
    range_m: float
    # Whether the camera is wired to a stream the relay can play (never the URL itself):
    # the dashboard's video tiles are only for these.
    has_stream: bool


class IncidentPayload(TypedDict):
    id: int
    type: str
    label: str
    priority: int
    status: str
    center: int | None
    outside_jurisdiction: bool
    partner: str
    location: LocationPayload
    track: list[LocationPayload]
    address: str
    summary: str
    occurred_at: str
    received_at: str
    updated_at: str
    acknowledged_by: str | None
    assignee: str | None
    escalated: bool
    cameras: list[CameraPayload]


EventName = Literal["incident.created", "incident.updated", "incident.location", "incident.escalated"]


class IncidentMessage(TypedDict):
    type: EventName
    incident: IncidentPayload


class SharePayload(TypedDict):
    """A video share as operators see it (never its token: that goes to the partner only)."""

    id: int
    partner: str
    partner_name: str
    cameras: list[int]
    legal_basis: str
    created_by: str | None
    starts_at: str
    expires_at: str
    ended_at: str | None
    end_reason: str
    active: bool


class ShareMessage(TypedDict):
    type: Literal["share.created", "share.ended"]
    incident: int
    share: SharePayload


class CameraStatusMessage(TypedDict):
    type: Literal["camera.status"]
    camera: int
    status: str
    last_seen_at: str | None


class SnapshotMessage(TypedDict):
    type: Literal["snapshot"]
    incidents: list[IncidentPayload]


def point_payload(point: object, accuracy_m: float | None) -> LocationPayload:
    return {"lat": point.y, "lon": point.x, "accuracy_m": accuracy_m}  # type: ignore[attr-defined]


def incident_payload(incident: Incident, *, track: list[LocationFix] | None = None) -> IncidentPayload:
    """What operators see of an incident. Never a stream URL.

    `track`: the subject's fixes when the caller already has them (none at intake).
    """
    ranked = incident_ranked_cameras(incident)
    if track is None:
        track = incident_track(incident)
    return {
        "id": incident.pk,
        "type": incident.type,
        "label": EVENT_TYPES[incident.type].label if incident.type in EVENT_TYPES else incident.type,
        "priority": incident.priority,
        "status": incident.status,
        "center": incident.center_id,
        "outside_jurisdiction": incident.outside_jurisdiction,
        "partner": incident.partner.name,
        "location": point_payload(incident.location, incident.accuracy_m),
        "track": [point_payload(fix.location, fix.accuracy_m) for fix in track],
        "address": incident.address,
        "summary": incident.summary,
        "occurred_at": incident.occurred_at.isoformat(),
        "received_at": incident.received_at.isoformat(),
        "updated_at": incident.updated_at.isoformat(),
        "acknowledged_by": incident.acknowledged_by.get_username() if incident.acknowledged_by else None,
        "assignee": incident.assignee.get_username() if incident.assignee else None,
        "escalated": incident.escalated_at is not None,
        "cameras": [camera_payload(r) for r in ranked],
    }


def camera_payload(ranked: IncidentCamera) -> CameraPayload:
    camera = ranked.camera
    lat: float | None = getattr(ranked, "camera_lat", None)  # read as numbers (ranked_cameras_shown)
    lon: float | None = getattr(ranked, "camera_lon", None)
    if lat is None or lon is None:
        lat, lon = camera_position(camera)
    has_stream: bool | None = getattr(ranked, "camera_stream_present", None)
    return {
        "id": ranked.camera_id,
        "name": camera.name,
        "distance_m": round(ranked.distance_m, 1),
        "status": camera.status,
        "lat": lat,
        "lon": lon,
        "bearing_deg": camera.bearing_deg,
        "fov_deg": camera.fov_deg,
        "range_m": camera.range_m,
        "has_stream": camera_has_stream(camera) if has_stream is None else has_stream,
    }


def incident_load(incident_id: int) -> Incident | None:
    return (
        Incident.objects.select_related("partner", "acknowledged_by", "assignee")
        .filter(pk=incident_id)
        .first()
    )


def group_send(groups: list[str], message: object) -> None:
    """Send `message` to every socket of `groups`, as JSON text encoded here, once.

    A centre's fifty dashboards would otherwise each encode the same incident again in
    their consumer; the consumer forwards this text as it is.
    """
    text = json.dumps(message)
    for group in groups:
        channel_send(group, {"type": "push", "text": text})


def incident_publish(event: EventName, incident_id: int) -> None:
    """Send an incident message to its centre (and watchers). Call only after commit."""
    incident = incident_load(incident_id)
    if incident is None:
        return
    message: IncidentMessage = {"type": event, "incident": incident_payload(incident)}
    group_send([group_of(incident.center_id)], message)


def incident_publish_on_commit(event: EventName, incident_id: int) -> None:
    """Schedule the push for after the surrounding transaction commits; dropped on rollback."""
    transaction.on_commit(lambda: incident_publish(event, incident_id))


def incident_created_publish_on_commit(incident: Incident) -> None:
    """Announce a new incident after commit, built from the objects intake holds in memory.

    Intake is the hottest path: reloading what the same request just wrote would cost
    four queries per event. Nothing has changed it since (it was not visible before
    the commit), so the in-memory incident is exactly what the database has.
    """

    def send() -> None:
        message: IncidentMessage = {
            "type": "incident.created",
            "incident": incident_payload(incident, track=[]),
        }
        group_send([group_of(incident.center_id)], message)

    transaction.on_commit(send)


def camera_status_publish(
    *, camera_id: int, center_id: int | None, status: str, last_seen_at: str | None
) -> None:
    message: CameraStatusMessage = {
        "type": "camera.status",
        "camera": camera_id,
        "status": status,
        "last_seen_at": last_seen_at,
    }
    group_send([group_of(center_id)], message)
