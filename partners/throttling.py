"""Per-partner rate limit, counted in Redis so every server process shares one budget."""

from __future__ import annotations

import logging
import time
from typing import Any

import redis
from rest_framework.throttling import BaseThrottle

from smartcity.redis import shared_redis

log = logging.getLogger(__name__)
WINDOW_S = 60


class PartnerRateThrottle(BaseThrottle):
    """A fixed one-minute window per partner, sized by `Partner.rate_limit_per_minute`."""

    def allow_request(self, request: Any, view: Any) -> bool:
        partner = getattr(request.user, "partner", None)
        if partner is None:
            return True
        window = int(time.time()) // WINDOW_S
        key = f"apirate:{partner.pk}:{window}"
        try:
            pipe = shared_redis().pipeline()
            pipe.incr(key)
            pipe.expire(key, WINDOW_S + 5)
            count, _ = pipe.execute()
        except redis.RedisError:
            # Redis away: keep accepting emergencies rather than refusing them all.
            log.warning("rate limiter unavailable; request allowed")
            return True
        self.retry_after = (window + 1) * WINDOW_S - time.time()
        return count <= partner.rate_limit_per_minute

    def wait(self) -> float | None:
        return max(1.0, getattr(self, "retry_after", WINDOW_S))
