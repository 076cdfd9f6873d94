"""Security headers on every page, and log lines that carry the request's id."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from urllib.parse import urlsplit

import pytest
from django.http import HttpRequest, HttpResponse, HttpResponseBase
from django.test import Client
from django.urls import path

from cameras.models import StaffRole
from incidents.catalogue import PartnerKind
from partners.sharing import Trigger, share_decide, share_revoke, share_viewer_url
from smartcity.logs import JsonFormatter, RequestIdFilter, request_id_var
from smartcity.urls import urlpatterns as project_urlpatterns
from tests.partners.conftest import partner_with_agreement
from tests.shares.conftest import incident_of, operator_of

pytestmark = pytest.mark.django_db


def boom(request: HttpRequest) -> HttpResponse:
    raise RuntimeError("a bug in some view")


# This module doubles as a URLconf (pytest.mark.urls below): the project's URLs plus one
# view that fails, so the 500 page is checked like every other page.
urlpatterns = [path("test-boom/", boom), *project_urlpatterns]


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


STRICT_SCRIPTS = "script-src 'self';"


def assert_security_headers(
    response: HttpResponseBase, *, relaxed: bool = False, coop: str = "same-origin"
) -> None:
    policy = response.headers["Content-Security-Policy"]
    if relaxed:  # the admin's and the API docs' own inline scripts
        assert "script-src 'self' 'unsafe-inline'" in policy
    else:
        assert STRICT_SCRIPTS in policy
        assert "connect-src 'self'" in policy  # sockets and fetches to this origin only
        assert "form-action 'self'" in policy
    for directive in ("default-src 'self'", "frame-ancestors 'none'", "object-src 'none'", "base-uri 'self'"):
        assert directive in policy
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.headers["X-Frame-Options"] == "DENY"
    # A share link's token is in its path: it must never travel to another origin (tiles) as a Referer.
    assert response.headers["Referrer-Policy"] == "same-origin"
    assert response.headers["Cross-Origin-Opener-Policy"] == coop
    assert "camera=()" in response.headers["Permissions-Policy"]
    assert "geolocation=()" in response.headers["Permissions-Policy"]


@pytest.fixture
def centre(center_factory):
    return center_factory("seoul-junggu", (126.96, 37.54, 127.03, 37.58))


@pytest.fixture
def as_role(centre) -> Callable[[str], Client]:
    def login(role: str) -> Client:
        client = Client()
        client.force_login(operator_of(centre, f"user-{role}", role=role))
        return client

    return login


@pytest.fixture
def share_link(centre):
    police = partner_with_agreement("police-112", PartnerKind.POLICE)
    incident = incident_of(police, centre, "police.emergency_video")
    decision = share_decide(incident=incident, partner=police, trigger=Trigger.EVENT)
    assert decision.share is not None
    return decision.share, urlsplit(share_viewer_url(decision.share)).path


@pytest.mark.parametrize(
    ("page", "role", "status"),
    [
        ("/", StaffRole.OPERATOR, 200),  # the dashboard
        ("/centres/", StaffRole.OPERATOR, 200),
        ("/audit/ledger/", StaffRole.PRIVACY_OFFICER, 200),
        ("/audit/ledger/?format=csv", StaffRole.PRIVACY_OFFICER, 200),
        ("/audit/ledger/", StaffRole.OPERATOR, 403),  # a page refused to the wrong role
        ("/", None, 302),  # not logged in: sent to the login page
        ("/login/", None, 200),
        ("/no-such-page/", StaffRole.OPERATOR, 404),
        ("/api/v1/events/", None, 401),
        ("/api/schema/", None, 200),
    ],
)
def test_every_page_class_sends_the_strict_policy_and_the_other_headers(as_role, page, role, status):
    client = as_role(role) if role else Client()
    response = client.get(page)
    assert response.status_code == status
    assert_security_headers(response)


@pytest.mark.parametrize(
    ("page", "as_admin", "coop"),
    [
        ("/admin/", True, "same-origin"),
        ("/admin/partners/partner/", True, "same-origin"),
        ("/admin/login/", False, "same-origin"),
        # drf-spectacular's Swagger UI view asks for "unsafe-none" (its OAuth2 pop-up, unused
        # here); the page shows only the public schema, so there is no opener to protect.
        ("/api/docs/", False, "unsafe-none"),
    ],
)
def test_admin_and_api_docs_get_the_relaxed_policy_and_still_every_other_header(
    admin_client, page, as_admin, coop
):
    response = (admin_client if as_admin else Client()).get(page)
    assert response.status_code == 200
    assert_security_headers(response, relaxed=True, coop=coop)


def test_the_partner_viewer_sends_the_headers_open_ended_and_unknown(share_link, centre):
    share, link = share_link
    open_page = Client().get(link)
    unknown = Client().get("/shared/" + "A" * 43 + "/")
    share_revoke(user=operator_of(centre, "revoker"), share_id=share.pk)
    ended = Client().get(link)

    assert [open_page.status_code, unknown.status_code, ended.status_code] == [200, 404, 410]
    for response in (open_page, unknown, ended):
        assert_security_headers(response)
        assert "no-store" in response.headers["Cache-Control"]  # no proxy or browser cache keeps it
        assert "noindex" in response.headers["X-Robots-Tag"]
    state = Client().get(link + "state.json")
    assert_security_headers(state)


def test_a_csrf_refusal_is_a_403_page_with_the_headers():
    response = Client(enforce_csrf_checks=True).post("/login/", {"username": "x", "password": "y"})
    assert response.status_code == 403
    assert_security_headers(response)


@pytest.mark.urls(__name__)
def test_the_500_page_carries_the_headers_too():
    response = Client(raise_request_exception=False).get("/test-boom/")
    assert response.status_code == 500
    assert_security_headers(response)
    assert b"a bug in some view" not in response.content  # no traceback for the public


def test_static_files_carry_the_policy_and_nosniff():
    # WhiteNoise answers before the clickjacking middleware; CSP's frame-ancestors covers framing.
    response = Client().get("/static/js/player.js")
    assert response.status_code == 200
    assert STRICT_SCRIPTS in response.headers["Content-Security-Policy"]
    assert "frame-ancestors 'none'" in response.headers["Content-Security-Policy"]
    assert response.headers["X-Content-Type-Options"] == "nosniff"


def test_share_tokens_never_reach_a_log_line() -> None:
    token = "Zm9vYmFyYmF6cXV4MTIzNDU2Nzg5MGFiY2RlZmdoaWprbG1u"
    record = logging.LogRecord(
        "django.request", logging.WARNING, __file__, 1, "Forbidden: %s", (f"/shared/{token}/",), None
    )
    RequestIdFilter().filter(record)
    assert token not in JsonFormatter().format(record)
    assert record.getMessage() == "Forbidden: /shared/***/"
    snapshot = f"GET /cameras/7/snapshot.jpg?share={token}&x=1"
    record = logging.LogRecord("x", logging.INFO, __file__, 1, snapshot, None, None)
    RequestIdFilter().filter(record)
    assert record.getMessage() == "GET /cameras/7/snapshot.jpg?share=***&x=1"
