"""Security headers on every page, and log lines that carry the request's id."""

from __future__ import annotations

import json
import logging

import pytest
from django.test import Client

from smartcity.logs import JsonFormatter, RequestIdFilter, request_id_var

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize("path", ["/login/", "/healthz", "/api/v1/events/", "/no-such-page/"])
def test_every_response_forbids_inline_scripts_and_framing(client: Client, path: str) -> None:
    response = client.get(path)
    policy = response.headers["Content-Security-Policy"]
    assert "script-src 'self';" in policy
    assert "frame-ancestors 'none'" in policy
    assert "media-src 'self' blob:" in policy  # live video plays from MediaSource blobs
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.headers["X-Frame-Options"] == "DENY"
    assert "camera=()" in response.headers["Permissions-Policy"]


def test_admin_keeps_a_policy_loose_enough_for_its_own_inline_scripts(client: Client) -> None:
    policy = client.get("/admin/login/").headers["Content-Security-Policy"]
    assert "script-src 'self' 'unsafe-inline'" in policy
    assert "frame-ancestors 'none'" in policy


def test_the_callers_request_id_comes_back_and_reaches_json_logs(client: Client) -> None:
    response = client.get("/login/", HTTP_X_REQUEST_ID="trace-abc.123")
    assert response.headers["X-Request-ID"] == "trace-abc.123"

    token = request_id_var.set("trace-abc.123")
    try:
        record = logging.LogRecord(
            "incidents", logging.WARNING, __file__, 1, "push to %s failed", ("c.1",), None
        )
        RequestIdFilter().filter(record)
        line = json.loads(JsonFormatter().format(record))
    finally:
        request_id_var.reset(token)
    assert line["request_id"] == "trace-abc.123"
    assert line["message"] == "push to c.1 failed"
    assert line["level"] == "WARNING"


def test_a_nonsense_request_id_is_replaced(client: Client) -> None:
    response = client.get("/login/", HTTP_X_REQUEST_ID="<script>" * 3)
    assert len(response.headers["X-Request-ID"]) == 32
