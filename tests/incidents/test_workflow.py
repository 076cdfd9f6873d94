"""Operator actions: the acknowledge race, permissions, closing, and escalation on a controlled clock."""

from __future__ import annotations

import datetime as dt
import threading

import pytest
from django.db import connections
from django.test import Client
from django.utils import timezone

from audit.models import AuditEntry
from cameras.models import StaffRole
from incidents import workflow
from incidents.models import Incident, IncidentStatus, TimelineKind
from tests.fixtures.celery_worker import celery_worker  # noqa: F401  (fixture)
from tests.incidents.conftest import incident_at, operator_of


def logged_in(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


@pytest.mark.django_db(transaction=True)
def test_two_operators_acknowledging_at_once_one_wins_the_other_is_told_who(two_centres):
    a, _ = two_centres
    incident = incident_at(a)
    kim, lee = operator_of(a, "kim"), operator_of(a, "lee")
    barrier = threading.Barrier(2)
    results: dict[str, object] = {}

    def press(user) -> None:
        barrier.wait()
        try:
            workflow.incident_acknowledge(user=user, incident_id=incident.pk)
            results[user.username] = "won"
        except workflow.AlreadyAcknowledged as exc:
            results[user.username] = exc.by
        finally:
            connections.close_all()

    threads = [threading.Thread(target=press, args=(u,)) for u in (kim, lee)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    winner = next(name for name, result in results.items() if result == "won")
    loser = next(name for name in results if name != winner)
    assert results[loser] == winner
    incident.refresh_from_db()
    assert incident.acknowledged_by is not None
    assert incident.acknowledged_by.username == winner
    assert incident.timeline.filter(kind=TimelineKind.ACKNOWLEDGED).count() == 1


@pytest.mark.django_db
def test_acknowledge_over_http_then_again_is_409_naming_the_first(two_centres):
    a, _ = two_centres
    incident = incident_at(a)
    kim, lee = operator_of(a, "kim"), operator_of(a, "lee")

    first = logged_in(kim).post(f"/incidents/{incident.pk}/acknowledge/")
    second = logged_in(lee).post(f"/incidents/{incident.pk}/acknowledge/")

    assert first.status_code == 200
    assert first.json()["status"] == "acknowledged"
    assert first.json()["acknowledged_by"] == "kim"
    assert second.status_code == 409
    assert second.json()["by"] == "kim"
    assert AuditEntry.objects.filter(action="incident.acknowledge", object_id=str(incident.pk)).count() == 1


@pytest.mark.django_db
def test_operator_of_another_centre_cannot_act_or_read(two_centres):
    a, b = two_centres
    incident = incident_at(a)
    outsider = logged_in(operator_of(b, "park"))

    assert outsider.post(f"/incidents/{incident.pk}/acknowledge/").status_code == 403
    assert outsider.get(f"/dashboard/incidents/{incident.pk}.json").status_code == 404
    assert incident.pk not in [i["id"] for i in outsider.get("/dashboard/incidents.json").json()["incidents"]]
    incident.refresh_from_db()
    assert incident.status == IncidentStatus.NEW


@pytest.mark.django_db
def test_actions_need_login_and_post(two_centres, client):
    incident = incident_at(two_centres[0])
    assert client.post(f"/incidents/{incident.pk}/acknowledge/").status_code == 302
    assert (
        logged_in(operator_of(two_centres[0], "kim"))
        .get(f"/incidents/{incident.pk}/acknowledge/")
        .status_code
        == 405
    )


@pytest.mark.django_db
def test_note_dispatch_and_close_are_on_the_timeline(two_centres):
    a, _ = two_centres
    incident = incident_at(a)
    kim = logged_in(operator_of(a, "kim"))
    url = f"/incidents/{incident.pk}"

    assert (
        kim.post(
            f"{url}/note/", {"text": "용의자 남쪽으로 도주"}, content_type="application/json"
        ).status_code
        == 200
    )
    dispatched = kim.post(
        f"{url}/dispatch/", {"target": "112", "reason": "순찰차 요청"}, content_type="application/json"
    )
    closed = kim.post(f"{url}/close/", {"outcome": "resolved"}, content_type="application/json")

    assert dispatched.json()["status"] == "dispatched"
    assert closed.json()["status"] == "closed"
    kinds = list(Incident.objects.get(pk=incident.pk).timeline.values_list("kind", flat=True))
    # The dispatch request to 112 relays a live share to the police sender (issue 6).
    assert kinds == [TimelineKind.NOTE, TimelineKind.DISPATCH, TimelineKind.SHARE, TimelineKind.CLOSED]
    assert (
        kim.post(f"{url}/close/", {"outcome": "resolved"}, content_type="application/json").status_code == 400
    )


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("note", {"text": "   "}),
        ("dispatch", {"target": "113"}),
        ("close", {"outcome": "vanished"}),
        ("assign", {"username": "ghost"}),
    ],
)
def test_bad_action_input_is_400_and_changes_nothing(two_centres, path, body):
    a, _ = two_centres
    incident = incident_at(a)
    kim = logged_in(operator_of(a, "kim"))

    response = kim.post(f"/incidents/{incident.pk}/{path}/", body, content_type="application/json")

    assert response.status_code == 400
    assert response.json()["error"]
    assert not incident.timeline.exists()


@pytest.mark.django_db
def test_assign_to_an_operator_of_another_centre_is_refused(two_centres):
    a, b = two_centres
    incident = incident_at(a)
    operator_of(b, "park")
    kim = logged_in(operator_of(a, "kim"))

    response = kim.post(
        f"/incidents/{incident.pk}/assign/", {"username": "park"}, content_type="application/json"
    )

    assert response.status_code == 400


# --- escalation ---------------------------------------------------------------------------


@pytest.mark.django_db
def test_unacknowledged_incident_escalates_after_its_types_threshold_once(two_centres, settings):
    settings.ESCALATION_SECONDS = {"default": 120, "police.emergency_video": 30}
    a, _ = two_centres
    urgent = incident_at(a, priority=2)
    slow = incident_at(a, type="police.dispatch", priority=3)
    t0 = urgent.received_at

    assert workflow.incidents_escalate_overdue(now=t0 + dt.timedelta(seconds=29)) == []
    assert workflow.incidents_escalate_overdue(now=t0 + dt.timedelta(seconds=31)) == [urgent.pk]
    assert workflow.incidents_escalate_overdue(now=t0 + dt.timedelta(seconds=32)) == []  # idempotent
    assert workflow.incidents_escalate_overdue(now=t0 + dt.timedelta(seconds=121)) == [slow.pk]

    urgent.refresh_from_db()
    assert urgent.priority == 1
    assert urgent.escalated_at is not None
    assert urgent.timeline.filter(kind=TimelineKind.ESCALATED).count() == 1
    assert AuditEntry.objects.filter(action="incident.escalate", object_id=str(urgent.pk)).count() == 1


@pytest.mark.django_db
def test_acknowledged_incident_is_never_escalated(two_centres):
    a, _ = two_centres
    incident = incident_at(a)
    workflow.incident_acknowledge(user=operator_of(a, "kim"), incident_id=incident.pk)

    assert workflow.incidents_escalate_overdue(now=timezone.now() + dt.timedelta(hours=1)) == []


@pytest.mark.django_db
def test_supervisor_may_act_like_an_operator_of_the_centre(two_centres):
    a, _ = two_centres
    incident = incident_at(a)
    boss = logged_in(operator_of(a, "boss", role=StaffRole.SUPERVISOR))
    assert boss.post(f"/incidents/{incident.pk}/acknowledge/").status_code == 200


@pytest.mark.django_db(transaction=True)
def test_a_real_celery_worker_runs_the_escalation_task(two_centres, celery_worker):  # noqa: F811
    import time

    from incidents.tasks import escalate_overdue

    a, _ = two_centres
    overdue = incident_at(a, received_ago_s=3600)

    escalate_overdue.delay()

    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        overdue.refresh_from_db()
        if overdue.escalated_at is not None:
            break
        time.sleep(0.2)
    assert overdue.escalated_at is not None
    assert overdue.priority == 1
