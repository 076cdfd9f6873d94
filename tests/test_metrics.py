"""`/metrics`: what monitoring scrapes, and that the public cannot."""

from __future__ import annotations

import pytest
from django.test import Client, override_settings

from tests.incidents.conftest import incident_at

pytestmark = pytest.mark.django_db


def samples(text: str) -> dict[str, float]:
    return {
        line.rsplit(" ", 1)[0]: float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line and not line.startswith("#")
    }


def test_monitoring_sees_incident_counts(client: Client, center_factory) -> None:
    centre = center_factory("seoul-junggu", (126.96, 37.54, 127.03, 37.58))
    before = samples(client.get("/metrics", REMOTE_ADDR="127.0.0.1").content.decode())
    incident_at(centre)

    response = client.get("/metrics", REMOTE_ADDR="127.0.0.1")

    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/plain; version=0.0.4")
    after = samples(response.content.decode())
    assert after["safenet_incidents_received_total"] == before["safenet_incidents_received_total"] + 1
    assert after["safenet_events_last_minute"] == before["safenet_events_last_minute"] + 1
    assert after['safenet_incidents_open{status="new"}'] == before['safenet_incidents_open{status="new"}'] + 1
    for name in (
        "safenet_operator_sockets",
        "safenet_video_relays",
        "safenet_video_viewers",
        "safenet_webhook_failures_total",
    ):
        assert name in after


def test_the_public_cannot_read_metrics(client: Client) -> None:
    response = client.get("/metrics", REMOTE_ADDR="203.0.113.9")
    assert response.status_code == 403
    assert b"safenet_" not in response.content


@override_settings(METRICS_TOKEN="scrape-token-0123456789")
def test_a_scraper_with_the_token_may_read_from_anywhere(client: Client) -> None:
    assert (
        client.get("/metrics", REMOTE_ADDR="203.0.113.9", HTTP_AUTHORIZATION="Bearer wrong").status_code
        == 403
    )
    response = client.get(
        "/metrics", REMOTE_ADDR="203.0.113.9", HTTP_AUTHORIZATION="Bearer scrape-token-0123456789"
    )
    assert response.status_code == 200
