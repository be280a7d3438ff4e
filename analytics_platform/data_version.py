"""A project's data version: bumped after every batch of stored events, and part of every
cached analytics result's key, so a cached answer is never served after new data landed."""

import structlog
from django.core.cache import cache

logger = structlog.get_logger(__name__)


def _key(project_id: int) -> str:
    return f"data-version:{project_id}"


def project_data_version(*, project_id: int) -> int:
    try:
        return cache.get(_key(project_id), 0)
    except Exception as exc:  # no cache: callers compute without it
        logger.warning("data_version_unavailable", project_id=project_id, error=type(exc).__name__)
        return -1


def project_data_version_bump(*, project_id: int) -> None:
    key = _key(project_id)
    try:
        try:
            cache.incr(key)
        except ValueError:  # first bump, or the cache was flushed
            if not cache.add(key, 1, timeout=None):
                cache.incr(key)
    except Exception as exc:  # cached results then expire by their TTL instead
        logger.warning("data_version_bump_failed", project_id=project_id, error=type(exc).__name__)
