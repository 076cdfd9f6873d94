"""`GET /healthz`: the state of every part the control room depends on.

Load balancers and monitoring read it; it answers 200 only when the database,
Redis, at least one Celery worker and the video relay are all usable, 503 otherwise.
Each check is bounded by a short timeout so a dead dependency cannot hang the probe.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import redis
from django.conf import settings
from django.db import connection
from django.http import HttpRequest, JsonResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET

from smartcity.celery import app as celery_app

CHECK_TIMEOUT_S = 1.5

Check = Callable[[], dict[str, Any]]


def check_database() -> dict[str, Any]:
    pool = getattr(connection, "pool", None)
    if pool is None:  # DB_POOL_MAX=0: one connection per thread
        with connection.cursor() as cursor:
            cursor.execute("SET LOCAL statement_timeout = 1500")
            cursor.execute("SELECT postgis_lib_version()")
            (postgis,) = cursor.fetchone()
        return {"ok": True, "postgis": postgis}
    # Through the pool, as requests go, but waiting CHECK_TIMEOUT_S at most: the pool's
    # own timeout (sized for bursts) would hang the probe while PostgreSQL is away.
    pool.open()
    with pool.connection(timeout=CHECK_TIMEOUT_S) as conn, conn.transaction():
        conn.execute("SET LOCAL statement_timeout = 1500")
        (postgis,) = conn.execute("SELECT postgis_lib_version()").fetchone()
    return {"ok": True, "postgis": postgis}


def check_redis() -> dict[str, Any]:
    client = redis.Redis.from_url(
        settings.REDIS_URL, socket_connect_timeout=CHECK_TIMEOUT_S, socket_timeout=CHECK_TIMEOUT_S
    )
    try:
        client.ping()
    finally:
        client.close()
    return {"ok": True}


def check_celery() -> dict[str, Any]:
    # Fail fast when the broker is gone rather than letting kombu retry for minutes.
    with celery_app.connection_for_write() as conn:
        conn.ensure_connection(max_retries=1, timeout=2)
    # limit=1: one live worker is enough, and waiting for more would always cost the
    # whole timeout since nobody knows how many workers there are.
    replies = celery_app.control.ping(timeout=CHECK_TIMEOUT_S, limit=1) or []
    workers = sorted(name for reply in replies for name in reply)
    return {"ok": bool(workers), "workers": workers}


def check_relay() -> dict[str, Any]:
    from cameras.relay import relay_status

    return relay_status()


CHECKS: dict[str, Check] = {
    "database": check_database,
    "redis": check_redis,
    "celery": check_celery,
    "relay": check_relay,
}


def run_check(check: Check) -> dict[str, Any]:
    started = time.monotonic()
    try:
        result = check()
    except Exception as exc:  # any failure of a dependency is a "down", never a 500
        result = {"ok": False, "error": type(exc).__name__}
    result["ms"] = round((time.monotonic() - started) * 1000, 1)
    return result


@never_cache
@require_GET
def healthz(request: HttpRequest) -> JsonResponse:
    results = {name: run_check(check) for name, check in CHECKS.items()}
    healthy = all(result["ok"] for result in results.values())
    body = {"status": "ok" if healthy else "degraded", "checks": results}
    return JsonResponse(body, status=200 if healthy else 503)
