"""Reads of tenancy data. Key lookups are cached (by the key's hash, never its plaintext) for
a minute, so the ingestion hot path does not touch the database; every change to a key or its
project forgets the cached copy (accounts.services)."""

import structlog
from django.core.cache import cache

from accounts.keys import hash_key, is_well_formed, key_matches, key_prefix
from accounts.models import ApiKey
from analytics_platform.errors import NotFound
from analytics_platform.ids import object_id

AUTH_CACHE_SECONDS = 60
logger = structlog.get_logger(__name__)


def api_key_cache_key(key_hash: str) -> str:
    return f"apikey:{key_hash}"


def api_key_get_by_plaintext(*, plaintext: str) -> ApiKey | None:
    """The key with this plaintext, whatever its state (the caller decides about revoked or
    expired keys), or None. The hash is compared in constant time."""
    if not is_well_formed(plaintext):
        return None
    cache_key = api_key_cache_key(hash_key(plaintext))
    try:
        cached = cache.get(cache_key)
    except Exception:  # cache unreachable: the database answers
        cached = None
    if cached is not None:
        return cached
    candidates = ApiKey.objects.select_related("project", "project__organization").filter(prefix=key_prefix(plaintext))
    for candidate in candidates:
        if key_matches(plaintext, candidate.key_hash):
            api_key_cache_put(candidate)
            return candidate
    return None


def api_key_cache_put(api_key: ApiKey) -> None:
    try:
        cache.set(api_key_cache_key(api_key.key_hash), api_key, AUTH_CACHE_SECONDS)
    except Exception as exc:  # only a cache: the next request reads the database again
        logger.warning("api_key_cache_put_failed", error=type(exc).__name__)


def api_key_get(*, project, key_id) -> ApiKey:
    """The project's key `key_id` (an int or its decimal text); NotFound, with one message,
    for an unknown id, another project's, or anything that is not an id."""
    pk = object_id(key_id)
    api_key = None if pk is None else ApiKey.objects.filter(project=project, pk=pk).first()
    if api_key is None:
        raise NotFound("API key not found.", details={"keyId": str(key_id)[:50]})
    return api_key
