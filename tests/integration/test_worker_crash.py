"""A real `rqworker` process killed in the middle of a job: the job is retried (as the
next worker's registry maintenance does) and every accepted event is stored exactly once."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psycopg
import pytest
from django.db import connection
from rq.job import Job
from rq.registry import ScheduledJobRegistry, StartedJobRegistry

from events.models import Event
from events.queueing import ingest_queue
from tests.helpers import event

ROOT = Path(__file__).resolve().parent.parent.parent


def database_url() -> str:
    s = connection.settings_dict
    return f"postgresql://{s['USER']}@{s['HOST'] or '127.0.0.1'}:{s['PORT'] or 5432}/{s['NAME']}"


def start_worker(redis_url: str, log: Path, *options: str) -> subprocess.Popen:
    """A real `rqworker` on the test database, in a process group of its own (its scheduler
    child included), so a test can kill it whole."""
    env = {
        **os.environ,
        "DATABASE_URL": database_url(),
        "REDIS_URL": redis_url,
        "DJANGO_SETTINGS_MODULE": "tests.settings",
    }
    return subprocess.Popen(
        [sys.executable, "manage.py", "rqworker", "default", *options],
        cwd=ROOT,
        env=env,
        stdout=log.open("ab"),
        stderr=subprocess.STDOUT,
        start_new_session=True,  # its own process group: the work horse dies with it
    )


def wait_for(predicate, timeout=30.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.05)
    raise AssertionError("timed out waiting")


@pytest.mark.redis
def test_a_worker_killed_mid_job_loses_and_duplicates_nothing(postgres, redis_cache, redis_url, post_events, tmp_path):
    batch = [event(f"u{i}", ts=1704103200000 + i, properties={"i": i}) for i in range(1000)]
    assert post_events(batch).json()["accepted"] == 1000
    queue = ingest_queue()
    assert queue.count == 1

    s = connection.settings_dict
    holder = psycopg.connect(host=s["HOST"], port=s["PORT"] or 5432, user=s["USER"], dbname=s["NAME"])
    holder.execute("LOCK TABLE events_event IN ACCESS EXCLUSIVE MODE")  # the job's insert will block here
    worker = start_worker(redis_url, tmp_path / "worker.log", "--burst")
    try:
        wait_for(lambda: StartedJobRegistry(queue=queue).count == 1)
        time.sleep(0.5)
        os.killpg(worker.pid, signal.SIGKILL)
        worker.wait(timeout=10)
    finally:
        holder.rollback()
        holder.close()
    assert Event.objects.count() == 0  # the killed transaction left nothing behind

    # What the next worker's maintenance does with an abandoned job: retry it (with backoff) ...
    StartedJobRegistry(queue=queue).cleanup(timestamp=time.time() + 10**6)
    scheduled = ScheduledJobRegistry(queue=queue)
    (job_id,) = scheduled.get_job_ids()
    assert Job.fetch(job_id, connection=queue.connection).retries_left == 7
    # ... and what the scheduler does once the backoff is over.
    queue.enqueue_job(Job.fetch(job_id, connection=queue.connection))
    scheduled.remove(job_id)

    worker = start_worker(redis_url, tmp_path / "worker.log", "--burst")
    assert worker.wait(timeout=60) == 0, (tmp_path / "worker.log").read_text()[-3000:]
    assert Event.objects.count() == 1000
    assert Event.objects.values("event_id").distinct().count() == 1000
    assert sorted(Event.objects.values_list("properties__i", flat=True)) == list(range(1000))

    replay = post_events(batch).json()
    assert replay == {"accepted": 0, "duplicates": 1000, "rejected": []}
    assert Event.objects.count() == 1000
