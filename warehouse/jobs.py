"""The mirror's jobs, on the ingest queue (inline in the embedded default).

After events are stored, `export_schedule` queues one export of the project, EXPORT_DELAY
later: in Redis a marker key keeps it to one queued export per project at a time (the job
clears the marker before it reads the outbox, so events stored while it runs get an export
of their own). Analytics read the events not exported yet from the database (the outbox
tail), so the delay costs no freshness; it makes a steady stream of single events one
export a second instead of one per drain (a file, its rollup and their fsyncs each; the
exports were a third of a worker's time at 2,300 single events/s). An
export that finds partitions with many small files compacts them. The worker's maintenance
(`mirror_maintain`, every few seconds) queues exports for anything left in the outbox (a
schedule lost to a Redis outage or a crash, an inline export that failed) and sweeps
retired and orphaned files. Without a worker (the embedded default) an export runs that
maintenance itself, at most every MAINTENANCE_INTERVAL seconds.
"""

import time
from datetime import timedelta

import structlog
from django.core.cache import cache
from django.db import close_old_connections, connection

from analytics_platform.redis import REDIS_DOWN
from warehouse.compact import mirror_sweep, partition_compact, partitions_to_compact
from warehouse.export import mirror_export_all
from warehouse.spans import spans_merge

logger = structlog.get_logger(__name__)
EXPORT_JOB = "warehouse.jobs.export_mirror"
MARKER_TTL = 60
EXPORT_DELAY = timedelta(seconds=1)
MAINTENANCE_INTERVAL = 60.0  # seconds between maintenances run by exports (a worker's run anyway)
_next_maintenance = 0.0


def _marker(project_id: int) -> str:
    return f"mirror-export:{project_id}"


def export_schedule(project_id: int) -> None:
    """Queues an export of the project's outbox (best effort: the maintenance catches up)."""
    from events.queueing import JOB_OPTIONS, RETRY, ingest_queue

    marked = False
    try:
        queue = ingest_queue()
        options = {"retry": RETRY, "description": f"export events of {project_id}", **JOB_OPTIONS}
        if not queue.is_async:
            queue.enqueue(EXPORT_JOB, project_id, **options)  # inline, now
            return
        if not cache.add(_marker(project_id), 1, MARKER_TTL):
            return  # one is queued and has not started yet
        marked = True
        queue.enqueue_in(EXPORT_DELAY, EXPORT_JOB, project_id, **options)
    except REDIS_DOWN as exc:
        logger.warning("mirror_export_not_scheduled", project_id=project_id, error=type(exc).__name__)
        if marked:  # no job holds it: let the next schedule (or the maintenance) through
            _marker_clear(project_id)


def _marker_clear(project_id: int) -> None:
    try:
        cache.delete(_marker(project_id))
    except REDIS_DOWN:
        pass  # it expires after MARKER_TTL


def export_mirror(project_id: int) -> int:
    """Exports the project's whole outbox, compacts the days that need it, merges the months'
    spans that need it. Idempotent."""
    if not connection.in_atomic_block:
        close_old_connections()
    _marker_clear(project_id)
    total, days = mirror_export_all(project_id=project_id)
    for day in partitions_to_compact(project_id=project_id, days=days):
        partition_compact(project_id=project_id, day=day)
    spans_merge(project_id=project_id)
    if time.monotonic() >= _next_maintenance:
        mirror_maintain()
    return total


def mirror_maintain() -> None:
    """Queues an export for every project with events in the outbox; sweeps old files."""
    global _next_maintenance
    _next_maintenance = time.monotonic() + MAINTENANCE_INTERVAL  # first: its exports may call it
    if not connection.in_atomic_block:
        close_old_connections()  # a worker's connection may have died since its last job
    with connection.cursor() as cursor:
        cursor.execute("SELECT DISTINCT project_id FROM warehouse_outbox")
        projects = [row[0] for row in cursor.fetchall()]
    for project_id in projects:
        export_schedule(project_id)
    mirror_sweep()
