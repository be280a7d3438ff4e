"""A real `rqworker` (events.worker.RecoveringWorker) on PostgreSQL and Redis: its
maintenance exports outbox rows whose export was never scheduled, and an event stored while
it runs reaches a file within moments (measured and printed, -s shows it; not asserted:
the tail makes every stored event visible to analytics at once anyway)."""

import statistics
import time
from datetime import timedelta

import pytest

from tests.integration.test_recovery import stop, wait_for
from tests.integration.test_worker_crash import start_worker
from tests.warehouse.helpers import DAY_ONE, assert_exact, mirror_state, spread, store
from warehouse.export import outbox_events
from warehouse.snapshot import snapshot

pytestmark = [pytest.mark.redis, pytest.mark.usefixtures("postgres")]


def pending(project) -> int:
    return outbox_events(project.id)


def test_a_running_worker_exports_outbox_rows_whose_export_was_never_scheduled(
    project, worker_settings, tmp_path, monkeypatch
):
    with monkeypatch.context() as lost:
        lost.setattr("events.services.export_schedule", lambda project_id: None)
        store(project.id, spread(50, 3), tag="unscheduled")
    assert pending(project) == 50
    log = tmp_path / "worker.log"
    worker = start_worker(worker_settings, log)
    try:
        took = wait_for(lambda: pending(project) == 0, timeout=60, what="the maintenance's export", log=log)
    finally:
        stop(worker)
    print(f"\noutbox rows nobody scheduled exported {took:.2f} s after the worker started")
    state = mirror_state(project.id)
    assert_exact(state, stored=50)
    assert state["live_days"] == {"2024-03-10": 1, "2024-03-11": 1, "2024-03-12": 1}


def test_an_event_stored_while_the_worker_runs_reaches_a_file(project, worker_settings, tmp_path):
    log = tmp_path / "worker.log"
    worker = start_worker(worker_settings, log)
    latencies = []
    try:
        # Warm up: the worker is up (and has opened DuckDB) once it exported a first event.
        store(project.id, spread(1, 1, user_prefix="warm"), tag="warm")
        wait_for(lambda: pending(project) == 0, timeout=60, what="the worker's first export", log=log)
        for i in range(20):
            store(project.id, spread(1, 1, start=DAY_ONE + timedelta(minutes=i)), tag=f"e{i}")
            stored_at = time.monotonic()
            with snapshot(project.id) as snap:  # visible at once, from the tail or a file
                assert snap.fetch(f"SELECT COUNT(*) FROM {snap.events()} e")[0][0] == i + 2
            poll_until(lambda: pending(project) == 0)
            latencies.append(time.monotonic() - stored_at)
    finally:
        stop(worker)
    print(
        f"\nexport latency over {len(latencies)} events (stored -> in a file): "
        f"min {min(latencies) * 1000:.0f} ms, median {statistics.median(latencies) * 1000:.0f} ms, "
        f"max {max(latencies) * 1000:.0f} ms"
    )
    assert_exact(mirror_state(project.id), stored=21)


def poll_until(predicate, timeout: float = 60.0) -> None:
    """wait_for, polling every 5 ms rather than 50 (this measures)."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("timed out waiting for the export")
        time.sleep(0.005)
