"""The provision ledger (개인영상정보 관리대장), derived from the audit log.

The ledger is a view of the audit entries, never a second record that could drift
from them: its number is the audit entry's id, so every row can be checked against
the hash chain (`audit_verify`). Which entries make which rows:

| entry | 구분 | 형태 |
|---|---|---|
| `video.view_start` (operator, or partner staff with `share_id`) | 열람 | live — period up to the matching `video.view_stop` |
| `clip.saved` (an operator keeps footage for an incident) | 열람 | clip |
| `clip.downloaded` by staff | 열람 | clip |
| `share.granted`, `share.extended` | 제공 | live — period until `expires_at` |
| `clip.downloaded` by a partner (details carry `partner`) | 제공 | clip |
| `clip.destroyed` | 파기 | clip (officer "system") |

Refusals, revocations, ends of shares and legal holds stay in the audit log only: they
are not a viewing, provision or destruction of footage.

The register's wording (columns, 열람/제공/파기, 실시간/녹화영상) is the statutory Korean
form: it is data, not interface text, and the CSV export is in Korean whatever the
language of the page.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any
from zoneinfo import ZoneInfo

from django.db.models import Case, OuterRef, Q, QuerySet, Subquery, When

from audit.models import AuditEntry

SEOUL = ZoneInfo("Asia/Seoul")

VIEW_START = "video.view_start"
VIEW_STOP = "video.view_stop"
VIEW_ACTIONS = (VIEW_START, "clip.saved")
PROVIDE_ACTIONS = ("share.granted", "share.extended")
DOWNLOAD = "clip.downloaded"
DESTROY = "clip.destroyed"
LEDGER_ACTIONS = (*VIEW_ACTIONS, *PROVIDE_ACTIONS, DOWNLOAD, DESTROY)

KINDS = ("view", "provide", "destroy")
BY_PARTNER = Q(details__has_key="partner") | Q(partner__isnull=False)
KIND_FILTERS = {
    "view": Q(action__in=VIEW_ACTIONS) | (Q(action=DOWNLOAD) & ~BY_PARTNER),
    "provide": Q(action__in=PROVIDE_ACTIONS) | (Q(action=DOWNLOAD) & BY_PARTNER),
    "destroy": Q(action=DESTROY),
}


KIND_LABELS = {"view": "열람", "provide": "제공", "destroy": "파기"}
FORM_LIVE, FORM_CLIP = "실시간", "녹화영상"
COLUMNS = ("번호", "구분", "일시", "파일 또는 카메라", "담당자", "목적", "수령자", "근거", "형태", "기간")


@dataclass(frozen=True)
class LedgerFilters:
    """What the privacy officer narrowed the ledger to; dates are calendar days in Asia/Seoul."""

    date_from: dt.date | None = None
    date_to: dt.date | None = None
    kind: str = ""
    partner: str = ""  # partner slug
    camera_id: int | None = None
    incident_id: int | None = None


@dataclass(frozen=True)
class LedgerRow:
    number: int
    kind: str
    at: dt.datetime
    subject: str
    officer: str
    purpose: str
    recipient: str
    basis: str
    form: str
    period: str

    def cells(self) -> list[str]:
        return [
            str(self.number),
            self.kind,
            seoul(self.at),
            self.subject,
            self.officer,
            self.purpose,
            self.recipient,
            self.basis,
            self.form,
            self.period,
        ]


def seoul(moment: dt.datetime | None, fmt: str = "%Y-%m-%d %H:%M:%S") -> str:
    return moment.astimezone(SEOUL).strftime(fmt) if moment else ""


def ledger_entries(*, filters: LedgerFilters) -> QuerySet[AuditEntry]:
    """The audit entries that make ledger rows, filtered, in ledger order (oldest first).

    Each viewing start carries the time of its stop (the same viewer's next stop on the
    same camera, found through a partial index).
    """
    entries = AuditEntry.objects.filter(ledger_q(filters))
    stop = AuditEntry.objects.filter(
        action=VIEW_STOP,
        object_type="camera",
        object_id=OuterRef("object_id"),
        actor=OuterRef("actor"),
        id__gt=OuterRef("id"),
    ).order_by("id")
    ended = Case(When(action=VIEW_START, then=Subquery(stop.values("at")[:1])))
    return entries.annotate(view_ended_at=ended).select_related("partner").order_by("id")


def ledger_q(filters: LedgerFilters) -> Q:
    q = KIND_FILTERS[filters.kind] if filters.kind in KIND_FILTERS else Q(action__in=LEDGER_ACTIONS)
    if filters.date_from is not None:
        q &= Q(at__gte=dt.datetime.combine(filters.date_from, dt.time(), SEOUL))
    if filters.date_to is not None:
        q &= Q(at__lt=dt.datetime.combine(filters.date_to + dt.timedelta(days=1), dt.time(), SEOUL))
    if filters.partner:
        q &= Q(partner__slug=filters.partner) | Q(details__partner=filters.partner)
    if filters.camera_id is not None:
        camera = filters.camera_id
        q &= (
            Q(object_type="camera", object_id=str(camera))
            | Q(details__camera_id=camera)
            | Q(details__camera_ids__contains=[camera])
        )
    if filters.incident_id is not None:
        q &= Q(details__incident_id=filters.incident_id) | Q(
            object_type="incident", object_id=str(filters.incident_id)
        )
    return q


def ledger_rows(entries: list[AuditEntry]) -> list[LedgerRow]:
    """Rows for one chunk of entries, with three look-ups for the whole chunk (no N+1)."""
    names = LookupNames.for_entries(entries)
    return [ledger_row(entry, names) for entry in entries]


def ledger_rows_stream(*, filters: LedgerFilters, chunk_size: int = 1000) -> Iterator[list[LedgerRow]]:
    """All rows, a chunk at a time (keyset pagination on id): constant memory for any range."""
    last_id = 0
    while True:
        chunk = list(ledger_entries(filters=filters).filter(id__gt=last_id)[:chunk_size])
        if not chunk:
            return
        yield ledger_rows(chunk)
        last_id = chunk[-1].pk


@dataclass
class LookupNames:
    cameras: dict[int, str]
    incidents: dict[int, str]
    partners: dict[str, str]

    @classmethod
    def for_entries(cls, entries: list[AuditEntry]) -> LookupNames:
        from cameras.models import Camera
        from incidents.models import Incident
        from partners.models import Partner

        camera_ids: set[int] = set()
        incident_ids: set[int] = set()
        slugs: set[str] = set()
        for entry in entries:
            camera_ids.update(cameras_of(entry))
            if isinstance(entry.details.get("incident_id"), int):
                incident_ids.add(entry.details["incident_id"])
            if isinstance(entry.details.get("partner"), str):
                slugs.add(entry.details["partner"])
        cameras = {
            pk: f"{code} {name}"
            for pk, code, name in Camera.objects.filter(pk__in=camera_ids).values_list("pk", "code", "name")
        }
        incidents = dict(Incident.objects.filter(pk__in=incident_ids).values_list("pk", "type"))
        partners = dict(Partner.objects.filter(slug__in=slugs).values_list("slug", "name"))
        return cls(cameras, incidents, partners)


def cameras_of(entry: AuditEntry) -> list[int]:
    details = entry.details
    if entry.object_type == "camera" and entry.object_id.isdigit():
        return [int(entry.object_id)]
    ids = details.get("camera_ids") or ([details["camera_id"]] if "camera_id" in details else [])
    return [pk for pk in ids if isinstance(pk, int)] if isinstance(ids, list) else []


def ledger_row(entry: AuditEntry, names: LookupNames) -> LedgerRow:
    details: dict[str, Any] = entry.details if isinstance(entry.details, dict) else {}
    kinds = KIND_LABELS
    cameras = ", ".join(names.cameras.get(pk, f"#{pk}") for pk in cameras_of(entry))
    partner = partner_name(entry, details, names)
    clip_form = entry.object_type == "clip"
    if entry.action in PROVIDE_ACTIONS or (entry.action == DOWNLOAD and partner):
        kind = kinds["provide"]
    elif entry.action == DESTROY:
        kind = kinds["destroy"]
    else:
        kind = kinds["view"]
    if clip_form:
        file_name = str(details.get("file") or "").rsplit("/", 1)[-1]
        subject = f"{file_name} ({cameras})" if file_name else cameras
        period = span(parse(details.get("period_start")), parse(details.get("period_end")))
    elif entry.action == VIEW_START:
        subject = cameras
        ended = getattr(entry, "view_ended_at", None)
        period = span(entry.at, ended) if ended else f"{seoul(entry.at)} – (열람 중)"
    else:
        subject = cameras
        period = span(entry.at, parse(details.get("expires_at")))
    return LedgerRow(
        number=entry.pk,
        kind=kind,
        at=entry.at,
        subject=subject,
        officer=officer_of(entry),
        purpose=str(details.get("purpose") or details.get("reason") or ""),
        recipient=partner,
        basis=basis_of(details, names),
        form=FORM_CLIP if clip_form else FORM_LIVE,
        period=period,
    )


def partner_name(entry: AuditEntry, details: dict[str, Any], names: LookupNames) -> str:
    if entry.partner is not None:
        return entry.partner.name
    slug = details.get("partner")
    return names.partners.get(slug, slug) if isinstance(slug, str) else ""


def officer_of(entry: AuditEntry) -> str:
    kind, _sep, name = entry.actor.partition(":")
    return name if kind == "user" and name else entry.actor


def basis_of(details: dict[str, Any], names: LookupNames) -> str:
    """The legal basis: the stated basis, then the event type and incident id it served."""
    incident_id = details.get("incident_id")
    event_type = details.get("event_type") or (
        names.incidents.get(incident_id) if isinstance(incident_id, int) else ""
    )
    parts = [str(details.get("legal_basis") or "")]
    if incident_id is not None:
        parts.append(f"{event_type or ''} #{incident_id}".strip())
    return " · ".join(part for part in parts if part)


def parse(value: Any) -> dt.datetime | None:
    if not isinstance(value, str):
        return None
    try:
        moment = dt.datetime.fromisoformat(value)
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=dt.UTC)


def span(start: dt.datetime | None, end: dt.datetime | None) -> str:
    if start is None:
        return ""
    if end is None:
        return seoul(start)
    same_day = seoul(start, "%Y-%m-%d") == seoul(end, "%Y-%m-%d")
    return f"{seoul(start)} – {seoul(end, '%H:%M:%S' if same_day else '%Y-%m-%d %H:%M:%S')}"
