"""Export: events stored in the database (listed in the outbox, `Pending`) become Parquet
files of the mirror, one per UTC day they fall on.

In one transaction: take the project's mirror lock, read a batch of its outbox rows and
their events, write the files (warehouse.files), add them to the catalog and delete the
outbox rows. Killed before the commit, nothing changed but files no catalog row names
(swept later); after, the events are in exactly one live file. Readers see either state
whole (warehouse.snapshot).

The mirror lock (`mirror_lock`) is held, to the commit, by everything that writes a
project's files or catalog rows: export, compaction, rebuild, and a project's deletion. So
these never interleave for one project (a rebuild cannot retire files an export is adding,
or put back outbox rows an export is deleting), and the sweep, which takes it too, never
sees a file whose writer may still commit: a file it finds unnamed by the catalog is an
orphan of a crash.
"""

from datetime import UTC, datetime, time, timedelta

import structlog
from django.db import connection, transaction

from warehouse.engine import engine_cursor
from warehouse.files import COLUMNS_SQL, new_path, step, write_parquet
from warehouse.models import MirrorFile
from warehouse.snapshot import event_rows_sql, rows_table

logger = structlog.get_logger(__name__)
EXPORT_BATCH = 50_000  # rows read into the worker's memory at once (200,000 took its RSS to 500 MB)
DELETE_CHUNK = 500
LOCK_NAMESPACE = 0x6D697272  # "mirr": the first key of the two-key advisory lock


def mirror_lock(project_id: int, *, wait: bool = True) -> bool:
    """Takes the project's mirror lock until the current transaction ends (call it first in
    the transaction). Without `wait`, returns False at once if another holds it. PostgreSQL:
    a transaction-level advisory lock. SQLite: its one write lock (a no-op write takes it;
    waiting is bounded by the connection's timeout)."""
    assert connection.in_atomic_block, "the mirror lock lasts a transaction"
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            function = "pg_advisory_xact_lock" if wait else "pg_try_advisory_xact_lock"
            cursor.execute(f"SELECT {function}(%s, %s)", [LOCK_NAMESPACE, project_id % 2**31])
            return wait or bool(cursor.fetchone()[0])
        cursor.execute("UPDATE warehouse_mirrorfile SET rows = rows WHERE 0 = 1")
    return True


def mirror_export(*, project_id: int, limit: int = EXPORT_BATCH) -> tuple[int, set]:
    """Moves up to `limit` of the project's outbox events into new files. Returns (events
    exported, UTC days written)."""
    with transaction.atomic():
        mirror_lock(project_id)
        with connection.cursor() as cursor:
            # The batch's ids first, from the outbox's (project, event) index: a join ordered and
            # limited as a whole was planned as a sort of the entire outbox whenever its
            # statistics were stale (11 s per batch on a 3M outbox, bench/README).
            batch = "SELECT event_id FROM warehouse_pending WHERE project_id = %s ORDER BY event_id LIMIT %s"
            cursor.execute(event_rows_sql(f"p.event_id IN ({batch})"), [project_id, limit])
            rows = cursor.fetchall()
        step("export:read")
        if not rows:
            return 0, set()
        files = day_files_write(project_id, rows_table(rows), "export")
        MirrorFile.objects.bulk_create(files)
        pending_delete(ids=[row[0] for row in rows])
        step("export:before_commit")
    step("export:committed")
    logger.info("mirror_exported", project_id=project_id, events=len(rows), files=len(files))
    return len(rows), {f.day for f in files}


def day_files_write(project_id: int, batch, stage: str) -> list[MirrorFile]:
    """Writes the Arrow table of event rows as one file per UTC day; returns the catalog rows
    to add (not saved)."""
    engine = engine_cursor()
    try:
        engine.register("batch", batch)
        # The UTC day whatever the session's TimeZone (a TIMESTAMPTZ cast to DATE follows it).
        utc_days = engine.execute("SELECT DISTINCT timezone('UTC', \"timestamp\")::DATE FROM batch")
        days = [row[0] for row in utc_days.fetchall()]
        files = []
        for day in sorted(days):
            start = datetime.combine(day, time(), tzinfo=UTC)
            end = start + timedelta(days=1)
            select = (
                f"SELECT {COLUMNS_SQL} FROM batch "
                f"WHERE \"timestamp\" >= TIMESTAMPTZ '{start.isoformat()}' "
                f"AND \"timestamp\" < TIMESTAMPTZ '{end.isoformat()}'"
            )
            count = engine.execute(f"SELECT COUNT(*) FROM ({select})").fetchone()[0]
            relative = new_path(project_id, day)
            size = write_parquet(engine, select, relative, stage, day)
            files.append(MirrorFile(project_id=project_id, day=day, path=relative, rows=count, bytes=size, rollup=True))
    finally:
        engine.close()
    return files


def mirror_export_all(*, project_id: int) -> tuple[int, set]:
    """Exports every outbox event of the project (in batches); returns (how many, UTC days
    written)."""
    total, days = 0, set()
    while True:
        exported, written = mirror_export(project_id=project_id)
        total, days = total + exported, days | written
        if exported < EXPORT_BATCH:
            return total, days


def pending_add(*, project_id: int, ids) -> None:
    """Lists newly stored events in the outbox (inside the transaction that stored them)."""
    ids = list(ids)
    with connection.cursor() as cursor:
        for start in range(0, len(ids), DELETE_CHUNK):
            chunk = ids[start : start + DELETE_CHUNK]
            cursor.execute(
                "INSERT INTO warehouse_pending (event_id, project_id) VALUES " + ", ".join(["(%s, %s)"] * len(chunk)),
                [value for pk in chunk for value in (pk, project_id)],
            )


def pending_delete(*, ids: list[int]) -> None:
    """Deletes these events' outbox rows (in the transaction that adds their files)."""
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":  # one statement, an array parameter
            cursor.execute("DELETE FROM warehouse_pending WHERE event_id = ANY(%s)", [ids])
            return
        for start in range(0, len(ids), DELETE_CHUNK):
            chunk = ids[start : start + DELETE_CHUNK]
            cursor.execute(f"DELETE FROM warehouse_pending WHERE event_id IN ({', '.join(['%s'] * len(chunk))})", chunk)
