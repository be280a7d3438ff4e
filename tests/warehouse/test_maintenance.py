"""How events get to files without anyone calling an export by hand: the export scheduled
after every stored batch (inline in the embedded default, an RQ job with Redis), and the
maintenance that catches up with outbox rows whose export was never scheduled; the worker
runs that maintenance every few seconds and survives its errors."""

import time
from datetime import timedelta

import pytest
import redis
from django.db import OperationalError
from rq import Queue
from rq.exceptions import StopRequested
from rq.registry import ScheduledJobRegistry

from events.worker import RecoveringWorker
from tests.helpers import run_jobs
from tests.warehouse.helpers import DAY_ONE, assert_exact, mirror_state, spread, store
from warehouse import jobs
from warehouse.compact import partition_compact
from warehouse.export import mirror_export, outbox_events
from warehouse.models import Outbox

DAYS = ("2024-03-10", "2024-03-11", "2024-03-12")


def test_stored_events_reach_files_through_the_scheduled_export(project):
    for batch in range(9):
        store(project.id, spread(9, 3, start=DAY_ONE + timedelta(minutes=batch)), tag=f"b{batch}")
        run_jobs()
        assert outbox_events(project.id) == 0
    state = mirror_state(project.id)
    assert_exact(state, stored=81)
    # Each export wrote a file per day; the 8th file of a day had the day compacted.
    assert state["live_days"] == dict.fromkeys(DAYS, 2) and len(state["retired"]) == 24


def test_the_maintenance_exports_outbox_rows_whose_export_was_never_scheduled(project, other_project, monkeypatch):
    monkeypatch.setattr("events.services.export_schedule", lambda project_id: None)  # schedules lost
    store(project.id, spread(30, 3), tag="a")
    store(other_project.id, spread(5, 1), tag="b")
    assert outbox_events(project.id) + outbox_events(other_project.id) == 35
    jobs.mirror_maintain()
    run_jobs()
    assert not Outbox.objects.exists()
    assert_exact(mirror_state(project.id), stored=30)
    assert_exact(mirror_state(other_project.id), stored=5)


def test_the_maintenance_sweeps_retired_files_once_the_grace_period_is_over(project, settings, no_auto_export):
    store(project.id, spread(20, 1), tag="a")
    mirror_export(project_id=project.id, limit=10)
    mirror_export(project_id=project.id, limit=10)
    partition_compact(project_id=project.id, day=DAY_ONE.date())
    jobs.mirror_maintain()
    assert len(mirror_state(project.id)["retired"]) == 2  # within the grace period
    settings.ANALYTICS_GRACE_SECONDS = 0
    jobs.mirror_maintain()
    state = mirror_state(project.id)
    assert_exact(state, stored=20)
    assert state["retired"] == [] and state["on_disk"] == sorted(state["live"])


def test_without_a_worker_an_export_runs_the_maintenance_at_most_every_interval(
    project, settings, monkeypatch, no_auto_export
):
    def retired_after_an_export(tag: str) -> list:
        store(project.id, spread(16, 1, user_prefix=tag), tag=tag)
        for _ in range(8):
            mirror_export(project_id=project.id, limit=2)
        partition_compact(project_id=project.id, day=DAY_ONE.date())
        store(project.id, spread(1, 1, user_prefix=f"{tag}-last"), tag=f"{tag}-last")
        jobs.export_mirror(project.id)
        return mirror_state(project.id)["retired"]

    settings.ANALYTICS_GRACE_SECONDS = 0
    monkeypatch.setattr(jobs, "MAINTENANCE_INTERVAL", 3600)
    monkeypatch.setattr(jobs, "_next_maintenance", 0.0)
    assert retired_after_an_export("a") == []  # swept by the export
    # Not swept: the next maintenance is not due (this round merged its 8 files and the 2 live before).
    assert len(retired_after_an_export("b")) == 10
    assert_exact(mirror_state(project.id), stored=34)


@pytest.mark.redis
def test_one_export_is_queued_per_project_until_it_starts(project, redis_cache, no_auto_export):
    """One export per project is scheduled, EXPORT_DELAY later, until it starts."""
    from events.queueing import ingest_queue

    store(project.id, spread(10, 1), tag="a")
    before = time.time()
    for _ in range(3):
        jobs.export_schedule(project.id)
    queue = ingest_queue()
    timers = ScheduledJobRegistry(queue=queue)
    assert (queue.count, timers.count) == (0, 1)
    due = timers.get_scheduled_time(timers.get_job_ids()[0]).timestamp()
    assert int(before) + 1 <= due <= time.time() + 1  # RQ keeps whole seconds
    run_jobs()  # the job clears the marker, then exports
    assert not Outbox.objects.exists()
    store(project.id, spread(10, 1, user_prefix="v"), tag="b")
    jobs.export_schedule(project.id)
    assert timers.count == 1
    run_jobs()
    assert_exact(mirror_state(project.id), stored=20)


@pytest.fixture
def worker(redis_url):
    connection = redis.Redis.from_url(redis_url)
    connection.flushdb()
    yield RecoveringWorker([Queue("default", connection=connection)], connection=connection)
    connection.flushdb()


@pytest.mark.redis
def test_the_worker_runs_the_mirror_maintenance_at_its_interval_and_outlives_its_errors(worker, monkeypatch):
    calls = []

    def failing():
        calls.append(1)
        raise OperationalError("the database went away")

    monkeypatch.setattr("warehouse.jobs.mirror_maintain", failing)
    monkeypatch.setattr("events.worker.MIRROR_MAINTENANCE_INTERVAL", 3600)
    worker.run_maintenance_tasks()  # logs the error, raises nothing
    worker.run_maintenance_tasks()
    assert calls == [1]  # once per interval
    monkeypatch.setattr("events.worker.MIRROR_MAINTENANCE_INTERVAL", 0)
    worker._next_mirror_maintenance = 0.0
    worker.run_maintenance_tasks()
    worker.run_maintenance_tasks()
    assert calls == [1, 1, 1]


@pytest.mark.redis
def test_a_stop_asked_for_during_the_mirror_maintenance_stops_the_worker(worker, monkeypatch):
    """RQ's SIGTERM handler raises StopRequested wherever the worker is; swallowed as a
    maintenance error, it left a worker running for minutes after its warm shutdown."""

    def interrupted():
        raise StopRequested

    monkeypatch.setattr("warehouse.jobs.mirror_maintain", interrupted)
    with pytest.raises(StopRequested):
        worker.run_maintenance_tasks()
