"""Intake under concurrency and the commit-before-201 promise (real transactions)."""

from __future__ import annotations

import threading

import psycopg
import pytest
from django.db import connection, connections
from django.test import Client

from incidents.models import Incident
from partners.services import api_key_create
from tests.partners.conftest import PartnerApi, event_body, partner_with_agreement

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def police_api(center_factory):
    center_factory("seoul-junggu", (126.96, 37.54, 127.03, 37.58))
    partner = partner_with_agreement("police-112", "police")
    _, raw = api_key_create(partner=partner)
    return PartnerApi(client=Client(), partner=partner, key=raw)


def test_two_threads_posting_the_same_external_id_create_one_incident(police_api):
    body = event_body(external_id="race-1")
    barrier = threading.Barrier(4)
    statuses: list[int] = []
    ids: set[int] = set()

    def post() -> None:
        api = PartnerApi(client=Client(), partner=police_api.partner, key=police_api.key)
        barrier.wait()
        response = api.post("/api/v1/events/", body)
        statuses.append(response.status_code)
        ids.add(response.json()["id"])
        connections.close_all()

    threads = [threading.Thread(target=post) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert sorted(statuses) == [200, 200, 200, 201]
    assert len(ids) == 1
    assert Incident.objects.filter(external_id="race-1").count() == 1


def test_the_incident_is_committed_when_the_201_arrives(police_api):
    response = police_api.event(external_id="committed-1")
    assert response.status_code == 201

    # A separate connection sees only committed rows.
    settings = connection.settings_dict
    dsn = f"host={settings['HOST']} port={settings['PORT']} dbname={settings['NAME']} user={settings['USER']}"
    with psycopg.connect(dsn) as other:
        row = other.execute(
            "SELECT status FROM incidents_incident WHERE id = %s", [response.json()["id"]]
        ).fetchone()
    assert row == ("new",)
