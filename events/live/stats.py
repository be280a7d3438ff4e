"""The live stream's stats: events stored per second and users active in the last five
minutes, per project, counted by the writer (events_persist) as it stores events, so a
socket asking for them never touches the events table.

With Redis: one counter per second (INCRBY, expiring after two minutes) and one HyperLogLog
of user ids per minute (PFADD, expiring after ten); PFCOUNT over the last five minutes' keys
counts their union. Without Redis (the embedded default, where the web process is also the
writer) the same numbers are kept in this process's memory.
"""

import threading
import time
from collections import defaultdict, deque

import structlog

from analytics_platform.redis import REDIS_DOWN, redis_client

logger = structlog.get_logger(__name__)

RATE_SECONDS = 5  # eventsPerSecond: the mean over the last RATE_SECONDS whole seconds
ACTIVE_MINUTES = 5


def _counter_key(project_id: int, second: int) -> str:
    return f"live:eps:{project_id}:{second}"


def _users_key(project_id: int, minute: int) -> str:
    return f"live:users:{project_id}:{minute}"


class _Memory:
    def __init__(self):
        self.lock = threading.Lock()
        self.counts: dict[int, deque] = defaultdict(deque)  # project -> (second, count)
        self.seen: dict[int, dict[str, float]] = defaultdict(dict)  # project -> user -> last seen

    def add(self, project_id: int, user_ids: list[str], now: float) -> None:
        second = int(now)
        with self.lock:
            counts = self.counts[project_id]
            if counts and counts[-1][0] == second:
                counts[-1] = (second, counts[-1][1] + len(user_ids))
            else:
                counts.append((second, len(user_ids)))
            while counts and counts[0][0] < second - 120:
                counts.popleft()
            seen = self.seen[project_id]
            for user in user_ids:
                seen[user] = now
            if len(seen) > 100_000:  # forget the idle ones now and then
                cutoff = now - ACTIVE_MINUTES * 60
                self.seen[project_id] = {u: t for u, t in seen.items() if t >= cutoff}

    def stats(self, project_id: int, now: float) -> tuple[int, int]:
        second = int(now)
        cutoff = (int(now // 60) - ACTIVE_MINUTES) * 60  # whole minutes, as with Redis
        with self.lock:
            events = sum(n for s, n in self.counts[project_id] if second - RATE_SECONDS <= s < second)
            users = sum(1 for t in self.seen[project_id].values() if t >= cutoff)
        return events, users


_memory = _Memory()


def live_count(*, project_id: int, user_ids: list[str], now: float | None = None) -> None:
    """Counts stored events (one user id per event). Best effort: a failure only costs stats."""
    if not user_ids:
        return
    now = time.time() if now is None else now
    client = redis_client()
    if client is None:
        _memory.add(project_id, user_ids, now)
        return
    second, minute = int(now), int(now // 60)
    try:
        pipe = client.pipeline(transaction=False)
        pipe.incrby(_counter_key(project_id, second), len(user_ids))
        pipe.expire(_counter_key(project_id, second), 120)
        pipe.pfadd(_users_key(project_id, minute), *set(user_ids))
        pipe.expire(_users_key(project_id, minute), ACTIVE_MINUTES * 60 * 2)
        pipe.execute()
    except REDIS_DOWN as exc:
        logger.warning("live_count_failed", project_id=project_id, error=type(exc).__name__)


def live_stats(*, project_id: int, now: float | None = None) -> dict:
    """{"type": "stats", "eventsPerSecond", "activeUsers5m"} for the project, right now."""
    now = time.time() if now is None else now
    client = redis_client()
    if client is None:
        events, users = _memory.stats(project_id, now)
    else:
        second, minute = int(now), int(now // 60)
        try:
            pipe = client.pipeline(transaction=False)
            pipe.mget([_counter_key(project_id, s) for s in range(second - RATE_SECONDS, second)])
            # the current minute and the five before it: "the last five minutes", give or take
            # the part of a minute that is still running
            pipe.pfcount(*[_users_key(project_id, m) for m in range(minute - ACTIVE_MINUTES, minute + 1)])
            counts, users = pipe.execute()
            events = sum(int(c) for c in counts if c is not None)
        except REDIS_DOWN as exc:
            logger.warning("live_stats_failed", project_id=project_id, error=type(exc).__name__)
            events, users = 0, 0
    return {"type": "stats", "eventsPerSecond": round(events / RATE_SECONDS, 2), "activeUsers5m": int(users)}
