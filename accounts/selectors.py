"""Reads of tenancy data. Key lookups are cached (by the key's hash, never its plaintext) for
a minute, so the ingestion hot path does not touch the database; every change to a key or its
project forgets the cached copy (accounts.services).

Beside the cached key, a key that may ingest gets an *ingest entry* in Redis: a hash of the
few fields the async hot path (events.hot) checks inside its one Lua script (the key and
project ids, the expiry, the ingestion rate, the allowed origins). It is written and
forgotten with the cached key and lives as long; a key with no entry (unknown, revoked,
without the ingest scope, or not looked up for a minute) is answered by the Django view,
which looks it up and writes the entry again.
"""

import structlog
from django.conf import settings
from django.core.cache import cache

from accounts.keys import hash_key, is_well_formed, key_matches, key_prefix
from accounts.models import ApiKey, Membership, Project, Scope, origins_list
from analytics_platform.errors import NotFound
from analytics_platform.ids import object_id
from analytics_platform.redis import redis_client

AUTH_CACHE_SECONDS = 60
logger = structlog.get_logger(__name__)


def api_key_cache_key(key_hash: str) -> str:
    return f"apikey:{key_hash}"


def ingest_entry_key(key_hash: str) -> str:
    return f"{settings.CACHE_KEY_PREFIX}:ingest-key:{key_hash}"


def ingest_entry(api_key: ApiKey) -> dict[str, str | int]:
    """The fields of a usable ingest key's entry (expires: epoch ms, 0 for never)."""
    expires = 0 if api_key.expires_at is None else int(api_key.expires_at.timestamp() * 1000)
    return {
        "key": api_key.pk,
        "project": api_key.project_id,
        "expires": expires,
        "rate": api_key.ingest_rate_limit or settings.INGEST_RATE_LIMIT_PER_SECOND,
        "origins": "\n".join(origins_list(api_key.project.allowed_origins)),
    }


def _ingest_entry_put(api_key: ApiKey) -> None:
    client = redis_client()
    if client is None:
        return
    key = ingest_entry_key(api_key.key_hash)
    with client.pipeline() as pipe:  # MULTI: never a half-written entry
        pipe.delete(key)
        if api_key.is_usable and api_key.has_scope(Scope.INGEST):
            pipe.hset(key, mapping=ingest_entry(api_key))
            pipe.expire(key, AUTH_CACHE_SECONDS)
        pipe.execute()


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
        _ingest_entry_put(api_key)
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


def projects_for_user(user):
    """The projects a signed-in person may see: their organizations' (every one for a
    superuser). The dashboard's pages look projects up here and nowhere else."""
    projects = Project.objects.select_related("organization").order_by("organization__name", "name")
    if user.is_superuser:
        return projects
    return projects.filter(organization__memberships__user=user)


def membership_role(*, user, organization) -> str | None:
    """The person's role in the organization ("admin" for a superuser), or None."""
    if user.is_superuser:
        return Membership.Role.ADMIN
    return Membership.objects.filter(user=user, organization=organization).values_list("role", flat=True).first()
