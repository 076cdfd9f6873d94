"""The operator dashboard in Debian's Chromium, against a real Daphne, PostGIS and Redis.

Two operators of one centre are logged in; a partner posts an event through the API; it
appears on both screens without a reload; operator A acknowledges it and operator B sees
who did. Screenshots of both screens are kept in test-artifacts/dashboard-operator-a.png
and test-artifacts/dashboard-operator-b.png for a human to look at.
"""

from __future__ import annotations

import json
import re
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.hashers import PBKDF2PasswordHasher
from django.contrib.auth.models import AbstractBaseUser
from playwright.sync_api import expect, sync_playwright

from cameras.models import Camera, CameraStatus, Center, StaffProfile, StaffRole
from cameras.selectors import make_point
from partners.services import api_key_create
from tests.browser.helpers import wait_js
from tests.fixtures.live_server import LiveDaphne, live_daphne  # noqa: F401  (fixture)
from tests.partners.conftest import SEOUL_CITY_HALL, event_body, partner_with_agreement

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "test-artifacts"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
]
PASSWORD = "pw-long-enough-123"
WAIT_MS = 10_000


@contextmanager
def chromium() -> Iterator[Any]:
    """Debian's Chromium, headless. Never a downloaded browser; no browser is a failure, not a skip.

    Playwright's sync API runs an event loop in this thread, and Django refuses database
    calls while one runs: write every row before entering.
    """
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: install Debian's chromium package (apt-get install chromium)")
    with sync_playwright() as playwright:
        try:
            browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        except Exception as exc:
            pytest.fail(f"Chromium at {CHROMIUM} did not start: {exc}")
        try:
            yield browser
        finally:
            browser.close()


def operator_of(center: Center, username: str) -> AbstractBaseUser:
    user = get_user_model().objects.create_user(username)
    # The server process uses the production hashers, not the tests' fast MD5 one; a
    # PBKDF2 hash with few iterations is valid there and cheap here.
    hasher = PBKDF2PasswordHasher()
    user.password = hasher.encode(PASSWORD, hasher.salt(), iterations=1000)
    user.save(update_fields=["password"])
    StaffProfile.objects.create(user=user, role=StaffRole.OPERATOR, center=center)
    return user


def cameras_around_city_hall(center: Center) -> list[Camera]:
    lat, lon = SEOUL_CITY_HALL["lat"], SEOUL_CITY_HALL["lon"]
    spots = [
        (0.0003, 0.0002, 90.0, CameraStatus.ONLINE),
        (-0.0004, 0.0005, 270.0, CameraStatus.ONLINE),
        (0.0006, -0.0006, None, CameraStatus.OFFLINE),
        (-0.0009, -0.0003, 0.0, CameraStatus.UNKNOWN),
    ]
    cameras = []
    for n, (dlat, dlon, bearing, status) in enumerate(spots, start=1):
        cameras.append(
            Camera.objects.create(
                code=f"BROWSER-{n}",
                name=f"시청 주변 카메라 {n}",
                center=center,
                location=make_point(lat=lat + dlat, lon=lon + dlon),
                status=status,
                bearing_deg=bearing,
                fov_deg=90,
                range_m=60,
            )
        )
    return cameras


def post_event(server: LiveDaphne, key: str, **fields: Any) -> dict[str, Any]:
    body = event_body(**fields)
    request = urllib.request.Request(  # noqa: S310 (our own http:// server)
        f"{server.url}/api/v1/events/",
        data=json.dumps(body).encode(),
        headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json"},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310
        assert response.status == 201
        return dict(json.loads(response.read()))


def log_in(page: Any, server: LiveDaphne, username: str) -> None:
    response = page.goto(f"{server.url}/login/")
    assert response is not None and response.status == 200, (
        f"/login/ answered {response and response.status}; did collectstatic run?\n{server.output()}"
    )
    form = page.locator('form[action="/login/"]')  # the header's language buttons are submit buttons too
    form.locator('input[name="username"]').fill(username)
    form.locator('input[name="password"]').fill(PASSWORD)
    form.locator('button[type="submit"]').click()
    page.wait_for_url(f"{server.url}/")
    expect(page.locator("#ws-status")).to_have_attribute("data-state", "open")
    expect(page.locator("#ws-status")).to_have_text("연결됨")


def test_event_reaches_both_operators_and_acknowledgement_is_seen_by_the_other(
    live_daphne: LiveDaphne,  # noqa: F811
    center_factory: Any,
) -> None:
    centre = center_factory("seoul-junggu", (126.96, 37.54, 127.03, 37.58), name="서울 중구 통합관제센터")
    operator_of(centre, "op-a")
    operator_of(centre, "op-b")
    cameras_around_city_hall(centre)
    police = partner_with_agreement("police-112", "police")
    _, key = api_key_create(partner=police)

    with chromium() as browser:
        errors: list[str] = []
        pages = []
        for username in ("op-a", "op-b"):
            # The browser's own zone is UTC: the page must still show Seoul time.
            context = browser.new_context(viewport={"width": 1600, "height": 900}, timezone_id="UTC")
            page = context.new_page()
            page.on("pageerror", lambda exc, who=username: errors.append(f"{who}: {exc}"))
            # The Content-Security-Policy must not block anything the dashboard needs.
            page.on(
                "console",
                lambda msg, who=username: (
                    errors.append(f"{who}: {msg.text}") if "Content Security Policy" in msg.text else None
                ),
            )
            page.set_default_timeout(WAIT_MS)
            log_in(page, live_daphne, username)
            pages.append(page)
        page_a, page_b = pages
        expect(page_a.locator("#clock")).to_have_text(re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d KST$"))
        expect(page_a.locator("#queue-empty")).to_be_visible()

        # A routine search first, then an emergency: the emergency goes on top.
        routine = post_event(
            live_daphne, key, type="police.wanted_vehicle", address="을지로", summary="수배차량"
        )
        incident = post_event(live_daphne, key, address="서울특별시 중구 세종대로 110", summary="강도 신고")
        row = f'#queue [data-incident-id="{incident["id"]}"]'

        # On both screens without a reload, flashing: priority 1 and nobody has taken it yet.
        for page in pages:
            expect(page.locator("#queue > li")).to_have_count(2)
            expect(page.locator("#queue > li").first).to_have_attribute(
                "data-incident-id", str(incident["id"])
            )
            expect(page.locator("#queue > li").last).to_have_attribute("data-incident-id", str(routine["id"]))
            expect(page.locator(row)).to_have_class(re.compile(r"\bflash\b"))
            expect(page.locator(f"{row} .title")).to_have_text("112 긴급영상 요청")
            expect(page.locator(f"{row} .badge")).to_have_text("신규")
            expect(page.locator(f"{row} .age")).to_have_text(re.compile(r"^00:0\d$"))
        # …and on A's map, where the tiles are unreachable: the offline map still shows it.
        expect(page_a.locator(f'#map [data-incident-marker="{incident["id"]}"]')).to_be_visible()
        wait_js(page_a, "window.dashboard.tilesOffline() && window.dashboard.cameraCount() === 4")
        assert page_a.evaluate("window.dashboard.beeps()") == 1  # the emergency, not the routine search

        # B is looking at the incident; A takes it.
        page_b.click(row)
        expect(page_b.locator('#panel [data-field="status"]')).to_have_attribute("data-status", "new")
        page_a.click(row)
        expect(page_a.locator('#panel [data-field="cameras"] li[data-camera-id]')).to_have_count(4)
        page_a.click('#panel button[data-action="acknowledge"]')
        expect(page_a.locator('#panel [data-field="status"]')).to_have_attribute(
            "data-status", "acknowledged"
        )

        # B sees who took it, without a reload.
        status_b = page_b.locator('#panel [data-field="status"]')
        expect(status_b).to_have_attribute("data-status", "acknowledged")
        expect(status_b).to_have_text("접수")
        expect(page_b.locator('#panel [data-field="acknowledged_by"]')).to_have_text("op-a")
        expect(page_b.locator(f"{row} .badge")).to_have_text("접수")
        expect(page_b.locator(row)).not_to_have_class(re.compile(r"\bflash\b"))
        expect(page_b.locator('#panel button[data-action="acknowledge"]')).to_be_disabled()
        expect(page_b.locator('#panel [data-field="timeline"] li', has_text="op-a")).to_have_count(1)

        ARTIFACTS.mkdir(exist_ok=True)
        page_a.wait_for_timeout(700)  # let the fly-to animation settle for the picture
        page_a.screenshot(path=str(ARTIFACTS / "dashboard-operator-a.png"))
        page_b.screenshot(path=str(ARTIFACTS / "dashboard-operator-b.png"))
        assert not errors, f"JavaScript errors: {errors}"


def test_operator_saves_the_next_30_seconds_of_a_camera_from_the_incident_panel(
    live_daphne: LiveDaphne,  # noqa: F811
    center_factory: Any,
) -> None:
    from cameras.models import Clip, ClipMode

    centre = center_factory("seoul-junggu", (126.96, 37.54, 127.03, 37.58), name="서울 중구 통합관제센터")
    operator_of(centre, "op-a")
    with_video, without = cameras_around_city_hall(centre)[:2]
    # Recording "the next 30 s" is a worker's job; the panel only has to ask for it.
    Camera.objects.filter(pk=with_video.pk).update(stream_url="rtsp://127.0.0.1:9/never-opened")
    police = partner_with_agreement("police-112", "police")
    _, key = api_key_create(partner=police)

    with chromium() as browser:
        page = browser.new_context(viewport={"width": 1600, "height": 900}).new_page()
        page.set_default_timeout(WAIT_MS)
        log_in(page, live_daphne, "op-a")
        incident = post_event(live_daphne, key, summary="강도 신고")
        page.click(f'#queue [data-incident-id="{incident["id"]}"]')
        row = page.locator(f'#panel [data-field="cameras"] li[data-camera-id="{with_video.pk}"]')
        expect(row.locator("button.clip-save")).to_have_count(2)  # 지난 30초 / 다음 30초
        expect(
            page.locator(f'#panel [data-field="cameras"] li[data-camera-id="{without.pk}"] button.clip-save')
        ).to_have_count(0)  # no stream, nothing to save
        row.locator('button[data-clip-mode="next"]').click()
        expect(page.locator('#panel [data-field="message"]')).to_have_text("완료")
        ARTIFACTS.mkdir(exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / "dashboard-clip-buttons.png"))

    clip = Clip.objects.get(incident_id=incident["id"])
    assert (clip.camera_id, clip.mode, clip.requested_seconds) == (with_video.pk, ClipMode.NEXT, 30)
