"""What one partner event costs the database: a query-count baseline, so an N+1 fails CI.

The 201 for a police event (an automatic share to the sender) is built from what intake
has just written; the audit chain's lock is taken once, at the end of the transaction,
so concurrent intakes wait on each other only for the final append and the commit.
"""

from __future__ import annotations

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from audit.models import AuditEntry
from audit.verify import audit_chain_verify
from partners.models import Share

pytestmark = pytest.mark.django_db

# Key, the sender's agreements (read once: the permission and the share's rules), BEGIN,
# route, incident, nearest cameras, their ranking, timeline, share + its cameras +
# timeline, the audit append (lock + last hash in one query, insert), COMMIT. Raise it
# only for a reason the commit gives.
INTAKE_QUERY_BUDGET = 14


def test_a_police_event_with_its_automatic_share_stays_within_the_query_budget(
    police, junggu, camera_factory
):
    for n in range(6):
        camera_factory(lat=37.5663 + n * 0.0002, lon=126.9779, center=junggu)
    assert police.event().status_code == 201  # caches, prepared plans

    with CaptureQueriesContext(connection) as queries:
        response = police.event()

    assert response.status_code == 201
    body = response.json()
    assert len(body["shares"]) == 1 and body["shares"][0]["cameras"], body
    assert len(body["cameras"]) == 6
    sql = [q["sql"] for q in queries.captured_queries]
    assert len(sql) <= INTAKE_QUERY_BUDGET, "\n".join(s[:140] for s in sql)
    assert sum("pg_advisory_xact_lock" in s for s in sql) == 1, "the chain lock is taken once"
    # The transaction's end (a savepoint here: the test runs inside one) comes right
    # after the audit insert: nothing else happens while the chain is locked.
    end = next(i for i, s in enumerate(sql) if s.startswith(("COMMIT", "RELEASE SAVEPOINT")))
    assert sql[end - 1].lstrip().startswith("INSERT INTO audit_auditentry"), sql[end - 3 : end + 1]
    # The lock and the chain's last hash are one query (one round trip under the lock).
    assert "pg_advisory_xact_lock" in sql[end - 2] and "SELECT hash" in sql[end - 2]


def test_the_201_lists_the_share_exactly_as_a_later_get_does(police, junggu, camera_factory):
    for n in range(5):
        camera_factory(lat=37.5663 + n * 0.0002, lon=126.9779, center=junggu)

    created = police.event().json()
    fetched = police.get(f"/api/v1/events/{created['id']}/").json()

    assert created["shares"] == fetched["shares"]
    share = Share.objects.get(incident_id=created["id"])
    assert created["shares"][0]["cameras"] == list(
        share.share_cameras.order_by("rank").values_list("camera_id", flat=True)
    )


def test_intake_audits_the_incident_and_the_share_in_one_unbroken_chain(police, junggu, camera_factory):
    camera_factory(lat=37.5663, lon=126.9779, center=junggu)
    for _ in range(3):
        assert police.event().status_code == 201

    actions = list(AuditEntry.objects.order_by("id").values_list("action", flat=True))
    assert actions.count("incident.intake") == 3 and actions.count("share.granted") == 3
    assert audit_chain_verify().intact
