"""The base of every analytics query (PostHog's "query runner" idea).

A runner takes the project and the raw query parameters, validates them into a typed,
normalized `params` dataclass (400 on anything wrong, before any SQL), and `run()` answers
from the cache when it can. The cache key is (runner, project, the project's data version,
normalized parameters): new data bumps the version, so a cached answer is never stale by more
than the data that has not landed yet; CACHE_TTL_SECONDS bounds the rest (e.g. "now"). Each
computation is logged with its duration.
"""

import dataclasses
import hashlib
import json
import time

import structlog
from django.conf import settings
from django.core.cache import cache
from django.utils import timezone

from analytics_platform.data_version import project_data_version
from analytics_platform.errors import InvalidInput

logger = structlog.get_logger(__name__)


class QueryRunner:
    name = "query"

    def __init__(self, *, project, params, now=None):
        self.project = project
        self.tz = project.tzinfo
        self.now = now or timezone.now()  # not in the cache key: the TTL bounds its drift
        self.rows = 0  # rows the computation read back from the database, for the timing log
        self.params = self.parse(params)

    def parse(self, raw):  # -> a dataclass
        raise NotImplementedError

    def calculate(self) -> dict:
        raise NotImplementedError

    def cache_key(self) -> str | None:
        version = project_data_version(project_id=self.project.id)
        if version < 0:
            return None
        normalized = json.dumps(
            {"tz": self.project.timezone, **dataclasses.asdict(self.params)}, sort_keys=True, default=str
        )
        digest = hashlib.sha256(normalized.encode()).hexdigest()[:32]
        return f"query:{self.name}:{self.project.id}:{version}:{digest}"

    def run(self) -> dict:
        key = self.cache_key()
        cached = _cache_get(key)
        if cached is not None:
            logger.info("query", runner=self.name, project_id=self.project.id, cached=True)
            return cached
        started = time.perf_counter()
        result = self.calculate()
        logger.info(
            "query",
            runner=self.name,
            project_id=self.project.id,
            cached=False,
            duration_ms=round((time.perf_counter() - started) * 1000, 2),
            rows=self.rows,
        )
        _cache_set(key, result)
        return result


def _cache_get(key):
    if key is None:
        return None
    try:
        return cache.get(key)
    except Exception as exc:  # a cache outage costs speed, not answers
        logger.warning("query_cache_unavailable", error=type(exc).__name__)
        return None


def _cache_set(key, value) -> None:
    if key is None:
        return
    try:
        cache.set(key, value, settings.CACHE_TTL_SECONDS)
    except Exception as exc:
        logger.warning("query_cache_unavailable", error=type(exc).__name__)


def event_name_param(raw: str | None, field: str) -> str | None:
    """An optional event-name parameter: empty means "any event"."""
    if not raw:
        return None
    if len(raw) > 200:
        raise InvalidInput(f"{field} must be at most 200 characters.", details={field: raw[:50]})
    return raw
