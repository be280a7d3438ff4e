"""Per-key rate limiting: a fixed-window counter in the cache (Redis in production).

If the cache is unreachable the request goes through and a warning is logged: an analytics
pipeline that drops events because its limiter is down is worse than one briefly unlimited.
"""

import math
import time
from dataclasses import dataclass

import structlog
from django.conf import settings
from django.core.cache import cache
from rest_framework.throttling import BaseThrottle

from analytics_platform.redis import redis_client

logger = structlog.get_logger(__name__)


@dataclass(frozen=True)
class RateLimitState:
    limit: int
    allowed: bool
    remaining: int
    reset_seconds: int

    def headers(self) -> dict[str, str]:
        return {
            "X-RateLimit-Limit": str(self.limit),
            "X-RateLimit-Remaining": str(self.remaining),
            "X-RateLimit-Reset": str(self.reset_seconds),
        }


def rate_limit_hit(*, api_key, now: float | None = None) -> RateLimitState | None:
    """Counts one request for the key; returns the window's state, or None if the counter
    store is unavailable (the caller lets the request through)."""
    now = time.time() if now is None else now
    limit = api_key.rate_limit or settings.RATE_LIMIT_MAX_REQUESTS
    window = max(settings.RATE_LIMIT_WINDOW_MS, 1) / 1000
    window_index = int(now // window)
    counter = f"ratelimit:{api_key.pk}:{window_index}"
    try:
        count = _count(counter, math.ceil(window) + 1)
    except Exception as exc:  # any cache failure: fail open, loudly
        logger.warning("rate_limiter_unavailable", api_key_id=api_key.pk, error=type(exc).__name__)
        return None
    reset = math.ceil(window * (window_index + 1) - now)
    return RateLimitState(
        limit=limit, allowed=count <= limit, remaining=max(limit - count, 0), reset_seconds=max(reset, 1)
    )


def _count(counter: str, ttl: int) -> int:
    """Adds one to the window's counter: one round trip to Redis, or the local cache."""
    client = redis_client()
    if client is None:
        cache.add(counter, 0, timeout=ttl)
        return cache.incr(counter)
    with client.pipeline(transaction=False) as pipe:
        pipe.incr(counter)
        pipe.expire(counter, ttl, nx=True)
        return pipe.execute()[0]


class ApiKeyRateThrottle(BaseThrottle):
    def allow_request(self, request, view):
        if request.auth is None:
            return True
        state = rate_limit_hit(api_key=request.auth)
        request._request.rate_limit = state
        if state is None:
            return True
        self._wait = state.reset_seconds
        return state.allowed

    def wait(self):
        return self._wait
