"""The ingest buffer's drainer: a loop in every worker (a thread of RecoveringWorker) that
blocks on the buffer and stores whatever is there as soon as it is there, up to DRAIN_BATCH
items (an item is one request's new events) or TAKE_BYTES at a time, so a single posted
event is stored milliseconds after its 202, not at the buffer's timer
(EVENT_BUFFER_TIMEOUT_MS, now only the upper bound, for when no worker runs).

Each take moves items atomically from the buffer to the worker's own list,
`ingest:buffer:draining:<worker name>` (BLMOVE, then a script for the rest of the batch), and
that list is deleted only once its events are committed. So nothing is lost whenever the
worker dies: its list is still in Redis, and a live worker's maintenance puts it back at the
head of the buffer once the dead worker's liveness key is gone (`abandoned_return`); a
worker restarted under the same name stores its own list first. The names of the workers
whose lists may exist are kept in a set, `ingest:buffer:drainers`, which the maintenance
reads instead of scanning the keyspace (a SCAN of every dedup claim, every 2 s in every
worker, was a tenth of Redis's time under load); a drainer starting up adds the lists it
finds in one SCAN, so a list no set names is never left behind. Events stored twice this
way are ignored by the insert (unique event ids). Storing goes through the same code as the
timer's drain job (events.jobs.store_buffered): per project, bad rows to dead letters.
"""

import threading

import structlog
from django.db import close_old_connections
from redis.exceptions import ResponseError

from analytics_platform.redis import REDIS_DOWN
from events.queueing import BUFFER_KEY

logger = structlog.get_logger(__name__)
DRAIN_BATCH = 2000  # items taken at once, at most
# and bytes at most (an item holds one request's events, up to EVENT_BATCH_SIZE of them):
# about 4,000 events of bench/ingest.py's. 500 KB stored fewer per second (21.0k against
# 24.8k, a run each) and left the worker's peak RSS where it was (295 MB: the exports')
TAKE_BYTES = 1_000_000
BLOCK_SECONDS = 1.0  # a blocked take returns this often, to notice a stop
RETRY_SECONDS = 1.0  # after a failure to store (the database away) or to reach Redis
# When a take finds more behind its first item (events streaming in), it waits this long and
# takes again: a few large transactions instead of many of a few events each. A lone event
# is stored at once.
LINGER_SECONDS = 0.02
DRAINING_PREFIX = f"{BUFFER_KEY}:draining:"
DRAINERS_KEY = f"{BUFFER_KEY}:drainers"

# Moves items from the buffer's head to the draining list's tail (the timed drain job takes
# its chunks with it too): up to ARGV[1] items of ARGV[2] bytes in all, but the first item
# whatever its size if ARGV[3] is 1. One at a time, so that only what is taken (and the one
# item that did not fit, moved back) is read into Lua: an LRANGE of ARGV[1] items read the
# whole backlog on every take (under 1,000-event batches, Redis's CPU per event was near
# PostgreSQL's). Returns {items moved, their bytes}.
TAKE_LUA = """
local n, size, most, room = 0, 0, tonumber(ARGV[1]), tonumber(ARGV[2])
while n < most do
  local item = redis.call('LMOVE', KEYS[1], KEYS[2], 'LEFT', 'RIGHT')
  if not item then break end
  if size + #item > room and not (n == 0 and ARGV[3] == '1') then
    redis.call('LMOVE', KEYS[2], KEYS[1], 'RIGHT', 'LEFT')
    break
  end
  n, size = n + 1, size + #item
end
return {n, size}
"""
# Moves the whole draining list back to the buffer's head, in its order, and forgets its
# worker's name.
_RETURN = """
local n = 0
while redis.call('LMOVE', KEYS[2], KEYS[1], 'RIGHT', 'LEFT') do n = n + 1 end
redis.call('SREM', KEYS[3], ARGV[1])
return n
"""


def draining_key(worker_name: str) -> str:
    return DRAINING_PREFIX + worker_name


class Drainer:
    def __init__(self, connection, worker_name: str):
        self.connection = connection
        self.name = worker_name
        self.key = draining_key(worker_name)
        self.stopped = threading.Event()
        self._take = connection.register_script(TAKE_LUA)

    def run(self) -> None:
        """Until stop(): stores the worker's own list if it holds anything (left by an earlier
        process under this name), then each batch taken from the buffer."""
        from events.jobs import store_buffered  # Django is set up by the time a worker runs

        while not self.stopped.is_set():
            try:
                lists_adopt(self.connection)
                break
            except REDIS_DOWN:
                self.stopped.wait(RETRY_SECONDS)
        while not self.stopped.is_set():
            try:
                if not self.connection.exists(self.key) and not self._take_batch():
                    continue
                close_old_connections()
                stored = store_buffered(self.connection, self.key)
                logger.debug("buffer_drained", stored=stored)
            except Exception as exc:  # noqa: BLE001 - the list stays; the next round retries it
                logger.warning("buffer_drain_failed", error=f"{type(exc).__name__}: {exc}")
                self.stopped.wait(RETRY_SECONDS)

    def stop(self) -> None:
        self.stopped.set()

    def _take_batch(self) -> bool:
        try:
            self.connection.sadd(DRAINERS_KEY, self.name)  # before the take, always
            first = self.connection.blmove(BUFFER_KEY, self.key, BLOCK_SECONDS, "LEFT", "RIGHT")
        except REDIS_DOWN:
            self.stopped.wait(RETRY_SECONDS)
            return False
        if first is None:
            return False
        room = TAKE_BYTES - len(first)
        more, size = self._take(keys=[BUFFER_KEY, self.key], args=[DRAIN_BATCH - 1, room, 0])
        if more and 1 + more < DRAIN_BATCH and size < room:
            self.stopped.wait(LINGER_SECONDS)
            self._take(keys=[BUFFER_KEY, self.key], args=[DRAIN_BATCH - 1 - more, room - size, 0])
        return True


def lists_adopt(connection) -> None:
    """Adds to the set the names of the draining lists in Redis that it lacks (left by a
    worker of an earlier version): one SCAN, when a drainer starts."""
    names = [key[len(DRAINING_PREFIX) :] for key in connection.scan_iter(match=DRAINING_PREFIX + "*", count=1000)]
    if names:
        connection.sadd(DRAINERS_KEY, *names)


def abandoned_return(connection, is_gone) -> int:
    """Puts the draining lists of gone workers (`is_gone(name)`) back at the head of the
    buffer; returns how many items went back."""
    back = connection.register_script(_RETURN)
    returned = 0
    for raw in connection.smembers(DRAINERS_KEY):
        name = raw.decode()
        if is_gone(name):
            try:
                returned += back(keys=[BUFFER_KEY, draining_key(name), DRAINERS_KEY], args=[name])
            except ResponseError as exc:
                if not str(exc).startswith("WRONGTYPE"):
                    raise  # e.g. Redis out of memory: the list stays, for the next round
                connection.delete(draining_key(name))  # not a list: nobody's
                connection.srem(DRAINERS_KEY, name)
    if returned:
        logger.warning("buffer_abandoned_returned", items=returned)
    return returned
