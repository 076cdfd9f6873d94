"""Fragmented MP4 for Media Source Extensions: remux one video stream, never decode it.

PyAV's mp4 muxer writes into memory; what it writes is cut into whole boxes: the init
segment (`ftyp` + `moov`, once) and one fragment (`moof` + `mdat`) per frame. FFmpeg
writes a frame's fragment when the *next* frame arrives (it needs that frame's time for
the duration), so fragments trail the camera by one frame.

Timestamps are rewritten onto one continuous timeline per remuxer: a reconnected camera
restarts its clock, and the first packet after joining an RTSP stream often has none.
"""

from __future__ import annotations

import contextlib
import struct
from collections import deque
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

import av
import av.error
from av.packet import Packet
from av.video.stream import VideoStream

MOVFLAGS = "frag_keyframe+empty_moov+default_base_moof+frag_every_frame"
# A jump of more than this between two frames is a restarted or broken camera clock,
# not a pause: the timeline carries on one frame later instead of leaving a hole.
MAX_GAP_S = 5
DEFAULT_FPS = 25


@dataclass(frozen=True)
class InitSegment:
    """`ftyp` + `moov`, and the MIME type (with codec string) a browser needs to play it."""

    data: bytes
    mime: str


@dataclass(frozen=True)
class Fragment:
    """`moof` + `mdat` of one frame; a keyframe fragment is where a viewer may start."""

    data: bytes
    keyframe: bool


StreamSignature = tuple[str, int, int, bytes, Fraction | None]


def stream_signature(stream: VideoStream) -> StreamSignature:
    """What must stay the same for an init segment to remain valid across reconnects."""
    context = stream.codec_context
    return (context.name, context.width, context.height, bytes(context.extradata or b""), stream.time_base)


class _Sink:
    """A file-like object for the muxer: with `empty_moov` it is only ever appended to."""

    def __init__(self) -> None:
        self.buffer = bytearray()

    def write(self, data: Any) -> int:
        self.buffer += data
        return len(data)


class Remuxer:
    """One video stream (the template) into fMP4, packet by packet, across reconnects.

    `mux()` returns the init segment the first time it is written, and the fragments
    completed by that packet. Call `new_session()` when packets start coming from a new
    connection with the same `signature`; a different signature needs a new Remuxer.
    """

    def __init__(self, template: VideoStream) -> None:
        self.signature = stream_signature(template)
        self._sink = _Sink()
        self._container = av.open(self._sink, mode="w", format="mp4", options={"movflags": MOVFLAGS})
        self._stream = self._container.add_stream_from_template(template)
        if template.codec_context.name == "hevc":
            # Browsers (and MSE's codec strings) expect `hvc1`; FFmpeg's default is `hev1`.
            self._stream.codec_tag = "hvc1"
        self._time_base = template.time_base or Fraction(1, 90000)
        rate = template.average_rate or template.guessed_rate or DEFAULT_FPS
        self._frame_ticks = max(1, round(1 / (Fraction(rate) * self._time_base)))
        self._max_gap = round(MAX_GAP_S / self._time_base)
        self._offset: int | None = None
        self._last_dts: int | None = None
        self._next_dts = 0
        self._init_parts: list[bytes] = []
        self._init_done = False
        # Keyframe flags of muxed packets whose fragments have not come out yet.
        self._pending_keyframes: deque[bool] = deque()

    def new_session(self) -> None:
        """Packets now come from a new connection: re-anchor its clock on our timeline."""
        self._offset = None

    def mux(self, packet: Packet) -> tuple[InitSegment | None, list[Fragment]]:
        self._retime(packet)
        packet.stream = self._stream
        self._pending_keyframes.append(packet.is_keyframe)
        self._container.mux_one(packet)
        return self._take()

    def close(self) -> None:
        # Closing writes the trailer (and flushes the last frame) into the sink, which
        # nobody reads any more: a closed remuxer's output is of no use to anyone.
        with contextlib.suppress(av.error.FFmpegError, ValueError):
            self._container.close()

    # -- timestamps --------------------------------------------------------------

    def _retime(self, packet: Packet) -> None:
        """Move `packet` onto this remuxer's timeline (in the template's time base)."""
        dts = packet.dts if packet.dts is not None else packet.pts
        if dts is not None and not self._fits(dts):
            self._offset = self._next_dts - dts
        if dts is None or self._offset is None:
            out_dts = out_pts = self._next_dts
        else:
            out_dts = dts + self._offset
            out_pts = packet.pts + self._offset if packet.pts is not None else out_dts
        packet.dts, packet.pts = out_dts, max(out_pts, out_dts)
        self._last_dts = out_dts
        self._next_dts = out_dts + (packet.duration or self._frame_ticks)

    def _fits(self, dts: int) -> bool:
        if self._offset is None:
            return False
        if self._last_dts is None:
            return True
        return 0 < dts + self._offset - self._last_dts <= self._max_gap

    # -- output ------------------------------------------------------------------

    def _take(self) -> tuple[InitSegment | None, list[Fragment]]:
        init: InitSegment | None = None
        fragments: list[Fragment] = []
        buffer = self._sink.buffer
        position = 0
        moof: bytes | None = None
        for kind, start, end in complete_boxes(buffer):
            box = bytes(buffer[start:end])
            position = end
            if kind in (b"ftyp", b"moov") and not self._init_done:
                self._init_parts.append(box)
                if kind == b"moov":
                    self._init_done = True
                    data = b"".join(self._init_parts)
                    init = InitSegment(data=data, mime=mime_type(data))
            elif kind == b"moof":
                moof = box
            elif kind == b"mdat" and moof is not None:
                fragments.append(Fragment(data=moof + box, keyframe=self._keyframe_of(moof)))
                moof = None
        if moof is not None:  # its mdat is not complete yet: keep both for next time
            position -= len(moof)
        del buffer[:position]
        return init, fragments

    def _keyframe_of(self, moof: bytes) -> bool:
        flags = [self._pending_keyframes.popleft() for _ in range(max(1, trun_sample_count(moof)))]
        return flags[0]


def complete_boxes(
    buffer: bytes | bytearray, start: int = 0, end: int | None = None
) -> list[tuple[bytes, int, int]]:
    """(type, start, end) of each whole ISO-BMFF box in `buffer[start:end]`, in order."""
    end = len(buffer) if end is None else end
    boxes = []
    while end - start >= 8:
        size, kind = struct.unpack_from(">I4s", buffer, start)
        if size == 1:
            if end - start < 16:
                break
            (size,) = struct.unpack_from(">Q", buffer, start + 8)
        if size < 8 or start + size > end:
            break
        boxes.append((kind, start, start + size))
        start += size
    return boxes


def child_box(data: bytes, path: list[bytes], start: int = 0, end: int | None = None) -> bytes | None:
    """The payload of the box at `path` (e.g. moof → traf → trun), or None."""
    for kind, box_start, box_end in complete_boxes(data, start, end):
        if kind == path[0]:
            header = 16 if struct.unpack_from(">I", data, box_start)[0] == 1 else 8
            if len(path) == 1:
                return data[box_start + header : box_end]
            return child_box(data, path[1:], box_start + header, box_end)
    return None


def trun_sample_count(moof: bytes) -> int:
    trun = child_box(moof, [b"moof", b"traf", b"trun"])
    if trun is None or len(trun) < 8:
        return 1
    return int(struct.unpack_from(">I", trun, 4)[0])


def mime_type(init_segment: bytes) -> str:
    """`video/mp4; codecs="…"` with the codec string (RFC 6381) read from the init segment."""
    return f'video/mp4; codecs="{codec_string(init_segment)}"'


def codec_string(init_segment: bytes) -> str:
    """`avc1.PPCCLL` from the avcC record, `hvc1.…` from hvcC (ISO/IEC 14496-15 annex E).

    The sample entry sits deep in moov → trak → … → stsd; looking the record up by its
    four-character code (checked against the size before it) is enough for the one-track
    init segments written here.
    """
    avcc = _record(init_segment, b"avcC")
    if avcc is not None and len(avcc) >= 4:
        return f"avc1.{avcc[1]:02x}{avcc[2]:02x}{avcc[3]:02x}"
    hvcc = _record(init_segment, b"hvcC")
    if hvcc is not None and len(hvcc) >= 13:
        return hevc_codec_string(hvcc)
    return "avc1.42e01e"  # unknown: say baseline 3.0 and let the browser try


def _record(data: bytes, kind: bytes) -> bytes | None:
    at = data.find(kind)
    while at >= 4:
        size = struct.unpack_from(">I", data, at - 4)[0]
        if 8 <= size <= len(data) - at + 4:
            return data[at + 4 : at - 4 + size]
        at = data.find(kind, at + 1)
    return None


def hevc_codec_string(hvcc: bytes) -> str:
    space = "", "A", "B", "C"
    profile_space, tier, profile = hvcc[1] >> 6, (hvcc[1] >> 5) & 1, hvcc[1] & 0x1F
    # The compatibility flags are written bit-reversed, in hex, without leading zeros.
    compatibility = int(f"{struct.unpack_from('>I', hvcc, 2)[0]:032b}"[::-1], 2)
    constraints = list(hvcc[6:12])
    while constraints and constraints[-1] == 0:
        constraints.pop()
    parts = [
        "hvc1",
        f"{space[profile_space]}{profile}",
        f"{compatibility:X}",
        f"{'H' if tier else 'L'}{hvcc[12]}",
        *(f"{byte:X}" for byte in constraints),
    ]
    return ".".join(parts)
