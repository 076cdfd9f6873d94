"""The relay's parts on their own: fMP4 remuxing, codec strings, viewer queues, backoff."""

from __future__ import annotations

import asyncio
import io
import itertools
import struct

import av
import pytest

from cameras import relay
from cameras.fmp4 import Fragment, InitSegment, Remuxer, codec_string, hevc_codec_string, nal_parts
from cameras.relay import StatusChange, StreamState, ViewerQueue, reconnect_delay

SMALL = {"width": 320, "height": 240, "fps": 15}


def fragment(keyframe: bool, n: int = 0) -> Fragment:
    return Fragment(data=n.to_bytes(4, "big"), keyframe=keyframe)


def queued_fragments(viewer: ViewerQueue) -> list[Fragment]:
    return [item for item in viewer.items if isinstance(item, Fragment)]


# -- viewer queues ---------------------------------------------------------------------


def test_a_new_viewer_starts_at_a_keyframe():
    viewer = ViewerQueue(limit=10)
    for n, keyframe in enumerate([False, False, True, False]):
        viewer.put_fragment(fragment(keyframe, n))

    assert [f.data[-1] for f in queued_fragments(viewer)] == [2, 3]


def test_a_viewer_that_falls_behind_drops_its_backlog_and_resumes_at_the_next_keyframe():
    viewer = ViewerQueue(limit=5)
    viewer.put_status(StatusChange(StreamState.LIVE))
    viewer.put_fragment(fragment(True, 0))
    for n in range(1, 5):
        viewer.put_fragment(fragment(False, n))
    assert viewer.fragments == 5

    for n in range(5, 9):  # overflow: everything queued goes, nothing until a keyframe
        viewer.put_fragment(fragment(False, n))
    assert (viewer.fragments, viewer.skips) == (0, 1)
    viewer.put_fragment(fragment(True, 9))
    viewer.put_fragment(fragment(False, 10))

    assert [f.data[-1] for f in queued_fragments(viewer)] == [9, 10]
    assert isinstance(viewer.items[0], StatusChange)  # statuses are kept, fragments dropped


def test_an_overflow_on_a_keyframe_resumes_with_it():
    viewer = ViewerQueue(limit=2)
    for n, keyframe in enumerate([True, False, True]):
        viewer.put_fragment(fragment(keyframe, n))

    assert [f.data[-1] for f in queued_fragments(viewer)] == [2]
    assert viewer.skips == 1


def test_a_new_init_segment_replaces_what_was_queued_and_waits_for_a_keyframe():
    viewer = ViewerQueue(limit=10)
    viewer.put_fragment(fragment(True, 0))
    viewer.put_status(StatusChange(StreamState.OFFLINE))
    viewer.put_status(StatusChange(StreamState.LIVE))
    init = InitSegment(data=b"init", mime='video/mp4; codecs="avc1.42c00d"')

    viewer.put_init(init)
    viewer.put_fragment(fragment(False, 1))
    viewer.put_fragment(fragment(True, 2))

    assert list(viewer.items) == [init, fragment(True, 2)]


def test_only_the_latest_of_consecutive_statuses_is_kept():
    viewer = ViewerQueue(limit=10)
    viewer.put_status(StatusChange(StreamState.OFFLINE))
    viewer.put_status(StatusChange(StreamState.LIVE))

    assert list(viewer.items) == [StatusChange(StreamState.LIVE)]


class ClientSocket(relay.ViewerSink):
    """A viewer's socket as the relay sees it: what was written, and how much the client
    has not taken yet (set by the test: a client that stops reading)."""

    def __init__(self) -> None:
        self.written: list[relay.QueueItem] = []
        self.unsent = 0

    def write(self, item: relay.QueueItem) -> None:
        self.written.append(item)

    def backlog(self) -> int:
        return self.unsent


async def fed(viewer: ViewerQueue, sink: ClientSocket) -> asyncio.Task[None]:
    task = asyncio.create_task(viewer.feed(sink))
    await asyncio.sleep(0)  # feed() attaches the sink and writes what was queued
    return task


@pytest.mark.asyncio
async def test_a_directly_written_viewer_gets_every_item_at_once_in_order():
    viewer, sink = ViewerQueue(limit=10), ClientSocket()
    viewer.put_status(StatusChange(StreamState.LIVE))
    viewer.put_fragment(fragment(True, 0))  # queued before the socket was attached
    task = await fed(viewer, sink)

    for n in range(1, 4):
        viewer.put_fragment(fragment(False, n))
        assert sink.written[-1] == fragment(False, n)  # written by the put itself, no task
    task.cancel()

    assert sink.written == [StatusChange(StreamState.LIVE), *(fragment(n == 0, n) for n in range(4))]
    assert (list(viewer.items), viewer.fragments) == ([], 0)


@pytest.mark.asyncio
async def test_a_client_that_stops_reading_is_queued_bounded_skips_ahead_and_catches_up_in_order():
    viewer, sink = ViewerQueue(limit=5), ClientSocket()
    task = await fed(viewer, sink)
    viewer.put_fragment(fragment(True, 0))
    sink.unsent = relay.SINK_BACKLOG_BYTES  # the client stopped reading

    for n in range(1, 9):  # more than the queue holds: it skips to the next keyframe
        viewer.put_fragment(fragment(False, n))
    assert sink.written == [fragment(True, 0)]
    assert (viewer.fragments, viewer.skips) == (0, 1)
    viewer.put_fragment(fragment(True, 9))
    viewer.put_fragment(fragment(False, 10))
    assert sink.written == [fragment(True, 0)]  # still backed up: nothing more written

    sink.unsent = 0  # the client read again
    await asyncio.sleep(relay.SINK_POLL_S * 3)
    viewer.put_fragment(fragment(False, 11))
    task.cancel()

    assert sink.written == [fragment(True, 0), fragment(True, 9), fragment(False, 10), fragment(False, 11)]


# -- reconnection ------------------------------------------------------------------------


def test_reconnection_backs_off_1_5_then_10_seconds_with_jitter():
    # Never longer than 10 s: viewers must see a returning camera within 15 s.
    for failures, base in ((1, 1), (2, 5), (3, 10), (4, 10), (9, 10)):
        delays = [reconnect_delay(failures) for _ in range(50)]
        assert all(0.75 * base <= d <= 1.25 * base for d in delays)
        assert len(set(delays)) > 1  # jittered


def test_the_backoff_schedule_is_a_module_constant(monkeypatch):
    monkeypatch.setattr(relay, "RECONNECT_BACKOFF_S", (0.1,))
    assert reconnect_delay(5) <= 0.125


def test_relay_status_reports_pyav_and_no_upstreams_when_idle():
    status = relay.relay_status()
    assert status["ok"] is True
    assert (status["upstreams"], status["viewers"], status["live"]) == (0, 0, 0)


# -- codec strings -----------------------------------------------------------------------


def avcc_init(profile: int, constraints: int, level: int) -> bytes:
    record = bytes([1, profile, constraints, level, 0xFF])
    return struct.pack(">I4s", 8 + len(record), b"avcC") + record


def test_avc1_codec_string_comes_from_the_avcc_record():
    init = b"\x00\x00\x00\x10ftypisom\x00\x00\x00\x00" + avcc_init(0x64, 0x00, 0x28)
    assert codec_string(init) == "avc1.640028"


def test_hvc1_codec_string_follows_iso_14496_15():
    # Main profile, main tier, level 3.1, the usual compatibility and constraint flags.
    hvcc = bytes([1, 0x01, 0x60, 0, 0, 0, 0x90, 0, 0, 0, 0, 0, 93])
    assert hevc_codec_string(hvcc) == "hvc1.1.6.L93.90"


# -- Annex B to MP4 samples -----------------------------------------------------------


def sample(data: bytes) -> bytes:
    parts, size = nal_parts(data)
    joined = b"".join(parts)
    assert len(joined) == size
    return joined


def test_start_codes_become_lengths_whatever_their_form():
    aud, sps, idr = b"\x09\x30", b"\x67\x42\xc0\x1e\xda", b"\x65\x88\x84\x00\x03\x21"
    four, three = b"\x00\x00\x00\x01", b"\x00\x00\x01"
    expected = b"".join(struct.pack(">I", len(unit)) + unit for unit in (aud, sps, idr))
    assert sample(four + aud + four + sps + four + idr) == expected
    assert sample(three + aud + three + sps + three + idr) == expected
    assert sample(four + aud + three + sps + four + idr) == expected
    # Zero bytes before a start code (trailing_zero_8bits) are not part of the unit;
    # emulation prevention (00 00 03) inside one is kept as it is.
    assert sample(four + aud + b"\x00\x00" + four + sps + four + idr + b"\x00") == expected


def test_length_prefixed_data_passes_through_and_empty_units_are_dropped():
    prefixed = struct.pack(">I", 2) + b"\x09\x30"
    assert sample(prefixed) == prefixed
    assert sample(b"\x00\x00\x00\x01\x00\x00\x00\x01\x09\x30") == prefixed


# -- remuxing real streams -----------------------------------------------------------


def remux(url: str, frames: int, remuxer: Remuxer | None = None) -> tuple[Remuxer, list[bytes]]:
    """`frames` packets of a live stream through a remuxer, from the first keyframe on."""
    out: list[bytes] = []
    with av.open(url, options=relay.RTSP_OPTIONS, timeout=(10.0, 5.0)) as container:
        stream = container.streams.video[0]
        if remuxer is None:
            remuxer = Remuxer(stream)
        else:
            remuxer.new_session()
        started, n = False, 0
        for packet in container.demux(stream):
            started = started or (packet.size > 0 and packet.is_keyframe)
            if not started or not packet.size:
                continue
            init, fragment = remuxer.mux(packet)
            out += ([init.data] if init else []) + [fragment.data]
            n += 1
            if n == frames:
                return remuxer, out
    raise AssertionError("stream ended")


@pytest.mark.rtsp
def test_a_remuxer_keeps_one_timeline_across_reconnections(rtsp_server_factory):
    server = rtsp_server_factory(**SMALL)
    remuxer, first = remux(server.url(), 10)
    server.restart()  # the camera's clock starts again
    remuxer, second = remux(server.url(), 10, remuxer)
    remuxer.close()

    with av.open(io.BytesIO(b"".join(first + second)), mode="r", format="mp4") as container:
        stream = container.streams.video[0]
        assert stream.time_base is not None
        times = [p.pts * stream.time_base for p in container.demux(stream) if p.size and p.pts is not None]

    assert len(times) == 20  # every frame at once: none waits for the next
    steps = {round(float(b - a), 3) for a, b in itertools.pairwise(times)}
    assert steps == {round(1 / 15, 3)}, "one frame apart, even across the reconnection"


@pytest.mark.rtsp
def test_h265_streams_get_an_hvc1_init_segment(rtsp_server_factory):
    server = rtsp_server_factory(codec="h265", **SMALL)
    remuxer, chunks = remux(server.url(), 5)
    remuxer.close()

    init = chunks[0]
    assert codec_string(init).startswith("hvc1.1.6.L")
    assert b"hvc1" in init
    with av.open(io.BytesIO(b"".join(chunks)), mode="r", format="mp4") as container:
        context = container.streams.video[0].codec_context
        assert (context.name, context.width, context.height) == ("hevc", 320, 240)
