"""The partner viewer's saved clips in Debian's Chromium, against a real Daphne: listed, updated, downloaded."""

from __future__ import annotations

import datetime as dt
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from django.db import connections
from playwright.sync_api import expect

from cameras.models import Camera
from cameras.selectors import make_point
from incidents.models import Incident
from partners.models import AgreementEventType
from partners.services import api_key_create
from tests.browser.test_dashboard import chromium, post_event
from tests.clips.conftest import make_clip
from tests.fixtures.live_server import LiveDaphne, live_env
from tests.partners.conftest import partner_with_agreement

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

CONTENT = b"\x00\x00\x00\x18ftypisom a saved clip"


@pytest.fixture
def storage(tmp_path, settings) -> Path:
    settings.CLIP_STORAGE_DIR = tmp_path / "clips"
    return Path(settings.CLIP_STORAGE_DIR)


@pytest.fixture
def daphne(storage) -> Iterator[LiveDaphne]:
    server = LiveDaphne(live_env(CLIP_STORAGE_DIR=str(storage)))
    server.start()
    try:
        yield server
    finally:
        server.stop()


def clip_in_thread(camera: Camera, storage: Path, incident: Incident) -> None:
    """A clip saved while the page is open (Playwright's loop forbids the ORM in this thread)."""

    def save() -> None:
        try:
            make_clip(camera, storage, expires_in=dt.timedelta(days=20), incident=incident)
        finally:
            connections.close_all()

    worker = threading.Thread(target=save)
    worker.start()
    worker.join(10)


def test_the_viewer_lists_saved_clips_as_they_appear_and_they_download(
    daphne: LiveDaphne, storage: Path, center_factory: Any
) -> None:
    centre = center_factory("seoul-junggu", (126.96, 37.54, 127.03, 37.58), name="서울 중구")
    hall = Camera.objects.create(
        code="H1", name="시청 1", center=centre, location=make_point(lat=37.5664, lon=126.9779)
    )
    police = partner_with_agreement("police-112", "police")
    AgreementEventType.objects.filter(agreement__partner=police).update(allow_clips=True)
    _, key = api_key_create(partner=police)
    created = post_event(daphne, key, location={"lat": 37.5664, "lon": 126.9779})
    incident = Incident.objects.get(pk=created["id"])
    first = make_clip(hall, storage, expires_in=dt.timedelta(days=20), incident=incident, content=CONTENT)
    link = created["shares"][0]["viewer_url"].replace("http://127.0.0.1:8000", daphne.url)

    with chromium() as browser:
        page = browser.new_page()
        assert page.goto(link).status == 200
        items = page.locator("#shared-clip-list li")
        expect(items).to_have_count(1)
        expect(items.first).to_contain_text("시청 1")
        href = items.first.locator("a").get_attribute("href")
        download = page.request.get(f"{daphne.url}{href}")
        status, body = download.status, download.body()

        clip_in_thread(hall, storage, incident)  # the page polls state.json every second
        expect(items).to_have_count(2, timeout=4000)

    assert href == f"/shared/{link.rstrip('/').rsplit('/', 1)[1]}/clips/{first.pk}/"
    assert (status, body) == (200, CONTENT)
