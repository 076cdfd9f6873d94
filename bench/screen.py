"""Event-to-screen latency: a partner's POST until `incident.created` is on every operator's socket.

Two Daphne processes (the production layout on two cores) serve the bench database.
Fifty operators of the bench centre hold `/ws/operator/` sockets, spread evenly over
both processes; their sessions are made directly with the session engine (no /login/:
django-axes and password hashing would only add noise), and every socket has had its
`snapshot` before the load starts. Events are then POSTed open loop — scheduled by the
clock, never waiting for a response before the next — alternating the two ports, at 20
and then 100 events/s (a short warm-up, then the measured seconds; BENCH_SCREEN_RATES
overrides the rates, e.g. to find where the servers stop keeping up).

Latency is counted for every (event, socket) pair, from just before the POST is sent
until the socket's event loop has the message, so an event posted through one process
and delivered by the other counts as much as one that stays local. The client runs on
the same two cores as the servers, PostgreSQL and Redis; its CPU is shown. When the
servers cannot keep up with a rate, the achieved rate and the backlog say so, and the
latency grows with the queue: nothing is dropped from the figures for being slow. An
event is missed when some socket did not have it within DEADLINE_S of the POST.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import json
import math
import os
import re
import statistics
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from importlib import import_module
from typing import Any

import aiohttp
from django.conf import settings
from django.contrib.auth import BACKEND_SESSION_KEY, HASH_SESSION_KEY, SESSION_KEY, get_user_model
from django.contrib.auth.models import AbstractBaseUser
from django.db import connection

from bench import intake, spatial
from bench.common import Figure, Target, paced, percentile, report, report_figure
from bench.intake import LoadResult, RequestMaker, Server, attempt, cpu_sample, daphne_servers
from cameras.models import Center, StaffProfile, StaffRole

SERVERS = 2
SOCKETS = 50
# events/s, in this order; BENCH_SCREEN_RATES="20,40,60" probes others (100 is the judged one)
RATES = tuple(int(r) for r in os.environ.get("BENCH_SCREEN_RATES", "20,100").split(","))
HEADLINE_RATE = 100
WARMUP_S = 2.0
DURATION_S = 15.0
DEADLINE_S = 5.0  # an event not on every socket this long after its POST is missed
TARGET_P99_MS = 150.0
SNAPSHOT_TIMEOUT_S = 60.0
REQUEST_TIMEOUT_S = 30.0
MAX_CONNECTIONS = 1000  # open loop: a backlog opens connections rather than queueing here
USERNAME_PREFIX = "bench-operator-"
SESSION_BACKEND = "django.contrib.auth.backends.ModelBackend"
# `send_json` writes the message as json.dumps does, the incident id first; reading the
# id off the front spares the client parsing 5,000 messages a second at 100 events/s.
CREATED = re.compile(r'\{"type": "incident\.created", "incident": \{"id": (\d+)[,}]')
LOCATED = re.compile(r'\{"type": "incident\.location", "incident": \{"id": (\d+)[,}]')
# The incident's own position: its "location" comes before the track and the cameras.
POSITION = re.compile(r'"location": \{"lat": ([-\d.e]+), "lon": ([-\d.e]+)')


def run() -> list[Figure]:
    spatial.ensure_cameras()  # incidents rank their nearest cameras among the million
    analyze_incident_tables()
    center = intake.ensure_center()
    partner = intake.ensure_partner()
    key = intake.fresh_key(partner)
    operators = ensure_operators(center)
    report("data", f"centre {center.slug}; partner {partner.slug}; {len(operators)} operators")
    with operator_sessions(center, operators) as cookies, daphne_servers(SERVERS) as servers:
        report_servers(servers)
        report(
            "load",
            f"{SOCKETS} operator sockets ({SOCKETS // SERVERS} per process); POSTs open loop, "
            f"alternating ports; {WARMUP_S:.0f} s warm-up + {DURATION_S:.0f} s measured per rate",
        )
        storm_s = asyncio.run(reconnect_storm(servers[0], cookies[::SERVERS]))  # on quiet servers
        phases = asyncio.run(measure(servers, cookies, intake.intake_request(key)))

    figures: list[Figure] = []
    for phase in phases:
        at = f"@{phase.rate}/s"
        figures += [
            LatencyFigure(f"screen p50 {at}", phase.p50, "ms"),
            LatencyFigure(
                f"screen p99 {at}",
                phase.p99,
                "ms",
                Target("<=", TARGET_P99_MS) if phase.rate == HEADLINE_RATE else None,
            ),
            LatencyFigure(f"screen max {at}", phase.max, "ms"),
            Figure(f"screen POSTs achieved {at}", phase.post.rate, "/s"),
        ]
    figures += [
        Figure("screen missed deliveries", sum(p.missed_events for p in phases), "", Target("<=", 0)),
        Figure("screen POST errors", sum(p.post.error_count for p in phases), "", Target("<=", 0)),
        Figure(
            f"reconnect storm: {SOCKETS // SERVERS} dashboards of one process at once, all snapshots",
            storm_s,
            "s",
        ),
    ]
    report("targets judged on", f"2 Daphne processes, {SOCKETS} sockets, deadline {DEADLINE_S:.0f} s")
    for figure in figures:
        report_figure(figure)
    return figures


@dataclass(frozen=True)
class LatencyFigure(Figure):
    """A latency over delivered messages: "none delivered" (judged a miss) when there were none."""

    def shown(self) -> str:
        return super().shown() if math.isfinite(self.value) else "none delivered"


async def reconnect_storm(server: Server, cookies: list[str]) -> float:
    """Seconds until every one of these dashboards, connecting to `server` all at once, has its snapshot.

    What a control room sees after a restart or a Redis blip: every dashboard comes
    back at the same moment. Their snapshot reads are shared (incidents/consumers.py).
    """
    async with aiohttp.ClientSession() as http:

        async def one(cookie: str) -> aiohttp.ClientWebSocketResponse:
            headers = {"Origin": server.base_url, "Cookie": cookie}
            ws = await http.ws_connect(f"{server.base_url}/ws/operator/", headers=headers, max_msg_size=0)
            message = await ws.receive(timeout=SNAPSHOT_TIMEOUT_S)
            if message.type is not aiohttp.WSMsgType.TEXT or not message.data.startswith(
                '{"type": "snapshot"'
            ):
                raise RuntimeError(f"reconnect storm: no snapshot but {message.type}")
            return ws

        started = time.perf_counter()
        sockets = await asyncio.gather(*(one(cookie) for cookie in cookies))
        took = time.perf_counter() - started
        await close_sockets(list(sockets), [])
    return took


def analyze_incident_tables() -> None:
    """Fresh planner statistics for the tables a snapshot and a push read.

    This PostgreSQL runs with autovacuum off; without statistics on the incident tables
    the bench keeps growing, each snapshot's 400 per-incident queries turn into
    sequential scans (3.5 s instead of 0.6 s per socket with 17,000 incidents). Production
    runs autovacuum, which keeps them current.
    """
    with connection.cursor() as cursor:
        cursor.execute(
            "ANALYZE incidents_incident, incidents_incidentcamera, incidents_locationfix,"
            " incidents_timelineentry"
        )


def report_servers(servers: list[Server]) -> None:
    ports = ", ".join(str(s.port) for s in servers)
    report(
        f"{len(servers)} Daphne processes",
        f"ports {ports} (production layout on 2 cores); DB_POOL_MAX {settings.DB_POOL_MAX}",
    )


# --- operators and sessions ----------------------------------------------------------


def ensure_operators(center: Center, count: int = SOCKETS) -> list[AbstractBaseUser]:
    """`count` operators of `center`, made once and reused; no usable password (never logged in)."""
    user_model = get_user_model()
    users: list[AbstractBaseUser] = []
    for number in range(1, count + 1):
        user, created = user_model.objects.get_or_create(username=f"{USERNAME_PREFIX}{number:02d}")
        if created:
            user.set_unusable_password()
            user.save(update_fields=["password"])
        StaffProfile.objects.update_or_create(
            user=user, defaults={"role": StaffRole.OPERATOR, "center": center}
        )
        users.append(user)
    return users


@contextlib.contextmanager
def operator_sessions(center: Center, operators: list[AbstractBaseUser]) -> Iterator[list[str]]:
    """A logged-in session cookie per operator; on the way out the sessions are deleted."""
    cookies: list[str] = []
    try:
        cookies.extend(session_cookie(user) for user in operators)
        yield cookies
    finally:
        for cookie in cookies:
            session_store(cookie.split("=", 1)[1]).delete()


def session_store(session_key: str | None = None) -> Any:
    return import_module(settings.SESSION_ENGINE).SessionStore(session_key)


def session_cookie(user: AbstractBaseUser) -> str:
    """A logged-in session made as the login view would leave it, as a Cookie header value."""
    session = session_store()
    session[SESSION_KEY] = str(user.pk)
    session[BACKEND_SESSION_KEY] = SESSION_BACKEND
    session[HASH_SESSION_KEY] = user.get_session_auth_hash()
    session.save()
    return f"{settings.SESSION_COOKIE_NAME}={session.session_key}"


# --- measuring -----------------------------------------------------------------------


@dataclass
class Phase:
    """One rate: POSTs sent and answered, and what the sockets made of them."""

    rate: int
    post: LoadResult
    sent_at: dict[int, float] = field(default_factory=dict)  # incident id → POST sent (measured only)
    posted_to: dict[int, int] = field(default_factory=dict)  # incident id → server index
    send_lag_ms: list[float] = field(default_factory=list)  # sent − scheduled: is the client on time?
    first_sent: float = 0.0
    last_sent: float = 0.0
    last_answered: float = 0.0
    backlog: int = 0  # POSTs unanswered when the last one was sent
    latencies_ms: list[float] = field(default_factory=list)
    local_ms: list[float] = field(default_factory=list)  # socket on the process that took the POST
    remote_ms: list[float] = field(default_factory=list)
    missed_events: int = 0
    missing_pairs: int = 0

    @property
    def p50(self) -> float:
        return statistics.median(self.latencies_ms) if self.latencies_ms else float("nan")

    @property
    def p99(self) -> float:
        return percentile(self.latencies_ms, 99) if len(self.latencies_ms) > 1 else float("nan")

    @property
    def max(self) -> float:
        return max(self.latencies_ms) if self.latencies_ms else float("nan")

    @property
    def sent_rate(self) -> float:
        count = len(self.send_lag_ms)
        span = self.last_sent - self.first_sent
        return (count - 1) / span if count > 1 and span > 0 else float("nan")


@dataclass
class Socket:
    """One operator's dashboard: the arrival time of each incident.created, by incident id."""

    server: int
    ws: aiohttp.ClientWebSocketResponse
    arrived: dict[int, float] = field(default_factory=dict)
    # (incident id, lat, lon) of each incident.location → its first arrival (bench/load.py)
    located: dict[tuple[int, float, float], float] = field(default_factory=dict)
    closed: bool = False


async def measure(servers: list[Server], cookies: list[str], post: RequestMaker) -> list[Phase]:
    timeout = aiohttp.ClientTimeout(total=REQUEST_TIMEOUT_S)
    connector = aiohttp.TCPConnector(limit=MAX_CONNECTIONS)
    async with (
        aiohttp.ClientSession(timeout=timeout, connector=connector) as http,
        operator_sockets(http, servers, cookies) as sockets,
    ):
        phases = []
        for rate in RATES:
            phase = await drive(http, servers, post, rate, sockets)
            summarise(phase, sockets)
            print_phase(phase, sockets)
            phases.append(phase)
        if any(s.closed for s in sockets) or any(p.post.error_count or p.missing_pairs for p in phases):
            report_server_logs(servers)
        return phases


@contextlib.asynccontextmanager
async def operator_sockets(
    http: aiohttp.ClientSession, servers: list[Server], cookies: list[str]
) -> AsyncIterator[list[Socket]]:
    """One dashboard socket per cookie, spread over the servers, each past its snapshot and read.

    Closed on the way out, whatever happened.
    """
    sockets: list[Socket] = []
    listeners: list[asyncio.Task[None]] = []
    try:
        start = time.perf_counter()
        await connect_all(http, servers, cookies, sockets, listeners)
        report(
            "sockets",
            f"{len(sockets)} open, snapshot received on each ({time.perf_counter() - start:.1f} s)",
        )
        await asyncio.sleep(0.1)  # a socket the server already closed shows as closed now
        if closed := sum(s.closed for s in sockets):
            report("", f"{closed} of {len(sockets)} sockets already closed by the server before the load")
        yield sockets
    finally:
        await close_sockets([socket.ws for socket in sockets], listeners)


async def close_sockets(
    sockets: list[aiohttp.ClientWebSocketResponse], readers: list[asyncio.Task[None]]
) -> None:
    """Close the sockets, then stop the tasks that read them."""
    for ws in sockets:
        await ws.close()
    for task in readers:
        task.cancel()
    await asyncio.gather(*readers, return_exceptions=True)


def report_server_logs(servers: list[Server]) -> None:
    """What the servers logged that explains errors: the commonest exceptions."""
    logged = sum((server.log_exceptions() for server in servers), collections.Counter[str]())
    for line, count in logged.most_common(3):
        report("server log", f"{count} × {line}")


async def connect_all(
    http: aiohttp.ClientSession,
    servers: list[Server],
    cookies: list[str],
    opened: list[Socket],
    listeners: list[asyncio.Task[None]],
) -> None:
    """Socket `number` goes to server `number % len(servers)`, each one's snapshot read before the next.

    Each socket is read from its snapshot on: aiohttp answers Daphne's pings only while
    someone reads, and Daphne closes a socket that has not answered for 30 s.

    One handshake at a time per process: a handshake the consumer has not accepted within
    Daphne's --websocket_connect_timeout (5 s) is dropped, and concurrent ones queue behind
    the other sockets' snapshots (up to 200 incidents each).
    """

    async def connect_to(index: int) -> None:
        server = servers[index]
        for cookie in cookies[index :: len(servers)]:
            headers = {"Origin": server.base_url, "Cookie": cookie}
            try:
                ws = await http.ws_connect(f"{server.base_url}/ws/operator/", headers=headers, max_msg_size=0)
            except aiohttp.WSServerHandshakeError as error:
                raise RuntimeError(
                    f"operator socket refused by :{server.port} ({error.status}): session or origin?"
                ) from error
            opened.append(socket := Socket(server=index, ws=ws))
            message = await ws.receive(timeout=SNAPSHOT_TIMEOUT_S)
            if message.type is not aiohttp.WSMsgType.TEXT or not message.data.startswith(
                '{"type": "snapshot"'
            ):
                raise RuntimeError(
                    f"expected a snapshot on :{server.port}, got {message.type} {message.data!r:.120}"
                )
            listeners.append(asyncio.create_task(listen(socket)))

    async with asyncio.TaskGroup() as group:  # one failing cancels the other
        for index in range(len(servers)):
            group.create_task(connect_to(index))


async def listen(socket: Socket) -> None:
    async for message in socket.ws:
        if message.type is not aiohttp.WSMsgType.TEXT:
            continue
        now = time.perf_counter()
        data: str = message.data
        if (match := CREATED.match(data)) is not None:
            socket.arrived.setdefault(int(match.group(1)), now)
        elif (match := LOCATED.match(data)) is not None and (where := POSITION.search(data)) is not None:
            key = (int(match.group(1)), round(float(where.group(1)), 6), round(float(where.group(2)), 6))
            socket.located.setdefault(key, now)
        elif '"incident.created"' in data[:64]:  # another field order: parse it properly
            parsed = json.loads(data)
            socket.arrived.setdefault(int(parsed["incident"]["id"]), now)
    socket.closed = True


async def drive(
    http: aiohttp.ClientSession,
    servers: list[Server],
    post: RequestMaker,
    rate: int,
    sockets: list[Socket],
    *,
    warmup_s: float = WARMUP_S,
    duration_s: float = DURATION_S,
) -> Phase:
    """POST at `rate` by the clock, then wait until every socket has every event (or the deadline)."""
    phase = Phase(rate=rate, post=LoadResult(label=f"POST @{rate}/s", latencies_ms=[], window_s=duration_s))
    pids = [server.process.pid for server in servers]
    warmup = round(warmup_s * rate)
    total = warmup + round(duration_s * rate)
    cpu_start: dict[str, Any] = {}
    answered = 0

    async def one(number: int, scheduled: float) -> None:
        nonlocal answered
        index = number % len(servers)
        sent = time.perf_counter()
        status, body = await attempt(post(http, servers[index].base_url, rate, number))
        done = time.perf_counter()
        answered += 1
        if number >= warmup:
            phase.send_lag_ms.append((sent - scheduled) * 1000)
            phase.first_sent = min(phase.first_sent or sent, sent)
            phase.last_sent = max(phase.last_sent, sent)
            phase.last_answered = max(phase.last_answered, done)
        if status != 201:  # each external id is new: 200 ("already received") is wrong too
            phase.post.record_error(status, body)
            return
        if number < warmup:
            return
        incident_id = int(json.loads(body)["id"])
        phase.sent_at[incident_id] = sent
        phase.posted_to[incident_id] = index
        phase.post.latencies_ms.append((done - sent) * 1000)

    tasks: list[asyncio.Task[None]] = []
    async for number, scheduled in paced(rate, total):
        if number == warmup:
            cpu_start = cpu_sample(pids)
        tasks.append(asyncio.create_task(one(number, scheduled)))
    await asyncio.sleep(0)  # let the last one send
    phase.backlog = total - answered
    await asyncio.gather(*tasks)
    phase.post.record_cpu(cpu_start, cpu_sample(pids))

    deadline = time.perf_counter() + DEADLINE_S
    while time.perf_counter() < deadline and not delivered_everywhere(phase, sockets):
        await asyncio.sleep(0.1)
    return phase


def delivered_everywhere(phase: Phase, sockets: list[Socket]) -> bool:
    return all(incident_id in s.arrived for s in sockets for incident_id in phase.sent_at)


def summarise(phase: Phase, sockets: list[Socket]) -> None:
    deadline_ms = DEADLINE_S * 1000
    for incident_id, sent in phase.sent_at.items():
        late = False
        for socket in sockets:
            arrived = socket.arrived.get(incident_id)
            if arrived is None:
                phase.missing_pairs += 1
                late = True
                continue
            ms = (arrived - sent) * 1000
            late = late or ms > deadline_ms
            phase.latencies_ms.append(ms)
            local = socket.server == phase.posted_to[incident_id]
            (phase.local_ms if local else phase.remote_ms).append(ms)
        phase.missed_events += late


def print_phase(phase: Phase, sockets: list[Socket]) -> None:
    header = f"{phase.rate} events/s"
    report(
        header,
        f"sent {phase.sent_rate:.1f}/s (client lag p99 {pct99(phase.send_lag_ms):.1f} ms), "
        f"achieved {phase.post.rate:.1f}/s (201s); unanswered when sending stopped: {phase.backlog}, "
        f"last answer {max(0.0, phase.last_answered - phase.last_sent):.1f} s after the last send",
    )
    phase.post.print()
    expected = len(phase.sent_at) * len(sockets)
    delivered = f"n={len(phase.latencies_ms):,} of {expected:,} (events × sockets)"
    if phase.latencies_ms:
        report(
            "",
            f"screen p50 {phase.p50:.1f} ms  p99 {phase.p99:.1f} ms  max {phase.max:.1f} ms  {delivered}",
        )
    else:
        report("", f"screen: nothing delivered, {delivered}")
    report(
        "",
        f"same process p50 {median(phase.local_ms):.1f} / p99 {pct99(phase.local_ms):.1f} ms; "
        f"other process p50 {median(phase.remote_ms):.1f} / p99 {pct99(phase.remote_ms):.1f} ms",
    )
    closed = sum(s.closed for s in sockets)
    report(
        "",
        f"missed (not on all {len(sockets)} sockets within {DEADLINE_S:.0f} s): {phase.missed_events} "
        f"of {len(phase.sent_at):,} events; {phase.missing_pairs:,} deliveries never arrived; "
        f"sockets closed by the server: {closed}",
    )
    if phase.post.rate < 0.95 * phase.rate or phase.backlog > phase.rate:
        report(
            "",
            f"NOT KEEPING UP: {phase.rate}/s asked, {phase.post.rate:.1f}/s answered; "
            "latency above is mostly queueing",
        )


def median(samples: list[float]) -> float:
    return statistics.median(samples) if samples else float("nan")


def pct99(samples: list[float]) -> float:
    return percentile(samples, 99) if len(samples) > 1 else float("nan")
