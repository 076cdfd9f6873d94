"""Common Alerting Protocol 1.2 alerts from partners, turned into incidents.

A CAP document is untrusted XML from outside. It is parsed by defusedxml with DTDs,
entity declarations and external references all refused, so a billion-laughs bomb or
an entity pointing at `file:///etc/passwd` is rejected before it can cost memory or
read a file. Everything else a partner can get wrong is a `CapError` whose text is the
reason shown to them (HTTP 400). Nothing is written before the whole document is read.

How CAP maps to an incident (OASIS CAP 1.2, 2010):
- `identifier` → external_id (the same Alert sent twice is one incident);
- `sent` → occurred_at (must carry a UTC offset);
- `info/event` + `info/category` → event type, through the partner's CapEventMapping;
- `info/urgency` + `info/severity` → priority (PRIORITY below, else the catalogue's);
- `area/circle` ("lat,lon radius_km") or `area/polygon` ("lat,lon" …) → point, accuracy;
- `msgType` Update / Cancel act on the newest incident named in `references`.
"""

from __future__ import annotations

import datetime as dt
import math
import re
from dataclasses import dataclass
from xml.etree.ElementTree import Element  # only the type: parsing goes through defusedxml

from defusedxml import DefusedXmlException, DTDForbidden, EntitiesForbidden, ExternalReferenceForbidden
from defusedxml.ElementTree import ParseError, fromstring
from django.conf import settings
from django.contrib.gis.geos import Polygon
from django.utils import timezone

from incidents.models import OPEN_STATUSES, Incident
from incidents.services import (
    EventIn,
    IncidentClosedError,
    incident_cancel,
    incident_intake,
    incident_location_add,
)
from partners.models import CapEventMapping, Partner
from partners.sharing import agreements_of, allows_type_on

CAP_NS = "urn:oasis:names:tc:emergency:cap:1.2"
NS = {"cap": CAP_NS}
REQUIRED_HEADER = ("identifier", "sender", "sent", "status", "msgType", "scope")
NOT_ACTUAL = ("Exercise", "System", "Test", "Draft")
EXTERNAL_ID_MAX = 128  # Incident.external_id
ADDRESS_MAX = 300  # Incident.address
SUMMARY_MAX = 2000
EARTH_RADIUS_M = 6_371_008.8  # mean radius; haversine is within 0.5 % of the spheroid

# (urgency, severity) → priority (1 = most urgent). Any other pair keeps the event
# type's priority from the catalogue, so CAP never hides an event below its default
# without a reason the operator would recognise.
PRIORITY: dict[tuple[str, str], int] = {
    ("Immediate", "Extreme"): 1,
    ("Immediate", "Severe"): 2,
    ("Expected", "Extreme"): 2,
    ("Expected", "Severe"): 3,
}
URGENCIES = ("Immediate", "Expected", "Future", "Past", "Unknown")
SEVERITIES = ("Extreme", "Severe", "Moderate", "Minor", "Unknown")

DECIMAL = re.compile(r"[+-]?\d{1,6}(?:\.\d{1,15})?")
DATETIME = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.\d{1,6})?(?P<offset>Z|[+-]\d{2}:\d{2})?")
DECLARED_ENCODING = re.compile(rb"(?:\xef\xbb\xbf)?\s*<\?xml[^>]*?\bencoding\s*=\s*[\"']([^\"']*)[\"']")
EXAMPLE_TIME = "2026-11-22T13:05:00+09:00"


class CapError(Exception):
    """Malformed, hostile or unsupported CAP → HTTP 400; str(exc) is the reason shown to the partner."""


class CapTypeNotAllowed(Exception):
    """No mapping for the alert's `info/event`, or the mapped type is outside the agreement → HTTP 403."""


@dataclass(frozen=True)
class CapResult:
    """What a CAP message did: `created` is True only for a new Alert that created an incident."""

    incident: Incident
    created: bool
    action: str  # "alert" | "update" | "cancel"


@dataclass(frozen=True)
class CapHeader:
    identifier: str
    sent: dt.datetime
    msg_type: str
    references: str


@dataclass(frozen=True)
class CapArea:
    lat: float
    lon: float
    accuracy_m: float
    address: str


def cap_alert_process(*, partner: Partner, body: bytes, request_id: str = "") -> CapResult:
    """Turn one CAP 1.2 message from `partner` into a new, moved or cancelled incident."""
    root = cap_parse(body=body)
    header = header_read(root=root)
    if header.msg_type == "Alert":
        return cap_alert(partner=partner, header=header, root=root, request_id=request_id)
    if header.msg_type not in ("Update", "Cancel"):
        raise CapError(f"msgType {header.msg_type} is not supported; send Alert, Update or Cancel")
    incident = referenced_incident(partner=partner, references=header.references)
    if header.msg_type == "Update":
        return cap_update(incident=incident, header=header, root=root, request_id=request_id)
    try:
        incident = incident_cancel(incident=incident, request_id=request_id)
    except IncidentClosedError:
        raise CapError("the incident is already closed") from None
    return CapResult(incident=incident, created=False, action="cancel")


def cap_parse(*, body: bytes) -> Element:
    """The document's root `alert`, parsed with every XML feature that can attack us refused."""
    encoding_check(body=body)
    try:
        root: Element = fromstring(body, forbid_dtd=True, forbid_entities=True, forbid_external=True)
    except DTDForbidden:
        raise CapError("DTDs are not accepted") from None
    except EntitiesForbidden:
        raise CapError("XML entity declarations are not accepted") from None
    except ExternalReferenceForbidden:
        raise CapError("external references are not accepted") from None
    except DefusedXmlException as exc:
        raise CapError(f"XML feature not accepted: {type(exc).__name__}") from None
    except ParseError as exc:
        raise CapError(f"XML is not well-formed: {exc}") from None
    if root.tag != f"{{{CAP_NS}}}alert":
        raise CapError(f"the root element must be <alert> in the CAP 1.2 namespace {CAP_NS}")
    return root


def encoding_check(*, body: bytes) -> None:
    """CAP alerts must be UTF-8. Other encodings are refused rather than guessed at."""
    try:
        body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise CapError(f"the alert must be UTF-8 encoded (invalid byte at offset {exc.start})") from None
    declared = DECLARED_ENCODING.match(body)
    if declared and declared.group(1).decode().lower() not in ("utf-8", "utf8"):
        raise CapError(f"the alert must be UTF-8 encoded, not {declared.group(1).decode()!r}")


def text_of(parent: Element, name: str) -> str:
    return (parent.findtext(f"cap:{name}", default="", namespaces=NS) or "").strip()


def required(parent: Element, name: str, *, where: str) -> str:
    value = text_of(parent, name)
    if not value:
        raise CapError(f"<{where}> needs <{name}>")
    return value


def header_read(*, root: Element) -> CapHeader:
    """The alert's header, refusing anything but an Actual alert: a drill must never look real."""
    values = {name: required(root, name, where="alert") for name in REQUIRED_HEADER}
    status = values["status"]
    if status in NOT_ACTUAL:
        raise CapError(f"status {status} alerts are not turned into incidents; only Actual ones are")
    if status != "Actual":
        raise CapError(f"status must be one of Actual, {', '.join(NOT_ACTUAL)}; got {status[:40]!r}")
    identifier = values["identifier"]
    if len(identifier) > EXTERNAL_ID_MAX or re.search(r"[\s,<&]", identifier):
        raise CapError(f"identifier must be ≤ {EXTERNAL_ID_MAX} characters without spaces, commas, < or &")
    return CapHeader(
        identifier=identifier,
        sent=cap_datetime(value=values["sent"], name="sent"),
        msg_type=values["msgType"],
        references=text_of(root, "references"),
    )


def cap_datetime(*, value: str, name: str) -> dt.datetime:
    """A CAP dateTime. CAP writes UTC as "-00:00"; "Z" is accepted too. Naive times are refused."""
    match = DATETIME.fullmatch(value)
    if match is None:
        raise CapError(f"{name} must be a date and time like {EXAMPLE_TIME}")
    if match["offset"] is None:
        raise CapError(f"{name} has no UTC offset; write it like {EXAMPLE_TIME}")
    try:
        when = dt.datetime.fromisoformat(value)
    except ValueError:
        raise CapError(f"{name} is not a real date and time: {value}") from None
    if when > timezone.now() + dt.timedelta(seconds=settings.EVENT_MAX_FUTURE_S):
        raise CapError(f"{name} is in the future: {value}")
    return when


def cap_alert(*, partner: Partner, header: CapHeader, root: Element, request_id: str) -> CapResult:
    """A new Alert: its first `info` block becomes an incident (or finds the one it already is)."""
    info = root.find("cap:info", NS)
    if info is None:
        raise CapError("an Alert needs an <info> block")
    event = required(info, "event", where="info")
    categories = [c.text.strip() for c in info.findall("cap:category", NS) if c.text and c.text.strip()]
    if not categories:
        raise CapError("<info> needs at least one <category>")
    urgency = enumerated(info, "urgency", URGENCIES)
    severity = enumerated(info, "severity", SEVERITIES)
    required(info, "certainty", where="info")
    area = area_read(info=info)
    if area is None:
        raise CapError("an Alert needs an <area> with a <circle> or a <polygon>")
    event_in = EventIn(
        external_id=header.identifier,
        type=event_type_for(partner=partner, event=event, categories=categories),
        occurred_at=header.sent,
        lat=area.lat,
        lon=area.lon,
        accuracy_m=area.accuracy_m,
        address=area.address,
        summary=summary_of(info),
        priority=PRIORITY.get((urgency, severity)),
    )
    incident, created = incident_intake(partner=partner, event=event_in, request_id=request_id)
    return CapResult(incident=incident, created=created, action="alert")


def enumerated(info: Element, name: str, allowed: tuple[str, ...]) -> str:
    value = required(info, name, where="info")
    if value not in allowed:
        raise CapError(f"<{name}> must be one of {', '.join(allowed)}; got {value[:40]!r}")
    return value


def summary_of(info: Element) -> str:
    parts = (text_of(info, "headline"), text_of(info, "description"))
    return "\n\n".join(p for p in parts if p)[:SUMMARY_MAX]


def event_type_for(*, partner: Partner, event: str, categories: list[str]) -> str:
    """The partner's event type for this CAP event; a mapping naming a category beats a blank one."""
    mappings = list(CapEventMapping.objects.filter(partner=partner, cap_event=event))
    by_category = [m for c in categories for m in mappings if m.cap_category == c]
    chosen = next(iter(by_category + [m for m in mappings if not m.cap_category]), None)
    if chosen is None:
        raise CapTypeNotAllowed(f"no CAP mapping for event {event[:120]!r} ({', '.join(categories)})")
    agreements = agreements_of(partner_id=partner.pk, event_type=chosen.event_type)
    if not allows_type_on(agreements, timezone.localdate()):
        raise CapTypeNotAllowed(f"event type {chosen.event_type} is not allowed by a valid agreement")
    return chosen.event_type


def area_read(*, info: Element) -> CapArea | None:
    """The first area with a circle or a polygon (its first circle wins): where, and how sure."""
    for area in info.findall("cap:area", NS):
        circle, polygon = text_of(area, "circle"), text_of(area, "polygon")
        if not circle and not polygon:
            continue
        lat, lon, accuracy_m = circle_read(circle) if circle else polygon_read(polygon)
        return CapArea(
            lat=lat, lon=lon, accuracy_m=accuracy_m, address=text_of(area, "areaDesc")[:ADDRESS_MAX]
        )
    return None


def circle_read(text: str) -> tuple[float, float, float]:
    """CAP's "lat,lon radius": latitude first, and the radius in KILOMETRES."""
    parts = text.split()
    if len(parts) != 2:
        raise CapError(
            f'<circle> must be "lat,lon radius_km", e.g. "37.4563,126.7052 0.5"; got {text[:60]!r}'
        )
    lat, lon = pair_read(parts[0], where="circle")
    radius_km = number_read(parts[1], where="circle radius")
    if radius_km < 0:
        raise CapError("<circle> radius must not be negative")
    return lat, lon, radius_km * 1000


def polygon_read(text: str) -> tuple[float, float, float]:
    """A closed ring of "lat,lon" pairs → its centroid, and the farthest vertex as the accuracy."""
    vertices = [pair_read(pair, where="polygon") for pair in text.split()]
    if len(vertices) < 4 or vertices[0] != vertices[-1]:
        raise CapError("<polygon> needs at least 4 lat,lon pairs, the first equal to the last")
    shape = Polygon([(lon, lat) for lat, lon in vertices], srid=4326)
    if not shape.valid or shape.area == 0:
        raise CapError(f"<polygon> is not a simple ring ({shape.valid_reason})")
    centre = shape.centroid
    accuracy_m = max(haversine_m(centre.y, centre.x, lat, lon) for lat, lon in vertices)
    return centre.y, centre.x, accuracy_m


def pair_read(text: str, *, where: str) -> tuple[float, float]:
    lat_text, comma, lon_text = text.partition(",")
    if not comma:
        raise CapError(f"<{where}> coordinates must be lat,lon pairs; got {text[:40]!r}")
    lat, lon = number_read(lat_text, where=where), number_read(lon_text, where=where)
    if not (-90 <= lat <= 90 and -180 <= lon <= 180):
        raise CapError(f"<{where}> latitude must be within ±90 and longitude within ±180; got {lat},{lon}")
    return lat, lon


def number_read(text: str, *, where: str) -> float:
    # A strict decimal: float() would also take "nan", "inf", "1e400" and "1_0".
    if not DECIMAL.fullmatch(text):
        raise CapError(f"<{where}> has a malformed number: {text[:40]!r}")
    return float(text)


def haversine_m(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    phi1, phi2 = math.radians(lat1), math.radians(lat2)
    d_phi, d_lambda = phi2 - phi1, math.radians(lon2 - lon1)
    a = math.sin(d_phi / 2) ** 2 + math.cos(phi1) * math.cos(phi2) * math.sin(d_lambda / 2) ** 2
    return 2 * EARTH_RADIUS_M * math.asin(math.sqrt(min(1.0, a)))


def referenced_incident(*, partner: Partner, references: str) -> Incident:
    """The newest incident of `partner` among the "sender,identifier,sent" triples in `references`.

    Only this partner's incidents are searched: a reference can never reach another
    partner's incident, whatever `sender` it names.
    """
    identifiers = []
    for triple in references.split():
        parts = triple.split(",")
        if len(parts) != 3 or not parts[1]:
            raise CapError("<references> must be whitespace-separated sender,identifier,sent triples")
        identifiers.append(parts[1])
    if not identifiers:
        raise CapError("an Update or Cancel needs <references> naming the earlier alert")
    incident = (
        Incident.objects.filter(partner=partner, external_id__in=identifiers)
        .order_by("-occurred_at", "-pk")
        .first()
    )
    if incident is None:
        raise CapError("references no earlier alert of yours")
    return incident


def cap_update(*, incident: Incident, header: CapHeader, root: Element, request_id: str) -> CapResult:
    """An Update moves the incident when it carries an area; other changes are not tracked."""
    if incident.status not in OPEN_STATUSES:
        raise CapError("the incident is already closed")
    info = root.find("cap:info", NS)
    area = area_read(info=info) if info is not None else None
    if area is not None:
        try:
            incident_location_add(
                incident=incident,
                lat=area.lat,
                lon=area.lon,
                accuracy_m=area.accuracy_m,
                observed_at=header.sent,
                request_id=request_id,
            )
        except IncidentClosedError:
            raise CapError("the incident is already closed") from None
    return CapResult(incident=incident, created=False, action="update")
