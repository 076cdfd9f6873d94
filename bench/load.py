"""Mixed load: everything a busy control room does at once, for a fixed time, on two Daphne processes.

At the same time, on the bench database and two Daphne processes (the production layout
on two cores):

* **operators**: 100 `/ws/operator/` sockets of the bench centre, spread evenly over
  both processes, each past its snapshot (sessions made directly, as in bench/screen.py);
* **intake**: 100 partner events/s (BENCH_LOAD_RATE) POSTed open loop (scheduled by the
  clock), alternating the two ports; every event must reach every operator socket
  (`incident.created`);
* **video**: 16 live cameras (one gst-rtsp-server process, H.264 640x480@25, 2 s GOP,
  replaying a recording encoded once beforehand: real cameras encode on their own
  hardware, and sixteen encoders here took most of the two cores) with 4 viewers each on `/ws/cameras/<id>/live/`, authorised as operators of the
  camera's centre. A camera's viewers share one process, as nginx's ip_hash keeps a
  control room on one instance (deploy/nginx/safenet.conf), so they share its relay:
  eight cameras per process, one RTSP session each;
* **moving subjects**: 20 incidents whose subject moves (~10 m/s), one location fix
  each per second (`POST /api/v1/events/<id>/locations/`), alternating the ports.

After a 5 s warm-up, for BENCH_LOAD_SECONDS (default 30) the section measures: POST
latency of events and of fixes; event-to-screen (from just before the POST until the
socket's event loop has the message, every (event, socket) pair counted, as in
bench/screen.py); fix-to-screen (until the socket shows that position or a newer one of
the subject); video fragments received per viewer per second (one per frame, 25
expected) and stalls (no fragment for more than STALL_S); CPU (% of one core, over the
measured seconds) and peak memory of each process (PostgreSQL: the PSS of all its
processes, as its shared buffers are in every backend's RSS). PostgreSQL and Redis are
the machine's shared servers: their figures include anyone else's work. No Celery
worker runs: nothing in this load enqueues a task (the bench partner has no webhook).

Errors — non-2xx answers or none within REQUEST_TIMEOUT_S, events or fixes not on every
socket within DEADLINE_S, sockets the server closed, viewers that never got video —
must be 0. The client shares the two cores with everything else; its CPU and how late
it sent ("client lag") are shown.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import itertools
import json
import math
import os
import random
import signal
import statistics
import time
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import aiohttp

from bench import intake, screen, spatial
from bench.common import Figure, Target, paced, report, report_figure
from bench.intake import LoadResult, Server, attempt, cpu_ticks_of, daphne_servers, pids_named
from bench.screen import LatencyFigure, Socket, median, pct99
from cameras.models import Camera, Center
from cameras.selectors import make_point
from incidents.models import Incident, LocationFix

if TYPE_CHECKING:  # the module imports pytest: loaded only when the cameras start
    from tests.fixtures.rtsp import RtspServer

SERVERS = 2
OPERATORS = 100
# events/s; BENCH_LOAD_RATE=20 (say) shows how the rest holds up when intake is lighter
EVENT_RATE = int(os.environ.get("BENCH_LOAD_RATE", "100"))
CAMERAS, VIEWERS_PER_CAMERA = 16, 4
WIDTH, HEIGHT, FPS = 640, 480, 25
SUBJECTS = 20
FIX_EVERY_S = 1.0  # per subject
SUBJECT_SPEED_MPS = 10.0
WARMUP_S = 5.0
DURATION_S = float(os.environ.get("BENCH_LOAD_SECONDS", "30"))
DEADLINE_S = screen.DEADLINE_S  # a message not on every socket this long after its POST is missed
STALL_S = 1.0  # a viewer without a fragment this long saw the picture freeze
FIRST_FRAGMENT_TIMEOUT_S = 30.0
RTSP_START_TIMEOUT_S = 30.0
# The cameras' recording lasts the warm-up and the measured time plus this (start-up,
# connecting 100 sockets and 64 viewers, first fragments): each mount plays it once.
RECORDING_SPARE_S = 120
# An answer later than this is an error here: its event would miss the screens' deadline
# anyway, and an overloaded run ends this much sooner after its last request.
REQUEST_TIMEOUT_S = 10.0
CAMERA_CODE_PREFIX = "LIVE-BENCH-"  # not "BENCH-": those are the spatial section's million
METRES_PER_DEGREE = 111_320.0
TICKS_PER_S = os.sysconf("SC_CLK_TCK")


def run() -> list[Figure]:
    spatial.ensure_cameras()  # incidents rank their nearest cameras among the million
    screen.analyze_incident_tables()
    center = intake.ensure_center()
    partner = intake.ensure_partner()
    key = intake.fresh_key(partner)
    operators = screen.ensure_operators(center, count=OPERATORS)
    report("data", f"centre {center.slug}; partner {partner.slug}; {len(operators)} operators")
    with contextlib.ExitStack() as stack:
        stack.enter_context(sigterm_unwinds())
        rtsp = stack.enter_context(rtsp_cameras())
        camera_ids = stack.enter_context(live_cameras(center, rtsp))
        cookies = stack.enter_context(screen.operator_sessions(center, operators))
        servers = stack.enter_context(daphne_servers(SERVERS))
        screen.report_servers(servers)
        report(
            "load",
            f"{OPERATORS} operator sockets, {EVENT_RATE} events/s, {CAMERAS} cameras × "
            f"{VIEWERS_PER_CAMERA} viewers, {SUBJECTS} subjects × 1 fix/{FIX_EVERY_S:.0f} s; "
            f"{WARMUP_S:.0f} s warm-up + {DURATION_S:.0f} s measured",
        )
        report("Celery", "no worker: nothing in this load enqueues a task (the bench partner has no webhook)")
        watched = processes_of(servers, rtsp)
        measured = asyncio.run(measure(servers, cookies, camera_ids, key, watched))
    measured.count_stored()
    return figures_of(measured, watched)


@contextlib.contextmanager
def sigterm_unwinds() -> Iterator[None]:
    """SIGTERM (a CI timeout, `kill`) unwinds like Ctrl-C, so every `finally` stops what it started."""
    previous = signal.signal(signal.SIGTERM, signal.default_int_handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


# --- cameras -------------------------------------------------------------------------


@contextlib.contextmanager
def rtsp_cameras() -> Iterator[RtspServer]:
    """The cameras: gst-rtsp-server replaying a recording made beforehand on every mount.

    Sixteen live encoders took 65–140 % of this two-core machine, leaving the servers
    under test a fraction of it: the run measured the test cameras more than the system.
    A real camera encodes on its own hardware; here each mount only reads the file at
    its real pace and packetises it.
    """
    from tests.fixtures.rtsp import RtspServer

    recording = camera_recording()
    server = RtspServer()
    try:
        server.start(
            streams=CAMERAS,
            width=WIDTH,
            height=HEIGHT,
            fps=FPS,
            timeout=RTSP_START_TIMEOUT_S,
            recording=recording,
        )
        report(
            "cameras",
            f"{CAMERAS} × H.264 {WIDTH}x{HEIGHT}@{FPS}, 2 s GOP (gst-rtsp-server replaying {recording.name})",
        )
        yield server
    finally:
        server.stop()


def camera_recording() -> Path:
    """A test-pattern H.264 MP4 longer than the run (encoded once, kept in .run/)."""
    from tests.fixtures.rtsp import recording_make

    seconds = int(WARMUP_S + DURATION_S) + RECORDING_SPARE_S
    path = intake.LOG_DIR / f"load-camera-{WIDTH}x{HEIGHT}-{FPS}fps-{seconds}s.mp4"
    if not path.exists():
        intake.LOG_DIR.mkdir(exist_ok=True)
        started = time.monotonic()
        recording_make(path, seconds=seconds, width=WIDTH, height=HEIGHT, fps=FPS)
        report(
            "cameras",
            f"recorded {seconds} s of test pattern in {time.monotonic() - started:.0f} s: {path.name}",
        )
    return path


@contextlib.contextmanager
def live_cameras(center: Center, rtsp: RtspServer) -> Iterator[list[int]]:
    """CAMERAS cameras of `center` wired to this run's streams; unwired again on the way out.

    Unwired, so no stale URL to a stream that no longer exists is left in the database.
    """
    ids: list[int] = []
    try:
        for number in range(1, CAMERAS + 1):
            camera, _ = Camera.objects.update_or_create(
                code=f"{CAMERA_CODE_PREFIX}{number:02d}",
                defaults={
                    "name": f"Bench live {number:02d}",
                    "center": center,
                    "location": make_point(lat=spatial.LAT_MIN + 0.01 * number, lon=spatial.LON_MIN + 0.01),
                    "stream_url": rtsp.url(number),
                },
            )
            ids.append(camera.pk)
        yield ids
    finally:
        Camera.objects.filter(code__startswith=CAMERA_CODE_PREFIX).update(stream_url="")


# --- processes -----------------------------------------------------------------------


@dataclass
class Watched:
    """A process (or all processes of one server) whose CPU and memory the run reports.

    `shared`: several processes sharing memory (PostgreSQL's buffers are in every
    backend's RSS), so their proportional share (PSS) is summed instead.
    """

    name: str
    pids: Callable[[], list[int]]
    shared: bool = False
    cpu_pct: float = math.nan
    peak_mb: float = 0.0

    def memory_mb(self) -> float:
        field_name, file_name = ("Pss:", "smaps_rollup") if self.shared else ("VmRSS:", "status")
        total_kb = 0
        for pid in self.pids():
            with contextlib.suppress(OSError, StopIteration):  # ended meanwhile
                lines = Path(f"/proc/{pid}/{file_name}").read_text().splitlines()
                total_kb += int(next(line for line in lines if line.startswith(field_name)).split()[1])
        return total_kb / 1024


def processes_of(servers: list[Server], rtsp: RtspServer) -> list[Watched]:
    def one(pid: int | None) -> Callable[[], list[int]]:
        return lambda: [pid] if pid is not None else []

    return [
        *(Watched(f"Daphne {n}", one(s.process.pid)) for n, s in enumerate(servers, start=1)),
        Watched("PostgreSQL (all processes, PSS)", lambda: pids_named("postgres"), shared=True),
        Watched("Redis", lambda: pids_named("redis-server")),
        Watched(f"RTSP server ({CAMERAS} cameras)", one(rtsp.pid)),
        Watched("bench client", one(os.getpid())),
    ]


def sample_memory(watched: list[Watched]) -> None:
    for w in watched:
        w.peak_mb = max(w.peak_mb, w.memory_mb())


async def watch_processes(watched: list[Watched], *, start_at: float, end_at: float) -> None:
    """CPU over [start_at, end_at) (perf_counter times) and the peak memory, sampled every second."""
    await asyncio.sleep(max(0.0, start_at - time.perf_counter()))
    began = time.perf_counter()
    before = [cpu_ticks_of(w.pids()) for w in watched]
    while time.perf_counter() < end_at:
        # In a thread: reading PostgreSQL's smaps takes ~60 ms, which would hold up the sockets.
        await asyncio.to_thread(sample_memory, watched)
        await asyncio.sleep(min(1.0, max(0.0, end_at - time.perf_counter())))
    wall = time.perf_counter() - began
    for w, start in zip(watched, before, strict=True):
        # Processes that started meanwhile (PostgreSQL backends) count from zero.
        used = sum(ticks - start.get(pid, 0) for pid, ticks in cpu_ticks_of(w.pids()).items())
        w.cpu_pct = used / TICKS_PER_S / wall * 100


# --- measuring -----------------------------------------------------------------------


@dataclass
class Measured:
    events: screen.Phase
    fixes: Fixes
    viewers: list[Viewer]
    window: tuple[float, float]  # the measured seconds, perf_counter times
    operator_drops: int
    run_tag: str  # in the external id of every event this run POSTed
    subject_ids: list[int]
    stored_events: int = 0  # by the servers in the measured seconds, answered in time or not
    stored_fixes: int = 0

    def count_stored(self) -> None:
        """What the servers got done in the window, whether or not the answer came in time.

        An overloaded server still works through requests whose client has given up; this
        is its throughput, where the answered rate shows only what arrived in time.
        """
        now_wall, now = time.time(), time.perf_counter()
        start, end = (dt.datetime.fromtimestamp(now_wall - (now - t), tz=dt.UTC) for t in self.window)
        in_window = {"received_at__gte": start, "received_at__lt": end}
        prefix = f"bench-{self.run_tag}-{EVENT_RATE}-"  # (the subjects are worker 0)
        self.stored_events = Incident.objects.filter(external_id__startswith=prefix, **in_window).count()
        self.stored_fixes = LocationFix.objects.filter(incident_id__in=self.subject_ids, **in_window).count()


async def measure(
    servers: list[Server], cookies: list[str], camera_ids: list[int], key: str, watched: list[Watched]
) -> Measured:
    timeout = aiohttp.ClientTimeout(total=REQUEST_TIMEOUT_S)
    connector = aiohttp.TCPConnector(limit=screen.MAX_CONNECTIONS)
    run_tag = f"load-{int(time.time())}-{os.getpid()}"
    post = intake.intake_request(key, run_tag)
    async with (
        aiohttp.ClientSession(timeout=timeout, connector=connector) as http,
        screen.operator_sockets(http, servers, cookies) as sockets,
        video_viewers(http, servers, camera_ids, cookies) as viewers,
    ):
        subjects = await subjects_create(http, servers, post)
        begin = time.perf_counter() + 0.05  # when paced() sends the first request
        window = (begin + WARMUP_S, begin + WARMUP_S + DURATION_S)
        events, fixes, _ = await asyncio.gather(
            screen.drive(http, servers, post, EVENT_RATE, sockets, warmup_s=WARMUP_S, duration_s=DURATION_S),
            fixes_drive(http, servers, key, subjects, sockets),
            watch_processes(watched, start_at=window[0], end_at=window[1]),
        )
        for viewer in viewers:  # closed by the server: we close them only on the way out
            viewer.dropped = viewer.closed
        screen.summarise(events, sockets)
        fixes.summarise(sockets)
        measured = Measured(
            events,
            fixes,
            viewers,
            window,
            operator_drops=sum(s.closed for s in sockets),
            run_tag=run_tag,
            subject_ids=[subject.incident_id for subject in subjects],
        )
        print_details(measured, sockets)
    if errors_of(measured):
        screen.report_server_logs(servers)
    return measured


# --- moving subjects -----------------------------------------------------------------


@dataclass
class Subject:
    """An incident whose subject moves: a heading that wanders, a fixed speed."""

    incident_id: int
    lat: float
    lon: float
    heading: float  # radians, clockwise from north

    def step(self, seconds: float, rng: random.Random) -> tuple[float, float]:
        """Move on and return the new position, rounded as screens and fixes are matched (1e-6°)."""
        self.heading += rng.uniform(-0.3, 0.3)
        metres = SUBJECT_SPEED_MPS * seconds
        self.lat += metres * math.cos(self.heading) / METRES_PER_DEGREE
        self.lon += metres * math.sin(self.heading) / (METRES_PER_DEGREE * math.cos(math.radians(self.lat)))
        self.lat, self.lon = round(self.lat, 6), round(self.lon, 6)
        return self.lat, self.lon


async def subjects_create(
    http: aiohttp.ClientSession, servers: list[Server], post: intake.RequestMaker
) -> list[Subject]:
    """SUBJECTS new incidents through the API, before the load (worker 0: ids unlike the drive's)."""
    rng = random.Random(intake.LOAD_SEED)
    answers = await asyncio.gather(
        *(post(http, servers[number % len(servers)].base_url, 0, number) for number in range(SUBJECTS))
    )
    subjects = []
    for status, body in answers:
        if status != 201:
            raise RuntimeError(f"could not create a moving subject: {status} {body[:200]!r}")
        created = json.loads(body)
        where = created["location"]
        subjects.append(Subject(created["id"], where["lat"], where["lon"], rng.uniform(0, 2 * math.pi)))
    return subjects


@dataclass
class Fix:
    """One acknowledged location fix: where the subject was said to be, and when the POST went."""

    number: int
    subject: int
    key: tuple[int, float, float]  # (incident id, lat, lon), as screen.Socket.located has it
    sent: float
    measured: bool


@dataclass
class Fixes:
    """The fixes POSTed, and what the operator sockets made of them."""

    post: LoadResult
    sent: list[Fix] = field(default_factory=list)
    latencies_ms: list[float] = field(default_factory=list)
    missed: int = 0

    def summarise(self, sockets: list[Socket]) -> None:
        """A fix is on a screen once that socket shows its position or a later one of the subject.

        (Two fixes may commit before the first one's push reads the incident: then both
        pushes carry the newer position, and the screen never needed the older one.)
        """
        late_ms = DEADLINE_S * 1000
        missed: set[int] = set()
        for socket in sockets:
            for fix, shown in self.shown_on(socket):
                ms = (shown - fix.sent) * 1000
                if fix.measured and math.isfinite(ms):
                    self.latencies_ms.append(ms)
                if fix.measured and not ms <= late_ms:
                    missed.add(fix.number)
        self.missed = len(missed)

    def shown_on(self, socket: Socket) -> Iterator[tuple[Fix, float]]:
        """Each fix with the first time `socket` showed it or a newer one (inf: never)."""
        ordered = sorted(self.sent, key=lambda fix: (fix.subject, -fix.number))
        for _, newest_first in itertools.groupby(ordered, key=lambda fix: fix.subject):
            shown = math.inf
            for fix in newest_first:
                shown = min(shown, socket.located.get(fix.key, math.inf))
                yield fix, shown

    def on_every_screen(self, sockets: list[Socket]) -> bool:
        latest = {fix.subject: fix for fix in sorted(self.sent, key=lambda fix: fix.number)}
        return all(fix.key in s.located for s in sockets for fix in latest.values())


async def fixes_drive(
    http: aiohttp.ClientSession,
    servers: list[Server],
    key: str,
    subjects: list[Subject],
    sockets: list[Socket],
) -> Fixes:
    """One fix per subject per FIX_EVERY_S by the clock; then wait for the screens (or the deadline)."""
    rate = len(subjects) / FIX_EVERY_S
    warmup = round(WARMUP_S * rate)
    total = warmup + round(DURATION_S * rate)
    fixes = Fixes(post=LoadResult(label="location fixes", latencies_ms=[], window_s=DURATION_S))
    headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
    rng = random.Random(intake.LOAD_SEED + 1)

    async def one(number: int) -> None:
        index = number % len(subjects)
        subject = subjects[index]
        lat, lon = subject.step(FIX_EVERY_S, rng)
        body = {
            "lat": lat,
            "lon": lon,
            "accuracy_m": 10,
            # The fix's own time: one that is processed after a newer one joins the track only.
            "observed_at": dt.datetime.now(dt.UTC).isoformat(),
        }
        url = f"{servers[number % len(servers)].base_url}/api/v1/events/{subject.incident_id}/locations/"
        sent = time.perf_counter()
        status, answer = await attempt(post_json(http, url, body, headers))
        done = time.perf_counter()
        if status != 201:
            fixes.post.record_error(status, answer)
            return
        fixes.sent.append(Fix(number, index, (subject.incident_id, lat, lon), sent, number >= warmup))
        if number >= warmup:
            fixes.post.latencies_ms.append((done - sent) * 1000)

    tasks = [asyncio.create_task(one(number)) async for number, _ in paced(rate, total)]
    await asyncio.gather(*tasks)
    deadline = time.perf_counter() + DEADLINE_S
    while time.perf_counter() < deadline and not fixes.on_every_screen(sockets):
        await asyncio.sleep(0.1)
    return fixes


async def post_json(
    http: aiohttp.ClientSession, url: str, body: object, headers: dict[str, str]
) -> tuple[int, bytes]:
    async with http.post(url, data=json.dumps(body), headers=headers) as response:
        return response.status, await response.read()


# --- video viewers -------------------------------------------------------------------


@dataclass
class Viewer:
    """One live video tile: when each fragment (one frame) arrived, and how the socket ended."""

    camera_id: int
    server: int
    ws: aiohttp.ClientWebSocketResponse
    opened: float  # perf_counter time the handshake completed
    fragments: list[float] = field(default_factory=list)
    closed: bool = False
    close_code: int | None = None
    dropped: bool = False

    def rate(self, start: float, end: float) -> float:
        return sum(start <= t < end for t in self.fragments) / (end - start)

    def stalls(self, start: float, end: float) -> int:
        """Gaps longer than STALL_S between fragments in [start, end), its edges included."""
        times = [start, *(t for t in self.fragments if start <= t < end), end]
        return sum(b - a > STALL_S for a, b in itertools.pairwise(times))


@contextlib.asynccontextmanager
async def video_viewers(
    http: aiohttp.ClientSession, servers: list[Server], camera_ids: list[int], cookies: list[str]
) -> AsyncIterator[list[Viewer]]:
    """VIEWERS_PER_CAMERA viewers per camera, with video flowing; closed on the way out."""
    viewers: list[Viewer] = []
    readers: list[asyncio.Task[None]] = []
    try:
        await viewers_connect(http, servers, camera_ids, cookies, viewers, readers)
        first = await first_fragments(viewers)
        report(
            "viewers",
            f"{len(viewers)} open; {len(first)} with video, first fragment after its socket opened: "
            f"median {median(first):.1f} s, slowest {max(first, default=math.nan):.1f} s",
        )
        yield viewers
    finally:
        await screen.close_sockets([viewer.ws for viewer in viewers], readers)


async def viewers_connect(
    http: aiohttp.ClientSession,
    servers: list[Server],
    camera_ids: list[int],
    cookies: list[str],
    opened: list[Viewer],
    readers: list[asyncio.Task[None]],
) -> None:
    """Camera n's viewers on server n % len(servers), as operators 4n … 4n+3; one handshake at a time.

    (Concurrent handshakes queue behind each other's authorisation and audit queries, and
    Daphne drops those not accepted within its 5 s connect timeout.)
    """

    async def connect_to(index: int) -> None:
        server = servers[index]
        for n, camera_id in enumerate(camera_ids):
            if n % len(servers) != index:
                continue
            for cookie in cookies[n * VIEWERS_PER_CAMERA : (n + 1) * VIEWERS_PER_CAMERA]:
                headers = {"Origin": server.base_url, "Cookie": cookie}
                ws = await http.ws_connect(f"{server.base_url}/ws/cameras/{camera_id}/live/", headers=headers)
                viewer = Viewer(camera_id=camera_id, server=index, ws=ws, opened=time.perf_counter())
                opened.append(viewer)
                readers.append(asyncio.create_task(watch(viewer)))

    async with asyncio.TaskGroup() as group:
        for index in range(len(servers)):
            group.create_task(connect_to(index))


async def watch(viewer: Viewer) -> None:
    """Read the socket as the player does: `init` text, the init segment, then one fragment per frame."""
    init_segment_next = False
    async for message in viewer.ws:
        if message.type is aiohttp.WSMsgType.BINARY:
            if init_segment_next:
                init_segment_next = False
            else:
                viewer.fragments.append(time.perf_counter())
        elif message.type is aiohttp.WSMsgType.TEXT and message.data.startswith('{"type": "init"'):
            init_segment_next = True
    viewer.closed = True
    viewer.close_code = viewer.ws.close_code


async def first_fragments(viewers: list[Viewer]) -> list[float]:
    """Wait until every viewer has video (or the timeout); seconds each one waited for its first fragment."""
    deadline = time.perf_counter() + FIRST_FRAGMENT_TIMEOUT_S
    while time.perf_counter() < deadline and not all(v.fragments or v.closed for v in viewers):
        await asyncio.sleep(0.1)
    for viewer in viewers:
        if viewer.closed:
            report("", f"viewer of camera {viewer.camera_id} closed by the server ({viewer.close_code})")
    return [v.fragments[0] - v.opened for v in viewers if v.fragments]


# --- figures -------------------------------------------------------------------------


def errors_of(measured: Measured) -> dict[str, int]:
    """Every way the run failed someone, by kind (all must be 0)."""
    events, fixes = measured.events, measured.fixes
    return {
        "event POSTs not 201": events.post.error_count,
        "fix POSTs not 201": fixes.post.error_count,
        f"events not on every operator socket within {DEADLINE_S:.0f} s": events.missed_events,
        f"fixes not on every operator socket within {DEADLINE_S:.0f} s": fixes.missed,
        "operator sockets closed by the server": measured.operator_drops,
        "viewers closed by the server": sum(v.dropped for v in measured.viewers),
        "viewers that never got video": sum(not v.fragments for v in measured.viewers),
    }


def figures_of(measured: Measured, watched: list[Watched]) -> list[Figure]:
    events, fixes, window = measured.events, measured.fixes, measured.window
    rates = [v.rate(*window) for v in measured.viewers]
    errors = errors_of(measured)
    figures = [
        Figure("load events answered in time", events.post.rate, "/s"),
        Figure("load events stored by the servers", measured.stored_events / DURATION_S, "/s"),
        Figure("load fixes stored by the servers", measured.stored_fixes / DURATION_S, "/s"),
        LatencyFigure("load intake p50", events.post.p50, "ms"),
        LatencyFigure("load intake p99", events.post.p99, "ms"),
        LatencyFigure("load event-to-screen p50", events.p50, "ms"),
        LatencyFigure("load event-to-screen p99", events.p99, "ms"),
        LatencyFigure("load location fix p50", median(fixes.post.latencies_ms), "ms"),
        LatencyFigure("load location fix p99", pct99(fixes.post.latencies_ms), "ms"),
        LatencyFigure("load fix-to-screen p50", median(fixes.latencies_ms), "ms"),
        LatencyFigure("load fix-to-screen p99", pct99(fixes.latencies_ms), "ms"),
        Figure("load video fragments per viewer, mean", statistics.fmean(rates) if rates else 0.0, "/s"),
        Figure("load video fragments per viewer, slowest", min(rates, default=0.0), "/s"),
        Figure("load video stalls", sum(v.stalls(*window) for v in measured.viewers), f"(> {STALL_S:.0f} s)"),
    ]
    for w in watched:
        figures += [
            Figure(f"load CPU {w.name}", w.cpu_pct, "% of a core"),
            Figure(f"load memory {w.name}", w.peak_mb, "MB peak"),
        ]
    figures.append(Figure("load errors", sum(errors.values()), "", Target("<=", 0)))
    for kind, count in errors.items():
        if count:
            report("error", f"{kind}: {count}")
    for figure in figures:
        report_figure(figure)
    return figures


def on_all_sockets_ms(events: screen.Phase, sockets: list[Socket]) -> list[float]:
    """For each event every socket has: from the POST until the last socket had it."""
    return [
        (max(s.arrived[incident_id] for s in sockets) - sent) * 1000
        for incident_id, sent in events.sent_at.items()
        if all(incident_id in s.arrived for s in sockets)
    ]


def print_details(measured: Measured, sockets: list[Socket]) -> None:
    events, fixes = measured.events, measured.fixes
    screen.print_phase(events, sockets)
    last = on_all_sockets_ms(events, sockets)
    report("", f"until on all {len(sockets)} sockets: p50 {median(last):.1f} ms  p99 {pct99(last):.1f} ms")
    fixes.post.print()
    report(
        "",
        f"fixes: {len([f for f in fixes.sent if f.measured]):,} measured, "
        f"fix-to-screen n={len(fixes.latencies_ms):,} (fixes × sockets)",
    )
    window = measured.window
    stalled = sorted((v.stalls(*window), v.camera_id) for v in measured.viewers)
    if stalled and stalled[-1][0]:
        report("", f"most stalls: camera {stalled[-1][1]} ({stalled[-1][0]} on one viewer)")
