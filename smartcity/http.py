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

Requests run in two lanes, each with a pool of its own: the partner API (`/api/v1/`)
in HTTP_API_THREADS threads, everything else (pages, snapshots, exports, the admin,
the API schema) in HTTP_THREADS. A slow page cannot hold up the intake, and the
intake's threads stay few: they take turns on one GIL, and every thread beyond what
keeps the CPU busy only switches more (~0.1 ms of CPU per switch on this VM) and
spreads each request's time over more of its neighbours'. With 16 partner clients on
two processes, 3 API threads each instead of 6 gave p99 77-81 ms against 106-111 ms
at 5-7 % more events/s, side by side (README, issue 3). Requests beyond the threads
wait in their lane's queue, first come first served.

In each lane up to HTTP_QUEUE_MAX requests may wait for a free thread, for at most
HTTP_QUEUE_TIMEOUT_S. Each request holds at most one database connection, so
DB_POOL_MAX must leave room for both lanes and for the WebSocket consumers' thread
(settings check it).

Beyond that the lane is overloaded, and it says so at once — 503 with Retry-After —
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
from dataclasses import dataclass
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

API_PREFIX = "/api/v1/"  # the partner API: its own lane


@dataclass
class Lane:
    """One kind of request: a pool of threads of its own and a bound on those admitted."""

    executor: ThreadPoolExecutor
    admit_max: int  # running + waiting for a thread
    admitted: int = 0  # touched on the event loop only

    @classmethod
    def of(cls, name: str, threads: int) -> Lane:
        executor = ThreadPoolExecutor(max_workers=threads, thread_name_prefix=name)
        return cls(executor=executor, admit_max=threads + settings.HTTP_QUEUE_MAX)


class PooledASGIHandler(ASGIHandler):
    """An ASGI application for Django's HTTP side that runs each request in one pooled thread."""

    def __init__(self) -> None:
        # Not ASGIHandler.__init__: that loads the chain in async mode, which is never used.
        BaseHandler.__init__(self)
        self.load_middleware(is_async=False)
        self.api_lane = Lane.of("api", settings.HTTP_API_THREADS)
        self.page_lane = Lane.of("http", settings.HTTP_THREADS)
        self.queue_timeout_s = settings.HTTP_QUEUE_TIMEOUT_S

    def lane_of(self, scope: dict[str, Any]) -> Lane:
        path: str = scope["path"]
        root = scope.get("root_path") or ""
        if root and path.startswith(root):
            path = path[len(root) :]
        return self.api_lane if path.startswith(API_PREFIX) else self.page_lane

    def shutdown(self) -> None:
        for lane in (self.api_lane, self.page_lane):
            lane.executor.shutdown(wait=True)

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
        lane = self.lane_of(scope)
        if lane.admitted >= lane.admit_max:
            body_file.close()
            http_busy_rejections.inc()
            await self.send_response(busy_response(), send)
            return
        lane.admitted += 1
        admitted_at = time.monotonic()
        try:
            # thread_sensitive=False with our executor: asgiref still carries the context
            # variables over and lets code in the thread reach the loop (async_to_sync).
            respond = sync_to_async(self.respond, thread_sensitive=False, executor=lane.executor)
            response = await respond(scope, body_file, admitted_at)
            try:
                await self.send_response(response, send)
            finally:
                if response.streaming:
                    await sync_to_async(response.close, thread_sensitive=False, executor=lane.executor)()
        finally:
            lane.admitted -= 1
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
