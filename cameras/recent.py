"""The last few seconds of a relayed camera, kept so an operator can save what just happened.

Each relay upstream (`cameras/relay.py`) keeps a `RecentBuffer` of the fMP4 fragments it
already made for its viewers: nothing is decoded or copied, the buffer holds references
to the same fragments. Fragments are grouped by GOP (a keyframe and the frames that
depend on it) and dropped a whole GOP at a time from the old end, so the buffer always
starts at a keyframe and covers at least `seconds` of video; per frame the relay pays
one list append and one comparison, and the trimming runs on keyframes only.

Memory: at most `max_bytes` per relayed camera (RELAY_BUFFER_MAX_MB), whatever its
bitrate; below that, `seconds` (RELAY_BUFFER_SECONDS) plus less than two GOPs (trimmed
when a keyframe arrives). A 2 Mbit/s camera with a 2 s GOP keeps 7.5–8.5 MB for 30 s.
A process relaying C cameras holds at most C × RELAY_BUFFER_MAX_MB.

The buffer is cleared when the stream goes offline or its parameters change: its
footage is then one continuous session, in which the remuxer's timeline runs with the
wall clock, so "the last N seconds" is N seconds of real time ending now.

`footage_write_mp4` turns a snapshot into a plain MP4 file (PyAV remux, no transcode).
"""

from __future__ import annotations

import datetime as dt
import io
from collections import deque
from dataclasses import dataclass
from pathlib import Path

import av

from cameras.fmp4 import Fragment, InitSegment


@dataclass(frozen=True)
class RecentFootage:
    """A snapshot of a camera's recent video: init segment and fragments from a keyframe on."""

    init: InitSegment
    fragments: list[Fragment]
    ends_at: dt.datetime  # wall clock of the end of the last fragment (the live edge)

    @property
    def duration_s(self) -> float:
        last = self.fragments[-1]
        ticks = last.decode_time + last.duration - self.fragments[0].decode_time
        return ticks / self.init.timescale

    @property
    def starts_at(self) -> dt.datetime:
        return self.ends_at - dt.timedelta(seconds=self.duration_s)


class RecentBuffer:
    """The last `seconds` (at least) of one camera's fragments, at most `max_bytes` of them."""

    def __init__(self, *, seconds: float, max_bytes: int) -> None:
        self.seconds = seconds
        self.max_bytes = max_bytes
        self.init: InitSegment | None = None
        self.gops: deque[list[Fragment]] = deque()
        self.bytes = 0
        self._window = 0  # `seconds` in the init segment's timescale

    def reset(self, init: InitSegment | None) -> None:
        """Forget everything: a new stream (init segment), or no stream at all (None)."""
        self.init = init
        self.gops.clear()
        self.bytes = 0
        self._window = round(self.seconds * init.timescale) if init is not None else 0

    def append(self, fragment: Fragment) -> None:
        if fragment.keyframe:
            self.gops.append([fragment])
            self._trim(fragment.decode_time)
        elif self.gops:
            self.gops[-1].append(fragment)
        else:
            return  # nothing decodes before the first keyframe
        self.bytes += len(fragment.data)
        if self.bytes > self.max_bytes:
            self._trim_bytes()

    def _trim(self, now: int) -> None:
        """Drop the oldest GOP while the next one alone still reaches `seconds` back."""
        gops = self.gops
        while len(gops) > 1 and gops[1][0].decode_time <= now - self._window:
            self.bytes -= sum(len(f.data) for f in gops.popleft())

    def _trim_bytes(self) -> None:
        gops = self.gops
        while self.bytes > self.max_bytes and gops:
            # A single GOP over the limit goes too: the buffer restarts at the next keyframe.
            self.bytes -= sum(len(f.data) for f in gops.popleft())

    @property
    def buffered_s(self) -> float:
        if self.init is None or not self.gops or not self.gops[-1]:
            return 0.0
        last = self.gops[-1][-1]
        return (last.decode_time + last.duration - self.gops[0][0].decode_time) / self.init.timescale

    def snapshot(self, *, seconds: float, now: dt.datetime) -> RecentFootage | None:
        """The last `seconds` up to now, from the keyframe at or before their start.

        Starting at that keyframe (not after it) means the clip covers the whole span
        asked for, up to one GOP more; with less buffered, all there is. None: nothing.
        """
        if self.init is None or not self.gops:
            return None
        last = self.gops[-1][-1]
        start = last.decode_time + last.duration - round(seconds * self.init.timescale)
        chosen = 0
        for index, gop in enumerate(self.gops):
            if gop[0].decode_time <= start:
                chosen = index
        fragments = [fragment for gop in list(self.gops)[chosen:] for fragment in gop]
        return RecentFootage(init=self.init, fragments=fragments, ends_at=now)


@dataclass(frozen=True)
class WrittenFootage:
    frames: int
    duration_s: float


def footage_write_mp4(*, footage: RecentFootage, path: Path) -> WrittenFootage:
    """Remux a snapshot (fragmented MP4 in memory) into a plain MP4 with its index up front.

    No decoding: packets are copied with their timestamps rebased to start at 0.
    """
    data = footage.init.data + b"".join(fragment.data for fragment in footage.fragments)
    source = av.open(io.BytesIO(data), mode="r", format="mp4")
    try:
        stream = source.streams.video[0]
        with av.open(str(path), mode="w", format="mp4", options={"movflags": "+faststart"}) as output:
            target = output.add_stream_from_template(stream)
            first: int | None = None
            frames, end = 0, 0
            for packet in source.demux(stream):
                if packet.dts is None or not packet.size:
                    continue  # the demuxer's final flush packet
                first = packet.dts if first is None else first
                packet.dts -= first
                packet.pts = (packet.pts if packet.pts is not None else packet.dts + first) - first
                end = packet.dts + (packet.duration or 0)
                packet.stream = target
                output.mux(packet)
                frames += 1
        time_base = stream.time_base
    finally:
        source.close()
    return WrittenFootage(frames=frames, duration_s=float(end * time_base) if time_base else 0.0)
