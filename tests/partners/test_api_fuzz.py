"""Schemathesis against our own OpenAPI schema: no generated request may get a 5xx.

The schema comes from the app itself (`/api/schema/`), and requests go to the app
in-process through WSGI, so they run in the test's thread on the test database's
connection. The tests are transactional: intake commits for real (on_commit pushes
included, as in production) and the tables are emptied after each operation's run.
Examples of one operation share the database, as a partner's retries would.

Bounded and deterministic (`derandomize`): about five hundred cases, the same each run,
in under ten seconds. A failure prints the request that caused it as a curl command;
requests found that way stay below as plain regression tests, so a fix is pinned even
if a later schema change makes the fuzzer ask other questions.
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass
from typing import Any

import pytest
import schemathesis
from django.test import Client
from hypothesis import HealthCheck, Phase, settings

from incidents.catalogue import EVENT_TYPES
from incidents.models import Incident
from incidents.services import EventIn, incident_cancel, incident_intake
from partners.models import Partner
from partners.services import api_key_create
from smartcity.wsgi import application
from tests.partners.conftest import SEOUL_CITY_HALL, event_body, partner_with_agreement

pytestmark = pytest.mark.django_db(transaction=True)

schema = schemathesis.openapi.from_wsgi("/api/schema/?format=json", application)
CHECKS: list[schemathesis.CheckFunction] = [schemathesis.checks.not_a_server_error]
POLICE_TYPES = sorted(code for code, event_type in EVENT_TYPES.items() if event_type.kind == "police")
SETTINGS: dict[str, Any] = {
    "derandomize": True,
    "deadline": None,
    "database": None,  # no example database: every run asks exactly the same questions
    # Fixtures are per operation, not per example, on purpose (see the module docstring).
    "suppress_health_check": [HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
}


@schemathesis.serializer("application/cap+xml")
def cap_document(ctx: schemathesis.SerializationContext, value: Any) -> bytes:
    """The CAP endpoint's body is a string in the schema: send it as the raw document."""
    return value if isinstance(value, bytes) else str(value).encode()


@dataclass
class FuzzTarget:
    key: str
    # The key holder's open incident, its cancelled one (moves → 409), another partner's (→ 404).
    incident_ids: list[int]


@pytest.fixture
def target(center_factory, camera_factory) -> FuzzTarget:
    """A police partner with a key, a centre over Seoul with cameras, and incidents to aim at."""
    center_factory("seoul", (126.76, 37.42, 127.18, 37.70), name="서울")
    for step in (-0.002, 0.0, 0.002):
        camera_factory(lat=SEOUL_CITY_HALL["lat"] + step, lon=SEOUL_CITY_HALL["lon"] - step)
    police = partner_with_agreement("police-fuzz", "police")
    police.rate_limit_per_minute = 1_000_000  # the limiter has tests of its own
    police.save(update_fields=["rate_limit_per_minute"])
    _, key = api_key_create(partner=police)
    fire = partner_with_agreement("fire-fuzz", "fire")
    cancelled = incident_for(police, "fuzz-2", "police.emergency_video")
    incident_cancel(incident=cancelled)
    incidents = [
        incident_for(police, "fuzz-1", "police.emergency_video").pk,
        cancelled.pk,
        incident_for(fire, "fuzz-3", "fire.dispatch").pk,
    ]
    return FuzzTarget(key=key, incident_ids=incidents)


def incident_for(partner: Partner, external_id: str, event_type: str) -> Incident:
    event = EventIn(
        external_id=external_id,
        type=event_type,
        occurred_at=dt.datetime.now(dt.UTC),
        lat=SEOUL_CITY_HALL["lat"],
        lon=SEOUL_CITY_HALL["lon"],
    )
    incident, _ = incident_intake(partner=partner, event=event)
    return incident


def aim_at_real_incidents(case: schemathesis.Case, incident_ids: list[int]) -> None:
    """Random ids nearly all miss (404): send three in four to incidents that exist instead.

    That reaches the paths behind the lookup: reading, moving and cancelling an incident,
    moving a cancelled one (409), and asking for another partner's (404).
    """
    value = case.path_parameters.get("incident_id") if case.path_parameters else None
    if isinstance(value, str) and value.isascii() and value.isdigit():
        value = int(value)  # schemathesis's coverage cases send "0" for every body variant
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0 and value % 4 != 3:
        case.path_parameters["incident_id"] = incident_ids[value % len(incident_ids)]


def aim_at_intake(case: schemathesis.Case) -> None:
    """Random events are nearly all refused (a time in the future or centuries ago, a type
    police may not send), so intake itself is rarely reached: every other generated event
    becomes a police event of a minute ago, its other fields as generated."""
    body = case.body
    if case.operation.path != "/api/v1/events/" or not isinstance(body, dict):
        return
    when = body.get("occurred_at")
    if isinstance(when, str) and len(when) % 2 == 0:
        body["occurred_at"] = (dt.datetime.now(dt.UTC) - dt.timedelta(minutes=1)).isoformat()
        body["type"] = POLICE_TYPES[len(when) % len(POLICE_TYPES)]


@schema.parametrize()
@settings(max_examples=40, **SETTINGS)
def test_partner_api_with_a_valid_key_never_answers_5xx(case: schemathesis.Case, target: FuzzTarget) -> None:
    aim_at_real_incidents(case, target.incident_ids)
    aim_at_intake(case)
    case.call_and_validate(headers={"Authorization": f"Bearer {target.key}"}, checks=CHECKS)


@schema.parametrize()
# Without a key every request stops at authentication, so schemathesis's per-field
# coverage cases would only repeat the same 401: random cases are enough here.
@settings(max_examples=8, phases=[Phase.generate, Phase.shrink], **SETTINGS)
def test_partner_api_without_a_key_never_answers_5xx(case: schemathesis.Case) -> None:
    case.headers.pop("Authorization", None)  # case-insensitive: whatever spelling was generated
    case.call_and_validate(checks=CHECKS)


# --- requests the fuzzer found ------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "field", "when"),
    [
        # PostgreSQL keeps UTC offsets up to ±15:59; Python accepts up to ±23:59.
        ("/api/v1/events/", "occurred_at", "0320-01-25T05:17:03.473583-20:26"),
        ("/api/v1/events/{id}/locations/", "observed_at", "0119-06-24T07:49:59.32+22:48"),
        # Year 1 at +05:00 is 1 BC in UTC: stored fine, but psycopg cannot read it back.
        ("/api/v1/events/", "occurred_at", "0001-01-01T00:00:00+05:00"),
        ("/api/v1/events/{id}/locations/", "observed_at", "0001-01-01T00:00:00+05:00"),
    ],
)
def test_times_the_database_cannot_hold_are_refused_not_5xx(
    target: FuzzTarget, client: Client, path: str, field: str, when: str
) -> None:
    headers = {"Authorization": f"Bearer {target.key}"}
    own = target.incident_ids[0]
    body: dict[str, Any] = (
        event_body(**{field: when}) if field == "occurred_at" else {"lat": 37.5, "lon": 127.0, field: when}
    )
    sent = client.post(
        path.format(id=own), json.dumps(body), content_type="application/json", headers=headers
    )
    incident_id = sent.json().get("id", own) if sent.status_code < 300 else own
    read_back = client.get(f"/api/v1/events/{incident_id}/", headers=headers)

    assert sent.status_code < 500, sent.content[:200]
    assert read_back.status_code == 200, read_back.content[:200]
