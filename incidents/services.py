"""Writes on incidents: intake of partner events, location fixes, cancellation.

Each function does its whole job in one transaction, audits it there, and leaves
pushes to dashboards for after the commit (no screen may show an incident the
database does not have).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any

from django.conf import settings
from django.contrib.gis.geos import Point
from django.db import IntegrityError, transaction

from audit.services import audit_record, audited_transaction
from cameras.selectors import EventPlace, NearbyCamera, cameras_nearest, event_place, make_point
from incidents.catalogue import EVENT_TYPES
from incidents.models import (
    OPEN_STATUSES,
    Incident,
    IncidentCamera,
    IncidentStatus,
    LocationFix,
    TimelineEntry,
    TimelineKind,
)
from incidents.realtime import incident_created_publish_on_commit, incident_publish_on_commit
from incidents.selectors import incident_ranked_cameras_remember
from incidents.timeline import timeline_add
from partners.models import Agreement, Partner, Share
from partners.sharing import shares_automatic, shares_end_for_incident, shares_follow, shares_on_intake
from smartcity.sql import Prepared, instance_insert, rows_insert_soon


@dataclass(frozen=True)
class EventIn:
    """A partner's event after validation, whatever format it arrived in (JSON or CAP)."""

    external_id: str
    type: str
    occurred_at: dt.datetime
    lat: float
    lon: float
    accuracy_m: float | None = None
    address: str = ""
    summary: str = ""
    priority: int | None = None
    subject: dict[str, Any] = field(default_factory=dict)


def incident_cameras_rank(
    *, incident: Incident, fresh: bool = False, nearby: list[NearbyCamera] | None = None
) -> list[IncidentCamera]:
    """(Re)choose the incident's nearest cameras: default 8 within 500 m (settings).

    `fresh`: the incident was just created and has no cameras to replace yet.
    `nearby`: its nearest cameras, if the caller has just read them.
    """
    if nearby is None:
        nearby = cameras_nearest(
            point=incident.location,
            limit=settings.INCIDENT_CAMERA_COUNT,
            max_distance_m=settings.INCIDENT_CAMERA_RADIUS_M,
        )
    if not fresh:
        IncidentCamera.objects.filter(incident=incident).delete()
    ranked = [
        IncidentCamera(incident=incident, camera=near.camera, rank=rank, distance_m=near.distance_m)
        for rank, near in enumerate(nearby, start=1)
    ]
    if ranked:
        # Nobody reads these rows before the commit (the 201 and the push are built from
        # `ranked`): at intake they go with the transaction's other deferred inserts.
        camera_ids, distances = [near.camera.pk for near in nearby], [near.distance_m for near in nearby]
        rows_insert_soon(RANKED_CAMERAS_INSERT, [incident.pk, camera_ids, distances])
    incident_ranked_cameras_remember(incident=incident, ranked=ranked)
    return ranked


# Written out (every event ranks its cameras): the ORM's bulk_create spent more Python
# time composing this than PostgreSQL took to run it.
RANKED_CAMERAS_INSERT = Prepared(
    "smartcity_ranked_cameras_insert",
    """
    INSERT INTO incidents_incidentcamera (incident_id, camera_id, rank, distance_m)
    SELECT %s::bigint, camera_id, rank, distance_m
    FROM unnest(%s::bigint[], %s::float8[]) WITH ORDINALITY AS ranked (camera_id, distance_m, rank)
    """,
)


def incident_intake(
    *, partner: Partner, event: EventIn, request_id: str = "", agreements: list[Agreement] | None = None
) -> tuple[Incident, bool]:
    """Turn a partner's event into an incident at the covering centre, or find the one it already is.

    Returns (incident, created). Idempotent on (partner, external_id) through the unique
    constraint: when two copies race, the loser's INSERT fails and it returns the winner's.
    `agreements`: the partner's `agreements_of` the event's type, if the caller has them.
    """
    # Where it lands is read before the transaction, in one round trip (see event_place);
    # a repeat wastes that read, but repeats are rare.
    point = make_point(lat=event.lat, lon=event.lon)
    place = event_place(
        point=point,
        limit=settings.INCIDENT_CAMERA_COUNT,
        max_distance_m=settings.INCIDENT_CAMERA_RADIUS_M,
    )
    # No look-up first: the insert itself tells a repeat (one query fewer for every new
    # event, which is nearly every event).
    try:
        with audited_transaction():
            incident = incident_create(
                partner=partner,
                event=event,
                request_id=request_id,
                agreements=agreements,
                point=point,
                place=place,
            )
    except IntegrityError:
        # Sent before, or committed by a concurrent copy of this request just now.
        return Incident.objects.get(partner=partner, external_id=event.external_id), False
    return incident, True


def incident_create(
    *,
    partner: Partner,
    event: EventIn,
    request_id: str,
    point: Point,
    place: EventPlace,
    agreements: list[Agreement] | None = None,
) -> Incident:
    routing = place.routing
    catalogue = EVENT_TYPES[event.type]
    incident = Incident(
        partner=partner,
        external_id=event.external_id,
        type=event.type,
        priority=event.priority or catalogue.priority,
        center=routing.center,
        outside_jurisdiction=routing.outside_jurisdiction,
        location=point,
        accuracy_m=event.accuracy_m,
        address=event.address,
        summary=event.summary,
        subject=event.subject,
        occurred_at=event.occurred_at,
    )
    # Every event: the ORM's save spent more Python time than the INSERT. A type that may
    # share with its sender draws the share's key in the same round trip.
    drawn = instance_insert(incident, reserve=(Share,) if shares_automatic(incident.type) else ())
    incident_cameras_rank(incident=incident, fresh=True, nearby=place.nearest)
    text = f"{partner.name}: {catalogue.label}"
    if routing.outside_jurisdiction:
        text += f" (관할 밖, 가장 가까운 센터 {round(routing.distance_m)} m)"
    timeline_add(incident_id=incident.pk, kind=TimelineKind.RECEIVED, actor=partner.slug, text=text)
    audit_record(
        action="incident.intake",
        actor=f"partner:{partner.slug}",
        partner_id=partner.pk,
        object_type="incident",
        object_id=incident.pk,
        details={
            "external_id": event.external_id,
            "type": event.type,
            "center": routing.center.slug if routing.center else None,
            "outside_jurisdiction": routing.outside_jurisdiction,
        },
        request_id=request_id,
    )
    incident_created_publish_on_commit(incident)
    # The rule engine: "on event" types share live video with their sender at once,
    # in this transaction, so the 201 already carries the share.
    shares_on_intake(
        incident=incident,
        request_id=request_id,
        sender_agreements=agreements,
        share_id=drawn[0] if drawn else None,
    )
    return incident


class IncidentClosedError(Exception):
    """The incident is closed or cancelled and takes no more updates."""


def incident_location_add(
    *,
    incident: Incident,
    lat: float,
    lon: float,
    accuracy_m: float | None,
    observed_at: dt.datetime,
    request_id: str = "",
) -> LocationFix:
    """Record where the subject is now: the incident moves and its cameras are re-ranked."""
    with transaction.atomic():
        locked = Incident.objects.select_for_update().get(pk=incident.pk)
        if locked.status not in OPEN_STATUSES:
            raise IncidentClosedError(locked.status)
        point: Point = make_point(lat=lat, lon=lon)
        fix = LocationFix.objects.create(
            incident=locked, location=point, accuracy_m=accuracy_m, observed_at=observed_at
        )
        # A fix older than the latest one (delivered out of order) joins the track only.
        newest = locked.fixes.order_by("-observed_at", "-pk").first()
        if newest is not None and newest.pk == fix.pk:
            locked.location = point
            locked.accuracy_m = accuracy_m
            locked.save(update_fields=["location", "accuracy_m", "updated_at"])
            incident_cameras_rank(incident=locked)
            shares_follow(incident=locked)  # the partner's viewer switches to the new nearest cameras
        timeline_add(
            incident_id=locked.pk,
            kind=TimelineKind.LOCATION,
            actor=locked.partner.slug,
            text=f"{lat:.6f}, {lon:.6f}",
            partner_visible=True,
        )
        audit_record(
            action="incident.location",
            actor=f"partner:{locked.partner.slug}",
            partner_id=locked.partner_id,
            object_type="incident",
            object_id=locked.pk,
            details={"lat": lat, "lon": lon, "accuracy_m": accuracy_m},
            request_id=request_id,
        )
        incident_publish_on_commit("incident.location", locked.pk)
    incident.refresh_from_db()
    return fix


def incident_cancel(*, incident: Incident, request_id: str = "") -> Incident:
    """The partner withdraws its event. Cancelling twice is harmless; a closed incident stays closed."""
    with transaction.atomic():
        locked = Incident.objects.select_for_update().get(pk=incident.pk)
        if locked.status == IncidentStatus.CANCELLED:
            return locked
        if locked.status == IncidentStatus.CLOSED:
            raise IncidentClosedError(locked.status)
        locked.status = IncidentStatus.CANCELLED
        locked.save(update_fields=["status", "updated_at"])
        TimelineEntry.objects.create(
            incident=locked, kind=TimelineKind.CANCELLED, actor=locked.partner.slug, text=""
        )
        audit_record(
            action="incident.cancel",
            actor=f"partner:{locked.partner.slug}",
            partner_id=locked.partner_id,
            object_type="incident",
            object_id=locked.pk,
            request_id=request_id,
        )
        shares_end_for_incident(incident_id=locked.pk)
        incident_publish_on_commit("incident.updated", locked.pk)
    return locked
