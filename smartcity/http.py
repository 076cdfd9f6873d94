"""HTTP under Daphne: each request runs start to finish in one worker thread of a pool.

Django's own ASGI handler runs the middleware chain in async mode: every synchronous
middleware method, the view and the closing signals each hop between the event loop
and a thread created for that one request. On this project's chain that is a dozen
thread switches and a new OS thread per request, and it was the larger part of what a
partner POST cost the server (measured with py-spy: ~20 % of the process's CPU in
`run_in_executor`/`Thread.start` alone, before any work).

Here the event loop reads the body, hands the request to a pooled thread once, and
sends the response the thread returns. In the thread Django runs exactly as under WSGI:
`request_started`, the synchronous middleware chain, the view, and — for responses held
in memory — `request_finished`, which tidies the thread's database connection (back to
the pool). Streaming responses are sent from the loop as Django does and closed in the
pool afterwards.

HTTP_THREADS requests run at once per process; up to HTTP_QUEUE_MAX more wait for a
free thread, for at most HTTP_QUEUE_TIMEOUT_S. Each holds at most one database
connection, so DB_POOL_MAX must leave room for them and for the WebSocket consumers'
thread (settings check it).

Beyond that the process is overloaded, and it says so at once — 503 with Retry-After —
instead of queueing without bound: a queue that grows answers every request too late
(the partner's client times out and retries, the dashboards' pushes lag further
behind), while a quick 503 lets a partner retry in a second and keeps the requests
already admitted fast. A request that waited longer than HTTP_QUEUE_TIMEOUT_S for a
thread gets the same 503 when its turn comes (its client is about to give up, and
serving it would only make the ones behind it late too). The 503 changes nothing: the
event was not taken, and sending it again with the same external_id is safe (intake is
idempotent).
"""

from __future__ import annotations

import asyncio
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from asgiref.sync import sync_to_async
from django.conf import settings
from django.core import signals
from django.core.exceptions import RequestAborted
from django.core.handlers.asgi import ASGIHandler, get_script_prefix
from django.core.handlers.base import BaseHandler
from django.http import FileResponse, HttpResponseBase, JsonResponse
from django.urls import set_script_prefix

from smartcity.memo import request_memos
from smartcity.metrics import http_busy_rejections
from smartcity.publisher import publisher_bind


class PooledASGIHandler(ASGIHandler):
    """An ASGI application for Django's HTTP side that runs each request in one pooled thread."""

    def __init__(self) -> None:
        # Not ASGIHandler.__init__: that loads the chain in async mode, which is never used.
        BaseHandler.__init__(self)
        self.load_middleware(is_async=False)
        self.executor = ThreadPoolExecutor(max_workers=settings.HTTP_THREADS, thread_name_prefix="http")
        self.admit_max = settings.HTTP_THREADS + settings.HTTP_QUEUE_MAX
        self.admitted = 0  # requests running or waiting for a thread (touched on the loop only)
        self.queue_timeout_s = settings.HTTP_QUEUE_TIMEOUT_S

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            raise ValueError(f"Django serves HTTP only, not {scope['type']}")
        await self.handle(scope, receive, send)

    async def handle(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        publisher_bind(asyncio.get_running_loop())  # this request's pushes go through this loop
        try:
            body_file = await self.read_body(receive)
        except RequestAborted:
            return
        if self.admitted >= self.admit_max:
            body_file.close()
            http_busy_rejections.inc()
            await self.send_response(busy_response(), send)
            return
        self.admitted += 1
        admitted_at = time.monotonic()
        try:
            # thread_sensitive=False with our executor: asgiref still carries the context
            # variables over and lets code in the thread reach the loop (async_to_sync).
            respond = sync_to_async(self.respond, thread_sensitive=False, executor=self.executor)
            response = await respond(scope, body_file, admitted_at)
            try:
                await self.send_response(response, send)
            finally:
                if response.streaming:
                    await sync_to_async(response.close, thread_sensitive=False, executor=self.executor)()
        finally:
            self.admitted -= 1
            body_file.close()

    def respond(self, scope: dict[str, Any], body_file: Any, admitted_at: float) -> HttpResponseBase:
        """The whole of one request, synchronously, as under WSGI (runs in a pool thread)."""
        if time.monotonic() - admitted_at > self.queue_timeout_s:
            http_busy_rejections.inc()
            return busy_response()
        set_script_prefix(get_script_prefix(scope))
        signals.request_started.send(sender=self.__class__, scope=scope)
        request, error_response = self.create_request(scope, body_file)
        with request_memos():
            response: HttpResponseBase | None = (
                error_response if request is None else self.get_response(request)
            )
        assert response is not None  # create_request gives a request or the response refusing it
        response._handler_class = self.__class__  # type: ignore[attr-defined]
        if isinstance(response, FileResponse):
            response.block_size = self.chunk_size
        if not response.streaming:
            # The content is in memory: finish the request here, in its own thread
            # (request_finished returns this thread's database connection).
            response.close()
            if request is not None:
                request_cycles_break(request, response)
        return response


def request_cycles_break(request: Any, response: HttpResponseBase) -> None:
    """Untie a finished request's objects, so reference counting frees them at once.

    Django and DRF tie each request's objects in reference cycles (the request and its
    message storage and lazy user; DRF's view, its request and its response through
    their contexts), and everything the request touched hangs off them: a few hundred
    objects per partner event that only Python's cyclic collector could free. Under
    load that collector ran several times a second per process, each run holding the
    GIL for milliseconds (tens when the OS preempted it), pausing every request of the
    process. Called once the response is complete (rendered, closed, finished signals
    sent); only its status, headers and content are read after this.
    """
    context = getattr(response, "renderer_context", None)  # DRF's Response
    if isinstance(context, dict):
        for tied in (context.get("view"), context.get("request")):
            if tied is not None:
                tied.__dict__.clear()
        response.renderer_context = None  # type: ignore[attr-defined]
    vars(request).clear()


def busy_response() -> HttpResponseBase:
    """503 for a request the process has no room for; the partner API's error shape."""
    response = JsonResponse(
        {"errors": {"detail": ["the server is busy; retry after the time in Retry-After"]}}, status=503
    )
    response["Retry-After"] = str(BUSY_RETRY_AFTER_S)
    return response


BUSY_RETRY_AFTER_S = 1
