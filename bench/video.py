"""Live video relay: CPU against ffmpeg, fan-out CPU, time to first frame, added latency.

Cameras are one gst-rtsp-server process (scripts/rtsp_server.py) serving 640x480@25
H.264 test patterns with a 2 s GOP, on this machine. The relay runs in a child process
of its own (`python -m bench.video child …`) exactly as Daphne runs it — one
`cameras.relay.Upstream` per camera, PyAV demux and remux to fMP4 in its thread, the
event loop handing each frame to its viewers — with in-process viewers served as the
WebSocket consumer serves them under Daphne (`ViewerQueue.feed`), minus the socket write. Its CPU is the child's
own (all threads), read after a warm-up, over the measured seconds.

* **relay vs ffmpeg**: the same four streams through the relay (one viewer each), then
  through four `ffmpeg -rtsp_transport tcp -i <url> -c copy -f mp4 -movflags
  frag_keyframe+empty_moov+default_base_moof+frag_every_frame pipe:` processes, each
  with a reader (a thread of this process) taking what ffmpeg writes; CPU per stream
  of ffmpeg and its reader, and the ratio (target ≤ 1.5×). They run one after the
  other: all at once, the server could not encode twelve streams in time. The issue's command, without
  `frag_every_frame`, is measured too and shown for reference, but it does other work:
  FFmpeg's muxer then keeps each 2 s GOP in memory and writes it in one burst at the
  next keyframe (its reader wakes once per GOP), where the relay must hand every frame
  to its viewers at once (DESIGN §4: small fragments; added latency p95 ≤ 50 ms).
  Writing a fragment per frame costs ffmpeg itself 0–50 % more CPU here (it varied
  between runs), and someone has to take each fragment: the relay's own figure includes its viewers taking
  theirs (its event loop waking up and writing each frame to each viewer), so
  ffmpeg's includes its reader doing the same.
* **16 cameras × 4 viewers**: one relay process, CPU in total and per stream.
* **time to first frame**: a new viewer joins a running stream at a random moment of
  the GOP, 20 times; time until it holds its first (key)frame fragment, with the GOP
  cache (as served) and without it (the viewer waits for the next keyframe). Target:
  median ≤ 300 ms with the cache.
* **relay-added latency**: for every frame, from the moment PyAV's demuxer hands the
  relay the camera's packet to the moment a viewer takes that frame's fragment from its
  queue (p95 target ≤ 50 ms). Each fragment is packed as soon as its packet arrives
  (cameras/fmp4.py); FFmpeg's muxer held each frame until the next one came (a frame
  interval, 40 ms at 25 fps).
* Where the CPU goes (2026-12-04, this 2-core VM): reading a stream costs PyAV about
  what the whole ffmpeg process costs (~0.2 ms per frame), but not because of PyAV's
  FFmpeg: callgrind counts 33 k instructions per packet inside PyAV 18's
  `av_read_frame` (FFmpeg 8) against 100 k in Debian's ffmpeg 5.1, ~10 µs of work. The
  rest is waking up: every blocking read, and every hand-over from the relay thread to
  the event loop, puts a thread to sleep and wakes it again, and a Python thread's
  wake-up costs ~95 µs of CPU here (a thread woken by `call_soon_threadsafe` with a
  no-op callback: 97 µs; resuming a task too: 143 µs), with every frame's Python then
  running on cold caches (Remuxer.mux: 16 µs in a loop, ~60 µs per live frame). The
  relay needs at least two wake-ups per frame (its thread, then the loop that feeds
  the viewers), as ffmpeg plus a reader of its pipe do.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

from bench.common import Figure, Target, percentile, report, report_figure

ROOT = Path(__file__).resolve().parents[1]
TICKS_PER_S = os.sysconf("SC_CLK_TCK")
WIDTH, HEIGHT, FPS = 640, 480, 25
COMPARE_STREAMS = 4
FANOUT_CAMERAS, FANOUT_VIEWERS = 16, 4
WARMUP_S = 3.0
MEASURE_S = float(os.environ.get("BENCH_VIDEO_SECONDS", "20"))
JOINS = 20
# The command: one fragment per GOP. With frag_every_frame: one per frame, as the relay.
FFMPEG_MOVFLAGS = "frag_keyframe+empty_moov+default_base_moof"
FFMPEG_PER_FRAME_MOVFLAGS = FFMPEG_MOVFLAGS + "+frag_every_frame"

TARGET_RATIO = 1.5
TARGET_FIRST_FRAME_MS = 300.0
TARGET_LATENCY_P95_MS = 50.0


def run() -> list[Figure]:
    from tests.fixtures.rtsp import RtspServer

    server = RtspServer()
    server.start(streams=FANOUT_CAMERAS, width=WIDTH, height=HEIGHT, fps=FPS, timeout=30)
    try:
        report("cameras", f"{FANOUT_CAMERAS} × H.264 {WIDTH}x{HEIGHT}@{FPS}, 2 s GOP (gst-rtsp-server)")
        urls = [server.url(n) for n in range(1, FANOUT_CAMERAS + 1)]
        return measure_all(urls[:COMPARE_STREAMS], urls)
    finally:
        server.stop()


def measure_all(compare: list[str], fanout: list[str]) -> list[Figure]:
    streams = len(compare)
    relay = relay_child(compare, viewers=1, mode="cpu")
    per_frame = ffmpeg_cpu(compare, FFMPEG_PER_FRAME_MOVFLAGS, "a fragment per frame")
    per_gop = ffmpeg_cpu(compare, FFMPEG_MOVFLAGS, "a fragment per GOP")
    relay_pct = relay["cpu_pct"] / streams
    ffmpeg_pct = (per_frame["ffmpeg_pct"] + per_frame["reader_pct"]) / streams
    report("relay: fragments per stream per second", f"{relay['fragments'] / streams / MEASURE_S:.1f}")
    gop_pct = per_gop["ffmpeg_pct"] / streams
    figures = [
        Figure("relay CPU per stream (1 viewer)", relay_pct, "% of a core"),
        # The target is judged against the command the issue names, as written.
        Figure("ffmpeg, the issue's command (a fragment per GOP)", gop_pct, "% of a core"),
        Figure("relay / ffmpeg CPU", relay_pct / gop_pct, "×", Target("<=", TARGET_RATIO)),
        # For information: ffmpeg made to hand over every frame as the relay must, with
        # the reader of its pipe counted as the relay's viewers are.
        Figure("ffmpeg, a fragment per frame, + its reader", ffmpeg_pct, "% of a core"),
        Figure("  of which the reader", per_frame["reader_pct"] / streams, "% of a core"),
        Figure("  relay / that", relay_pct / ffmpeg_pct, "×"),
    ]
    fan = relay_child(fanout, viewers=FANOUT_VIEWERS, mode="cpu")
    figures += [
        Figure(f"relay CPU, {len(fanout)} cameras × {FANOUT_VIEWERS} viewers", fan["cpu_pct"], "% of a core"),
        Figure("  same, per camera", fan["cpu_pct"] / len(fanout), "% of a core"),
    ]
    report("16×4: fragments delivered / skipped viewers", f"{fan['fragments']:,} / {fan['skips']}")
    timing = relay_child(compare, viewers=1, mode="timing")
    cached, uncached = timing["first_frame_cached_ms"], timing["first_frame_uncached_ms"]
    latency = timing["latency_ms"]
    figures += [
        Figure(
            "first frame, new viewer, GOP cache: median",
            statistics.median(cached),
            "ms",
            Target("<=", TARGET_FIRST_FRAME_MS),
        ),
        Figure("first frame, new viewer, no GOP cache: median", statistics.median(uncached), "ms"),
        Figure("relay-added latency p50", statistics.median(latency), "ms"),
        Figure("relay-added latency p95", percentile(latency, 95), "ms", Target("<=", TARGET_LATENCY_P95_MS)),
    ]
    for figure in figures:
        report_figure(figure)
    return figures


# --- parent side -----------------------------------------------------------------------


def relay_child(urls: list[str], *, viewers: int, mode: str) -> dict[str, Any]:
    """Run the relay in a child process on `urls`; its JSON result."""
    from bench.intake import die_with_parent  # (the child imports no models before django.setup)

    command = [sys.executable, "-m", "bench.video", "child", "--mode", mode, "--viewers", str(viewers), *urls]
    done = subprocess.run(
        command,
        cwd=ROOT,
        env=dict(os.environ),
        capture_output=True,
        text=True,
        timeout=MEASURE_S * 4 + 120,
        preexec_fn=die_with_parent,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"relay child failed ({done.returncode}):\n{done.stderr[-3000:]}")
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def ffmpeg_cpu(urls: list[str], movflags: str, label: str) -> dict[str, float]:
    """Percent of a core used by one `ffmpeg -c copy` fMP4 remux per URL, and by their readers.

    Each reader is a thread of this process taking whatever ffmpeg has written as soon
    as it is there (one `os.read` per wake-up), as a server forwarding it would.
    """
    from bench.intake import die_with_parent, process_cpu_ticks

    processes = []
    drained = [0] * len(urls)
    readers: list[int] = []
    for url in urls:
        command = [
            "ffmpeg",
            "-hide_banner",
            "-loglevel",
            "error",
            "-rtsp_transport",
            "tcp",
            "-i",
            url,
            "-c",
            "copy",
            "-f",
            "mp4",
            "-movflags",
            movflags,
            "pipe:",
        ]
        processes.append(
            subprocess.Popen(
                command,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.DEVNULL,
                preexec_fn=die_with_parent,
            )
        )

    def drain(index: int, process: subprocess.Popen[bytes]) -> None:
        assert process.stdout is not None
        readers.append(threading.get_native_id())
        fd = process.stdout.fileno()
        while chunk := os.read(fd, 1 << 20):
            drained[index] += len(chunk)

    threads = [threading.Thread(target=drain, args=pair, daemon=True) for pair in enumerate(processes)]
    for thread in threads:
        thread.start()
    try:
        time.sleep(WARMUP_S)
        start = sum(process_cpu_ticks(p.pid) for p in processes)
        reader_start = sum(thread_cpu_ticks(tid) for tid in readers)
        began = time.monotonic()
        time.sleep(MEASURE_S)
        ticks = sum(process_cpu_ticks(p.pid) for p in processes) - start
        reader_ticks = sum(thread_cpu_ticks(tid) for tid in readers) - reader_start
        wall = time.monotonic() - began
    finally:
        for process in processes:
            process.terminate()
            process.wait(10)
    if not all(drained):
        raise RuntimeError("an ffmpeg process wrote nothing: is the camera up?")
    report(
        f"ffmpeg, {label}: bytes per stream per second",
        f"{sum(drained) / len(urls) / (WARMUP_S + MEASURE_S):,.0f}",
    )
    return {
        "ffmpeg_pct": ticks / TICKS_PER_S / wall * 100,
        "reader_pct": reader_ticks / TICKS_PER_S / wall * 100,
    }


def thread_cpu_ticks(tid: int) -> int:
    """utime + stime of one thread of this process, in clock ticks."""
    stat = Path(f"/proc/self/task/{tid}/stat").read_text()
    fields = stat[stat.rindex(")") + 2 :].split()
    return int(fields[11]) + int(fields[12])


# --- child side: the relay as Daphne runs it -------------------------------------------


def counting_viewer(queue: Any, counts: dict[str, int], stamp: Any = None) -> asyncio.Task[None]:
    """A viewer as the consumer serves one under Daphne (`ViewerQueue.feed` into its socket),
    minus the socket write: each fragment is counted (and timed) where it would be written."""
    from cameras import relay
    from cameras.fmp4 import Fragment

    class Counted(relay.ViewerSink):
        def write(self, item: Any) -> None:
            if isinstance(item, Fragment):
                counts["fragments"] += 1
                if stamp is not None:
                    stamp(item)

        def backlog(self) -> int:
            return 0

    return asyncio.create_task(queue.feed(Counted()))


async def child_cpu(urls: list[str], viewers: int) -> dict[str, Any]:
    from cameras import relay

    counts = {"fragments": 0}
    queues = []
    tasks = []
    for n, url in enumerate(urls):
        for _ in range(viewers):
            _upstream, queue = relay.viewer_join(n + 1, url, url)
            queues.append(queue)
            tasks.append(counting_viewer(queue, counts))
    await asyncio.sleep(WARMUP_S)
    counts["fragments"] = 0
    cpu0, wall0 = time.process_time(), time.monotonic()
    await asyncio.sleep(MEASURE_S)
    cpu, wall = time.process_time() - cpu0, time.monotonic() - wall0
    fragments = counts["fragments"]
    for task in tasks:
        task.cancel()
    await relay.relay_shutdown()
    return {
        "cpu_pct": cpu / wall * 100,
        "fragments": fragments,
        "skips": sum(q.skips for q in queues),
        "live": fragments > 0,
    }


async def child_timing(urls: list[str]) -> dict[str, Any]:
    """Time to first frame (with and without the GOP cache) and per-frame added latency."""
    from cameras import fmp4, relay

    received_at: dict[int, float] = {}  # id(fragment) → when its camera packet came in
    original_mux = fmp4.Remuxer.mux

    def timed_mux(self: Any, packet: Any) -> Any:
        now = time.perf_counter()
        init, fragment = original_mux(self, packet)
        received_at[id(fragment)] = now
        return init, fragment

    fmp4.Remuxer.mux = timed_mux  # type: ignore[method-assign]
    latency: list[float] = []

    def stamp(fragment: Any) -> None:
        came = received_at.pop(id(fragment), None)
        if came is not None:
            latency.append((time.perf_counter() - came) * 1000)

    counts = {"fragments": 0}
    upstreams = []
    tasks = []
    for n, url in enumerate(urls):
        upstream, queue = relay.viewer_join(n + 1, url, url)
        upstreams.append(upstream)
        tasks.append(counting_viewer(queue, counts, stamp))
    await asyncio.sleep(WARMUP_S)
    latency.clear()
    cached = [await first_frame(random.choice(upstreams), cache=True) for _ in range(JOINS)]
    uncached = [await first_frame(random.choice(upstreams), cache=False) for _ in range(JOINS)]
    for task in tasks:
        task.cancel()
    await relay.relay_shutdown()
    return {
        "first_frame_cached_ms": cached,
        "first_frame_uncached_ms": uncached,
        "latency_ms": latency,
    }


async def first_frame(upstream: Any, *, cache: bool) -> float:
    """A viewer joins at a random point of the GOP: ms until it has a frame it can show."""
    from cameras import relay
    from cameras.fmp4 import Fragment

    await asyncio.sleep(random.uniform(0.05, 2.0))
    started = time.perf_counter()
    if cache:
        queue = upstream.add_viewer()
    else:  # as if there were no GOP cache: the init segment, then whatever comes next
        queue = relay.ViewerQueue(relay.VIEWER_QUEUE_FRAGMENTS)
        queue.put_init(upstream.init)
        upstream.viewers.add(queue)
    try:
        while not isinstance(await queue.get(), Fragment):
            pass
        return (time.perf_counter() - started) * 1000
    finally:
        upstream.remove_viewer(queue)


def child_main(argv: list[str]) -> int:
    import django

    parser = argparse.ArgumentParser(prog="python -m bench.video child")
    parser.add_argument("--mode", choices=["cpu", "timing"], required=True)
    parser.add_argument("--viewers", type=int, default=1)
    parser.add_argument("urls", nargs="+")
    args = parser.parse_args(argv)
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "smartcity.settings")
    django.setup()
    from django.core.cache import cache

    # A running Daphne connected to Redis long ago: the relay heartbeat's first write
    # (imports, connection: ~80 ms) must not land in the measured seconds.
    cache.get("bench-warm-up")
    from smartcity.collector import collector_settle

    collector_settle()  # as smartcity.asgi does once Daphne has loaded the application
    if args.mode == "cpu":
        result = asyncio.run(child_cpu(args.urls, args.viewers))
    else:
        result = asyncio.run(child_timing(args.urls))
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    if sys.argv[1:2] == ["child"]:
        sys.exit(child_main(sys.argv[2:]))
    print("usage: python -m bench video (a section of make bench)", file=sys.stderr)
    sys.exit(2)
