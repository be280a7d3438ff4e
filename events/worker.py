"""The RQ worker class `rqworker` runs (settings.RQ["WORKER_CLASS"]): RQ's SimpleWorker,
made to notice within seconds, not at its 10-minute maintenance, that a worker died or
Redis restarted.

RQ 3.0 alone takes ~13 minutes to recover from a `kill -9`, because every "is it dead?"
question is answered by a timeout sized for the worst job, not for a dead process:
- the dead worker's job stays in the StartedJobRegistry until its execution's TTL, the job
  timeout + 60 s (660 s): a SimpleWorker never refreshes it while the job runs;
- the scheduler lock (needed for the ingest buffer's timed drains) outlives its holder by
  61 s, and a worker that missed it tries again only at its next maintenance, every 600 s,
  run between dequeues that each block for worker_ttl - 15 = 405 s;
- after a Redis restart the scheduler process dies on the connection error and is
  restarted only at that same maintenance.

What this class changes, with RQ's own machinery doing the rest:
- Liveness: a thread refreshes the worker's own Redis key (RQ's `rq:worker:<name>`) every
  BEAT_INTERVAL with a TTL of LIVENESS_TTL, also while a job runs, and every RQ heartbeat
  is capped at that TTL: once a worker process is gone, its key is gone within seconds.
- Maintenance every MAINTENANCE_INTERVAL (dequeues block DEQUEUE_TIMEOUT, so an idle worker
  gets there): a started job whose execution belongs to a worker whose key is gone (or
  says it died) is marked expired, and RQ's StartedJobRegistry cleanup then retries it as
  it would have 11 minutes later. A live worker's job is never touched, so a job does not
  run twice at once unless a live worker's beat stalled for LIVENESS_TTL (and reruns are
  harmless anyway: the insert ignores stored event ids). A job stuck in the intermediate
  queue (its worker died between dequeue and start) is failed over after seconds, not 60 s.
- The scheduler is named after its worker, so its lock names a worker whose liveness is
  known: a lock whose holder's key is gone is released (compare-and-delete) and taken,
  at once rather than 61 s later; so is the queue's cleaning lock, held under the worker's
  name too, rather than 60 s later. A scheduler whose worker died (orphaned by a kill of the
  worker alone) stops and releases its lock; one that hits a Redis error waits and carries
  on instead of dying, and RQ's maintenance restarts it if it died anyway.
- After Redis errors the worker retries every 2 s at most, not with a backoff up to 60 s.
- A second thread drains the ingest buffer as events arrive (events.drainer); the
  maintenance puts the lists a dead worker was draining back into the buffer.
- Every MIRROR_MAINTENANCE_INTERVAL the maintenance also runs the column store's
  (warehouse.jobs.mirror_maintain): exports for outbox rows whose export was never queued,
  and the sweep of retired and orphaned Parquet files. Its errors never stop the worker.
- The worker lowers its CPU priority by settings.WORKER_NICE at start (and so does the
  scheduler it starts): ingestion's answers come first on a machine shared with the web.
- Right after Redis itself (re)started, keys may have expired while it was down and live
  workers may not have beaten yet: no one is declared dead until Redis has been up for
  longer than LIVENESS_TTL.

Every worker and scheduler of the queues must be this class (a plain `rq worker
--with-scheduler` holds the lock under a name that is no worker's, and would lose it).
"""

import os
import threading
import time
from datetime import timedelta

from django.conf import settings
from redis import ResponseError
from rq import worker_registration
from rq.defaults import (
    DEFAULT_LOGGING_DATE_FORMAT,
    DEFAULT_LOGGING_FORMAT,
    DEFAULT_MAINTENANCE_TASK_INTERVAL,
    RQ_KEY_PREFIX,
)
from rq.exceptions import StopRequested
from rq.intermediate_queue import IntermediateQueue
from rq.registry import clean_registries
from rq.scheduler import RQScheduler
from rq.scripts import release_lock
from rq.utils import as_text, now
from rq.worker import SimpleWorker
from rq.worker.base import BaseWorker

from analytics_platform.redis import REDIS_DOWN, redis_client
from events.drainer import Drainer, abandoned_return

BEAT_INTERVAL = 1.0  # seconds between liveness beats
LIVENESS_TTL = 5  # a worker whose key has not been refreshed for this long is dead
MAINTENANCE_INTERVAL = 2  # RQ's default: 600
DEQUEUE_TIMEOUT = 1  # RQ's default: worker_ttl - 15 = 405
MAINTENANCE_LOCK_TTL = 60  # RQ's: 899 s, so a worker killed while cleaning blocked cleaning for 15 min
STUCK_IN_INTERMEDIATE = timedelta(seconds=5)  # RQ's: 1 minute
SCHEDULER_RELOCK_INTERVAL = 2.0  # a scheduler without its lock tries again this often; RQ's: 120 s
MIRROR_MAINTENANCE_INTERVAL = 10.0  # seconds between the column store's maintenance rounds


def worker_is_gone(connection, worker_name: str) -> bool:
    key = BaseWorker.redis_worker_namespace_prefix + worker_name
    with connection.pipeline() as pipe:
        pipe.exists(key)
        pipe.hexists(key, "death")
        exists, died = pipe.execute()
    return not exists or bool(died)


def liveness_is_known(connection) -> bool:
    """False while Redis has been up for less than LIVENESS_TTL (plus a beat): keys may
    have expired while it was down, before their live workers could refresh them."""
    try:
        uptime = int(connection.info("server")["uptime_in_seconds"])
    except (ResponseError, KeyError):  # INFO disabled by the provider
        return True
    return uptime > LIVENESS_TTL + BEAT_INTERVAL


class RecoveringScheduler(RQScheduler):
    """RQ's scheduler, run by a RecoveringWorker under the worker's name."""

    _worker_pid: int | None = None
    _last_lock_attempt = 0.0

    def acquire_locks(self, auto_start=False):
        self._last_lock_attempt = time.monotonic()
        if liveness_is_known(self.connection):
            for queue_name in self._queue_names:
                key = self.get_locking_key(queue_name)
                holder = self.connection.get(key)
                holder = as_text(holder) if holder else None
                if holder and holder != self.name and worker_is_gone(self.connection, holder):
                    if release_lock(self.connection, key, holder):
                        self.log.warning("Scheduler lock for %s released: its worker %s is gone", queue_name, holder)
        return super().acquire_locks(auto_start=auto_start)

    @property
    def should_reacquire_locks(self):
        if self._queue_names == self.acquired_locks:
            return False
        return time.monotonic() - self._last_lock_attempt > SCHEDULER_RELOCK_INTERVAL

    def start(self):
        self._worker_pid = os.getpid()  # the scheduler is forked from its worker
        return super().start()

    def heartbeat(self):
        if self._worker_pid and os.getppid() != self._worker_pid:
            self.log.warning("Scheduler: its worker (PID %s) is gone, stopping", self._worker_pid)
            self.request_stop()
        super().heartbeat()

    def work(self):
        while True:
            try:
                return super().work()
            except REDIS_DOWN as exc:
                if self._stop_requested:
                    return
                self.log.warning("Scheduler: Redis unavailable (%s), retrying", exc)
                time.sleep(self.interval)


class _FastIntermediateQueue(IntermediateQueue):
    def should_be_cleaned_up(self, job_id: str) -> bool:
        first_seen = self.get_first_seen(job_id)
        return bool(first_seen) and now() - first_seen > STUCK_IN_INTERMEDIATE


class RecoveringWorker(SimpleWorker):
    max_connection_wait_time = 2.0  # RQ's backoff after Redis errors grows to 60 s

    def __init__(self, *args, maintenance_interval: int = MAINTENANCE_INTERVAL, **kwargs):
        super().__init__(*args, maintenance_interval=maintenance_interval, **kwargs)
        self._beats_stopped = threading.Event()
        self._beat_thread: threading.Thread | None = None
        self._next_group_cleaning = 0.0
        self._next_mirror_maintenance = 0.0
        self._drainer: Drainer | None = None
        self._drainer_thread: threading.Thread | None = None

    @property
    def dequeue_timeout(self) -> int:
        return DEQUEUE_TIMEOUT

    def heartbeat(self, timeout: int | None = None, pipeline=None):
        ttl = min(timeout or LIVENESS_TTL, LIVENESS_TTL)
        if pipeline is not None:
            return super().heartbeat(ttl, pipeline=pipeline)
        try:
            super().heartbeat(ttl)
        except REDIS_DOWN:
            pass  # the liveness beat reports it; the dequeue that follows waits for Redis

    # RQ's work loop quits on a Redis error anywhere but in its dequeue; these wait instead.

    def check_for_suspension(self, burst: bool):
        try:
            super().check_for_suspension(burst)
        except REDIS_DOWN:
            pass  # the dequeue that follows waits for Redis

    def dequeue_job_and_maintain_ttl(self, timeout, max_idle_time=None):
        while True:
            try:
                return super().dequeue_job_and_maintain_ttl(timeout, max_idle_time)
            except REDIS_DOWN as exc:  # from set_state(), before RQ's own retry loop
                self.log.warning("Worker %s: Redis unavailable (%s), retrying", self.name, exc)
                time.sleep(self.max_connection_wait_time)

    def execute_job(self, job, queue):
        try:
            super().execute_job(job, queue)
        except REDIS_DOWN as exc:
            # Redis went away during the job's bookkeeping: its execution stays in the
            # StartedJobRegistry under this worker's name, no longer running, and the
            # maintenance once Redis is back retries it.
            self.executions.clear()
            self.log.warning("Worker %s: Redis unavailable during job %s: %s", self.name, job.id, exc)

    def bootstrap(self, *args, **kwargs):
        if settings.WORKER_NICE > 0:
            os.nice(settings.WORKER_NICE)
        super().bootstrap(*args, **kwargs)
        self._beat_thread = threading.Thread(target=self._beat, name="rq-liveness", daemon=True)
        self._beat_thread.start()
        client = redis_client()
        if client is not None:
            self._drainer = Drainer(client, self.name)
            self._drainer_thread = threading.Thread(target=self._drainer.run, name="ingest-drainer", daemon=True)
            self._drainer_thread.start()

    def teardown(self):
        self._beats_stopped.set()
        if self._drainer is not None:
            self._drainer.stop()
            self._drainer_thread.join(timeout=30)  # a batch being stored is finished
        if self._beat_thread:
            self._beat_thread.join(timeout=5)
        super().teardown()

    def _beat(self) -> None:
        failing = False
        while True:
            try:
                with self.connection.pipeline() as pipe:
                    self.heartbeat(pipeline=pipe)
                    recreated = pipe.execute()[0]  # HSET added the field: the key had expired
                if recreated:  # e.g. Redis was down longer than LIVENESS_TTL: register again
                    with self.connection.pipeline() as pipe:
                        pipe.hset(self.key, mapping=self.serialize())
                        worker_registration.register(self, pipe)
                        pipe.expire(self.key, LIVENESS_TTL)
                        pipe.execute()
                if failing:
                    self.log.info("Worker %s: liveness beat back", self.name)
                failing = False
            except Exception as exc:  # noqa: BLE001 - the beat must outlive any error
                if not failing:
                    self.log.warning("Worker %s: liveness beat failing: %s", self.name, exc)
                failing = True
            if self._beats_stopped.wait(BEAT_INTERVAL):
                return

    def run_maintenance_tasks(self):
        try:
            super().run_maintenance_tasks()
        except REDIS_DOWN as exc:  # RQ's work loop would quit on it; the next round retries
            self.log.warning("Worker %s: maintenance skipped, Redis unavailable: %s", self.name, exc)
        self.maintain_mirror()

    def maintain_mirror(self) -> None:
        """The column store's maintenance (warehouse.jobs.mirror_maintain: exports for outbox
        rows nobody scheduled, the sweep), every MIRROR_MAINTENANCE_INTERVAL. Whatever it
        raises (the database away, a disk error) is logged: the worker goes on, and the next
        round tries again; a stop asked for meanwhile (RQ's StopRequested, raised by its SIGTERM
        handler wherever the worker is) goes through, so the worker stops."""
        if time.monotonic() < self._next_mirror_maintenance:
            return
        self._next_mirror_maintenance = time.monotonic() + MIRROR_MAINTENANCE_INTERVAL
        from warehouse.jobs import mirror_maintain  # Django is set up by the time work starts

        try:
            mirror_maintain()
        except StopRequested:
            raise
        except Exception as exc:  # noqa: BLE001 - the worker must outlive any error here
            self.log.warning("Worker %s: mirror maintenance failed: %s: %s", self.name, type(exc).__name__, exc)

    def clean_group_registries(self):
        # Groups (unused here) keep RQ's cadence, and their log line with it.
        if time.monotonic() >= self._next_group_cleaning:
            self._next_group_cleaning = time.monotonic() + DEFAULT_MAINTENANCE_TASK_INTERVAL
            super().clean_group_registries()

    def clean_registries(self):
        """RQ's clean_registries, with a maintenance lock that a killed worker holds for a
        minute rather than 15, abandoned jobs detected by their worker's liveness, and
        stuck intermediate jobs failed over after seconds."""
        liveness_known = liveness_is_known(self.connection)
        for queue in self.queues:
            if not self._take_maintenance_lock(queue, liveness_known):
                continue
            try:
                self._expire_abandoned_executions(queue, liveness_known)
                if liveness_known:
                    abandoned_return(self.connection, lambda name: worker_is_gone(self.connection, name))
                clean_registries(queue, self._exc_handlers)
                worker_registration.clean_worker_registry(queue)
                _FastIntermediateQueue(queue.key, connection=self.connection).cleanup(self, queue)
            finally:  # compare-and-delete: a lock taken over meanwhile is its new holder's
                release_lock(self.connection, queue.registry_cleaning_key, self.name)
        self.last_cleaned_at = now()

    def _take_maintenance_lock(self, queue, liveness_known: bool) -> bool:
        """The queue's cleaning lock, under this worker's name. A lock whose holder is gone
        (killed while cleaning) is released and taken, as the scheduler's is, instead of
        blocking every worker's cleaning, and the return of its own draining lists, for
        MAINTENANCE_LOCK_TTL."""
        key = queue.registry_cleaning_key
        if self.connection.set(key, self.name, nx=True, ex=MAINTENANCE_LOCK_TTL):
            return True
        holder = self.connection.get(key)
        holder = as_text(holder) if holder else None
        if not (liveness_known and holder and holder != self.name and worker_is_gone(self.connection, holder)):
            return False
        if release_lock(self.connection, key, holder):
            self.log.warning("Cleaning lock for %s released: its worker %s is gone", queue.name, holder)
        return bool(self.connection.set(key, self.name, nx=True, ex=MAINTENANCE_LOCK_TTL))

    def _expire_abandoned_executions(self, queue, liveness_known: bool) -> None:
        """Marks expired the started jobs nobody runs: those of gone workers (once liveness
        is known), and this worker's own that it is not running (Redis failed mid-job, or
        an earlier process under the same --name)."""
        registry = queue.started_job_registry
        entries = [as_text(entry) for entry in self.connection.zrange(registry.key, 0, -1)]
        if not entries:
            return
        with self.connection.pipeline() as pipe:
            for entry in entries:  # entry = "<job id>:<execution id>", RQ's execution key suffix
                pipe.hget(f"{RQ_KEY_PREFIX}:execution:{entry}", "worker_name")
            owners = [as_text(owner) if owner else None for owner in pipe.execute()]
        running = {execution.composite_key for execution in self.executions.values()}
        others = {owner for owner in owners if owner and owner != self.name} if liveness_known else set()
        gone = {name for name in others if worker_is_gone(self.connection, name)}
        abandoned = {
            entry: 0
            for entry, owner in zip(entries, owners, strict=True)
            if owner in gone or (owner == self.name and entry not in running)
        }
        if abandoned:
            self.connection.zadd(registry.key, abandoned, xx=True)  # expired now: RQ's cleanup retries them
            self.log.warning("Worker %s: %d abandoned job(s) to be retried", self.name, len(abandoned))

    def _start_scheduler(
        self,
        burst=False,
        logging_level="INFO",
        date_format=DEFAULT_LOGGING_DATE_FORMAT,
        log_format=DEFAULT_LOGGING_FORMAT,
    ):
        """RQ's _start_scheduler, with our scheduler, named after this worker."""
        self.scheduler = RecoveringScheduler(
            self.queues,
            connection=self.connection,
            logging_level=logging_level if logging_level is not None else self.log.level,
            date_format=date_format,
            log_format=log_format,
            serializer=self.serializer,
            name=self.name,
        )
        self.scheduler.acquire_locks()
        if self.scheduler.acquired_locks:
            if burst:
                try:
                    self.scheduler.register_birth()
                    self.scheduler.enqueue_scheduled_jobs()
                finally:
                    self.scheduler.release_locks()
                    self.scheduler.register_death()
            else:
                self.scheduler.start()
