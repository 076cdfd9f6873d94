"""Outbound webhooks against a local HTTP server, delivered by a real Celery worker."""

from __future__ import annotations

import hashlib
import hmac
import json
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from incidents.catalogue import PartnerKind
from incidents.models import Incident
from partners.models import Partner, WebhookDelivery, WebhookMessage
from partners.sharing import Trigger, share_decide, share_revoke
from partners.webhooks import backoff_s, webhook_deliver, webhook_enqueue
from tests.fixtures.celery_worker import (
    CeleryWorker,
    celery_worker,  # noqa: F401  (fixture)
)
from tests.partners.conftest import partner_with_agreement
from tests.shares.conftest import incident_of, operator_of

SECRET = "police-webhook-secret-0123456789"


@dataclass
class Received:
    headers: dict[str, str]
    body: bytes
    status: int


@dataclass
class PartnerServer:
    """A partner's webhook endpoint that fails the first `failures` requests with 500."""

    failures: int = 0
    received: list[Received] = field(default_factory=list)
    server: ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        assert self.server is not None
        return f"http://127.0.0.1:{self.server.server_address[1]}/hooks/safety-net"

    def succeeded(self) -> list[Received]:
        return [r for r in self.received if r.status == 200]


@pytest.fixture
def partner_server() -> Iterator[PartnerServer]:
    state = PartnerServer()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"]))
            status = 500 if len(state.received) < state.failures else 200
            state.received.append(Received(dict(self.headers.items()), body, status))
            self.send_response(status)
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    state.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=state.server.serve_forever, daemon=True)
    thread.start()
    yield state
    state.server.shutdown()
    state.server.server_close()


@pytest.fixture
def webhook_worker(monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest) -> CeleryWorker:
    # The worker reads these at start: plain HTTP to the local server, quick retries.
    monkeypatch.setenv("WEBHOOK_REQUIRE_HTTPS", "false")
    monkeypatch.setenv("WEBHOOK_BACKOFF_BASE_S", "0.3")
    return request.getfixturevalue("celery_worker")


def signature_ok(received: Received) -> bool:
    timestamp = received.headers["X-Timestamp"]
    expected = hmac.new(
        SECRET.encode(), timestamp.encode() + b"." + received.body, hashlib.sha256
    ).hexdigest()
    return hmac.compare_digest(received.headers["X-Signature"], f"sha256={expected}")


def wait_for(condition: Any, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.1)


def police_incident(url: str, center_factory) -> Incident:
    center = center_factory("junggu", (126.96, 37.54, 127.03, 37.58))
    police = partner_with_agreement("police-112", PartnerKind.POLICE, secret=SECRET)
    Partner.objects.filter(pk=police.pk).update(webhook_url=url)
    police.refresh_from_db()
    return incident_of(police, center, "police.emergency_video", summary="강도 신고")


@pytest.mark.django_db(transaction=True)
def test_share_created_is_delivered_once_after_two_failures_signed_with_one_idempotency_key(
    partner_server, webhook_worker, center_factory
):
    partner_server.failures = 2
    incident = police_incident(partner_server.url, center_factory)

    decision = share_decide(incident=incident, partner=incident.partner, trigger=Trigger.EVENT)
    assert decision.share is not None

    message = WebhookMessage.objects.get()
    wait_for(lambda: WebhookMessage.objects.get().state == WebhookMessage.State.DELIVERED, timeout=20)
    statuses = [r.status for r in partner_server.received]
    assert statuses == [500, 500, 200]
    assert len(partner_server.succeeded()) == 1  # exactly one effective delivery
    assert {r.headers["Idempotency-Key"] for r in partner_server.received} == {message.idempotency_key}
    assert all(signature_ok(r) for r in partner_server.received)
    body = json.loads(partner_server.succeeded()[0].body)
    assert body["event"] == "share.created"
    assert body["data"]["share"]["viewer_url"].startswith("http://127.0.0.1:8000/shared/")
    assert body["data"]["share"]["external_id"] == incident.external_id
    attempts = list(
        WebhookDelivery.objects.order_by("attempt").values_list("attempt", "status_code", "succeeded")
    )
    assert attempts == [(1, 500, False), (2, 500, False), (3, 200, True)]
    time.sleep(1.0)  # nothing more arrives: a delivered message is never sent again
    assert len(partner_server.received) == 3


@pytest.mark.django_db(transaction=True)
def test_revocation_and_dispatch_requests_reach_the_partner(partner_server, webhook_worker, center_factory):
    incident = police_incident(partner_server.url, center_factory)
    user = operator_of(incident.center, "kim")
    decision = share_decide(incident=incident, partner=incident.partner, trigger=Trigger.OPERATOR, user=user)
    assert decision.share is not None
    share_revoke(user=user, share_id=decision.share.pk)
    from incidents.workflow import incident_request_dispatch

    incident_request_dispatch(user=user, incident_id=incident.pk, target="112", reason="순찰차 요청")

    wait_for(lambda: not WebhookMessage.objects.exclude(state=WebhookMessage.State.DELIVERED).exists(), 20)
    events = [json.loads(r.body) for r in partner_server.received]
    kinds = sorted(e["event"] for e in events)
    assert kinds == ["dispatch.requested", "incident.status", "share.created", "share.created", "share.ended"]
    dispatch = next(e for e in events if e["event"] == "dispatch.requested")["data"]
    assert dispatch["incident"]["summary"] == "강도 신고" and dispatch["target"] == "112"
    assert dispatch["share"]["viewer_url"].startswith("http://127.0.0.1:8000/shared/")
    ended = next(e for e in events if e["event"] == "share.ended")["data"]["share"]
    assert ended["end_reason"] == "revoked"


@pytest.mark.django_db
def test_a_dead_partner_costs_one_bounded_timeout_and_is_retried_later(settings, monkeypatch, center_factory):
    settings.WEBHOOK_TIMEOUT_S = 0.5
    settings.WEBHOOK_REQUIRE_HTTPS = False
    scheduled: list[tuple[int, float]] = []
    monkeypatch.setattr(
        "partners.webhooks.webhook_schedule", lambda pk, countdown=0: scheduled.append((pk, countdown))
    )
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)  # accepts the connection, never answers
    try:
        partner = Partner.objects.create(
            slug="dead",
            name="dead",
            kind="police",
            webhook_url=f"http://127.0.0.1:{listener.getsockname()[1]}/",
        )
        message = webhook_enqueue(partner=partner, event="incident.status", payload={"x": 1})
        assert message is not None
        started = time.monotonic()
        assert webhook_deliver(message_id=message.pk) == "retry"
        took = time.monotonic() - started
    finally:
        listener.close()
    assert took < 1.5
    attempt = WebhookDelivery.objects.get()
    assert attempt.status_code is None and "timeout" in attempt.error.lower()
    assert scheduled and scheduled[-1][0] == message.pk and scheduled[-1][1] > 0
    assert webhook_deliver(message_id=message.pk) == "skipped"  # not due yet: nobody hammers the partner


def test_backoff_doubles_with_jitter_and_is_capped(settings):
    settings.WEBHOOK_BACKOFF_BASE_S = 2
    settings.WEBHOOK_BACKOFF_MAX_S = 60
    for attempt, base in ((1, 2), (2, 4), (3, 8), (10, 60)):
        delays = {backoff_s(attempt) for _ in range(20)}
        assert all(0.5 * base <= d <= 1.5 * base for d in delays)
        assert len(delays) > 1  # jittered


@pytest.mark.django_db
def test_an_https_only_deployment_refuses_plain_http_urls(settings, monkeypatch):
    settings.WEBHOOK_REQUIRE_HTTPS = True
    monkeypatch.setattr("partners.webhooks.webhook_schedule", lambda pk, countdown=0: None)
    partner = Partner.objects.create(slug="p", name="p", kind="police", webhook_url="http://127.0.0.1:9/")
    message = webhook_enqueue(partner=partner, event="incident.status", payload={})
    assert message is not None
    webhook_deliver(message_id=message.pk)
    assert WebhookDelivery.objects.get().error == "webhook URL must use https"
