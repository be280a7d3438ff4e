"""Recovery is bounded: real `rqworker` processes (events.worker.RecoveringWorker) against
PostgreSQL and Redis, killed with SIGKILL or cut off by a Redis restart, and pooled database
connections whose server side died. Each test prints how long recovery took (-s shows it);
the asserts hold the 10 s contract, not the typical figure."""

import os
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

import psycopg
import pytest
import redis
from django.core.cache import cache
from django.db import connection
from django.test import override_settings
from rq.registry import StartedJobRegistry
from rq.scheduler import RQScheduler

from analytics_platform.health import database_status
from analytics_platform.redis import redis_client
from events.drainer import DRAINING_PREFIX
from events.models import Event
from events.queueing import BUFFER_KEY, ingest_queue
from tests.conftest import service_missing
from tests.helpers import event
from tests.integration.test_worker_crash import start_worker
from warehouse.models import Outbox

ROOT = Path(__file__).resolve().parent.parent.parent
SCHEDULER_LOCK = RQScheduler.get_locking_key("default")
RECOVERY_CONTRACT = 10.0  # seconds, from a worker being back (or Redis being back)


def stop(process: subprocess.Popen) -> None:
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=10)


def wait_for(predicate, timeout: float, what: str, log: Path | None = None) -> float:
    """Polls until predicate() is true; returns the seconds it took."""
    start = time.monotonic()
    while time.monotonic() - start < timeout:
        if predicate():
            return time.monotonic() - start
        time.sleep(0.05)
    tail = log.read_text()[-4000:] if log and log.exists() else ""
    raise AssertionError(f"timed out after {timeout} s waiting for {what}\n{tail}")


def live_workers(client) -> set[str]:
    return {key.decode() for key in client.keys("rq:worker:*") if not key.endswith(b":executions")}


def singles(prefix: str, n: int) -> list[dict]:
    return [event(f"{prefix}{i}", ts=1704103200000 + i, properties={"k": f"{prefix}{i}"}) for i in range(n)]


def batch(prefix: str, n: int) -> list[dict]:
    return [event(f"{prefix}{i}", ts=1704103300000 + i, properties={"k": f"{prefix}{i}"}) for i in range(n)]


def assert_stored_exactly(accepted: int) -> None:
    assert Event.objects.count() == accepted
    assert Event.objects.values("event_id").distinct().count() == accepted


def waiting(client) -> int:
    """Single events in Redis not yet stored: in the buffer, or taken by a worker's drainer."""
    return client.llen(BUFFER_KEY) + sum(client.llen(key) for key in client.scan_iter(f"{DRAINING_PREFIX}*"))


@pytest.mark.redis
def test_after_a_worker_is_killed_the_next_one_stores_everything_in_seconds(
    postgres, redis_cache, redis_url, post_events, tmp_path
):
    client, queue, log = redis_cache, ingest_queue(), tmp_path / "worker.log"
    s = connection.settings_dict
    holder = psycopg.connect(host=s["HOST"], port=s["PORT"] or 5432, user=s["USER"], dbname=s["NAME"])
    holder.execute("LOCK TABLE events_event IN ACCESS EXCLUSIVE MODE")  # the first job will block in its insert
    first = start_worker(redis_url, log)
    try:
        wait_for(lambda: client.exists(SCHEDULER_LOCK), 30, "the first worker's scheduler", log)
        dead = live_workers(client)
        accepted = post_events(batch("a", 50)).json()["accepted"]
        wait_for(
            lambda: StartedJobRegistry(queue=queue).get_job_count(cleanup=False) == 1, 30, "a job in progress", log
        )
        accepted += post_events(batch("b", 50)).json()["accepted"]  # queued behind it
        for one in singles("s", 4):
            accepted += post_events(one).json()["accepted"]
        assert accepted == 104
        assert waiting(client) == 4  # buffered or being drained, held up by the lock
        os.killpg(first.pid, signal.SIGKILL)  # the worker and its scheduler child
        first.wait(timeout=10)
        killed_at = time.monotonic()
    finally:
        holder.rollback()
        holder.close()
        stop(first)
    assert Event.objects.count() == 0
    assert client.exists(SCHEDULER_LOCK)  # held by the dead scheduler, for 61 s by RQ's TTL

    second = start_worker(redis_url, log)
    try:
        back = wait_for(lambda: live_workers(client) - dead, 30, "the second worker's registration", log)
        back_at = time.monotonic()
        took = wait_for(lambda: Event.objects.count() >= accepted, RECOVERY_CONTRACT, "all events stored", log)
        print(
            f"\nkill -9 recovery: stored {accepted} events {took:.1f} s after the new worker was up "
            f"({back_at + took - killed_at:.1f} s after the kill, worker start-up {back:.1f} s)"
        )
        assert not live_workers(client) & dead  # the dead worker's key expired
        wait_for(lambda: StartedJobRegistry(queue=queue).get_job_count(cleanup=False) == 0, 10, "no job left started")
        # nothing left between dequeue and start, read while the worker lives: killed, it may
        # leave there the export job it was dequeuing (for the next worker to fail over)
        wait_for(lambda: client.llen(queue.intermediate_queue_key) == 0, 10, "no job left dequeued")
        assert second.poll() is None
    finally:
        stop(second)
    assert_stored_exactly(accepted)
    assert waiting(client) == 0
    assert post_events(batch("a", 50)).json() == {"accepted": 0, "duplicates": 50, "rejected": []}


@pytest.mark.redis
def test_a_cleaning_lock_left_by_a_killed_worker_does_not_hold_up_its_draining_list(
    postgres, redis_cache, redis_url, post_events, tmp_path
):
    """A worker killed while cleaning the queue leaves the cleaning lock (60 s TTL) and, as
    it was draining, its list of taken events: the next worker takes the lock and returns the
    list to the buffer in seconds."""
    client, queue, log = redis_cache, ingest_queue(), tmp_path / "worker.log"
    accepted = sum(post_events(one).json()["accepted"] for one in singles("d", 5))
    assert accepted == 5 and client.llen(BUFFER_KEY) == 5
    client.rename(BUFFER_KEY, f"{DRAINING_PREFIX}killed-while-cleaning")
    client.set(queue.registry_cleaning_key, "killed-while-cleaning", ex=60)  # no rq:worker: key: gone
    worker = start_worker(redis_url, log)
    try:
        took = wait_for(lambda: Event.objects.count() >= accepted, 30, "the killed worker's events stored", log)
    finally:
        stop(worker)
    print(f"\na dead worker's draining list stored {took:.1f} s after the next worker started (its start-up included)")
    assert took < RECOVERY_CONTRACT
    assert_stored_exactly(accepted)
    assert waiting(client) == 0


@pytest.mark.redis
def test_a_scheduler_whose_worker_was_killed_stops_and_frees_its_lock(redis_cache, redis_url, tmp_path, settings):
    client, log = redis_cache, tmp_path / "worker.log"
    worker = start_worker(redis_url, log)
    try:
        wait_for(lambda: client.exists(SCHEDULER_LOCK), 30, "the worker's scheduler", log)
        scheduler_key = f"rq:scheduler:{client.get(SCHEDULER_LOCK).decode()}"
        wait_for(lambda: client.hget(scheduler_key, "pid"), 10, "the scheduler's registration", log)
        scheduler_pid = int(client.hget(scheduler_key, "pid"))
        assert scheduler_pid != worker.pid
        os.kill(worker.pid, signal.SIGKILL)  # the worker alone: its scheduler is orphaned
        worker.wait(timeout=10)
        took = wait_for(lambda: not client.exists(SCHEDULER_LOCK), 10, "the orphan to free the lock", log)
        wait_for(lambda: not Path(f"/proc/{scheduler_pid}").exists(), 10, "the orphan to exit", log)
        print(f"\norphaned scheduler stopped and freed its lock after {took:.1f} s")
    finally:
        try:
            os.killpg(worker.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class OwnRedis:
    """A redis-server of this test's own, persisting as docker-compose.yml's does."""

    def __init__(self, directory: Path):
        self.directory, self.port = directory, free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.process: subprocess.Popen | None = None

    def start(self) -> None:
        args = ["--port", str(self.port), "--bind", "127.0.0.1", "--dir", str(self.directory), "--save", ""]
        args += ["--appendonly", "yes", "--appendfsync", "everysec"]
        log = (self.directory / "redis.log").open("ab")
        self.process = subprocess.Popen([shutil.which("redis-server"), *args], stdout=log, stderr=subprocess.STDOUT)
        client = redis.Redis.from_url(self.url, socket_connect_timeout=0.5)
        wait_for(lambda: self._answers(client), 10, "redis-server to answer")

    @staticmethod
    def _answers(client) -> bool:
        try:
            return bool(client.ping())
        except redis.RedisError:
            return False

    def shutdown(self) -> None:
        try:
            redis.Redis.from_url(self.url).shutdown(nosave=True)
        except redis.ConnectionError:
            pass  # it closes the connection as it goes
        self.process.wait(timeout=10)


@pytest.fixture
def own_redis(tmp_path):
    if not shutil.which("redis-server"):
        service_missing("needs the redis-server binary to restart a Redis of its own")
    directory = tmp_path / "redis"
    directory.mkdir()
    server = OwnRedis(directory)
    server.start()
    caches = {
        "default": {
            "BACKEND": "django_redis.cache.RedisCache",
            "LOCATION": server.url,
            "KEY_PREFIX": "ap-test",
            "OPTIONS": {"SOCKET_CONNECT_TIMEOUT": 1, "SOCKET_TIMEOUT": 1},
        }
    }
    with override_settings(CACHES=caches, REDIS_URL=server.url):
        yield server
    if server.process.poll() is None:
        server.process.kill()
        server.process.wait(timeout=10)


def reconnect(timeout: float = 10) -> None:
    """This process's clients drop their connections to the old server."""

    def answers() -> bool:
        try:
            return bool(redis_client().ping()) and cache.get("probe") is None
        except Exception:
            return False

    wait_for(answers, timeout, "this process to reconnect")


@pytest.mark.redis
def test_after_a_redis_restart_the_running_worker_stores_buffered_events_in_seconds(
    postgres, own_redis, post_events, tmp_path
):
    log = tmp_path / "worker.log"
    client = redis.Redis.from_url(own_redis.url)
    worker = start_worker(own_redis.url, log)
    s = connection.settings_dict
    holder = psycopg.connect(host=s["HOST"], port=s["PORT"] or 5432, user=s["USER"], dbname=s["NAME"])
    try:
        wait_for(lambda: client.exists(SCHEDULER_LOCK), 30, "the worker's scheduler", log)
        accepted = sum(post_events(one).json()["accepted"] for one in singles("before", 3))
        wait_for(lambda: Event.objects.count() == accepted, 15, "the events before the restart", log)
        queue = ingest_queue()
        # ... and their export to the column store (a job too): the batch job below must be the
        # one the table lock holds up, not an export reading the events table.
        wait_for(
            lambda: (
                not Outbox.objects.exists()
                and queue.count == 0
                and StartedJobRegistry(queue=queue).get_job_count(cleanup=False) == 0
            ),
            10,
            "their drain and export to end",
            log,
        )

        # A batch job in progress (held up by a table lock), single events buffered with
        # their drain not due yet, and Redis goes away.
        holder.execute("LOCK TABLE events_event IN ACCESS EXCLUSIVE MODE")
        accepted += post_events(batch("inflight", 50)).json()["accepted"]
        wait_for(lambda: StartedJobRegistry(queue=queue).get_job_count(cleanup=False) == 1, 30, "the batch job", log)
        in_db_soon = accepted
        accepted += sum(post_events(one).json()["accepted"] for one in singles("pending", 3))
        assert waiting(client) == 3
        own_redis.shutdown()
        holder.rollback()  # the job stores its events while Redis is down, then fails to report it
        # (and the drainer's, of the single event it had taken, held up by the same lock)
        wait_for(lambda: Event.objects.count() >= in_db_soon, 15, "the batch job's insert")
        time.sleep(2)  # the worker and its scheduler meet a dead Redis
        own_redis.start()
        restarted_at = time.monotonic()
        assert waiting(client) == 3  # the append-only file kept them

        reconnect()
        accepted += sum(post_events(one).json()["accepted"] for one in singles("after", 3))
        assert accepted == 59
        posted_at = time.monotonic()
        took = wait_for(lambda: Event.objects.count() >= accepted, RECOVERY_CONTRACT, "the events after it", log)
        print(
            f"\nRedis restart recovery: the last events stored {took:.1f} s after they were posted, "
            f"{posted_at + took - restarted_at:.1f} s after Redis was back"
        )
        wait_for(lambda: StartedJobRegistry(queue=queue).get_job_count(cleanup=False) == 0, 15, "no job left", log)
        assert worker.poll() is None  # the same worker, not restarted
    finally:
        holder.close()
        stop(worker)
    assert_stored_exactly(accepted)


@pytest.mark.parametrize("stale", [2, 8])
def test_pooled_connections_killed_by_the_server_are_replaced(postgres, client, stale):
    pool = connection.pool
    if pool is None:
        pytest.skip("the database connection is not pooled")
    # Idle pooled connections, as a process keeps after a few concurrent requests.
    connection.close()
    held = [pool.getconn() for _ in range(stale)]
    for conn in held:
        pool.putconn(conn)

    s = connection.settings_dict
    with psycopg.connect(host=s["HOST"], port=s["PORT"] or 5432, user=s["USER"], dbname="postgres") as admin:
        admin.autocommit = True
        killed = admin.execute(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
            " WHERE datname = %s AND pid <> pg_backend_pid()",
            [s["NAME"]],
        ).fetchone()[0]
    assert killed >= stale  # what a database restart does to every pooled connection
    time.sleep(0.2)

    start = time.monotonic()
    assert database_status() == "ok"
    took = time.monotonic() - start
    response = client.get("/health")
    assert response.status_code == 200, response.content
    assert response.json()["database"] == "ok"
    print(f"\nafter {killed} pooled connections were killed: the next check succeeded in {took:.2f} s")
