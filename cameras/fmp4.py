"""Fragmented MP4 for Media Source Extensions: remux one video stream, never decode it.

FFmpeg's mp4 muxer writes the init segment (`ftyp` + `moov`, with the codec record a
browser needs) once, from the first packet. Every frame after that becomes a fragment
(`moof` + `mdat`) written here with one `struct.pack`: FFmpeg would hold each frame back
until the *next* one arrived (it wants the exact duration), a frame interval of latency
(40 ms at 25 fps), and its per-packet muxing and box parsing cost more CPU than packing
the 104 bytes ourselves. A fragment carries the frame's own decode time (`tfdt`), so a
duration estimated from the frame rate never makes the timeline drift.

Timestamps are rewritten onto one continuous timeline per remuxer: a reconnected camera
restarts its clock, and the first packet after joining an RTSP stream often has none.
H.264/H.265 from RTSP comes as Annex B (start codes); MP4 wants each NAL unit prefixed
with its length, as in the init segment's avcC/hvcC record (4 bytes, as FFmpeg writes).
"""

from __future__ import annotations

import contextlib
import struct
from dataclasses import dataclass
from fractions import Fraction
from typing import Any, NamedTuple

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
    """`ftyp` + `moov`, and the MIME type (with codec string) a browser needs to play it.

    `timescale`: ticks per second of the fragments' `decode_time` and `duration`.
    """

    data: bytes
    mime: str
    timescale: int = 90000


class Fragment(NamedTuple):
    """`moof` + `mdat` of one frame; a keyframe fragment is where a viewer may start.

    `decode_time` and `duration` are the frame's, in the init segment's timescale, on
    the remuxer's one continuous timeline (what the relay's recent buffer trims by).
    A named tuple: one is made for every frame of every camera, and a tuple is built
    in C where a frozen dataclass sets each field through object.__setattr__; holding
    only bytes, a bool and ints, the collector stops tracking it.
    """

    data: bytes
    keyframe: bool
    decode_time: int = 0
    duration: int = 0


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


# moof(mfhd, traf(tfhd, tfdt, trun with one sample: duration, size, flags, composition
# offset)) then the mdat header: the same 112 bytes for every frame but for the numbers.
_FRAGMENT_HEADER = struct.Struct(">I4s I4sII I4s I4sII I4sIQ I4sIIIIIII I4s")
_MOOF_SIZE = 104
# The same header with the runs that stay the same for a track as three byte strings:
# up to mfhd's sequence number; from traf to tfdt's time; trun's fields before the sample.
_FRAGMENT_VARIABLE = struct.Struct(">20sI36sQ20sIIIII4s")
_TRUN_FLAGS = 0x000001 | 0x000100 | 0x000200 | 0x000400 | 0x000800
_SYNC_SAMPLE = 0x02000000  # depends on nothing
_OTHER_SAMPLE = 0x01010000  # depends on others, not a sync sample
_START_CODE = b"\x00\x00\x01"
_LENGTH = struct.Struct(">I")


def nal_parts(data: bytes) -> tuple[list[bytes], int]:
    """Annex B NAL units (start codes) as MP4 wants them, each after its 4-byte length.

    Returned as pieces (lengths and units) with their total size, for the one join that
    makes the fragment. Data that does not start with a start code is taken to be
    length-prefixed already.
    """
    if data.find(_START_CODE, 0, 4) < 0:
        return [data], len(data)
    parts: list[bytes] = []
    size = 0
    # One split in C finds every unit (no start code occurs inside one: emulation
    # prevention). Zero bytes before a start code belong to it (the 4-byte form,
    # trailing_zero_8bits); a NAL unit itself never ends with a zero byte.
    for unit in data.split(_START_CODE)[1:]:
        unit = unit.rstrip(b"\x00")
        if unit:
            parts += (_LENGTH.pack(len(unit)), unit)
            size += 4 + len(unit)
    return parts, size


class Remuxer:
    """One video stream (the template) into fMP4, packet by packet, across reconnects.

    `mux()` returns the init segment the first time, and the fragment of that packet
    (at once: no waiting for the next frame). Call `new_session()` when packets start
    coming from a new connection with the same `signature`; a different signature needs
    a new Remuxer.
    """

    def __init__(self, template: VideoStream) -> None:
        self.signature = stream_signature(template)
        self._template = template
        self._time_base = template.time_base or Fraction(1, 90000)
        rate = template.average_rate or template.guessed_rate or DEFAULT_FPS
        self._frame_ticks = max(1, round(1 / (Fraction(rate) * self._time_base)))
        self._max_gap = round(MAX_GAP_S / self._time_base)
        self._offset: int | None = None
        self._last_dts: int | None = None
        self._next_dts = 0
        self._init: InitSegment | None = None
        self._track_id = 1
        self._header_runs = header_runs(self._track_id)
        self._scale = (1, 1)  # track ticks per time-base tick, as numerator and denominator
        self._sequence = 0

    def new_session(self) -> None:
        """Packets now come from a new connection: re-anchor its clock on our timeline."""
        self._offset = None

    def mux(self, packet: Packet) -> tuple[InitSegment | None, Fragment]:
        """The init segment (the first time, else None) and this packet's fragment.

        Runs for every frame of every camera, on a thread that has just woken up, with
        its caches cold: a live frame costs several times what it costs in a loop
        (README, issue 5). Hence one function, no helpers, integers only (no Fraction).
        The frame is copied three times (out of PyAV's packet, by the split that finds
        its NAL units, into the fragment): memcpy is cheap next to a Python loop.
        """
        init = None
        if self._init is None:
            init = self._init = self._write_init(packet)
        # The timeline, in the template's time base: a packet that does not follow the
        # previous one within MAX_GAP_S (a new session, a restarted camera clock)
        # re-anchors it one frame after the last.
        dts, pts, offset = packet.dts, packet.pts, self._offset
        if dts is None:
            dts = pts
        if dts is not None:
            last = self._last_dts
            if offset is None or (last is not None and not 0 < dts + offset - last <= self._max_gap):
                offset = self._offset = self._next_dts - dts
            dts += offset
            pts = dts if pts is None or pts + offset < dts else pts + offset
        else:
            dts = pts = self._next_dts
        duration = packet.duration or self._frame_ticks
        self._last_dts = dts
        self._next_dts = dts + duration
        # Then in the track's timescale.
        cto = pts - dts
        num, den = self._scale
        if num != 1 or den != 1:
            dts, cto, duration = dts * num // den, cto * num // den, duration * num // den
        duration = duration or 1
        self._sequence += 1
        keyframe = packet.is_keyframe
        parts, size = nal_parts(bytes(packet))
        # moof(mfhd, traf(tfhd, tfdt, trun with one sample)) and the mdat header: the
        # runs that never change for this remuxer are packed already (`_header_runs`).
        head, middle, trun = self._header_runs
        header = _FRAGMENT_VARIABLE.pack(
            head,
            self._sequence,
            middle,
            dts,
            trun,
            duration,
            size,
            _SYNC_SAMPLE if keyframe else _OTHER_SAMPLE,
            cto,
            8 + size,
            b"mdat",
        )
        parts.insert(0, header)
        # tuple.__new__ skips the named tuple's __new__, a Python function.
        return init, tuple.__new__(Fragment, (b"".join(parts), keyframe, dts, duration))

    def close(self) -> None:
        """Nothing stays open between packets; kept so callers need not know that."""

    # -- init segment ------------------------------------------------------------

    def _write_init(self, packet: Packet) -> InitSegment:
        """ftyp + moov as FFmpeg's muxer writes them for this stream (it needs one packet)."""
        sink = _Sink()
        container = av.open(sink, mode="w", format="mp4", options={"movflags": MOVFLAGS})
        try:
            stream = container.add_stream_from_template(self._template)
            if self._template.codec_context.name == "hevc":
                # Browsers (and MSE's codec strings) expect `hvc1`; FFmpeg's default is `hev1`.
                stream.codec_tag = "hvc1"
            copy = av.Packet(bytes(packet))
            copy.stream, copy.pts, copy.dts = stream, 0, 0
            copy.time_base = self._time_base
            copy.is_keyframe = packet.is_keyframe
            container.mux_one(copy)
            boxes = {kind: bytes(sink.buffer[a:b]) for kind, a, b in complete_boxes(sink.buffer)}
        finally:
            with contextlib.suppress(av.error.FFmpegError, ValueError):
                container.close()
        data = boxes[b"ftyp"] + boxes[b"moov"]
        self._track_id = track_id(data)
        self._header_runs = header_runs(self._track_id)
        timescale = track_timescale(data)
        scale = Fraction(timescale) * self._time_base
        self._scale = (scale.numerator, scale.denominator)
        return InitSegment(data=data, mime=mime_type(data), timescale=timescale)


def header_runs(track: int) -> tuple[bytes, bytes, bytes]:
    """The parts of a fragment's header that depend on nothing but the track (see mux)."""
    header = _FRAGMENT_HEADER.pack(
        _MOOF_SIZE, b"moof",
        16, b"mfhd", 0, 0,
        80, b"traf",
        16, b"tfhd", 0x020000, track,
        20, b"tfdt", 0x01000000, 0,
        36, b"trun", _TRUN_FLAGS, 1, _MOOF_SIZE + 8,
        0, 0, 0, 0,
        0, b"mdat",
    )  # fmt: skip
    return header[0:20], header[24:60], header[68:88]


def track_id(init_segment: bytes) -> int:
    tkhd = child_box(init_segment, [b"moov", b"trak", b"tkhd"])
    if tkhd is None:
        return 1
    # version 1 has 64-bit creation/modification times before the id
    return int(struct.unpack_from(">I", tkhd, 20 if tkhd[0] == 1 else 12)[0])


def track_timescale(init_segment: bytes) -> int:
    mdhd = child_box(init_segment, [b"moov", b"trak", b"mdia", b"mdhd"])
    if mdhd is None:
        raise ValueError("init segment without mdhd")
    return int(struct.unpack_from(">I", mdhd, 20 if mdhd[0] == 1 else 12)[0])


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
