"""The partner REST API (DESIGN §4 "Partner API"). Views stay thin: services do the work."""

from __future__ import annotations

from typing import Any

from django.http import Http404
from django.utils import timezone
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import status
from rest_framework.exceptions import APIException, PermissionDenied, ValidationError
from rest_framework.permissions import IsAuthenticated
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView, exception_handler

from incidents.models import Incident
from incidents.services import IncidentClosedError, incident_cancel, incident_intake, incident_location_add
from partners.auth import PartnerKeyAuthentication, PartnerUser
from partners.parsers import CapXMLParser, StrictJSONParser
from partners.serializers import (
    EventInSerializer,
    IncidentDetailOutSerializer,
    IncidentOutSerializer,
    LocationFixInSerializer,
    incident_for_partner,
)
from partners.sharing import allows_type_on
from partners.throttling import PartnerRateThrottle

ERRORS_SCHEMA = {
    "type": "object",
    "properties": {
        "errors": {
            "type": "object",
            "additionalProperties": {"type": "array", "items": {"type": "string"}},
        }
    },
    "required": ["errors"],
}
ERRORS = {
    code: OpenApiResponse(ERRORS_SCHEMA, description=text)
    for code, text in {
        400: "invalid input; every field's errors at once",
        401: "missing/unknown/revoked key or bad signature",
        403: "not allowed by your agreement",
        404: "no such incident of yours",
        409: "the incident is closed",
        413: "body over 64 KiB",
        415: "wrong content type",
        429: "over your rate limit; see Retry-After",
    }.items()
}


def errors(*codes: int) -> dict[int, OpenApiResponse]:
    return {code: ERRORS[code] for code in codes}


class Conflict(APIException):
    status_code = status.HTTP_409_CONFLICT
    default_detail = "The incident is closed."
    default_code = "conflict"


def api_exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    """Every API error as `{"errors": {field: [message]}}`, the shape DESIGN §4 promises."""
    response = exception_handler(exc, context)
    if response is None:
        return None
    if isinstance(exc, ValidationError) and isinstance(response.data, dict):
        errors = response.data
    elif isinstance(exc, ValidationError):
        errors = {"non_field_errors": response.data}
    else:
        detail = (
            response.data.get("detail", response.data) if isinstance(response.data, dict) else response.data
        )
        errors = {"detail": [str(detail)]}
    response.data = {"errors": errors}
    return response


def request_id_of(request: Request) -> str:
    return str(getattr(request._request, "request_id", ""))


class PartnerAPIView(APIView):
    authentication_classes = [PartnerKeyAuthentication]
    permission_classes = [IsAuthenticated]
    throttle_classes = [PartnerRateThrottle]
    parser_classes = [StrictJSONParser]

    def partner_user(self, request: Request) -> PartnerUser:
        user = request.user
        assert isinstance(user, PartnerUser)
        return user

    def own_incident(self, request: Request, incident_id: int) -> Incident:
        """The incident if this partner sent it; anyone else's is indistinguishable from none."""
        incident = (
            Incident.objects.select_related("center", "partner")
            .filter(pk=incident_id, partner=self.partner_user(request).partner)
            .first()
        )
        if incident is None:
            raise Http404
        return incident


class EventListCreateView(PartnerAPIView):
    agreements_with_key = True  # every event reads its sender's agreements: with the key, one round trip

    @extend_schema(
        request=EventInSerializer,
        responses={
            201: OpenApiResponse(description="incident created"),
            200: OpenApiResponse(description="already received"),
        },
        summary="Report an emergency event",
    )
    def post(self, request: Request) -> Response:
        user = self.partner_user(request)
        partner = user.partner
        serializer = EventInSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        event = serializer.to_event()
        # One read of the agreements listing the type: the permission here, the share rules at intake.
        agreements = user.agreements_of(event.type)
        if not allows_type_on(agreements, timezone.localdate()):
            raise PermissionDenied(f"your agreement does not allow {event.type!r} events")
        incident, created = incident_intake(
            partner=partner, event=event, request_id=request_id_of(request), agreements=agreements
        )
        # incident_intake has committed: the 201 never announces an incident that could roll back.
        return Response(incident_for_partner(incident), status=201 if created else 200)


class EventDetailView(PartnerAPIView):
    @extend_schema(responses={200: IncidentDetailOutSerializer, **errors(401, 404, 429)})
    def get(self, request: Request, incident_id: int) -> Response:
        return Response(incident_for_partner(self.own_incident(request, incident_id), detail=True))


class EventLocationView(PartnerAPIView):
    @extend_schema(
        request=LocationFixInSerializer,
        responses={201: IncidentOutSerializer, **errors(400, 401, 404, 409, 413, 415, 429)},
    )
    def post(self, request: Request, incident_id: int) -> Response:
        incident = self.own_incident(request, incident_id)
        serializer = LocationFixInSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        try:
            incident_location_add(
                incident=incident,
                lat=data["lat"],
                lon=data["lon"],
                accuracy_m=data.get("accuracy_m"),
                observed_at=data.get("observed_at") or timezone.now(),
                request_id=request_id_of(request),
            )
        except IncidentClosedError as exc:
            raise Conflict(f"the incident is {exc}; it takes no more locations") from exc
        return Response(incident_for_partner(incident), status=201)


class EventCancelView(PartnerAPIView):
    @extend_schema(request=None, responses={200: IncidentOutSerializer, **errors(401, 404, 409, 429)})
    def post(self, request: Request, incident_id: int) -> Response:
        incident = self.own_incident(request, incident_id)
        try:
            incident = incident_cancel(incident=incident, request_id=request_id_of(request))
        except IncidentClosedError as exc:
            raise Conflict("the incident is already closed") from exc
        return Response(incident_for_partner(incident))


class CapAlertView(PartnerAPIView):
    parser_classes = [CapXMLParser]

    @extend_schema(
        request={"application/cap+xml": {"type": "string"}},
        responses={
            201: IncidentOutSerializer,
            200: IncidentOutSerializer,
            **errors(400, 401, 403, 413, 415, 429),
        },
        summary="Report an event as a CAP 1.2 alert",
    )
    def post(self, request: Request) -> Response:
        from partners.cap import CapError, CapTypeNotAllowed, cap_alert_process

        partner = self.partner_user(request).partner
        body = request.data
        if not isinstance(body, bytes):
            raise ValidationError({"cap": ["send the CAP document as application/cap+xml"]})
        try:
            result = cap_alert_process(partner=partner, body=body, request_id=request_id_of(request))
        except CapError as exc:
            raise ValidationError({"cap": [str(exc)]}) from exc
        except CapTypeNotAllowed as exc:
            raise PermissionDenied(str(exc)) from exc
        return Response(incident_for_partner(result.incident), status=201 if result.created else 200)
