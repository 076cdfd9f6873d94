"""The partner viewer and the operator's share controls in Debian's Chromium, against a real Daphne.

The police report an event; its share link opens the viewer; the subject moves and the
viewer switches cameras by itself; an operator revokes the share from the dashboard and
the viewer closes within two seconds.
"""

from __future__ import annotations

import json
import time
import urllib.request
from typing import Any

import pytest
from playwright.sync_api import expect

from cameras.models import Camera
from cameras.selectors import make_point
from partners.services import api_key_create
from tests.browser.test_dashboard import chromium, log_in, operator_of, post_event
from tests.fixtures.live_server import LiveDaphne, live_daphne  # noqa: F401  (fixture)
from tests.partners.conftest import partner_with_agreement

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def post_json(server: LiveDaphne, key: str, path: str, body: dict[str, Any]) -> int:
    request = urllib.request.Request(  # noqa: S310 (our own http:// server)
        f"{server.url}{path}",
        data=json.dumps(body).encode(),
        headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json"},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310
        return int(response.status)


def test_viewer_follows_the_subject_and_closes_when_the_operator_revokes(
    live_daphne: LiveDaphne,  # noqa: F811
    center_factory: Any,
) -> None:
    centre = center_factory("seoul-junggu", (126.96, 37.54, 127.03, 37.58), name="서울 중구")
    operator_of(centre, "op-a")
    hall = [
        Camera.objects.create(
            code=f"H{n}", name=f"시청 {n}", center=centre, location=make_point(lat=lat, lon=126.9779)
        )
        for n, lat in enumerate((37.5664, 37.5666))
    ]
    station = [
        Camera.objects.create(
            code=f"S{n}", name=f"서울역 {n}", center=centre, location=make_point(lat=lat, lon=126.9707)
        )
        for n, lat in enumerate((37.5547, 37.5549))
    ]
    police = partner_with_agreement("police-112", "police")
    _, key = api_key_create(partner=police)

    with chromium() as browser:
        created = post_event(live_daphne, key, location={"lat": 37.5664, "lon": 126.9779})
        link = created["shares"][0]["viewer_url"].replace("http://127.0.0.1:8000", live_daphne.url)
        partner_page = browser.new_page()
        assert partner_page.goto(link).status == 200
        viewer = partner_page.locator("#shared")
        expect(viewer).to_have_attribute("data-cameras", ",".join(str(c.pk) for c in hall))

        status = post_json(
            live_daphne, key, f"/api/v1/events/{created['id']}/locations/", {"lat": 37.5548, "lon": 126.9707}
        )
        assert status == 201
        expect(viewer).to_have_attribute("data-cameras", ",".join(str(c.pk) for c in station), timeout=3000)

        operator_page = browser.new_page()
        log_in(operator_page, live_daphne, "op-a")
        operator_page.locator(f'#queue [data-incident-id="{created["id"]}"]').first.click()
        share_item = operator_page.locator("#share-controls [data-share-id]")
        expect(share_item).to_have_count(1)
        operator_page.on("dialog", lambda dialog: dialog.accept())
        revoked_at = time.monotonic()
        share_item.locator("button").nth(1).click()

        expect(viewer).to_have_attribute("data-ended", "true", timeout=3000)
        took = time.monotonic() - revoked_at
        expect(partner_page.locator("#shared-ended")).to_be_visible()
        assert partner_page.locator(".shared-camera").count() == 0
        assert took < 2.5, f"the viewer closed {took:.1f} s after the revocation"
        expect(share_item).to_have_class("share ended")
