"""The partner API's payloads: strict input validation and the incident as a partner sees it."""

from __future__ import annotations

import copy
import datetime as dt
import math
from typing import Any

from django.conf import settings
from django.utils import timezone
from django.utils.dateparse import parse_datetime
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from incidents.catalogue import EVENT_TYPES
from incidents.models import Incident
from incidents.selectors import incident_ranked_cameras
from incidents.services import EventIn
from partners.sharing import share_viewer_url


class PrototypeFieldsSerializer(serializers.Serializer):
    """A serializer whose fields are shallow copies of the class's declared ones.

    DRF deep-copies every declared field for each serializer instance, which re-runs
    each field's `__init__` (error messages merged over its classes, validators built):
    on the intake's hot path that cost more than the validation itself. A declared
    field is a prototype DRF itself never binds or uses; its copy gets its own binding
    (`field_name`, `parent`, `source`) and shares only what validation never changes
    (error messages, validators, choices). A nested serializer's copy builds its own
    fields again, from its own prototypes.
    """

    def get_fields(self) -> dict[str, serializers.Field]:
        fields: dict[str, serializers.Field] = {}
        for name, prototype in self._declared_fields.items():
            field = copy.copy(prototype)
            field.__dict__.pop("fields", None)  # a serializer's bound fields are never shared
            fields[name] = field
        return fields

    def is_valid(self, *, raise_exception: bool = False) -> bool:
        """DRF's, then the bound fields are let go (see `fields_release`)."""
        try:
            return super().is_valid(raise_exception=raise_exception)
        finally:
            self.fields_release()

    def fields_release(self) -> None:
        """Drop the bound fields: each points back at this serializer (`parent`), a reference
        cycle only Python's cyclic collector could free, and under load its runs paused
        whole server processes. Validation has used them; `validated_data` and `errors`
        do not need them, and anything that does builds them again."""
        bound = vars(self).pop("fields", None)
        for field in (bound or {}).values():
            if isinstance(field, PrototypeFieldsSerializer):
                field.fields_release()


class StrictFloatField(serializers.FloatField):
    """A JSON number: no strings, no booleans, nothing infinite or NaN."""

    default_error_messages = {"invalid": "A number is required.", "not_finite": "Must be a finite number."}

    def to_internal_value(self, data: Any) -> float:
        if isinstance(data, bool) or not isinstance(data, int | float):
            self.fail("invalid")
        if not math.isfinite(data):
            self.fail("not_finite")
        return super().to_internal_value(data)


class StrictIntegerField(serializers.IntegerField):
    default_error_messages = {"invalid": "An integer is required."}

    def to_internal_value(self, data: Any) -> int:
        if isinstance(data, bool) or not isinstance(data, int):
            self.fail("invalid")
        return super().to_internal_value(data)


EARLIEST_YEAR = 2000  # no partner reports an emergency from before this system's era


@extend_schema_field(OpenApiTypes.DATETIME)
class OffsetDateTimeField(serializers.Field):
    """ISO-8601 with an explicit UTC offset; a naive time is ambiguous and refused."""

    default_error_messages = {
        "invalid": "Use ISO-8601 with a UTC offset, e.g. 2026-11-22T13:05:00+09:00.",
        "naive": "The time needs a UTC offset (e.g. +09:00 or Z).",
        "future": "The time is in the future.",
        "offset": "The UTC offset must be between -12:00 and +14:00.",
        "past": "The time is implausibly far in the past.",
    }

    def to_internal_value(self, data: Any) -> dt.datetime:
        if not isinstance(data, str):
            self.fail("invalid")
        try:
            value = parse_datetime(data.strip())
        except ValueError:
            value = None
        if value is None:
            self.fail("invalid")
        assert value is not None
        if value.tzinfo is None:
            self.fail("naive")
        # Real offsets run from -12:00 to +14:00; PostgreSQL refuses beyond ±15:59 and
        # year 1 with a positive offset falls before year 1 in UTC — both would be a 500.
        offset = value.utcoffset()
        if offset is None or not dt.timedelta(hours=-12) <= offset <= dt.timedelta(hours=14):
            self.fail("offset")
        if value.year < EARLIEST_YEAR:
            self.fail("past")
        if value > timezone.now() + dt.timedelta(seconds=settings.EVENT_MAX_FUTURE_S):
            self.fail("future")
        return value

    def to_representation(self, value: dt.datetime) -> str:
        return value.isoformat()


class LocationSerializer(PrototypeFieldsSerializer):
    lat = StrictFloatField(min_value=-90, max_value=90)
    lon = StrictFloatField(min_value=-180, max_value=180)
    accuracy_m = StrictFloatField(min_value=0, max_value=100_000, required=False, allow_null=True)


class EventInSerializer(PrototypeFieldsSerializer):
    """`POST /api/v1/events/` body (DESIGN §4)."""

    external_id = serializers.CharField(max_length=128, trim_whitespace=False)
    type = serializers.ChoiceField(choices=sorted(EVENT_TYPES))
    occurred_at = OffsetDateTimeField()
    location = LocationSerializer()
    address = serializers.CharField(max_length=300, required=False, allow_blank=True, default="")
    summary = serializers.CharField(max_length=2000, required=False, allow_blank=True, default="")
    priority = StrictIntegerField(min_value=1, max_value=5, required=False, allow_null=True)
    subject = serializers.DictField(required=False, default=dict)

    def validate_external_id(self, value: str) -> str:
        # DRF's CharField turns a number into text; an id sent as a number is a partner bug.
        if not isinstance(self.initial_data.get("external_id"), str):
            raise serializers.ValidationError("Must be a string.")
        if not value.strip() or any(ord(ch) < 32 for ch in value):
            raise serializers.ValidationError("Must be non-empty printable text.")
        return value

    def to_event(self) -> EventIn:
        data = self.validated_data
        return EventIn(
            external_id=data["external_id"],
            type=data["type"],
            occurred_at=data["occurred_at"],
            lat=data["location"]["lat"],
            lon=data["location"]["lon"],
            accuracy_m=data["location"].get("accuracy_m"),
            address=data["address"],
            summary=data["summary"],
            priority=data.get("priority"),
            subject=data["subject"],
        )


class LocationFixInSerializer(PrototypeFieldsSerializer):
    """`POST /api/v1/events/<id>/locations/` body."""

    lat = StrictFloatField(min_value=-90, max_value=90)
    lon = StrictFloatField(min_value=-180, max_value=180)
    accuracy_m = StrictFloatField(min_value=0, max_value=100_000, required=False, allow_null=True)
    observed_at = OffsetDateTimeField(required=False)


def incident_for_partner(incident: Incident, *, detail: bool = False) -> dict[str, Any]:
    """The incident as its sending partner may see it (never stream URLs, never other partners)."""
    cameras = [
        {"id": ranked.camera_id, "name": ranked.camera.name, "distance_m": round(ranked.distance_m, 1)}
        for ranked in incident_ranked_cameras(incident)
    ]
    body: dict[str, Any] = {
        "id": incident.pk,
        "external_id": incident.external_id,
        "type": incident.type,
        "status": incident.status,
        "priority": incident.priority,
        "center": incident.center.slug if incident.center else None,
        "center_name": incident.center.name if incident.center else None,
        "outside_jurisdiction": incident.outside_jurisdiction,
        "location": {
            "lat": incident.location.y,
            "lon": incident.location.x,
            "accuracy_m": incident.accuracy_m,
        },
        "occurred_at": incident.occurred_at.isoformat(),
        "received_at": incident.received_at.isoformat(),
        "cameras": cameras,
        "shares": shares_for_partner(incident),
    }
    if detail:
        body["address"] = incident.address
        body["summary"] = incident.summary
        body["timeline"] = [
            {"at": entry.at.isoformat(), "kind": entry.kind, "text": entry.text}
            for entry in incident.timeline.filter(partner_visible=True).order_by("at", "pk")
        ]
    return body


def shares_for_partner(incident: Incident) -> list[dict[str, Any]]:
    """The sender's own active shares of its incident; relays to other partners never show here."""
    from partners.selectors import shares_active
    from partners.sharing import shares_created_here

    created = shares_created_here(incident)
    if created is not None:  # the intake that has just made them: no need to read them back
        return [
            {
                "viewer_url": share_viewer_url(share),
                "cameras": camera_ids,
                "expires_at": share.expires_at.isoformat(),
            }
            for share, camera_ids in created
            if share.partner_id == incident.partner_id and share.is_active()
        ]
    return [
        {
            "viewer_url": share_viewer_url(share),
            "cameras": share.camera_ids,  # type: ignore[attr-defined]
            "expires_at": share.expires_at.isoformat(),
        }
        for share in shares_active(incident_id=incident.pk, partner_id=incident.partner_id)
    ]


# --- response shapes, for the OpenAPI schema (incident_for_partner builds the data) -------


class CameraOutSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    name = serializers.CharField()
    distance_m = serializers.FloatField()


class LocationOutSerializer(serializers.Serializer):
    lat = serializers.FloatField()
    lon = serializers.FloatField()
    accuracy_m = serializers.FloatField(allow_null=True)


class ShareOutSerializer(serializers.Serializer):
    viewer_url = serializers.CharField()
    cameras = serializers.ListField(child=serializers.IntegerField())
    expires_at = serializers.DateTimeField()


class TimelineOutSerializer(serializers.Serializer):
    at = serializers.DateTimeField()
    kind = serializers.CharField()
    text = serializers.CharField()


class IncidentOutSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    external_id = serializers.CharField()
    type = serializers.CharField()
    status = serializers.CharField()
    priority = serializers.IntegerField()
    center = serializers.CharField(allow_null=True, help_text="slug of the centre the event was routed to")
    center_name = serializers.CharField(allow_null=True)
    outside_jurisdiction = serializers.BooleanField()
    location = LocationOutSerializer()
    occurred_at = serializers.DateTimeField()
    received_at = serializers.DateTimeField()
    cameras = CameraOutSerializer(many=True)
    shares = ShareOutSerializer(many=True)


class IncidentDetailOutSerializer(IncidentOutSerializer):
    address = serializers.CharField()
    summary = serializers.CharField()
    timeline = TimelineOutSerializer(many=True)
