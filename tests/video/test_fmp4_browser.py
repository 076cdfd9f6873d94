"""The relay's fragments play in Debian's Chromium through Media Source Extensions.

The fragments are packed by `cameras.fmp4` itself (not FFmpeg's muxer), so a browser is
the judge that matters: it must buffer them, play them and show the stream's size.
"""

from __future__ import annotations

import base64
import json

import pytest

from cameras.fmp4 import mime_type
from tests.browser.test_dashboard import chromium
from tests.video.test_relay import remux

pytestmark = [pytest.mark.browser, pytest.mark.rtsp]

PLAY = """
async ([mime, chunks]) => {
  const video = document.createElement("video");
  video.muted = true;
  document.body.appendChild(video);
  const source = new MediaSource();
  video.src = URL.createObjectURL(source);
  await new Promise((resolve) => source.addEventListener("sourceopen", resolve, { once: true }));
  const buffer = source.addSourceBuffer(mime);
  for (const chunk of chunks) {
    const bytes = Uint8Array.from(atob(chunk), (c) => c.charCodeAt(0));
    buffer.appendBuffer(bytes);
    await new Promise((resolve, reject) => {
      buffer.addEventListener("updateend", resolve, { once: true });
      buffer.addEventListener("error", () => reject(new Error("append failed")), { once: true });
    });
  }
  video.currentTime = buffer.buffered.start(0);
  await video.play();
  const start = video.currentTime;
  await new Promise((resolve) => setTimeout(resolve, 1200));
  return {
    readyState: video.readyState,
    advanced: video.currentTime - start,
    width: video.videoWidth,
    height: video.videoHeight,
    buffered: [buffer.buffered.start(0), buffer.buffered.end(buffer.buffered.length - 1)],
    ranges: buffer.buffered.length,
    error: video.error ? video.error.message : null,
  };
}
"""


def test_chromium_plays_the_relays_fragments(rtsp_server_factory):
    server = rtsp_server_factory(width=320, height=240, fps=15)
    remuxer, chunks = remux(server.url(), 45)  # three seconds
    remuxer.close()
    mime = mime_type(chunks[0])  # chunks[0] is the init segment

    with chromium() as browser:
        page = browser.new_page()
        page.set_content("<html><body></body></html>")
        assert page.evaluate(f"MediaSource.isTypeSupported({json.dumps(mime)})"), mime
        result = page.evaluate(PLAY, [mime, [base64.b64encode(c).decode() for c in chunks]])

    assert result["error"] is None
    assert result["readyState"] >= 2
    assert result["advanced"] > 0.5, result
    assert (result["width"], result["height"]) == (320, 240)
    assert result["ranges"] == 1, "one continuous buffered range: no gaps between fragments"
    assert result["buffered"][1] - result["buffered"][0] == pytest.approx(3.0, abs=0.15)
