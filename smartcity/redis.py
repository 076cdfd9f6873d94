"""One Redis client per process for hot paths (rate limits, replay checks).

Django's cache object is per request context under ASGI, so each request would open a
fresh connection; this module keeps one pooled client per URL instead. Short timeouts:
when Redis is away the callers fail open quickly instead of stalling emergencies.
"""

from __future__ import annotations

from functools import lru_cache

import redis
from django.conf import settings


@lru_cache(maxsize=4)
def client_for(url: str) -> redis.Redis:
    return redis.Redis.from_url(url, socket_connect_timeout=0.5, socket_timeout=0.5, health_check_interval=30)


def shared_redis() -> redis.Redis:
    return client_for(settings.REDIS_URL)
