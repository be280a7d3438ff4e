"""The base of every analytics query (PostHog's "query runner" idea).

A runner takes the project and the raw query parameters, validates them into a typed,
normalized `params` dataclass (400 on anything wrong, before any SQL), and `run()` answers
from the cache when it can. The cache key is (runner, project, the project's data version,
normalized parameters): new data bumps the version, so a cached answer is never stale by more
than the data that has not landed yet; CACHE_TTL_SECONDS bounds the rest (e.g. "now"). Each
computation is logged with its duration.
"""

import base64
import binascii
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

    def cache_key(self, params=None) -> str | None:
        """The key of this runner's answer for `params` (a dataclass; default self.params)."""
        version = project_data_version(project_id=self.project.id)
        if version < 0:
            return None
        params = self.params if params is None else params
        normalized = json.dumps(
            {"tz": self.project.timezone, **dataclasses.asdict(params)}, sort_keys=True, default=str
        )
        digest = hashlib.sha256(normalized.encode()).hexdigest()[:32]
        return f"query:{self.name}:{self.project.id}:{version}:{digest}"

    def cached(self, params, compute):
        """A part of the answer that several requests share (e.g. every page of a list),
        cached under the key of `params` like a whole answer."""
        key = self.cache_key(params)
        value = _cache_get(key)
        if value is None:
            value = compute()
            _cache_set(key, value)
        return value

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


def refuse_nul(params: dict) -> None:
    """InvalidInput if a parameter's text holds a NUL: no PostgreSQL text can hold it (the
    API's query views and the dashboard's pages both check before any runner reads them)."""
    for name, value in params.items():
        if isinstance(value, str) and "\x00" in value:
            raise InvalidInput(f"{name} must not contain NUL characters.", details={name: value[:100]})


def event_name_param(raw: str | None, field: str) -> str | None:
    """An optional event-name parameter: empty means "any event"."""
    if not raw:
        return None
    if len(raw) > 200:
        raise InvalidInput(f"{field} must be at most 200 characters.", details={field: raw[:50]})
    return raw


def whole_param(raw, field: str, *, low: int, high: int | None = None) -> int:
    """A whole-number query parameter in [low, high] (no upper bound without `high`)."""
    try:
        value = int(raw)
    except (TypeError, ValueError):
        value = None
    if value is None or value < low or (high is not None and value > high):
        bounds = f"from {low} to {high}" if high is not None else f"of at least {low}"
        raise InvalidInput(f"{field} must be a whole number {bounds}.", details={field: raw})
    return value


def cursor_encode(text: str) -> str:
    """An opaque page cursor (URL-safe base64) carrying `text`."""
    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


def cursor_decode(raw: str) -> str:
    """The text of a cursor from cursor_encode; 400 for anything else."""
    try:
        return base64.b64decode(raw + "=" * (-len(raw) % 4), altchars=b"-_", validate=True).decode()
    except (ValueError, binascii.Error, UnicodeDecodeError):
        raise InvalidInput("cursor is not one this API returned.", details={"cursor": raw[:100]}) from None
