"""Redis dies during intake: events are still accepted and stored; dashboards catch up after.

DESIGN §6: "Redis down → events are still accepted and stored; pushes resume when it
returns." A real Daphne runs on a private Redis (channel layer, rate limiter, replay
cache, Celery broker, cache); a signed partner posts events without pause while that
Redis is killed and, seconds later, started again (empty, as after a failover). An
operator's dashboard is played by a client that behaves like static/js/dashboard.js:
it keeps the queue from the `snapshot` sent on every (re)connect plus the pushes, and
reconnects with the same backoff when its socket closes.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import pytest
from asgiref.sync import sync_to_async
from django.db import connections

from cameras.models import Camera
from cameras.selectors import make_point
from incidents.models import Incident
from partners.models import Partner as PartnerRow
from partners.models import WebhookMessage
from partners.services import api_key_create
from tests.faults.client import Answer, Partner
from tests.faults.services import RedisServer
from tests.fixtures.live_server import LiveDaphne, live_env
from tests.incidents.conftest import operator_of
from tests.incidents.test_scale_out import session_cookie
from tests.partners.conftest import partner_with_agreement

pytestmark = [pytest.mark.faults, pytest.mark.django_db(transaction=True)]

SECRET = "police-signing-secret-0123456789"
BEFORE_S, DOWN_S, AFTER_S = 2.0, 5.0, 2.0
CATCH_UP_S = 20.0  # the dashboard's reconnect backoff after a 5 s outage is 1 + 2 + 4 s


@pytest.fixture
def server(private_redis: RedisServer) -> Iterator[LiveDaphne]:
    daphne = LiveDaphne(live_env(REDIS_URL=private_redis.url, CELERY_BROKER_URL=private_redis.url))
    daphne.start()
    try:
        yield daphne
    finally:
        daphne.stop()


@pytest.fixture
def scene(center_factory) -> tuple[Any, str]:
    """A centre with a camera by the scene, its operator, and a police partner that signs
    its requests and takes webhooks (so intake also enqueues to the Celery broker)."""
    centre = center_factory("seoul-junggu", (126.96, 37.54, 127.03, 37.58))
    Camera.objects.create(
        code="F-0001",
        name="시청앞",
        center=centre,
        location=make_point(lat=37.5664, lon=126.9780),
        stream_url="rtsp://127.0.0.1:9/none",
    )
    partner = partner_with_agreement("police-112", "police", secret=SECRET)
    PartnerRow.objects.filter(pk=partner.pk).update(webhook_url="http://127.0.0.1:9/hooks")
    _, key = api_key_create(partner=partner)
    return operator_of(centre, "op-faults"), key


@dataclass
class Dashboard:
    """An operator's screen: the queue as dashboard.js keeps it."""

    url: str
    cookie: str
    incidents: dict[int, dict[str, Any]] = field(default_factory=dict)
    pushed: set[int] = field(default_factory=set)  # ids that arrived as incident.created
    connects: int = 0
    attempts: list[tuple[float, str]] = field(default_factory=list)  # (monotonic start, outcome)

    async def run(self, stop: asyncio.Event) -> None:
        attempts = 0
        headers = {"Cookie": self.cookie, "Origin": self.url}
        async with aiohttp.ClientSession() as http:
            while not stop.is_set():
                started = time.monotonic()
                try:
                    async with http.ws_connect(f"{self.url}/ws/operator/", headers=headers) as ws:
                        attempts = 0
                        self.connects += 1
                        await self.listen(ws, stop)
                        self.attempts.append((started, f"closed {ws.close_code}"))
                except (TimeoutError, aiohttp.ClientError) as error:
                    self.attempts.append((started, f"refused: {error}"))
                # dashboard.js: 1 s doubling to 30 s, ×0.8–1.2 jitter, until a socket opens.
                delay = min(30.0, 2**attempts) * random.uniform(0.8, 1.2)
                attempts = min(attempts + 1, 10)
                with contextlib.suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(stop.wait(), delay)

    async def listen(self, ws: aiohttp.ClientWebSocketResponse, stop: asyncio.Event) -> None:
        while not stop.is_set():
            try:
                message = await ws.receive(timeout=0.5)
            except TimeoutError:
                continue
            if message.type != aiohttp.WSMsgType.TEXT:
                return
            data = message.json()
            if data["type"] == "snapshot":
                self.incidents = {item["id"]: item for item in data["incidents"]}
            elif data["type"] == "incident.created":
                self.incidents[data["incident"]["id"]] = data["incident"]
                self.pushed.add(data["incident"]["id"])


@dataclass
class Intake:
    answers: dict[str, Answer]
    back_at: float  # when Redis accepted connections again (monotonic)


def post_through_outage(partner: Partner, redis: RedisServer) -> Intake:
    """Events back to back: BEFORE_S with Redis, DOWN_S without, AFTER_S with it again."""
    answers: dict[str, Answer] = {}

    def post_for(seconds: float, phase: str) -> None:
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            external_id = f"112-{phase}-{len(answers) + 1}"
            answers[external_id] = partner.post_event(external_id)
            time.sleep(0.02)

    post_for(BEFORE_S, "up")
    redis.kill()
    post_for(DOWN_S, "down")
    redis.start()
    back_at = time.monotonic()
    post_for(AFTER_S, "back")
    return Intake(answers, back_at)


async def wait_for(condition: Callable[[], bool], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        await asyncio.sleep(0.1)
    return condition()


@pytest.mark.asyncio
async def test_events_acknowledged_while_redis_is_down_are_stored_and_reach_the_dashboard(
    server, private_redis, scene
):
    operator, key = scene
    dashboard = Dashboard(server.url, await sync_to_async(session_cookie)(operator))
    stop = asyncio.Event()
    screen = asyncio.create_task(dashboard.run(stop))
    try:
        assert await wait_for(lambda: dashboard.connects == 1, 10), dashboard.attempts
        partner = Partner(server.url, key, SECRET)

        intake = await asyncio.to_thread(post_through_outage, partner, private_redis)

        # Every event was acknowledged, those sent while Redis was away included.
        statuses = {external_id: answer.status for external_id, answer in intake.answers.items()}
        assert [k for k, v in statuses.items() if v != 201] == [], statuses
        assert sum("down" in external_id for external_id in statuses) >= 3, statuses
        acknowledged = {answer.body["id"] for answer in intake.answers.values()}
        stored = await sync_to_async(lambda: set(Incident.objects.values_list("pk", flat=True)))()
        assert acknowledged <= stored
        # So is the share.created webhook of each (the outbox; the broker was away for
        # some, and the sweeper sends what could not be enqueued).
        outbox = await sync_to_async(lambda: WebhookMessage.objects.filter(event="share.created").count())()
        assert outbox == len(acknowledged)
        # Their pushes were lost with Redis; the dashboard's socket closed, and once it
        # reconnects the snapshot brings every acknowledged event.
        caught_up = await wait_for(lambda: acknowledged <= set(dashboard.incidents), CATCH_UP_S)
        missing = acknowledged - set(dashboard.incidents)
        assert caught_up, f"{len(missing)} acknowledged events not on the dashboard; {dashboard.attempts}"
        # Once Redis was back, no reconnection was refused (a refusal costs a backoff).
        after_return = [outcome for started, outcome in dashboard.attempts if started > intake.back_at]
        assert not [outcome for outcome in after_return if outcome.startswith("refused")], dashboard.attempts

        # And pushes resume: a new event arrives as a push, not only in a later snapshot.
        fresh = await asyncio.to_thread(partner.post_event, "112-after-recovery")
        assert fresh.status == 201
        assert await wait_for(lambda: fresh.body["id"] in dashboard.pushed, 5), server.output()
    finally:
        stop.set()
        await screen
        await sync_to_async(connections.close_all)()
