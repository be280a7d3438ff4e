"""The dedup fast path: one `SET key 1 NX EX 86400` per event id, all in one Lua call
(one command for a whole batch: far cheaper to send than a pipeline of a thousand).

Ids minted on receipt (events.validation: random, for events sent with neither an id nor a
timestamp) are not claimed: no earlier event has them and no client can resend them.

It only spares the database work; the guarantee is the unique (project, event_id)
constraint, which holds after the 24 h, after a Redis flush and between racing processes.
Without Redis (the embedded default) there is no fast path: jobs run inline, so the insert
itself says which events were new, exactly (a local-memory cache forgets entries past its
size and would only have made the count lie).

Events written while Redis was unreachable (straight to the database) have no claim: a
resend would be claimed anew and counted as accepted. Such writes leave a mark per project
(`DirectWrite`); for a claim's lifetime after it, ids claimed as new are also looked up in
the events table, so `accepted` stays exact. Each process re-reads a project's mark at most
every MARK_RECHECK_SECONDS, and at once after it saw Redis fail.
"""

import time
from datetime import timedelta
from functools import lru_cache

import structlog
from django.db import DatabaseError
from django.utils import timezone

from analytics_platform.redis import redis_client

TTL_SECONDS = 24 * 3600
MARK_RECHECK_SECONDS = 1.0
MARK_REFRESH = timedelta(minutes=1)
logger = structlog.get_logger(__name__)
_marks: dict[int, tuple[float, object]] = {}  # project id -> (read at, written_at or None)


KEY_PREFIX = "dedup:"  # + project id + ":" + event id (also built by events.hot's script)


def _key(project_id: int, event_id: str) -> str:
    return f"{KEY_PREFIX}{project_id}:{event_id}"


def claim(project_id: int, event_ids: list[str | None]) -> list[bool]:
    """Marks the ids as seen; True for each id nobody had claimed, and for each None (an id
    minted on receipt, events.validation: random, so new, and never resent, so not worth a
    key). Raises Redis's connection errors (the caller then writes synchronously)."""
    client = redis_client()
    wanted = [event_id for event_id in event_ids if event_id is not None]
    if client is None or not wanted:
        return [True] * len(event_ids)
    results = iter(_claim_script(client)(keys=[_key(project_id, event_id) for event_id in wanted], args=[TTL_SECONDS]))
    claimed = [event_id is None or bool(next(results)) for event_id in event_ids]
    new_ids = [event_id for event_id, new in zip(event_ids, claimed, strict=True) if new and event_id is not None]
    if new_ids and written_directly_lately(project_id):
        known = _stored_already(project_id, new_ids)
        claimed = [new and event_id not in known for event_id, new in zip(event_ids, claimed, strict=True)]
    return claimed


def direct_write_mark(project_id: int) -> None:
    """Called before events are written without Redis (the database must be up: a failure
    raises DatabaseError, as the write itself would)."""
    from events.models import DirectWrite

    now = timezone.now()
    _marks.clear()  # Redis failed: every project's mark is read afresh once it is back
    if not DirectWrite.objects.filter(project_id=project_id, written_at__gt=now - MARK_REFRESH).exists():
        DirectWrite.objects.update_or_create(project_id=project_id, defaults={"written_at": now})


def written_directly_lately(project_id: int) -> bool:
    """Whether the project's events were written without Redis within a claim's lifetime
    (its claims may then miss stored events). Reads the database at most every
    MARK_RECHECK_SECONDS per project (mark_cached is the answer without reading)."""
    from events.models import DirectWrite

    cached = mark_cached(project_id)
    if cached is not None:
        return cached
    try:
        written_at = DirectWrite.objects.filter(project_id=project_id).values_list("written_at", flat=True).first()
    except DatabaseError as exc:  # the count may lie; the unique constraint still holds
        logger.warning("dedup_mark_unreadable", project_id=project_id, error=type(exc).__name__)
        return False
    _marks[project_id] = (time.monotonic(), written_at)
    return _is_recent(written_at)


def mark_cached(project_id: int) -> bool | None:
    """written_directly_lately's answer if this process read the mark lately, else None."""
    read_at, written_at = _marks.get(project_id, (-MARK_RECHECK_SECONDS, None))
    if time.monotonic() - read_at >= MARK_RECHECK_SECONDS:
        return None
    return _is_recent(written_at)


def _is_recent(written_at) -> bool:
    return written_at is not None and written_at > timezone.now() - timedelta(seconds=TTL_SECONDS)


def _stored_already(project_id: int, event_ids: list[str]) -> set[str]:
    from events.models import Event

    try:
        found = Event.objects.filter(project_id=project_id, event_id__in=event_ids).values_list("event_id", flat=True)
        return set(found)
    except DatabaseError as exc:
        logger.warning("dedup_lookup_failed", project_id=project_id, error=type(exc).__name__)
        return set()


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
