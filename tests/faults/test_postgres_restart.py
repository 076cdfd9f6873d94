"""PostgreSQL crashes and comes back: the API says 503 meanwhile, then recovers by itself.

A private PostgreSQL cluster (Debian's PostgreSQL 15 with PostGIS) is migrated and
served by a real Daphne.
The cluster is then shut down immediately (every backend killed, as in a crash or a
failover) and started again, while the same Daphne process keeps running.
"""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.faults.client import Answer, Partner, http
from tests.faults.services import PostgresCluster
from tests.fixtures.live_server import LiveDaphne, live_env

pytestmark = pytest.mark.faults

ROOT = Path(__file__).resolve().parents[2]
DATABASE = "smartcity"
POOL = 10  # DB_POOL_MAX's default
# Long enough for the connection pool's retry delay to grow far past its request timeout
# (a failover, not just a quick restart).
OUTAGE_S = 40
SEED = """
from cameras.models import Center
from partners.services import api_key_create
from tests.conftest import box
from tests.partners.conftest import partner_with_agreement
from tests.incidents.conftest import operator_of
from tests.incidents.test_scale_out import session_cookie
centre = Center.objects.create(slug="seoul-junggu", name="서울 중구", jurisdiction=box(126.96, 37.54, 127.03, 37.58))
print(session_cookie(operator_of(centre, "op-faults")))
print(api_key_create(partner=partner_with_agreement("police-112", "police"))[1])
"""


def manage(env: dict[str, str], *args: str) -> str:
    completed = subprocess.run(
        [sys.executable, "manage.py", *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120
    )
    assert completed.returncode == 0, completed.stderr[-3000:]
    return completed.stdout


@dataclass
class Served:
    server: LiveDaphne
    partner: Partner
    operator_cookie: str

    def dashboard(self) -> Answer:
        """The operator's dashboard page, as a browser asks for it."""
        headers = {"Cookie": self.operator_cookie, "Accept": "text/html"}
        return http("GET", f"{self.server.url}/", headers=headers)

    def dashboard_shown(self) -> bool:
        page = self.dashboard()  # (a lost session would be redirected to the login page)
        return page.status == 200 and 'class="dash"' in str(page.body)


@pytest.fixture
def served(private_postgres: PostgresCluster) -> Iterator[Served]:
    """The private cluster migrated and seeded, a Daphne on it, a partner with a key and
    a logged-in operator."""
    private_postgres.psql(f"CREATE DATABASE {DATABASE}")
    env = live_env(DATABASE_URL=private_postgres.url(DATABASE), DB_POOL_MAX=str(POOL))
    env.pop("PGOPTIONS", None)
    manage(env, "migrate", "--noinput", "-v0")
    cookie, key = manage(env, "shell", "-c", SEED).strip().splitlines()[-2:]
    server = LiveDaphne(env)
    server.start()
    try:
        yield Served(server, Partner(server.url, key), cookie)
    finally:
        server.stop()


def assert_unavailable(answer: Answer) -> None:
    """What a partner's system can act on: 503, a reason, and when to try again."""
    assert answer.status == 503, (answer.status, answer.body)
    assert "Retry-After" in answer.headers
    assert isinstance(answer.body, dict)
    assert answer.body["errors"]["detail"], answer.body


def until_ok(request, timeout: float = 30.0) -> tuple[Answer, list[int]]:
    """Repeat a request until it is 2xx; the answer, and the statuses seen before it."""
    seen: list[int] = []
    deadline = time.monotonic() + timeout
    while True:
        answer = request()
        if 200 <= answer.status < 300 or time.monotonic() > deadline:
            return answer, seen
        seen.append(answer.status)
        time.sleep(0.2)


def test_while_postgres_is_down_the_api_answers_503_and_recovers_without_a_restart(served, private_postgres):
    server, partner = served.server, served.partner
    assert served.dashboard_shown()
    # Several at once, so the pool holds several connections when PostgreSQL dies.
    with ThreadPoolExecutor(max_workers=POOL) as pool:
        stored = list(pool.map(partner.post_event, [f"112-before-{n}" for n in range(POOL * 2)]))
    assert [answer.status for answer in stored] == [201] * POOL * 2

    private_postgres.crash()
    down_at = time.monotonic()
    with ThreadPoolExecutor(max_workers=3) as pool:
        probe = pool.submit(http, "GET", f"{server.url}/healthz")
        read = pool.submit(partner.get_event, stored[0].body["id"])
        page = pool.submit(served.dashboard)
        retries = []
        while time.monotonic() - down_at < OUTAGE_S:  # the partner retries after each 503
            retries.append(partner.post_event("112-during"))
            time.sleep(1)
        health, during = probe.result(), [read.result(), *retries]
    private_postgres.start()

    for answer in during:
        assert_unavailable(answer)
    assert (health.status, health.body["status"]) == (503, "degraded")
    assert health.body["checks"]["database"]["ok"] is False
    assert health.seconds < 5, "a load balancer's probe gives up after a few seconds"
    # An operator reloading the dashboard reads "try again shortly", not "Server Error (500)".
    reload = page.result()
    assert (reload.status, reload.headers["Content-Type"]) == (503, "text/plain; charset=utf-8")
    assert "Retry-After" in reload.headers

    # The same process, no restart: the pool replaces its dead connections by itself,
    # and the first request after the database is back already succeeds.
    after, failed = until_ok(lambda: partner.post_event("112-after"))
    assert (after.status, failed) == (201, []), (after.body, failed, server.output())
    # The event refused during the outage was not half-stored: its retry creates it.
    assert partner.post_event("112-during").status == 201
    # Every event acknowledged before the crash survived it.
    assert {partner.get_event(answer.body["id"]).status for answer in stored} == {200}
    assert http("GET", f"{server.url}/healthz").body["checks"]["database"]["ok"] is True
    assert served.dashboard_shown()
