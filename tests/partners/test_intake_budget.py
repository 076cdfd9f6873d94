"""What one partner event costs the database: a query-count baseline, so an N+1 fails CI.

The 201 for a police event (an automatic share to the sender) is built from what intake
has just written; the audit chain's lock is taken once, at the end of the transaction,
in the round trip that also appends and commits, so concurrent intakes wait on each
other only for PostgreSQL's own work.
"""

from __future__ import annotations

import pytest
from django.db import ProgrammingError, connection
from django.test.utils import CaptureQueriesContext

from audit.models import AuditEntry
from audit.verify import audit_chain_verify
from incidents.models import Incident, TimelineKind
from partners.models import Share
from smartcity.sql import Prepared

pytestmark = pytest.mark.django_db

# The key with the sender's agreements (one round trip; read once: the permission and
# the share's rules), the route and the nearest cameras (one round trip, before the
# transaction), BEGIN,
# incident (drawing the share's key too), then in one round trip the deferred inserts
# (cameras' ranking, the share, its cameras, two timeline entries), the chain's lock and
# the two audit entries (and, outside tests' enclosing transaction, the COMMIT). Raise
# it only for a reason the commit gives.
INTAKE_QUERY_BUDGET = 6


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
    assert sum("EXECUTE smartcity_chain_lock" in s for s in sql) == 1, "the chain lock is taken once"
    # The transaction's end (a savepoint here: the test runs inside one) comes right
    # after the chain append, which is one round trip: the inserts nobody reads before
    # the commit, then the lock, then both audit entries, hashed by PostgreSQL.
    end = next(i for i, s in enumerate(sql) if s.startswith(("COMMIT", "RELEASE SAVEPOINT")))
    append = sql[end - 1]
    lock = append.index("EXECUTE smartcity_chain_lock")
    assert append.index("EXECUTE smartcity_timeline_insert") < lock
    assert append.index("EXECUTE smartcity_ranked_cameras_insert") < lock
    assert append.index("EXECUTE smartcity_share_cameras_insert") < lock
    # The share's row (its key drawn with the incident's INSERT) before its cameras' rows.
    share_row = "EXECUTE smartcity_insert_partners_share_pk"
    assert append.index(share_row) < append.index("EXECUTE smartcity_share_cameras_insert")
    assert not any(s.startswith(share_row) for s in sql)
    assert (
        append.count("EXECUTE smartcity_entry_append") == 2
        and append.index("EXECUTE smartcity_entry_append") > lock
    )


@pytest.mark.django_db(transaction=True)
def test_the_intake_commits_in_the_same_round_trip_as_the_chain_append(police, junggu, camera_factory):
    camera_factory(lat=37.5663, lon=126.9779, center=junggu)

    with CaptureQueriesContext(connection) as queries:
        response = police.event()

    assert response.status_code == 201
    append = next(q["sql"] for q in queries.captured_queries if "EXECUTE smartcity_chain_lock" in q["sql"])
    assert append.rstrip().endswith("COMMIT"), append[-200:]
    # Committed for real: another connection sees the incident, and the chain holds.
    assert Incident.objects.filter(pk=response.json()["id"]).exists()
    assert audit_chain_verify().intact


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


def test_the_deferred_inserts_are_all_written(police, junggu, camera_factory):
    for n in range(3):
        camera_factory(lat=37.5663 + n * 0.0002, lon=126.9779, center=junggu)

    created = police.event().json()

    incident = Incident.objects.get(pk=created["id"])
    assert list(incident.ranked_cameras.order_by("rank").values_list("camera_id", "rank")) == [
        (camera["id"], rank) for rank, camera in enumerate(created["cameras"], start=1)
    ]
    kinds = list(incident.timeline.order_by("at", "pk").values_list("kind", flat=True))
    assert kinds == [TimelineKind.RECEIVED, TimelineKind.SHARE]
    share = Share.objects.get(incident=incident)
    assert list(share.share_cameras.order_by("rank").values_list("camera_id", flat=True)) == [
        camera["id"] for camera in created["cameras"]
    ]


def test_a_failing_deferred_insert_fails_the_whole_intake(police, junggu, camera_factory, monkeypatch):
    from incidents import timeline

    camera_factory(lat=37.5663, lon=126.9779, center=junggu)
    broken = Prepared("test_broken_timeline_insert", timeline.TIMELINE_SQL.replace("kind", "no_such_column"))
    monkeypatch.setattr(timeline, "TIMELINE_INSERT", broken)

    with pytest.raises(ProgrammingError):
        police.event()

    assert not Incident.objects.exists() and not Share.objects.exists()
    assert not AuditEntry.objects.filter(action__in=["incident.intake", "share.granted"]).exists()


def test_intake_audits_the_incident_and_the_share_in_one_unbroken_chain(police, junggu, camera_factory):
    camera_factory(lat=37.5663, lon=126.9779, center=junggu)
    for _ in range(3):
        assert police.event().status_code == 201

    actions = list(AuditEntry.objects.order_by("id").values_list("action", flat=True))
    assert actions.count("incident.intake") == 3 and actions.count("share.granted") == 3
    assert audit_chain_verify().intact
