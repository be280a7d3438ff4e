"""Export: events stored in the database (listed in the outbox, `Pending`) become Parquet
files of the mirror, one per UTC day they fall on.

In one transaction: lock a batch of the project's outbox rows (SKIP LOCKED, so two workers
never export the same events), read their events, write the files (warehouse.files), add
them to the catalog and delete the outbox rows. Killed before the commit, nothing changed
but a file no catalog row names (swept later); after, the events are in exactly one live
file. Readers see either state whole (warehouse.snapshot).
"""

from datetime import UTC, datetime, time, timedelta

import structlog
from django.db import connection, transaction

from warehouse.engine import engine_cursor
from warehouse.files import COLUMNS_SQL, new_path, write_parquet
from warehouse.models import MirrorFile
from warehouse.snapshot import event_rows_sql, rows_table

logger = structlog.get_logger(__name__)
EXPORT_BATCH = 200_000
DELETE_CHUNK = 500


def mirror_export(*, project_id: int, limit: int = EXPORT_BATCH) -> tuple[int, set]:
    """Moves up to `limit` of the project's outbox events into new files. Returns (events
    exported, UTC days written)."""
    lock = " FOR UPDATE OF p SKIP LOCKED" if connection.vendor == "postgresql" else ""
    with transaction.atomic():
        with connection.cursor() as cursor:
            cursor.execute(event_rows_sql(f"p.project_id = %s ORDER BY p.event_id LIMIT %s{lock}"), [project_id, limit])
            rows = cursor.fetchall()
        if not rows:
            return 0, set()
        batch = rows_table(rows)
        engine = engine_cursor()
        try:
            engine.register("batch", batch)
            days = [row[0] for row in engine.execute('SELECT DISTINCT "timestamp"::DATE FROM batch').fetchall()]
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
                size = write_parquet(engine, select, relative)
                files.append(MirrorFile(project_id=project_id, day=day, path=relative, rows=count, bytes=size))
        finally:
            engine.close()
        MirrorFile.objects.bulk_create(files)
        ids = [row[0] for row in rows]
        with connection.cursor() as cursor:
            for start in range(0, len(ids), DELETE_CHUNK):
                chunk = ids[start : start + DELETE_CHUNK]
                cursor.execute(
                    f"DELETE FROM warehouse_pending WHERE event_id IN ({', '.join(['%s'] * len(chunk))})", chunk
                )
    logger.info("mirror_exported", project_id=project_id, events=len(rows), files=len(files))
    return len(rows), set(days)


def mirror_export_all(*, project_id: int) -> int:
    """Exports every outbox event of the project (in batches); returns how many."""
    total = 0
    while True:
        exported, _ = mirror_export(project_id=project_id)
        total += exported
        if exported < EXPORT_BATCH:
            return total


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
