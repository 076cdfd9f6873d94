"""Background jobs of the incident workflow."""

from __future__ import annotations

from celery import shared_task

from incidents.workflow import incidents_escalate_overdue


@shared_task(name="incidents.tasks.escalate_overdue", ignore_result=True)
def escalate_overdue() -> int:
    """Beat runs this every few seconds; the claim inside makes overlapping runs harmless."""
    return len(incidents_escalate_overdue())
