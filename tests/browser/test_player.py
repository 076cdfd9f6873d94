"""The live video player (static/js/player.js) in Debian's Chromium, end to end.

Real parts only: gst-rtsp-server cameras, a Daphne process running the relay, PostGIS,
Redis, and Chromium playing the fMP4 through Media Source Extensions. The dashboard test
selects incidents and watches their nearest cameras' tiles play, enlarge and go away.
Screenshots land in test-artifacts/ (player-*.png) for a human to look at.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import expect, sync_playwright

from cameras.models import Camera, CameraStatus, Center
from cameras.selectors import make_point
from partners.services import api_key_create
from tests.browser.helpers import wait_js
from tests.browser.test_dashboard import CHROMIUM, CHROMIUM_ARGS, log_in, operator_of, post_event
from tests.fixtures.live_server import LiveDaphne, live_daphne, live_env  # noqa: F401  (fixture)
from tests.fixtures.rtsp import RtspServer, free_port
from tests.partners.conftest import SEOUL_CITY_HALL, partner_with_agreement

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
PLAY_WAIT_MS = 20_000
ADVANCE_WAIT_S = 6.0
# Muted video may start by itself anyway; this makes sure no policy stands in the way.
PLAYER_ARGS = [*CHROMIUM_ARGS, "--autoplay-policy=no-user-gesture-required"]
JUNGGU = (126.96, 37.54, 127.03, 37.58)
DONGDAEMUN = {"lat": 37.5712, "lon": 127.0095}

# Counts the camera sockets the page has open, so a test can tell tiles were torn down.
SOCKET_PROBE = """
(() => {
  const Native = window.WebSocket;
  window.__cameraSockets = [];
  window.WebSocket = class extends Native {
    constructor(url, protocols) {
      super(url, protocols);
      if (String(url).includes("/ws/cameras/")) window.__cameraSockets.push(this);
    }
  };
  window.openCameraSockets = () =>
    window.__cameraSockets.filter((s) => s.readyState <= 1).map((s) => Number(s.url.match(/cameras\\/(\\d+)/)[1]));
})();
"""

# A fixed-size box with one LivePlayer in it, created on the (logged-in) dashboard page.
OPEN_PLAYER = """
(args) => {
  const box = document.createElement("div");
  box.id = "probe-" + args.cameraId;
  box.style.cssText = "position:fixed;left:8px;top:8px;width:640px;height:360px;z-index:9999";
  document.body.append(box);
  window.probes = window.probes || {};
  window.probes[args.cameraId] = new LivePlayer(box, args);
}
"""

BEHIND = """
(selector) => { const v = document.querySelector(selector); return v.buffered.end(v.buffered.length - 1) - v.currentTime; }
"""
SEEK_BACK = """
(args) => { const v = document.querySelector(args.selector);
            v.currentTime = args.to === "start" ? v.buffered.start(0) : v.buffered.end(v.buffered.length - 1) - args.to; }
"""

PLAYING = """
(selector) => {
  const video = document.querySelector(selector);
  return Boolean(video) && video.readyState >= 2 && video.videoWidth > 0 && video.currentTime > 0;
}
"""


def stream_camera(center: Center, code: str, url: str, *, lat: float, lon: float, **extra: Any) -> Camera:
    return Camera.objects.create(
        code=code,
        name=extra.pop("name", code),
        center=center,
        location=make_point(lat=lat, lon=lon),
        stream_url=url,
        **extra,
    )


def video_state(page: Any, selector: str) -> dict[str, Any]:
    return dict(
        page.evaluate(
            """(selector) => {
                const v = document.querySelector(selector);
                return {readyState: v.readyState, currentTime: v.currentTime, width: v.videoWidth,
                        height: v.videoHeight, paused: v.paused};
            }""",
            selector,
        )
    )


def assert_plays(page: Any, selector: str, width: int, height: int) -> None:
    """readyState ≥ 2, the real picture size, and time moving on by itself."""
    wait_js(page, PLAYING, arg=selector, timeout=PLAY_WAIT_MS)
    first = video_state(page, selector)
    # Half a second of picture within a few seconds: a live stream on a busy machine may
    # stall for a moment at the edge (readyState 2), a frozen player never gets there.
    deadline = time.monotonic() + ADVANCE_WAIT_S
    later = video_state(page, selector)
    while later["currentTime"] - first["currentTime"] <= 0.5 and time.monotonic() < deadline:
        page.wait_for_timeout(250)
        later = video_state(page, selector)
    assert later["readyState"] >= 2, later
    assert (later["width"], later["height"]) == (width, height), later
    assert later["currentTime"] - first["currentTime"] > 0.5, (first, later)
    assert not later["paused"], later


def words(page: Any) -> dict[str, str]:
    """The player's words as the server rendered them (`#player-labels`) in the page's language."""
    return dict(page.evaluate("JSON.parse(document.getElementById('player-labels').textContent)"))


def new_page(browser: Any, errors: list[str]) -> Any:
    context = browser.new_context(viewport={"width": 1600, "height": 900}, timezone_id="UTC")
    context.add_init_script(SOCKET_PROBE)
    page = context.new_page()
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.set_default_timeout(10_000)
    return page


def test_an_operator_watches_an_h264_camera_live(
    live_daphne: LiveDaphne,  # noqa: F811
    rtsp_server: RtspServer,
    center_factory: Callable[..., Center],
) -> None:
    centre = center_factory("seoul-junggu", JUNGGU)
    operator_of(centre, "op-a")
    camera = stream_camera(centre, "LIVE-1", rtsp_server.url(1), name="시청 앞 교차로", **SEOUL_CITY_HALL)

    with chromium_for_video() as browser:
        errors: list[str] = []
        page = new_page(browser, errors)
        log_in(page, live_daphne, "op-a")
        page.evaluate(OPEN_PLAYER, {"cameraId": camera.pk, "cameraName": camera.name})
        root = page.locator(f"#probe-{camera.pk} .live-player")

        assert_plays(page, f"#probe-{camera.pk} video", rtsp_server.width, rtsp_server.height)
        expect(root).to_have_attribute("data-state", "live")
        expect(root).to_have_attribute("data-mime", re.compile(r'^video/mp4; codecs="avc1\.42'))
        expect(root.locator(".live-name")).to_have_text("시청 앞 교차로")
        expect(root.locator(".live-status")).to_have_text(words(page)["live"])
        expect(root.locator(".live-clock")).to_have_text(re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d KST$"))
        # Near the live edge: well under the 3 s at which the player would jump.
        behind = page.evaluate(BEHIND, f"#probe-{camera.pk} video")
        assert 0 <= behind < 1.5, behind
        first_frame_ms = page.evaluate(f"window.probes[{camera.pk}].stats.firstFrameMs")
        print(
            f"first picture {first_frame_ms} ms after the player was created, {behind:.2f} s behind the edge"
        )
        ARTIFACTS.mkdir(exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / "player-h264.png"))

        # destroy() closes the socket and removes everything it built.
        page.evaluate(f"window.probes[{camera.pk}].destroy()")
        expect(page.locator(f"#probe-{camera.pk} .live-player")).to_have_count(0)
        wait_js(page, "window.openCameraSockets().length === 0")
        assert not errors, errors


def test_the_player_keeps_to_the_live_edge_and_comes_back_by_itself(
    live_daphne: LiveDaphne,  # noqa: F811
    rtsp_server_factory: Callable[..., RtspServer],
    center_factory: Callable[..., Center],
) -> None:
    server = rtsp_server_factory(width=320, height=240, fps=15)
    centre = center_factory("seoul-junggu", JUNGGU)
    operator_of(centre, "op-a")
    camera = stream_camera(centre, "EDGE-1", server.url(1), name="복원력 카메라", **SEOUL_CITY_HALL)
    video = f"#probe-{camera.pk} video"
    root_selector = f"#probe-{camera.pk} .live-player"

    with chromium_for_video() as browser:
        errors: list[str] = []
        page = new_page(browser, errors)
        log_in(page, live_daphne, "op-a")
        page.evaluate(OPEN_PLAYER, {"cameraId": camera.pk, "cameraName": camera.name})
        root = page.locator(root_selector)
        assert_plays(page, video, 320, 240)

        # Far behind (a hidden tab, a stall): the player jumps to the newest frame.
        wait_js(
            page,
            "(s) => { const v = document.querySelector(s); return v.buffered.end(0) - v.buffered.start(0) > 4.5; }",
            arg=video,
            timeout=PLAY_WAIT_MS,
        )
        jumps = page.evaluate(f"window.probes[{camera.pk}].stats.jumps")
        page.evaluate(SEEK_BACK, {"selector": video, "to": "start"})
        wait_js(page, f"window.probes[{camera.pk}].stats.jumps > {jumps}", timeout=3000)
        assert page.evaluate(BEHIND, video) < 1.5
        # A little behind: it catches up by playing faster, without a jump.
        page.evaluate(SEEK_BACK, {"selector": video, "to": 2})
        wait_js(page, f"document.querySelector('{video}').playbackRate > 1", timeout=3000)

        # The camera goes away: greyed "offline"; it returns: live again, no reload.
        server.stop()
        expect(root).to_have_attribute("data-state", "offline", timeout=PLAY_WAIT_MS)
        server.restart()
        expect(root).to_have_attribute("data-state", "live", timeout=PLAY_WAIT_MS)
        assert_plays(page, video, 320, 240)

        # The server goes away (a deploy, a crash): the player reconnects by itself.
        port = live_daphne.port
        live_daphne.process.terminate()  # type: ignore[union-attr]
        live_daphne.process.wait(10)  # type: ignore[union-attr]
        expect(root).to_have_attribute("data-state", "connecting", timeout=PLAY_WAIT_MS)
        again = LiveDaphne(live_env())
        again.port, again.url = port, live_daphne.url
        again.start()
        try:
            expect(root).to_have_attribute("data-state", "live", timeout=PLAY_WAIT_MS)
            assert_plays(page, video, 320, 240)
            stats = page.evaluate(f"window.probes[{camera.pk}].stats")
            assert stats["inits"] >= 2 and stats["reconnects"] >= 1, stats
        finally:
            again.stop()
        page.screenshot(path=str(ARTIFACTS / "player-recovered.png"))
        assert not errors, errors


def test_an_h265_camera_shows_codec_not_supported(
    live_daphne: LiveDaphne,  # noqa: F811
    rtsp_server_factory: Callable[..., RtspServer],
    center_factory: Callable[..., Center],
) -> None:
    # A real H.265 RTSP camera: the relay remuxes it and announces `hvc1…`; Debian's
    # Chromium cannot decode HEVC, and the player must say so instead of a black box.
    server = rtsp_server_factory(codec="h265", width=320, height=240, fps=10)
    centre = center_factory("seoul-junggu", JUNGGU)
    operator_of(centre, "op-a")
    camera = stream_camera(centre, "HEVC-1", server.url(1), name="HEVC 카메라", **SEOUL_CITY_HALL)

    with chromium_for_video() as browser:
        errors: list[str] = []
        page = new_page(browser, errors)
        log_in(page, live_daphne, "op-a")
        supported = page.evaluate("MediaSource.isTypeSupported('video/mp4; codecs=\"hvc1.1.6.L60.90\"')")
        page.evaluate(OPEN_PLAYER, {"cameraId": camera.pk, "cameraName": camera.name})
        root = page.locator(f"#probe-{camera.pk} .live-player")

        expect(root).to_have_attribute("data-mime", re.compile(r'codecs="hvc1\.'), timeout=PLAY_WAIT_MS)
        assert supported is False, "this Chromium decodes HEVC: the test no longer shows the unsupported path"
        expect(root).to_have_attribute("data-state", "unsupported")
        expect(root.locator(".live-status")).to_have_text(words(page)["unsupported"])
        expect(root.locator(".live-message")).to_be_visible()
        expect(root.locator(".live-message")).to_contain_text("hvc1.")
        # It gives up on the stream rather than downloading video it cannot show.
        wait_js(page, "window.openCameraSockets().length === 0")
        page.screenshot(path=str(ARTIFACTS / "player-h265-unsupported.png"))
        assert not errors, errors


def test_a_camera_of_another_centre_shows_refused_and_is_not_retried(
    live_daphne: LiveDaphne,  # noqa: F811
    center_factory: Callable[..., Center],
) -> None:
    mine = center_factory("seoul-junggu", JUNGGU)
    theirs = center_factory("anyang", (126.90, 37.37, 126.98, 37.43))
    operator_of(mine, "op-a")
    camera = stream_camera(theirs, "OTHER-1", f"rtsp://127.0.0.1:{free_port()}/cam1", lat=37.40, lon=126.93)

    with chromium_for_video() as browser:
        errors: list[str] = []
        page = new_page(browser, errors)
        log_in(page, live_daphne, "op-a")
        page.evaluate(OPEN_PLAYER, {"cameraId": camera.pk, "cameraName": camera.name})
        root = page.locator(f"#probe-{camera.pk} .live-player")

        expect(root).to_have_attribute("data-state", "refused")
        expect(root).to_have_attribute("data-refusal", "4403")
        expect(root.locator(".live-message")).to_contain_text(words(page)["forbidden"])
        page.wait_for_timeout(2500)  # longer than the first reconnection delay
        attempts = page.evaluate("window.__cameraSockets.length")
        assert attempts == 1, f"a refusal was retried {attempts - 1} times"
        assert not errors, errors


def test_dashboard_tiles_play_the_selected_incidents_cameras_enlarge_and_go_away(
    live_daphne: LiveDaphne,  # noqa: F811
    rtsp_server: RtspServer,
    center_factory: Callable[..., Center],
) -> None:
    centre = center_factory("seoul-junggu", JUNGGU, name="서울 중구 통합관제센터")
    operator_of(centre, "op-a")
    lat, lon = SEOUL_CITY_HALL["lat"], SEOUL_CITY_HALL["lon"]
    near = [
        stream_camera(
            centre,
            "HALL-1",
            rtsp_server.url(1),
            name="시청 정문",
            lat=lat + 0.0002,
            lon=lon,
            status=CameraStatus.ONLINE,
        ),
        stream_camera(
            centre,
            "HALL-2",
            rtsp_server.url(2),
            name="시청 광장",
            lat=lat - 0.0003,
            lon=lon + 0.0002,
            status=CameraStatus.ONLINE,
        ),
        stream_camera(
            centre,
            "HALL-3",
            rtsp_server.url(1),
            name="세종대로",
            lat=lat + 0.0005,
            lon=lon - 0.0004,
            status=CameraStatus.ONLINE,
        ),
        # Health says offline, and nothing answers at its address: greyed, not hidden.
        stream_camera(
            centre,
            "HALL-DOWN",
            f"rtsp://127.0.0.1:{free_port()}/cam1",
            name="고장 카메라",
            lat=lat - 0.0006,
            lon=lon - 0.0005,
            status=CameraStatus.OFFLINE,
        ),
    ]
    # No stream wired: on the map and in the list, but no tile.
    Camera.objects.create(
        code="HALL-MAP",
        name="지도 전용",
        center=centre,
        location=make_point(lat=lat + 0.0008, lon=lon + 0.0008),
    )
    far = stream_camera(
        centre, "DDM-1", rtsp_server.url(2), name="동대문 카메라", **DONGDAEMUN, status=CameraStatus.ONLINE
    )
    police = partner_with_agreement("police-112", "police")
    _, key = api_key_create(partner=police)

    with chromium_for_video() as browser:
        errors: list[str] = []
        page = new_page(browser, errors)
        log_in(page, live_daphne, "op-a")
        first = post_event(live_daphne, key, address="서울특별시 중구 세종대로 110", summary="강도 신고")
        second = post_event(
            live_daphne, key, location=dict(DONGDAEMUN, accuracy_m=10), address="동대문", summary="폭행"
        )
        assert {c["id"] for c in first["cameras"]} >= {c.pk for c in near}

        expect(page.locator("#video-grid")).to_be_hidden()
        page.click(f'#queue [data-incident-id="{first["id"]}"]')
        tiles = page.locator("#video-grid .video-tile")
        expect(tiles).to_have_count(4)
        expect(page.locator("#video-grid")).to_be_visible()
        assert page.evaluate("window.dashboard.videoTiles()") == [c.pk for c in near]
        for camera in near[:3]:
            assert_plays(page, f'.video-tile[data-camera-id="{camera.pk}"] video', 640, 480)
            expect(page.locator(f'.video-tile[data-camera-id="{camera.pk}"] .live-player')).to_have_attribute(
                "data-state", "live"
            )
        down = page.locator(f'.video-tile[data-camera-id="{near[3].pk}"]')
        expect(down).to_have_class(re.compile(r"\boffline\b"))
        expect(down.locator(".live-player")).to_have_attribute("data-state", "offline", timeout=PLAY_WAIT_MS)
        expect(down.locator(".live-status")).to_have_text(words(page)["offline"])
        page.wait_for_timeout(500)
        page.screenshot(path=str(ARTIFACTS / "player-dashboard-grid.png"))

        # Enlarge one picture, then go back to the grid.
        big = page.locator(f'.video-tile[data-camera-id="{near[1].pk}"]')
        big.click()
        expect(big).to_have_class(re.compile(r"\benlarged\b"))
        expect(page.locator(f'.video-tile[data-camera-id="{near[0].pk}"]')).to_be_hidden()
        box = big.bounding_box()
        grid_box = page.locator("#video-grid .video-tiles").bounding_box()
        assert box is not None and grid_box is not None and box["width"] > grid_box["width"] * 0.9
        assert_plays(page, f'.video-tile[data-camera-id="{near[1].pk}"] video', 640, 480)
        page.screenshot(path=str(ARTIFACTS / "player-dashboard-enlarged.png"))
        big.click()
        expect(big).not_to_have_class(re.compile(r"\benlarged\b"))
        expect(tiles).to_have_count(4)
        expect(page.locator(f'.video-tile[data-camera-id="{near[0].pk}"]')).to_be_visible()

        # Another incident: the old tiles and their sockets go, the new camera plays.
        page.click(f'#queue [data-incident-id="{second["id"]}"]')
        expect(tiles).to_have_count(1)
        assert page.evaluate("window.dashboard.videoTiles()") == [far.pk]
        wait_js(page, f"JSON.stringify(window.openCameraSockets()) === '[{far.pk}]'")
        assert_plays(page, f'.video-tile[data-camera-id="{far.pk}"] video', 640, 480)
        assert not errors, errors


# -- helpers -----------------------------------------------------------------------------


@contextmanager
def chromium_for_video() -> Iterator[Any]:
    """Debian's Chromium with autoplay allowed; otherwise as test_dashboard.chromium()."""
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: install Debian's chromium package (apt-get install chromium)")
    with sync_playwright() as playwright:
        try:
            browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=PLAYER_ARGS)
        except Exception as exc:
            pytest.fail(f"Chromium at {CHROMIUM} did not start: {exc}")
        try:
            yield browser
        finally:
            browser.close()


def test_at_most_sixteen_tiles_in_four_columns_offline_ones_greyed(
    django_db_setup: None,
    rtsp_server: RtspServer,
    center_factory: Callable[..., Center],
) -> None:
    centre = center_factory("seoul-junggu", JUNGGU)
    operator_of(centre, "op-a")
    lat, lon = SEOUL_CITY_HALL["lat"], SEOUL_CITY_HALL["lon"]
    live = [
        stream_camera(
            centre, f"LIVE-{n}", rtsp_server.url(n), lat=lat + 0.0001 * n, lon=lon, status=CameraStatus.ONLINE
        )
        for n in (1, 2)
    ]
    # Sixteen more, each further away, none answering: the grid shows the nearest sixteen.
    dead = [
        stream_camera(
            centre,
            f"DEAD-{n:02d}",
            f"rtsp://127.0.0.1:{free_port()}/cam1",
            lat=lat - 0.0002 * n,
            lon=lon + 0.0001,
            status=CameraStatus.OFFLINE,
        )
        for n in range(1, 17)
    ]
    police = partner_with_agreement("police-112", "police")
    _, key = api_key_create(partner=police)
    server = LiveDaphne(live_env(INCIDENT_CAMERA_COUNT="20", INCIDENT_CAMERA_RADIUS_M="1000"))
    server.start()
    try:
        with chromium_for_video() as browser:
            errors: list[str] = []
            page = new_page(browser, errors)
            log_in(page, server, "op-a")
            incident = post_event(server, key)
            assert len(incident["cameras"]) == 18
            page.click(f'#queue [data-incident-id="{incident["id"]}"]')

            tiles = page.locator("#video-grid .video-tile")
            expect(tiles).to_have_count(16)
            expected = [c.pk for c in live] + [c.pk for c in dead[:14]]
            assert page.evaluate("window.dashboard.videoTiles()") == expected
            columns = page.evaluate(
                "getComputedStyle(document.querySelector('#video-grid .video-tiles')).gridTemplateColumns.split(' ').length"
            )
            assert columns == 4
            for camera in live:
                assert_plays(page, f'.video-tile[data-camera-id="{camera.pk}"] video', 640, 480)
            for camera in dead[:14]:
                tile = page.locator(f'.video-tile[data-camera-id="{camera.pk}"]')
                expect(tile).to_have_class(re.compile(r"\boffline\b"))
                expect(tile.locator(".live-player")).to_have_attribute(
                    "data-state", "offline", timeout=PLAY_WAIT_MS
                )
            page.screenshot(path=str(ARTIFACTS / "player-dashboard-16.png"))
            assert not errors, errors
    finally:
        server.stop()
