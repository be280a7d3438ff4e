import gzip
import json
import time

import pytest
from rq import SimpleWorker
from rq.job import Job
from rq.registry import ScheduledJobRegistry

from analytics_platform.redis import redis_client
from events.models import Event
from events.queueing import ingest_queue


def run_jobs() -> None:
    """What the worker does, in this process: due-or-not timers are released (as the RQ
    scheduler would once they are due), then every queued job runs. A no-op in the embedded
    default, where jobs already ran inline."""
    client = redis_client()
    if client is None:
        return
    queue = ingest_queue()
    registry = ScheduledJobRegistry(queue=queue)
    for job_id in registry.get_jobs_to_schedule(timestamp=int(time.time()) + 10**6):
        queue.enqueue_job(Job.fetch(job_id, connection=client))
        registry.remove(job_id)
    SimpleWorker([queue], connection=client).work(burst=True)


@pytest.fixture
def jobs():
    return run_jobs


@pytest.fixture
def ingest_key(project, make_key):
    return make_key(project, scopes=["ingest"])


@pytest.fixture
def post_events(client_for, ingest_key):
    client = client_for(ingest_key)

    def post(payload, *, compress=False, **extra):
        body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
        if compress:
            body = gzip.compress(body)
            extra.setdefault("HTTP_CONTENT_ENCODING", "gzip")
        content_type = extra.pop("content_type", "application/json")
        return client.generic("POST", "/api/v1/events", body, content_type=content_type, **extra)

    return post


def stored(project) -> list[Event]:
    return list(Event.objects.filter(project=project).order_by("timestamp", "id"))


def event(user="u1", name="page_view", ts="2024-01-01T10:00:00Z", **fields) -> dict:
    return {"userId": user, "eventName": name, "timestamp": ts, **fields}
