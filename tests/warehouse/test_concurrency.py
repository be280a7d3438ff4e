"""An export, a compaction or a rebuild caught in flight (a driver process stopped with
SIGSTOP at a named step, warehouse.files.step) while this process reads, sweeps, stores
events or deletes the project, on PostgreSQL, where these really run side by side (SQLite
has one writer at a time: there the writer's lock would hold this process up).

Readers read exactly throughout; the sweep never deletes a file whose writer may still
commit; events stored during a rebuild are neither lost nor doubled; a rebuild and a
project's deletion wait for the export in flight instead of racing it."""

import os
import signal
import threading
import time

import pytest
from django.db import connection, transaction

from accounts.models import Project
from events.models import Event
from tests.warehouse.helpers import assert_exact, mirror_state, orphans, spread, store
from warehouse.compact import mirror_sweep
from warehouse.models import MirrorFile, Outbox
from warehouse.rebuild import mirror_rebuild
from warehouse.snapshot import snapshot

pytestmark = pytest.mark.usefixtures("postgres", "no_auto_export")


def paused(driver, operations: list):
    """A driver process stopped at its pause point (its results: driver.results(process),
    after SIGCONT or SIGKILL)."""
    process = driver.start(operations)
    _, status = os.waitpid(process.pid, os.WUNTRACED)  # returns once it stopped (or ended)
    if not os.WIFSTOPPED(status):
        process.returncode = os.waitstatus_to_exitcode(status)
        raise AssertionError(f"the driver ended before its pause point:\n{process.stderr.read().decode()[-1500:]}")
    return process


@pytest.fixture
def stopped(driver):
    """Starts paused driver processes; any left at the end is killed (it holds locks the
    database flush would wait for)."""
    processes = []

    def start(operations):
        processes.append(paused(driver, operations))
        return processes[-1]

    yield start
    for process in processes:
        if process.poll() is None:
            process.kill()
            process.communicate(timeout=30)


def resume(driver, process, *, kill: bool = False) -> list:
    os.kill(process.pid, signal.SIGKILL if kill else signal.SIGCONT)
    return driver.results(process, killed=kill)


def seeded(driver, *, count: int = 30, exports: list | None = None) -> int:
    """A project with `count` events on one UTC day (so each export writes one file)."""
    done = driver.run([["project"], ["store", {"count": count, "days": 1, "tag": "seed"}], *(exports or [])])
    return done[0][1]


def count_read(snap) -> tuple[int, int]:
    return snap.fetch(f"SELECT COUNT(*), COUNT(DISTINCT id) FROM {snap.events()} e")[0]


def test_a_file_whose_export_has_not_committed_is_never_swept(driver, stopped, settings):
    project = seeded(driver)
    settings.ANALYTICS_GRACE_SECONDS = 0
    exporter = stopped([["use", project], ["pause_at", "export:renamed"], ["export"]])
    in_flight = mirror_state(project)
    assert_exact(in_flight, stored=30)
    assert in_flight["pending"] == 30 and len(orphans(in_flight)) == 1  # renamed, not yet in the catalog
    assert mirror_sweep() == 0  # its writer holds the project's mirror lock
    assert orphans(mirror_state(project)) == orphans(in_flight)

    resume(driver, exporter, kill=True)  # now it is an orphan of a crash
    wait_for(lambda: advisory_locks() == 0)  # once PostgreSQL has noticed and rolled it back
    assert mirror_sweep() == 1
    crashed = mirror_state(project)
    assert_exact(crashed, stored=30)
    assert crashed["on_disk"] == []

    exporter = stopped([["use", project], ["pause_at", "export:renamed"], ["export"]])
    assert mirror_sweep() == 0
    assert resume(driver, exporter)[-1] == ("export", 30)
    exported = mirror_state(project)
    assert_exact(exported, stored=30)
    assert exported["pending"] == 0 and exported["on_disk"] == sorted(exported["live"])


def test_a_reader_that_took_its_snapshot_during_a_compaction_reads_exactly_after_it_commits(driver, stopped):
    project = seeded(driver, exports=[["export", {"limit": 10}]] * 3)
    compactor = stopped([["use", project], ["pause_at", "compact:before_commit"], ["compact", {"day": "2024-03-10"}]])
    with snapshot(project) as during:
        assert len(during.files) == 3
        assert count_read(during) == (30, 30)
        assert resume(driver, compactor)[-1] == ("compact", 3)
        assert mirror_sweep() == 0  # within the grace period
        assert count_read(during) == (30, 30)  # the retired files, still on disk
        with snapshot(project) as after:
            assert len(after.files) == 1 and count_read(after) == (30, 30)
    state = mirror_state(project)
    assert_exact(state, stored=30)
    assert len(state["retired"]) == 3


def test_events_stored_while_a_rebuild_is_in_flight_are_neither_lost_nor_doubled(driver, stopped):
    rebuilt = seeded(driver, exports=[["export", {"limit": 10}]] * 2)  # 20 in files, 10 in the outbox
    rebuild = stopped([["use", rebuilt], ["pause_at", "rebuild:before_commit"], ["rebuild"]])
    store(rebuilt, spread(12, 1, user_prefix="new"), tag="during")
    during = mirror_state(rebuilt)
    assert_exact(during, stored=42)
    assert during["pending"] == 22
    assert resume(driver, rebuild)[-1] == ("rebuild", 42)  # 20 rewritten, the outbox's 22 exported
    state = mirror_state(rebuilt)
    assert_exact(state, stored=42)
    assert state["pending"] == 0 and state["live_days"] == {"2024-03-10": 1}


def test_a_rebuild_waits_for_an_export_in_flight_and_neither_loses_nor_doubles(driver, stopped):
    project = seeded(driver)
    exporter = stopped([["use", project], ["pause_at", "export:before_commit"], ["export"]])
    rebuilding = in_thread(lambda: mirror_rebuild(project_id=project))
    wait_for(lambda: lock_waiters() == 1 or not rebuilding.is_alive())  # it waits for the exporter
    assert resume(driver, exporter)[-1] == ("export", 30)
    assert rebuilding.outcome() == 30
    state = mirror_state(project)
    assert_exact(state, stored=30)
    assert state["pending"] == 0 and state["live_days"] == {"2024-03-10": 1}


def test_deleting_a_project_waits_for_its_export_in_flight(driver, stopped):
    project = seeded(driver)
    exporter = stopped([["use", project], ["pause_at", "export:before_commit"], ["export"]])
    deleting = in_thread(lambda: Project.objects.get(pk=project).delete())
    wait_for(lambda: lock_waiters() == 1 or not deleting.is_alive())  # it waits for the exporter
    assert resume(driver, exporter)[-1] == ("export", 30)
    deleting.outcome()
    assert MirrorFile.objects.filter(project_id=project).count() == 0
    assert not Outbox.objects.filter(project_id=project).exists()
    assert not (driver.analytics_dir / str(project)).exists()


def test_deleting_a_project_waits_for_a_write_in_flight_and_takes_its_events(project):
    """The events table has no foreign key to the project: the project row's locks are what
    keep an event from outliving its project."""
    writing, release = held_open(lambda: store(project.id, spread(20, 1), tag="in-flight"))
    deleting = in_thread(lambda: Project.objects.get(pk=project.id).delete())
    wait_for(lambda: lock_waiters() == 1 or not deleting.is_alive())
    assert deleting.is_alive()  # it waits for the write
    release.set()
    writing.outcome()
    deleting.outcome()
    assert not Event.objects.filter(project_id=project.id).exists()
    assert not Outbox.objects.filter(project_id=project.id).exists()


def test_a_write_during_a_projects_deletion_waits_and_stores_nothing(project):
    deleting, release = held_open(lambda: Project.objects.get(pk=project.id).delete())
    writing = in_thread(lambda: store(project.id, spread(20, 1), tag="late"))
    wait_for(lambda: lock_waiters() == 1 or not writing.is_alive())
    assert writing.is_alive()  # it waits for the deletion
    release.set()
    deleting.outcome()
    writing.outcome()
    assert not Event.objects.filter(project_id=project.id).exists()
    assert not Outbox.objects.filter(project_id=project.id).exists()


def held_open(work):
    """Runs `work` in a transaction in a thread of its own, and returns once it ran, with the
    transaction still open: (the thread, an event that lets it commit)."""
    done, release = threading.Event(), threading.Event()

    def run():
        with transaction.atomic():
            work()
            done.set()
            release.wait(30)

    thread = in_thread(run)
    assert done.wait(30), "work did not finish"
    return thread, release


class in_thread(threading.Thread):  # noqa: N801 - used as a function
    """Runs `work` in a thread of its own (with its own database connection)."""

    def __init__(self, work):
        super().__init__()
        self.work, self.result, self.error = work, None, None
        self.start()

    def run(self):
        try:
            self.result = self.work()
        except Exception as exc:  # noqa: BLE001 - raised by outcome()
            self.error = exc
        finally:
            connection.close()

    def outcome(self):
        """What `work` returned, once it ended (raising what it raised)."""
        self.join(timeout=60)
        assert not self.is_alive(), "still running"
        if self.error is not None:
            raise self.error
        return self.result


def advisory_locks() -> int:
    with connection.cursor() as cursor:
        cursor.execute("SELECT COUNT(*) FROM pg_locks WHERE locktype = 'advisory'")
        return cursor.fetchone()[0]


def lock_waiters() -> int:
    with connection.cursor() as cursor:
        cursor.execute("SELECT COUNT(*) FROM pg_locks WHERE NOT granted")
        return cursor.fetchone()[0]


def wait_for(predicate, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("timed out waiting")
        time.sleep(0.02)
