"""The RTSP test cameras (scripts/rtsp_server.py) as PyAV in the venv sees them.

These pin down what later camera/relay tests rely on: H.264 of the configured size
over RTSP/TCP, a keyframe at least every 2 s, one server-side client per viewer
connection (the stats file), basic auth, and a restart on the same port.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import av
import av.error
import pytest
from av.container import InputContainer
from av.packet import Packet

from tests.fixtures.rtsp import RtspServer

pytestmark = pytest.mark.rtsp

# "timeout" is FFmpeg's RTSP socket I/O timeout in µs. PyAV 18 (FFmpeg 8) silently
# ignores the old "stimeout" name: a stalled server then blocks forever.
# analyzeduration=0, probesize=32 (the minimum): the SDP's sprop-parameter-sets already give codec and
# size, so opening takes ~0.1 s instead of ~1.2 s of probing.
RTSP_OPTIONS = {"rtsp_transport": "tcp", "timeout": "5000000", "analyzeduration": "0", "probesize": "32"}


@contextmanager
def rtsp_open(url: str) -> Iterator[InputContainer]:
    container = av.open(url, options=RTSP_OPTIONS, timeout=(10.0, 5.0))
    try:
        yield container
    finally:
        container.close()


def read_packets(container: InputContainer, count: int, timeout: float = 5.0) -> list[Packet]:
    """The next ``count`` non-empty video packets (fails after ``timeout`` seconds)."""
    packets: list[Packet] = []
    deadline = time.monotonic() + timeout
    for packet in container.demux(container.streams.video[0]):
        if packet.size:
            packets.append(packet)
            if len(packets) >= count:
                break
        assert time.monotonic() < deadline, f"only {len(packets)} packets in {timeout} s"
    assert len(packets) == count, "stream ended early"
    return packets


def assert_stream_ends(container: InputContainer, timeout: float = 5.0) -> None:
    """Reading ends (EOF, or an error such as a reset connection) within ``timeout`` s."""
    deadline = time.monotonic() + timeout
    try:
        for _packet in container.demux(container.streams.video[0]):
            assert time.monotonic() < deadline, f"stream still running after {timeout} s"
    except av.error.FFmpegError:
        pass


def test_streams_are_h264_of_the_configured_size(rtsp_server: RtspServer) -> None:
    for n in (1, 2):
        with rtsp_open(rtsp_server.url(n)) as container:
            stream = container.streams.video[0]
            assert stream.codec_context.name == "h264"
            assert (stream.codec_context.width, stream.codec_context.height) == (
                rtsp_server.width,
                rtsp_server.height,
            )
            packets = read_packets(container, 5)
            assert all(p.stream_index == stream.index for p in packets)


def test_keyframe_soon_after_joining_and_every_two_seconds(rtsp_server: RtspServer) -> None:
    gop = 2 * rtsp_server.fps  # key-int-max of the server's x264enc
    with rtsp_open(rtsp_server.url(1)) as viewer:  # keeps the shared pipeline running
        read_packets(viewer, 10)
        joined = time.monotonic()
        with rtsp_open(rtsp_server.url(1)) as container:
            frames = container.demux(container.streams.video[0])
            # Note: gst-rtsp-server forces a keyframe when a client joins a shared
            # media, so this one comes almost at once; a real camera may take a GOP.
            first = next(p for p in frames if p.size and p.is_keyframe)
            assert time.monotonic() - joined < 2.5
            assert first.is_keyframe
            # The next keyframe comes after at most `gop` frames (one packet per frame).
            between = 0
            for packet in frames:
                if not packet.size:
                    continue
                if packet.is_keyframe:
                    break
                between += 1
                assert between < gop, "no keyframe within key-int-max frames"
            assert between >= gop // 2, f"keyframes only {between + 1} frames apart"


def test_two_viewers_are_two_clients_of_one_shared_stream(
    rtsp_server_factory: Callable[..., RtspServer],
) -> None:
    server = rtsp_server_factory(streams=1)
    assert server.client_count() == 0
    with rtsp_open(server.url()) as first, rtsp_open(server.url()) as second:
        assert server.wait_for_clients(2) == 2
        for _ in range(3):  # both keep receiving
            assert len(read_packets(first, 5)) == 5
            assert len(read_packets(second, 5)) == 5
    assert server.wait_for_clients(0) == 0
    assert "CLIENT 2" in server.stdout()


def test_basic_auth(rtsp_server_factory: Callable[..., RtspServer]) -> None:
    server = rtsp_server_factory(streams=1, user="viewer", password="p@ss:w/rd")
    with rtsp_open(server.url()) as container:
        assert read_packets(container, 5)
    with pytest.raises(av.error.HTTPUnauthorizedError), rtsp_open(server.url(with_credentials=False)):
        pass
    wrong = server.url().replace("p%40ss%3Aw%2Frd", "nope")
    assert wrong != server.url()
    with pytest.raises(av.error.HTTPUnauthorizedError), rtsp_open(wrong):
        pass


def test_restart_on_the_same_port(rtsp_server_factory: Callable[..., RtspServer]) -> None:
    server = rtsp_server_factory(streams=1)
    port, url = server.port, server.url()
    with rtsp_open(url) as container:
        read_packets(container, 5)
        server.restart()
        assert (server.port, server.url()) == (port, url)
        # The old connection is gone: its stream ends (EOF here), it doesn't hang.
        assert_stream_ends(container)
    with rtsp_open(url) as container:
        assert read_packets(container, 5)
    assert server.wait_for_clients(0) == 0


def test_a_recording_is_served_on_every_mount_at_its_real_pace(tmp_path):
    """The load bench's cameras: a file made beforehand, replayed without encoding."""
    from tests.fixtures.rtsp import recording_make

    recording = recording_make(tmp_path / "pattern.mp4", seconds=6, width=320, height=240, fps=25)
    server = RtspServer().start(streams=2, width=320, height=240, fps=25, recording=recording)
    try:
        for n in (1, 2):
            with rtsp_open(server.url(n)) as container:
                stream = container.streams.video[0]
                assert (
                    stream.codec_context.name,
                    stream.codec_context.width,
                    stream.codec_context.height,
                ) == (
                    "h264",
                    320,
                    240,
                )
                started = time.monotonic()
                packets = read_packets(container, 50, timeout=10)
                elapsed = time.monotonic() - started
                assert packets[0].is_keyframe or any(p.is_keyframe for p in packets)
                # 50 frames at 25 fps: played at the file's pace, not read out at disk speed.
                assert elapsed > 1.2, f"50 frames in {elapsed:.2f} s"
    finally:
        server.stop()
