"""Intake under load: partner events per second and their latency, against real Daphne.

Sixteen concurrent clients POST events (unique external ids, random points in Seoul,
among the spatial section's million cameras) for a fixed time to a Daphne started here
on the bench database, then request a trivial endpoint of the same server at the same
concurrency, so the ratio shows what intake itself costs. The same is measured with two
Daphne processes and the clients spread round-robin over them — how production runs on
a two-core machine. Targets (this 2-core box): ≥ 200 events/s, p99 ≤ 100 ms, no errors.

The trivial endpoint is a small static file (`/static/css/app.css`). WhiteNoise answers
it from the middleware chain before sessions, authentication, DRF or the database are
involved, and logs nothing, so it measures the floor every request pays: Daphne, the
ASGI handler, and Django's middleware hop into a worker thread. `/healthz` pings
PostgreSQL, Redis and Celery; an unauthenticated API call (401) runs DRF and writes a
warning log line per request; the schema is generated each time.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import ctypes
import datetime as dt
import json
import os
import random
import re
import signal
import socket
import statistics
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
from django.contrib.gis.geos import MultiPolygon, Polygon
from django.db import transaction

from bench import spatial
from bench.common import Figure, Target, percentile, report, report_figure
from cameras.models import Camera, Center
from incidents.catalogue import EVENT_TYPES
from partners.models import Agreement, AgreementEventType, ApiKey, Partner
from partners.services import api_key_create, api_key_revoke

CONCURRENCY = 16
WARMUP_S = 2.0
DURATION_S = 20.0
REQUEST_TIMEOUT_S = 30.0
SERVER_START_TIMEOUT_S = 60.0
PARTNER_SLUG = "bench-police"
CENTER_SLUG = "bench-seoul"
EVENT_TYPE = "police.emergency_video"
TRIVIAL_PATH = "/static/css/app.css"
LOAD_SEED = 20_240_602
PR_SET_PDEATHSIG = 1  # linux/prctl.h
EXCEPTION_LINE = re.compile(r"^[\w.]+(?:Error|Exception): .*$", re.MULTILINE)
ROOT = Path(__file__).resolve().parent.parent
LOG_DIR = ROOT / ".run"


def run() -> list[Figure]:
    spatial.ensure_cameras()  # nearest-camera ranking at city density, as in spatial
    center = ensure_center()
    partner = ensure_partner()
    key = fresh_key(partner)
    report("data", f"{Camera.objects.count():,} cameras; centre {center.slug}; partner {partner.slug}")
    report("trivial endpoint", f"GET {TRIVIAL_PATH} (static file via WhiteNoise; see bench/intake.py)")
    report("load", f"{CONCURRENCY} clients, {WARMUP_S:.0f} s warm-up + {DURATION_S:.0f} s measured per run")

    one = measure_servers(count=1, key=key)
    two = measure_servers(count=2, key=key)

    figures = [
        Figure("intake events/s (1 Daphne)", one.intake.rate, "/s"),
        Figure("intake p50 (1 Daphne)", one.intake.p50, "ms"),
        Figure("intake p99 (1 Daphne)", one.intake.p99, "ms"),
        Figure("trivial requests/s (1 Daphne)", one.trivial.rate, "/s"),
        Figure("ratio intake/trivial (1 Daphne)", one.intake.rate / one.trivial.rate, "×"),
        Figure("intake events/s (2 Daphne)", two.intake.rate, "/s", Target(">=", 200)),
        Figure("intake p50 (2 Daphne)", two.intake.p50, "ms"),
        Figure("intake p99 (2 Daphne)", two.intake.p99, "ms", Target("<=", 100)),
        Figure(
            "intake errors (1 and 2 Daphne)",
            one.intake.error_count + two.intake.error_count,
            "",
            Target("<=", 0),
        ),
        Figure("trivial requests/s (2 Daphne)", two.trivial.rate, "/s"),
        Figure("ratio intake/trivial (2 Daphne)", two.intake.rate / two.trivial.rate, "×"),
    ]
    header_line = (
        "headline: 2 Daphne processes (production layout on 2 cores); 1 process shown for comparison"
    )
    report("targets judged on", header_line)
    for figure in figures:
        report_figure(figure)
    return figures


# --- data --------------------------------------------------------------------------


def ensure_center() -> Center:
    """A centre whose jurisdiction is the spatial section's box, so every event routes to it."""
    lon0, lat0, lon1, lat1 = spatial.LON_MIN, spatial.LAT_MIN, spatial.LON_MAX, spatial.LAT_MAX
    ring = ((lon0, lat0), (lon1, lat0), (lon1, lat1), (lon0, lat1), (lon0, lat0))
    center, _ = Center.objects.update_or_create(
        slug=CENTER_SLUG,
        defaults={"name": "Bench Seoul", "jurisdiction": MultiPolygon(Polygon(ring), srid=4326)},
    )
    return center


def ensure_partner() -> Partner:
    """A police partner with a current agreement, no signing secret and a limit out of the way."""
    with transaction.atomic():
        partner, _ = Partner.objects.update_or_create(
            slug=PARTNER_SLUG,
            defaults={
                "name": "Bench police",
                "kind": "police",
                "signing_secret": "",
                "is_active": True,
                "rate_limit_per_minute": 100_000_000,  # the limiter is still consulted, never refuses
            },
        )
        agreement, _ = Agreement.objects.get_or_create(
            partner=partner, title="bench", defaults={"valid_from": dt.date(2024, 1, 1)}
        )
        AgreementEventType.objects.get_or_create(
            agreement=agreement,
            event_type=EVENT_TYPE,
            defaults={"share_policy": EVENT_TYPES[EVENT_TYPE].policy},
        )
    return partner


def fresh_key(partner: Partner) -> str:
    """A new key for this run; the previous runs' keys are revoked so they do not pile up live."""
    for old in ApiKey.objects.filter(partner=partner, revoked_at__isnull=True):
        api_key_revoke(key=old, actor="bench")
    _, raw = api_key_create(partner=partner, name="bench", actor="bench")
    return raw


# --- servers -----------------------------------------------------------------------


@dataclass
class Server:
    """One Daphne process serving smartcity.asgi on a port of its own."""

    port: int
    process: subprocess.Popen[bytes]
    log_path: Path

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @classmethod
    def start(cls, number: int) -> Server:
        port = free_port()
        LOG_DIR.mkdir(exist_ok=True)
        log_path = LOG_DIR / f"bench-daphne-{number}.log"  # the last run's, for a look afterwards
        daphne = Path(sys.executable).parent / "daphne"
        # As in production (README): no access log.
        command = [str(daphne), "-b", "127.0.0.1", "-p", str(port), "-v", "0", "smartcity.asgi:application"]
        with log_path.open("wb") as log:
            process = subprocess.Popen(
                command,
                cwd=ROOT,
                env=dict(os.environ),
                stdout=log,
                stderr=subprocess.STDOUT,
                preexec_fn=die_with_parent,
            )
        return cls(port=port, process=process, log_path=log_path)

    def wait_ready(self) -> None:
        deadline = time.monotonic() + SERVER_START_TIMEOUT_S
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(
                    f"daphne on :{self.port} exited ({self.process.returncode}):\n{self.log_tail()}"
                )
            try:
                with urllib.request.urlopen(self.base_url + TRIVIAL_PATH, timeout=2) as response:  # noqa: S310
                    if response.status == 200:
                        return
            except urllib.error.HTTPError as error:
                raise RuntimeError(
                    f"GET {TRIVIAL_PATH} answered {error.code}: were static files collected?"
                ) from error
            except OSError:
                pass
            time.sleep(0.2)
        raise RuntimeError(
            f"daphne on :{self.port} not ready after {SERVER_START_TIMEOUT_S:.0f} s:\n{self.log_tail()}"
        )

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)

    def log_exceptions(self) -> collections.Counter[str]:
        """The exceptions the server logged, by their last traceback line, e.g. a database error."""
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return collections.Counter()
        return collections.Counter(m.group(0)[:160] for m in EXCEPTION_LINE.finditer(text))

    def log_tail(self, lines: int = 20) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"


def die_with_parent() -> None:
    """In the child, before exec: SIGTERM when the bench dies, so no server outlives a killed run."""
    prctl = ctypes.CDLL(None, use_errno=True).prctl
    prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextlib.contextmanager
def daphne_servers(count: int) -> Iterator[list[Server]]:
    """`count` Daphne processes, ready; stopped on the way out whatever happened."""
    servers: list[Server] = []
    try:
        for number in range(1, count + 1):
            servers.append(Server.start(number))
        for server in servers:
            server.wait_ready()
        yield servers
    finally:
        for server in servers:
            server.stop()


# --- load --------------------------------------------------------------------------


@dataclass
class LoadResult:
    """What one timed run saw: latencies of successful requests, errors, and CPU use."""

    label: str
    latencies_ms: list[float]
    window_s: float
    errors: collections.Counter[str] = field(default_factory=collections.Counter)
    error_samples: list[str] = field(default_factory=list)
    server_cpu_pct: list[float] = field(default_factory=list)
    postgres_cpu_pct: float = 0.0
    machine_cpu_pct: float = 0.0
    client_cpu_pct: float = 0.0

    @property
    def rate(self) -> float:
        return len(self.latencies_ms) / self.window_s if self.window_s else 0.0

    @property
    def p50(self) -> float:
        return statistics.median(self.latencies_ms) if self.latencies_ms else float("nan")

    @property
    def p99(self) -> float:
        return percentile(self.latencies_ms, 99) if len(self.latencies_ms) > 1 else float("nan")

    @property
    def error_count(self) -> int:
        return sum(self.errors.values())

    def record_error(self, status: int, body: bytes) -> None:
        """A failed request, by status (or the client's exception when no answer came)."""
        self.errors[str(status) if status > 0 else body.decode()[:60]] += 1
        if len(self.error_samples) < 3:
            self.error_samples.append(f"{status} {body[:160]!r}")

    def record_cpu(self, start: dict[str, Any], end: dict[str, Any]) -> None:
        self.window_s = wall = end["wall"] - start["wall"]
        ticks = os.sysconf("SC_CLK_TCK")

        def pct(used_ticks: float) -> float:
            return used_ticks / ticks / wall * 100

        self.server_cpu_pct = [pct(b - a) for a, b in zip(start["servers"], end["servers"], strict=True)]
        # Backends that started during the run count from zero; those that ended are lost.
        self.postgres_cpu_pct = pct(
            sum(t - start["postgres"].get(pid, 0) for pid, t in end["postgres"].items())
        )
        self.machine_cpu_pct = pct(end["machine"] - start["machine"])
        self.client_cpu_pct = (end["client"] - start["client"]) / wall * 100

    def print(self) -> None:
        cpu = " + ".join(f"{pct:.0f}%" for pct in self.server_cpu_pct)
        report(
            self.label,
            f"{self.rate:,.0f}/s  p50 {self.p50:.1f} ms  p99 {self.p99:.1f} ms  "
            f"n={len(self.latencies_ms):,}  errors {self.error_count}",
        )
        if self.server_cpu_pct:  # (a run whose CPU someone else measures has none)
            report(
                "",
                f"CPU: server {cpu}, PostgreSQL {self.postgres_cpu_pct:.0f}%, client {self.client_cpu_pct:.0f}%, "
                f"whole machine {self.machine_cpu_pct:.0f}% of {100 * (os.cpu_count() or 1)}%",
            )
        for kind, count in self.errors.most_common():
            report("", f"error {kind}: {count}")
        for sample in self.error_samples:
            report("", f"  e.g. {sample}")


@dataclass
class Measured:
    intake: LoadResult
    trivial: LoadResult


def measure_servers(*, count: int, key: str) -> Measured:
    with daphne_servers(count) as servers:
        ports = ", ".join(str(s.port) for s in servers)
        report(f"{count} Daphne process{'es' if count > 1 else ''}", f"ports {ports}")
        intake = asyncio.run(load(servers, intake_request(key), label=f"intake ({count} Daphne)"))
        intake.print()
        if intake.error_count:
            logged = sum((server.log_exceptions() for server in servers), collections.Counter[str]())
            for line, n in logged.most_common(3):
                report("", f"server log: {n} × {line}")
        trivial = asyncio.run(load(servers, trivial_request, label=f"trivial ({count} Daphne)"))
        trivial.print()
    return Measured(intake=intake, trivial=trivial)


# (session, base url, worker, sequence) → (status, body); one call is one request.
RequestMaker = Callable[[aiohttp.ClientSession, str, int, int], Any]


def intake_request(key: str, run_tag: str = "") -> RequestMaker:
    """POSTs of new events; external ids `bench-<run_tag>-<worker>-<sequence>`, unique per run."""
    run_tag = run_tag or f"{int(time.time())}-{os.getpid()}"
    rng = random.Random(LOAD_SEED)
    headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}

    async def post(session: aiohttp.ClientSession, base_url: str, worker: int, seq: int) -> tuple[int, bytes]:
        body = event_body(f"bench-{run_tag}-{worker}-{seq}", rng)
        async with session.post(
            f"{base_url}/api/v1/events/", data=json.dumps(body), headers=headers
        ) as response:
            return response.status, await response.read()

    return post


def event_body(external_id: str, rng: random.Random) -> dict[str, Any]:
    """A new police event at a random point among the spatial section's cameras."""
    return {
        "external_id": external_id,
        "type": EVENT_TYPE,
        "occurred_at": dt.datetime.now(dt.UTC).isoformat(),
        "location": {
            "lat": rng.uniform(spatial.LAT_MIN, spatial.LAT_MAX),
            "lon": rng.uniform(spatial.LON_MIN, spatial.LON_MAX),
            "accuracy_m": 10,
        },
        "summary": "bench",
    }


async def attempt(request: Awaitable[tuple[int, bytes]]) -> tuple[int, bytes]:
    """The request's (status, body), or (-1, the client's exception) when no answer came."""
    try:
        return await request
    except (aiohttp.ClientError, TimeoutError) as error:
        return -1, repr(error).encode()


async def trivial_request(
    session: aiohttp.ClientSession, base_url: str, worker: int, seq: int
) -> tuple[int, bytes]:
    async with session.get(base_url + TRIVIAL_PATH) as response:
        return response.status, await response.read()


async def load(servers: list[Server], request: RequestMaker, *, label: str) -> LoadResult:
    """CONCURRENCY workers, each sending one request after the other to its server (round-robin).

    Only requests sent after the warm-up count; the window runs from the first of them
    until the last one returned, and CPU use is read over the same window.
    """
    loop = asyncio.get_running_loop()
    measure_from = loop.time() + WARMUP_S
    measure_until = measure_from + DURATION_S
    result = LoadResult(label=label, latencies_ms=[], window_s=DURATION_S)
    pids = [server.process.pid for server in servers]
    cpu_start: dict[str, Any] = {}

    async def worker(session: aiohttp.ClientSession, index: int) -> None:
        base_url = servers[index % len(servers)].base_url
        seq = 0
        while (now := loop.time()) < measure_until:
            seq += 1
            if now >= measure_from and not cpu_start:
                cpu_start.update(cpu_sample(pids))
            sent = time.perf_counter()
            status, body = await attempt(request(session, base_url, index, seq))
            elapsed_ms = (time.perf_counter() - sent) * 1000
            if now < measure_from:
                continue  # warm-up: connections, caches, query plans
            if 200 <= status < 300:
                result.latencies_ms.append(elapsed_ms)
                continue
            result.record_error(status, body)

    timeout = aiohttp.ClientTimeout(total=REQUEST_TIMEOUT_S)
    connector = aiohttp.TCPConnector(limit=CONCURRENCY)
    async with aiohttp.ClientSession(timeout=timeout, connector=connector) as session:
        await asyncio.gather(*(worker(session, i) for i in range(CONCURRENCY)))
    result.record_cpu(cpu_start, cpu_sample(pids))
    return result


def cpu_sample(pids: list[int]) -> dict[str, Any]:
    return {
        "wall": time.monotonic(),
        "servers": [process_cpu_ticks(pid) for pid in pids],
        "postgres": postgres_cpu_ticks(),
        "machine": machine_cpu_ticks(),
        "client": sum(os.times()[:2]),  # seconds, not ticks
    }


def process_cpu_ticks(pid: int) -> int:
    """utime + stime of a process, in clock ticks (fields 14 and 15 of /proc/<pid>/stat)."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    fields = stat[stat.rindex(")") + 2 :].split()  # the command name may contain spaces
    return int(fields[11]) + int(fields[12])


def postgres_cpu_ticks() -> dict[int, int]:
    """CPU ticks of every PostgreSQL process on this machine (the bench's and anyone else's)."""
    return cpu_ticks_of(pids_named("postgres"))


def cpu_ticks_of(pids: list[int]) -> dict[int, int]:
    """CPU ticks of each of these processes still running."""
    found: dict[int, int] = {}
    for pid in pids:
        with contextlib.suppress(OSError):  # ended meanwhile
            found[pid] = process_cpu_ticks(pid)
    return found


def pids_named(name: str) -> list[int]:
    """Every process on this machine whose command name (/proc/<pid>/comm) is `name`."""
    found: list[int] = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        with contextlib.suppress(OSError):  # ended while we looked
            if (proc / "comm").read_text().strip() == name:
                found.append(int(proc.name))
    return found


def machine_cpu_ticks() -> int:
    """Busy clock ticks of the whole machine, all cores (everything but idle and iowait)."""
    values = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    return sum(values) - values[3] - values[4]
