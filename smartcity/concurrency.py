"""Running blocking views beside each other under ASGI.

Django runs every synchronous view of a Daphne process in one shared thread, so a
process serves one partner event at a time and sits idle while that event waits on
PostgreSQL or Redis. The partner API's views are plain blocking code that shares
nothing between requests: `in_thread_pool` lets several of them run at once in
worker threads, each with its own database connection borrowed from the pool.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

from asgiref.sync import sync_to_async
from django.core.handlers.asgi import ASGIRequest
from django.db import close_old_connections
from django.http import HttpRequest, HttpResponse


def in_thread_pool(view: Callable[..., HttpResponse]) -> Callable[..., Any]:
    """Wrap a synchronous view so it runs in a worker thread, not the process's one sync thread."""

    @functools.wraps(view)  # keeps csrf_exempt, cls and initkwargs for Django, DRF and the schema
    async def offloaded(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        if not isinstance(request, ASGIRequest):
            # Under WSGI (and Django's test client) stay on the caller's thread: its
            # connection and transaction are the ones the request must use.
            return await sync_to_async(rendered, thread_sensitive=True)(view, request, *args, **kwargs)
        return await sync_to_async(respond, thread_sensitive=False)(view, request, *args, **kwargs)

    return offloaded


def rendered(
    view: Callable[..., HttpResponse], request: HttpRequest, *args: Any, **kwargs: Any
) -> HttpResponse:
    response = view(request, *args, **kwargs)
    render = getattr(response, "render", None)
    if callable(render):  # DRF responses render lazily; do it here, off the event loop
        response = render()
    return response


def respond(
    view: Callable[..., HttpResponse], request: HttpRequest, *args: Any, **kwargs: Any
) -> HttpResponse:
    # Django's request_started/finished signals tidy connections in the process's sync
    # thread only; this thread must do it itself, or a connection broken by a database
    # restart would stay in it and fail every later request it serves.
    close_old_connections()
    try:
        return rendered(view, request, *args, **kwargs)
    finally:
        close_old_connections()
