"""What the rule engine adds to intake: a bounded, small number of queries."""

from __future__ import annotations

import datetime as dt

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from incidents.catalogue import PartnerKind
from incidents.services import EventIn, incident_intake

pytestmark = pytest.mark.django_db


def event(event_type: str, n: int) -> EventIn:
    return EventIn(
        external_id=f"cost-{event_type}-{n}",
        type=event_type,
        occurred_at=dt.datetime(2026, 11, 22, 2, 0, tzinfo=dt.UTC),
        lat=37.5663,
        lon=126.9779,
    )


def test_an_automatic_share_costs_intake_a_bounded_number_of_queries(partners, junggu, camera_factory):
    for n in range(4):
        camera_factory(lat=37.5663 + n * 0.0001, lon=126.9779, center=junggu)
    incident_intake(partner=partners[PartnerKind.POLICE], event=event("police.dispatch", 0))  # warm caches

    with CaptureQueriesContext(connection) as plain:
        incident_intake(partner=partners[PartnerKind.SAFETY_APP], event=event("safety.sos", 1))
    with CaptureQueriesContext(connection) as shared:
        incident_intake(partner=partners[PartnerKind.POLICE], event=event("police.dispatch", 1))

    extra = len(shared) - len(plain)
    print(f"intake: {len(plain)} queries without a share, {len(shared)} with the automatic share")
    assert extra <= 10, [q["sql"][:120] for q in shared.captured_queries[len(plain) :]]
