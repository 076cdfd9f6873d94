"""Daphne's HTTP handler (smartcity/http.py): a full process answers 503 at once, never queues without bound."""

from __future__ import annotations

import asyncio
import json
import threading
from typing import Any

import pytest
from asgiref.testing import ApplicationCommunicator
from django.http import HttpResponse
from django.test import override_settings

from smartcity.http import PooledASGIHandler
from smartcity.metrics import http_busy_rejections


def scope(path: str = "/api/v1/events/", headers: list[tuple[bytes, bytes]] | None = None) -> dict[str, Any]:
    """An HTTP POST's ASGI scope as Daphne gives it; `headers` come after host and content type."""
    return {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": [(b"host", b"127.0.0.1"), (b"content-type", b"application/json"), *(headers or [])],
        "client": ("127.0.0.1", 50000),
        "server": ("127.0.0.1", 8000),
    }


async def start(handler: PooledASGIHandler, path: str = "/api/v1/events/") -> ApplicationCommunicator:
    communicator = ApplicationCommunicator(handler, scope(path))
    await communicator.send_input({"type": "http.request", "body": b"{}"})
    return communicator


async def answer(communicator: ApplicationCommunicator) -> tuple[int, dict[bytes, bytes], bytes]:
    start = await communicator.receive_output(10)
    body = await communicator.receive_output(10)
    return start["status"], dict(start["headers"]), body["body"]


@pytest.mark.asyncio
@override_settings(HTTP_API_THREADS=1, HTTP_QUEUE_MAX=1)
async def test_requests_beyond_threads_and_queue_get_503_with_retry_after_and_the_admitted_finish():
    handler = PooledASGIHandler()
    release = threading.Event()
    served: list[str] = []

    def slow_respond(scope: dict[str, Any], body_file: Any, admitted_at: float) -> HttpResponse:
        release.wait(10)  # the view is busy (say, PostgreSQL is slow)
        served.append(scope["path"])
        return HttpResponse(b"done", status=201)

    handler.respond = slow_respond  # type: ignore[method-assign]
    rejected_before = http_busy_rejections.value
    running = await start(handler)  # takes the one thread
    await asyncio.sleep(0.2)
    waiting = await start(handler)  # takes the one place in the queue
    await asyncio.sleep(0.2)
    turned_away = await start(handler)

    status, headers, body = await answer(turned_away)
    assert status == 503
    assert headers[b"Retry-After"] == b"1"
    assert json.loads(body)["errors"]["detail"]
    assert served == []  # said at once, while the others were still being served
    assert http_busy_rejections.value == rejected_before + 1

    release.set()
    assert (await answer(running))[0] == 201
    assert (await answer(waiting))[0] == 201
    later = await start(handler)  # room again
    assert (await answer(later))[0] == 201
    assert len(served) == 3
    handler.shutdown()


@pytest.mark.asyncio
@override_settings(HTTP_API_THREADS=1, HTTP_QUEUE_MAX=5, HTTP_QUEUE_TIMEOUT_S=0.3)
async def test_a_request_that_waited_too_long_for_a_thread_gets_503_instead_of_being_served_late():
    handler = PooledASGIHandler()
    release = threading.Event()
    served: list[float] = []

    def slow_view(request: Any) -> HttpResponse:
        release.wait(10)
        served.append(1)
        return HttpResponse(b"done", status=201)

    handler.get_response = slow_view  # type: ignore[method-assign]
    running = await start(handler)
    await asyncio.sleep(0.1)
    stale = await start(handler)  # admitted, then waits longer than 0.3 s for the thread
    await asyncio.sleep(0.6)
    release.set()
    assert (await answer(running))[0] == 201
    status, headers, _ = await answer(stale)
    assert status == 503 and headers[b"Retry-After"] == b"1"
    assert len(served) == 1  # the stale one never reached the view
    handler.shutdown()


@pytest.mark.asyncio
@override_settings(HTTP_API_THREADS=1, HTTP_THREADS=1, HTTP_QUEUE_MAX=0)
async def test_slow_pages_do_not_hold_up_partner_events_nor_events_the_pages():
    handler = PooledASGIHandler()
    release = threading.Event()
    served: list[str] = []

    def respond(scope: dict[str, Any], body_file: Any, admitted_at: float) -> HttpResponse:
        if "slow" in scope["path"]:
            release.wait(10)  # a CSV export, a snapshot waiting for its keyframe…
        served.append(scope["path"])
        return HttpResponse(b"done", status=201)

    handler.respond = respond  # type: ignore[method-assign]
    slow_page = await start(handler, "/slow/export.csv")  # the one page thread
    await asyncio.sleep(0.2)
    event = await start(handler, "/api/v1/events/")
    assert (await answer(event))[0] == 201  # while the page is still busy
    assert served == ["/api/v1/events/"]
    page_turned_away = await start(handler, "/audit/")
    assert (await answer(page_turned_away))[0] == 503  # the page lane is full, and says so

    slow_event = await start(handler, "/api/v1/events/1/slow/")  # now the one API thread is busy too
    await asyncio.sleep(0.2)
    event_turned_away = await start(handler, "/api/v1/events/")
    assert (await answer(event_turned_away))[0] == 503
    schema = await start(handler, "/api/schema/")  # API documentation is a page, not the partner API
    assert (await answer(schema))[0] == 503

    release.set()
    assert (await answer(slow_page))[0] == 201
    assert (await answer(slow_event))[0] == 201
    handler.shutdown()


def test_twisted_leaves_post_bodies_to_django():
    """Twisted would parse each POST's Content-Type with the email package on the event
    loop's thread (and form bodies into `args`) though Daphne never reads the result.
    It sets the flag per request in `Request.__init__`: the switch must survive that."""
    from daphne.http_protocol import WebRequest
    from twisted.web import http
    from twisted.web.test.requesthelper import DummyChannel

    import smartcity.asgi  # noqa: F401  (installs the switch)

    request = http.Request.__new__(WebRequest)
    http.Request.__init__(request, DummyChannel())  # type: ignore[arg-type]  # as Daphne's WebRequest.__init__ does first

    assert request._parsePOSTFormSubmission is False
