"""Per-key rate limiting, two kinds (API.md, "Keys and scopes"):

- reads and admin: a fixed-window counter, RATE_LIMIT_MAX_REQUESTS per RATE_LIMIT_WINDOW_MS
  (a key's `rate_limit` overrides the count);
- ingestion (`POST /events`, the views needing the ingest scope): a token bucket of
  INGEST_RATE_LIMIT_PER_SECOND requests per second with bursts of twice that (a key's
  `ingest_rate_limit` overrides the rate). A web page's visitors share one ingest key, so the
  read limit would drop their events; ingestion does not count against the read limit.

Both live in Redis in production (one round trip each; the bucket's clock is Redis's, so
every process agrees) and in this process without Redis. If Redis is unreachable the request
goes through and a warning is logged: an analytics pipeline that drops events because its
limiter is down is worse than one briefly unlimited.
"""

import math
import threading
import time
from dataclasses import dataclass
from functools import lru_cache

import structlog
from django.conf import settings
from django.core.cache import cache
from rest_framework.throttling import BaseThrottle

from accounts.auth import required_scope
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


BURST_FACTOR = 2
INGEST_BUCKET_PREFIX = "ratelimit:ingest:"  # + the key's id
# bucket_take(key, rate per second, capacity) -> {allowed, tokens left x1000, milliseconds
# until one token, milliseconds until full}; on Redis's clock. Also part of events.hot's script.
BUCKET_TAKE_LUA = """
local function bucket_take(key, rate, capacity)
  local clock = redis.call('TIME')
  local now = tonumber(clock[1]) * 1000 + math.floor(tonumber(clock[2]) / 1000)
  local state = redis.call('HMGET', key, 'tokens', 'at')
  local tokens, at = tonumber(state[1]), tonumber(state[2])
  if tokens == nil or at == nil then tokens, at = capacity, now end
  tokens = math.min(capacity, tokens + math.max(0, now - at) * rate / 1000)
  local allowed = 0
  if tokens >= 1 then tokens = tokens - 1; allowed = 1 end
  redis.call('HSET', key, 'tokens', tostring(tokens), 'at', now)
  redis.call('PEXPIRE', key, math.ceil(capacity / rate * 1000) + 1000)
  local wait = 0
  if tokens < 1 then wait = math.ceil((1 - tokens) * 1000 / rate) end
  return {allowed, math.floor(tokens * 1000), wait, math.ceil((capacity - tokens) * 1000 / rate)}
end
"""
BUCKET_LUA = BUCKET_TAKE_LUA + "return bucket_take(KEYS[1], tonumber(ARGV[1]), tonumber(ARGV[2]))"
_local_buckets: dict[int, tuple[float, float]] = {}  # key id -> (tokens, at), without Redis
_local_lock = threading.Lock()


def ingest_rate_limit_hit(*, api_key) -> RateLimitState | None:
    """Takes one token from the key's ingestion bucket; None if Redis is unavailable."""
    rate = api_key.ingest_rate_limit or settings.INGEST_RATE_LIMIT_PER_SECOND
    capacity = rate * BURST_FACTOR
    client = redis_client()
    try:
        if client is None:
            allowed, tokens, wait_ms, full_ms = _local_take(api_key.pk, rate, capacity)
        else:
            allowed, tokens_milli, wait_ms, full_ms = _bucket_script(client)(
                keys=[f"{INGEST_BUCKET_PREFIX}{api_key.pk}"], args=[rate, capacity]
            )
            tokens = tokens_milli / 1000
    except Exception as exc:  # fail open, loudly
        logger.warning("rate_limiter_unavailable", api_key_id=api_key.pk, error=type(exc).__name__)
        return None
    return bucket_state(rate, allowed, tokens, wait_ms, full_ms)


def bucket_state(rate: int, allowed, tokens: float, wait_ms: float, full_ms: float) -> RateLimitState:
    return RateLimitState(
        limit=rate,
        allowed=bool(allowed),
        remaining=int(tokens),
        reset_seconds=max(math.ceil((wait_ms if not allowed else full_ms) / 1000), 1),
    )


def _local_take(key_id: int, rate: int, capacity: int) -> tuple[bool, float, float, float]:
    with _local_lock:
        now = time.monotonic()
        tokens, at = _local_buckets.get(key_id, (capacity, now))
        tokens = min(capacity, tokens + (now - at) * rate)
        allowed = tokens >= 1
        if allowed:
            tokens -= 1
        _local_buckets[key_id] = (tokens, now)
    wait_ms = 0 if tokens >= 1 else math.ceil((1 - tokens) * 1000 / rate)
    return allowed, tokens, wait_ms, (capacity - tokens) * 1000 / rate


@lru_cache(maxsize=4)
def _bucket_script(client):
    return client.register_script(BUCKET_LUA)


class ApiKeyRateThrottle(BaseThrottle):
    def allow_request(self, request, view):
        if request.auth is None:
            return True
        if required_scope(view, request.method) == "ingest":
            state = ingest_rate_limit_hit(api_key=request.auth)
        else:
            state = rate_limit_hit(api_key=request.auth)
        request._request.rate_limit = state
        if state is None:
            return True
        self._wait = state.reset_seconds
        return state.allowed

    def wait(self):
        return self._wait
