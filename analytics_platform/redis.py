"""The raw Redis client for what the cache API cannot do in one round trip (dedup claims in
a pipeline, the ingest buffer, the job queue). None in the embedded default."""

from functools import lru_cache

import redis
from django.conf import settings

# Errors that mean "Redis is not there right now", as opposed to a bug in a command.
REDIS_DOWN = (redis.ConnectionError, redis.TimeoutError, redis.BusyLoadingError, redis.ReadOnlyError)


@lru_cache(maxsize=4)
def _client(url: str) -> redis.Redis:
    return redis.Redis.from_url(url, socket_connect_timeout=1, socket_timeout=5, health_check_interval=30)


def redis_client() -> redis.Redis | None:
    return _client(settings.REDIS_URL) if settings.REDIS_URL else None
