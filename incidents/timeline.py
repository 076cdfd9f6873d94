"""Appending to an incident's timeline: on every event, share and location fix."""

from __future__ import annotations

from django.utils import timezone

from smartcity.sql import Prepared, rows_insert_soon

# As TimelineEntry.objects.create(...) would write it (`at` is auto_now_add).
TIMELINE_SQL = """
INSERT INTO incidents_timelineentry (incident_id, at, kind, actor, text, partner_visible)
VALUES (%s, %s, %s, %s, %s, %s)
"""
TIMELINE_INSERT = Prepared("smartcity_timeline_insert", TIMELINE_SQL)


def timeline_add(*, incident_id: int, kind: str, actor: str, text: str, partner_visible: bool = True) -> None:
    """Append an entry to an incident's timeline, in the caller's transaction (maybe deferred)."""
    rows_insert_soon(TIMELINE_INSERT, [incident_id, timezone.now(), kind, actor, text, partner_visible])
