"""The dedup fast path: one `SET key 1 NX EX 86400` per event id, all in one pipeline.

It only spares the database work; the guarantee is the unique (project, event_id)
constraint, which holds after the 24 h, after a Redis flush and between racing processes.
Without Redis (the embedded default) the same claim is made in the local-memory cache.
"""

import structlog
from django.core.cache import cache

from analytics_platform.redis import redis_client

TTL_SECONDS = 24 * 3600
logger = structlog.get_logger(__name__)


def _key(project_id: int, event_id: str) -> str:
    return f"dedup:{project_id}:{event_id}"


def claim(project_id: int, event_ids: list[str]) -> list[bool]:
    """Marks the ids as seen; True for each id nobody had claimed. Raises Redis's
    connection errors (the caller then writes synchronously)."""
    client = redis_client()
    if client is None:
        return [cache.add(_key(project_id, event_id), 1, TTL_SECONDS) for event_id in event_ids]
    with client.pipeline(transaction=False) as pipe:
        for event_id in event_ids:
            pipe.set(_key(project_id, event_id), 1, nx=True, ex=TTL_SECONDS)
        return [bool(ok) for ok in pipe.execute()]


def release(project_id: int, event_ids: list[str]) -> None:
    """Best effort: forgets claims whose events could not be queued, so a retry is accepted."""
    if not event_ids:
        return
    try:
        client = redis_client()
        if client is None:
            cache.delete_many([_key(project_id, event_id) for event_id in event_ids])
        else:
            client.delete(*[_key(project_id, event_id) for event_id in event_ids])
    except Exception as exc:
        logger.warning("dedup_release_failed", project_id=project_id, events=len(event_ids), error=type(exc).__name__)
