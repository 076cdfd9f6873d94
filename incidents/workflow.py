"""Operator actions on an incident: acknowledge, assign, note, request dispatch, close, escalate.

Each action is one transaction: a conditional UPDATE or a row lock decides races (two
operators pressing "acknowledge" together: exactly one wins, the other is told who did),
then a timeline entry, an audit entry and, after commit, a push to the centre's screens.
"""

from __future__ import annotations

import datetime as dt

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction
from django.utils import timezone

from audit.services import audit_record
from incidents.models import OPEN_STATUSES, Incident, IncidentStatus, TimelineEntry, TimelineKind
from incidents.realtime import incident_publish_on_commit
from incidents.selectors import watched_center_ids
from partners.notify import dispatch_relay, incident_status_notify
from partners.sharing import shares_end_for_incident


class WorkflowError(Exception):
    """An action that cannot be done now; the message is shown to the operator."""


class NotAllowed(WorkflowError):
    pass


class AlreadyAcknowledged(WorkflowError):
    def __init__(self, by: str) -> None:
        super().__init__(f"already acknowledged by {by}")
        self.by = by


DISPATCH_TARGETS = {"112": "경찰 112", "119": "소방 119"}
OUTCOMES = ("resolved", "false_alarm", "handed_over", "duplicate", "other")


def incident_for_action(*, user: AbstractBaseUser, incident_id: int) -> Incident:
    """The incident locked for update, if `user` works at its centre."""
    incident = Incident.objects.select_for_update().filter(pk=incident_id).first()
    if incident is None:
        raise NotAllowed("no such incident")
    centers = watched_center_ids(user)
    if centers is not None and incident.center_id not in centers:
        raise NotAllowed("not an incident of your centre")
    return incident


def record(
    *, incident: Incident, user: AbstractBaseUser, kind: str, text: str, action: str, **details: object
) -> None:
    TimelineEntry.objects.create(
        incident=incident, kind=kind, actor=user.get_username(), text=text, partner_visible=False
    )
    audit_record(
        action=action,
        actor=f"user:{user.get_username()}",
        user_id=user.pk,
        object_type="incident",
        object_id=incident.pk,
        details=details,
    )
    incident_publish_on_commit("incident.updated", incident.pk)


def incident_acknowledge(*, user: AbstractBaseUser, incident_id: int) -> Incident:
    """Take the incident. Exactly one of several simultaneous operators wins."""
    with transaction.atomic():
        incident = incident_for_action(user=user, incident_id=incident_id)
        claimed = Incident.objects.filter(pk=incident.pk, status=IncidentStatus.NEW).update(
            status=IncidentStatus.ACKNOWLEDGED,
            acknowledged_by=user,
            acknowledged_at=timezone.now(),
            assignee=user,
            updated_at=timezone.now(),
        )
        if not claimed:
            incident.refresh_from_db()
            who = incident.acknowledged_by.get_username() if incident.acknowledged_by else incident.status
            raise AlreadyAcknowledged(by=who)
        incident.refresh_from_db()
        record(
            incident=incident,
            user=user,
            kind=TimelineKind.ACKNOWLEDGED,
            text="",
            action="incident.acknowledge",
        )
        incident_status_notify(incident=incident)
    return incident


def incident_assign(*, user: AbstractBaseUser, incident_id: int, assignee: AbstractBaseUser) -> Incident:
    with transaction.atomic():
        incident = incident_for_action(user=user, incident_id=incident_id)
        if incident.status not in OPEN_STATUSES:
            raise WorkflowError("the incident is closed")
        if watched_center_ids(assignee) not in (None, [incident.center_id]):
            raise WorkflowError("the assignee does not work at this centre")
        incident.assignee = assignee  # type: ignore[assignment]
        incident.save(update_fields=["assignee", "updated_at"])
        record(
            incident=incident,
            user=user,
            kind=TimelineKind.ASSIGNED,
            text=assignee.get_username(),
            action="incident.assign",
            assignee=assignee.get_username(),
        )
    return incident


def incident_note(*, user: AbstractBaseUser, incident_id: int, text: str) -> Incident:
    text = text.strip()
    if not text:
        raise WorkflowError("the note is empty")
    with transaction.atomic():
        incident = incident_for_action(user=user, incident_id=incident_id)
        record(incident=incident, user=user, kind=TimelineKind.NOTE, text=text[:2000], action="incident.note")
        incident.save(update_fields=["updated_at"])
    return incident


def incident_request_dispatch(
    *, user: AbstractBaseUser, incident_id: int, target: str, reason: str = ""
) -> Incident:
    """Ask 112 or 119 to send units. Recorded now; the partner's webhook delivery follows."""
    if target not in DISPATCH_TARGETS:
        raise WorkflowError("dispatch goes to 112 or 119")
    with transaction.atomic():
        incident = incident_for_action(user=user, incident_id=incident_id)
        if incident.status not in OPEN_STATUSES:
            raise WorkflowError("the incident is closed")
        incident.status = IncidentStatus.DISPATCHED
        incident.save(update_fields=["status", "updated_at"])
        record(
            incident=incident,
            user=user,
            kind=TimelineKind.DISPATCH,
            text=f"{DISPATCH_TARGETS[target]} {reason}".strip(),
            action="incident.dispatch_request",
            target=target,
            reason=reason,
        )
        incident_status_notify(incident=incident)
        # The relay to 112/119: summary plus a live share link where the gate allows it.
        dispatch_relay(incident=incident, user=user, target=target, reason=reason)
    return incident


def incident_close(*, user: AbstractBaseUser, incident_id: int, outcome: str, text: str = "") -> Incident:
    if outcome not in OUTCOMES:
        raise WorkflowError(f"outcome must be one of {', '.join(OUTCOMES)}")
    with transaction.atomic():
        incident = incident_for_action(user=user, incident_id=incident_id)
        if incident.status not in OPEN_STATUSES:
            raise WorkflowError("the incident is already closed")
        incident.status = IncidentStatus.CLOSED
        incident.outcome = outcome
        incident.closed_at = timezone.now()
        incident.save(update_fields=["status", "outcome", "closed_at", "updated_at"])
        record(
            incident=incident,
            user=user,
            kind=TimelineKind.CLOSED,
            text=f"{outcome} {text}".strip(),
            action="incident.close",
            outcome=outcome,
        )
        shares_end_for_incident(incident_id=incident.pk)
        incident_status_notify(incident=incident)
    return incident


def escalation_threshold_s(event_type: str) -> int:
    per_type: dict[str, int] = settings.ESCALATION_SECONDS
    return per_type.get(event_type, per_type.get("default", 120))


def incidents_escalate_overdue(*, now: dt.datetime | None = None) -> list[int]:
    """Raise every new incident nobody acknowledged in time. Safe to run twice or on two workers.

    The conditional UPDATE (`escalated_at IS NULL`) claims each incident for exactly one run.
    """
    now = now or timezone.now()
    escalated: list[int] = []
    candidates = Incident.objects.filter(status=IncidentStatus.NEW, escalated_at__isnull=True).values_list(
        "pk", "type", "received_at"
    )
    for pk, event_type, received_at in candidates:
        if received_at > now - dt.timedelta(seconds=escalation_threshold_s(event_type)):
            continue
        with transaction.atomic():
            claimed = Incident.objects.filter(
                pk=pk, status=IncidentStatus.NEW, escalated_at__isnull=True
            ).update(escalated_at=now, priority=1)
            if not claimed:
                continue
            TimelineEntry.objects.create(
                incident_id=pk, kind=TimelineKind.ESCALATED, actor="system", text="", partner_visible=False
            )
            audit_record(action="incident.escalate", actor="system", object_type="incident", object_id=pk)
            transaction.on_commit(lambda pk=pk: incident_publish_escalated(pk))  # type: ignore[misc]
        escalated.append(pk)
    return escalated


def incident_publish_escalated(incident_id: int) -> None:
    from incidents.realtime import incident_publish

    incident_publish("incident.escalated", incident_id)
