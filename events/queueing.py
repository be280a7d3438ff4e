"""Handing accepted events to the workers, durably, before the request answers.

A request with many new events becomes one RQ job carrying them. Single events (and other
tiny requests) are coalesced instead: pushed onto one Redis list, the ingest buffer, which
every worker's drainer (events.drainer) takes from as soon as anything is there, whatever
has piled up in one transaction. As a fallback for when no worker drains, the buffer's first
push also schedules a drain job EVENT_BUFFER_TIMEOUT_MS later. Both are in Redis when the
request answers 202.

Without Redis (the embedded default) the queue is RQ's synchronous mode on an in-process
fake Redis: the same job runs inline, and the request fails if the job did.
"""

import json
from datetime import timedelta
from functools import lru_cache

import structlog
from django.conf import settings
from rq import Queue, Retry
from rq.job import JobStatus

from analytics_platform.errors import ServiceUnavailable
from analytics_platform.redis import redis_client

logger = structlog.get_logger(__name__)

QUEUE_NAME = "default"
PERSIST_JOB = "events.jobs.persist_events"
DRAIN_JOB = "events.jobs.drain_buffer"
RETRY = Retry(max=8, interval=[1, 2, 5, 15, 30, 60, 120, 300])
JOB_OPTIONS = {"result_ttl": 0, "failure_ttl": 30 * 24 * 3600, "job_timeout": 600}
INLINE_RESULT_TTL = 60  # long enough to read an inline job's result back; deleted right after

BUFFER_KEY = "ingest:buffer"
ARMED_KEY = "ingest:buffer:armed"
BUFFERED_MAX_EVENTS = 10  # requests with at most this many new events are coalesced


@lru_cache(maxsize=1)
def _inline_queue() -> Queue:
    import fakeredis  # only the embedded default needs it

    return Queue(QUEUE_NAME, is_async=False, connection=fakeredis.FakeStrictRedis())


def ingest_queue() -> Queue:
    client = redis_client()
    return _inline_queue() if client is None else Queue(QUEUE_NAME, connection=client)


def enqueue_rows(project_id: int, rows: list[list]) -> dict | None:
    """Queues the rows for persistence. In the embedded default the job runs inline and its
    result, what the database did ({"stored": n, "refused": [[position, error], ...]}), is
    returned; otherwise None. Raises Redis's connection errors, or ServiceUnavailable if the
    inline job failed."""
    if not rows:
        return None
    client = redis_client()
    if client is not None and len(rows) <= BUFFERED_MAX_EVENTS:
        buffer_push(client, project_id, rows)
        return None
    queue = ingest_queue()
    if not queue.is_async:
        job = queue.enqueue(
            PERSIST_JOB,
            project_id,
            json.dumps(rows),
            description=_describe(project_id, rows),
            **{**JOB_OPTIONS, "result_ttl": INLINE_RESULT_TTL},
        )
        if job.get_status(refresh=False) != JobStatus.FINISHED:
            logger.error("inline_persist_failed", project_id=project_id, status=str(job.get_status(refresh=False)))
            raise ServiceUnavailable("The database could not store the events; retry shortly.")
        result = job.return_value()
        job.delete()
        return result
    queue.enqueue(
        PERSIST_JOB, project_id, json.dumps(rows), retry=RETRY, description=_describe(project_id, rows), **JOB_OPTIONS
    )
    return None


def _describe(project_id: int, rows: list[list]) -> str:
    """What the dashboard and the worker's log show, instead of the events themselves."""
    return f"persist {len(rows)} events of project {project_id}"


def buffer_push(client, project_id: int, rows: list[list]) -> None:
    """Pushes the rows as one buffer item, `[project id, row, row, ...]` (events.hot's script
    pushes a request's new events the same way)."""
    with client.pipeline() as pipe:  # MULTI: the events and the timer go in together
        pipe.rpush(BUFFER_KEY, json.dumps([project_id, *rows]))
        pipe.set(ARMED_KEY, 1, nx=True, px=settings.EVENT_BUFFER_TIMEOUT_MS)
        _, armed = pipe.execute()
    if armed:  # this push armed the fallback timer (events.hot's script does the same)
        schedule_drain()


def schedule_drain() -> None:
    delay = timedelta(milliseconds=settings.EVENT_BUFFER_TIMEOUT_MS)
    ingest_queue().enqueue_in(delay, DRAIN_JOB, retry=RETRY, description="drain the ingest buffer", **JOB_OPTIONS)


def rearm_if_pending(client) -> None:
    """After a drain took the buffer: whatever was pushed meanwhile gets a timer of its own."""
    client.delete(ARMED_KEY)
    if client.llen(BUFFER_KEY) and client.set(ARMED_KEY, 1, nx=True, px=settings.EVENT_BUFFER_TIMEOUT_MS):
        schedule_drain()
