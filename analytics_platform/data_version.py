"""A project's data version: bumped after every batch of stored events, and part of every
cached analytics result's key, so a cached answer is never served after new data landed.

With Redis it is a counter in the shared cache. Without (the embedded default) each process
has a cache of its own, so the counter is a column of the project's row in the database:
events stored by another process (`manage.py seed` while `make run` serves) then reach the
server's answers at once, not when their cached copies expire.
"""

import structlog
from django.conf import settings
from django.core.cache import cache
from django.db.models import F

logger = structlog.get_logger(__name__)


def _key(project_id: int) -> str:
    return f"data-version:{project_id}"


def _shared_cache() -> bool:
    return bool(settings.REDIS_URL)


def project_data_version(*, project_id: int) -> int:
    if not _shared_cache():
        from accounts.models import Project

        return Project.objects.filter(pk=project_id).values_list("data_version", flat=True).first() or 0
    try:
        return cache.get(_key(project_id), 0)
    except Exception as exc:  # no cache: callers compute without it
        logger.warning("data_version_unavailable", project_id=project_id, error=type(exc).__name__)
        return -1


def project_data_version_bump(*, project_id: int) -> None:
    if not _shared_cache():
        from accounts.models import Project

        Project.objects.filter(pk=project_id).update(data_version=F("data_version") + 1)
        return
    key = _key(project_id)
    try:
        try:
            cache.incr(key)
        except ValueError:  # first bump, or the cache was flushed
            if not cache.add(key, 1, timeout=None):
                cache.incr(key)
    except Exception as exc:  # cached results then expire by their TTL instead
        logger.warning("data_version_bump_failed", project_id=project_id, error=type(exc).__name__)
