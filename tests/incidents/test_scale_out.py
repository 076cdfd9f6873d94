"""Two Daphne processes sharing Redis: an event posted through one reaches operators on the other."""

from __future__ import annotations

import asyncio
import json
import urllib.request
from collections.abc import Iterator

import aiohttp
import pytest
from django.conf import settings
from django.contrib.auth import BACKEND_SESSION_KEY, HASH_SESSION_KEY, SESSION_KEY
from django.contrib.sessions.backends.db import SessionStore

from partners.services import api_key_create
from tests.fixtures.live_server import LiveDaphne, live_env
from tests.incidents.conftest import operator_of
from tests.partners.conftest import event_body, partner_with_agreement

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def two_servers(django_db_setup: None) -> Iterator[tuple[LiveDaphne, LiveDaphne]]:
    servers = (LiveDaphne(live_env()), LiveDaphne(live_env()))
    try:
        for server in servers:
            server.start()
        yield servers
    finally:
        for server in servers:
            server.stop()


def session_cookie(user) -> str:
    """A logged-in session made directly, as the login view would leave it."""
    session = SessionStore()
    session[SESSION_KEY] = str(user.pk)
    session[BACKEND_SESSION_KEY] = "django.contrib.auth.backends.ModelBackend"
    session[HASH_SESSION_KEY] = user.get_session_auth_hash()
    session.save()
    return f"{settings.SESSION_COOKIE_NAME}={session.session_key}"


def post_event(server: LiveDaphne, key: str, external_id: str) -> int:
    request = urllib.request.Request(  # noqa: S310 (our own test server, http only)
        f"{server.url}/api/v1/events/",
        data=json.dumps(event_body(external_id=external_id)).encode(),
        headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310 (our own test server)
        assert response.status == 201
        return int(json.loads(response.read())["id"])


async def created_ids_on(server: LiveDaphne, cookie: str, count: int, ready: asyncio.Event) -> list[int]:
    headers = {"Cookie": cookie, "Origin": server.url}
    seen: list[int] = []
    async with (
        aiohttp.ClientSession() as http,
        http.ws_connect(f"{server.url}/ws/operator/", headers=headers) as ws,
    ):
        snapshot = await ws.receive_json(timeout=10)
        assert snapshot["type"] == "snapshot"
        ready.set()
        while len(seen) < count:
            message = await ws.receive_json(timeout=10)
            if message["type"] == "incident.created":
                seen.append(message["incident"]["id"])
    return seen


def test_events_posted_to_either_process_reach_operators_on_both(two_servers, center_factory):
    operator = operator_of(center_factory("seoul-junggu", (126.96, 37.54, 127.03, 37.58)), "op-scale")
    partner = partner_with_agreement("police-112", "police")
    _, key = api_key_create(partner=partner)
    cookie = session_cookie(operator)
    first, second = two_servers

    async def scenario() -> tuple[list[int], list[int], list[int]]:
        ready_a, ready_b = asyncio.Event(), asyncio.Event()
        on_first = asyncio.create_task(created_ids_on(first, cookie, 2, ready_a))
        on_second = asyncio.create_task(created_ids_on(second, cookie, 2, ready_b))
        await asyncio.wait_for(asyncio.gather(ready_a.wait(), ready_b.wait()), 15)
        posted = [
            await asyncio.to_thread(post_event, first, key, "via-first"),
            await asyncio.to_thread(post_event, second, key, "via-second"),
        ]
        return posted, await on_first, await on_second

    posted, seen_first, seen_second = asyncio.run(scenario())

    assert sorted(seen_first) == sorted(posted)
    assert sorted(seen_second) == sorted(posted)


def test_a_quiet_operator_socket_still_receives_pushes(two_servers, center_factory):
    """A control room can be quiet for minutes: an idle socket must not go deaf.

    (redis-py's default 5 s socket timeout once killed the channel layer's blocking
    receive, so the first event after a quiet spell never reached the screen.)
    """
    operator = operator_of(center_factory("seoul-junggu", (126.96, 37.54, 127.03, 37.58)), "op-quiet")
    partner = partner_with_agreement("police-112", "police")
    _, key = api_key_create(partner=partner)
    cookie = session_cookie(operator)
    first, _ = two_servers

    async def scenario() -> tuple[list[int], int]:
        ready = asyncio.Event()
        watching = asyncio.create_task(created_ids_on(first, cookie, 1, ready))
        await asyncio.wait_for(ready.wait(), 15)
        await asyncio.sleep(7)  # longer than the old 5 s timeout, with nothing to say
        posted = await asyncio.to_thread(post_event, first, key, "after-quiet")
        return await watching, posted

    seen, posted = asyncio.run(scenario())

    assert seen == [posted]
