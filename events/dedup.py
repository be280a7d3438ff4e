"""The dedup fast path: one `SET key 1 NX EX 86400` per event id, all in one Lua call
(one command for a whole batch: far cheaper to send than a pipeline of a thousand).

It only spares the database work; the guarantee is the unique (project, event_id)
constraint, which holds after the 24 h, after a Redis flush and between racing processes.
Without Redis (the embedded default) there is no fast path: jobs run inline, so the insert
itself says which events were new, exactly (a local-memory cache forgets entries past its
size and would only have made the count lie).
"""

from functools import lru_cache

import structlog

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
        return [True] * len(event_ids)
    results = _claim_script(client)(keys=[_key(project_id, event_id) for event_id in event_ids], args=[TTL_SECONDS])
    return [bool(ok) for ok in results]


CLAIM_LUA = """
local claimed = {}
for i, key in ipairs(KEYS) do
    claimed[i] = redis.call('SET', key, '1', 'NX', 'EX', ARGV[1]) and 1 or 0
end
return claimed
"""


@lru_cache(maxsize=4)
def _claim_script(client):
    return client.register_script(CLAIM_LUA)


def release(project_id: int, event_ids: list[str]) -> None:
    """Best effort: forgets claims whose events could not be queued, so a retry is accepted."""
    if not event_ids:
        return
    client = redis_client()
    if client is None:
        return
    try:
        client.delete(*[_key(project_id, event_id) for event_id in event_ids])
    except Exception as exc:
        logger.warning("dedup_release_failed", project_id=project_id, events=len(event_ids), error=type(exc).__name__)
