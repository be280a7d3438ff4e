"""Export: events stored in the database (listed in the outbox, `Outbox`) become Parquet
files of the mirror, one per UTC day they fall on.

In one transaction: take the project's mirror lock, take up to a batch of event ids from
its oldest outbox rows and read their events, write the files (warehouse.files), add them
to the catalog and take the ids out of the outbox (the rows wholly taken are deleted, a row
taken in part keeps the rest). Killed before the commit, nothing changed but files no catalog row names
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
from django.db.models import F, Sum, Window

from warehouse.engine import engine_cursor
from warehouse.files import COLUMNS_SQL, new_path, step, write_parquet
from warehouse.models import MirrorFile, Outbox
from warehouse.snapshot import event_rows_sql, rows_table

logger = structlog.get_logger(__name__)
# Rows read into a worker's memory at once; its peak RSS under bench/ingest.py's batches:
# 200,000 500 MB, 50,000 314 MB, 20,000 283 MB (2026-12-04, with a drainer storing alongside:
# 294-306 MB), 10,000 287 MB.
EXPORT_BATCH = 10_000
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
        taken, rest = _outbox_take(project_id, limit)
        if not taken:
            return 0, set()
        ids = {pk for _, event_ids in taken for pk in event_ids}
        with connection.cursor() as cursor:
            # By the taken rows' id range: a row in it committed since they were read is read
            # too, and left out by its ids (its own export takes it).
            cursor.execute(
                event_rows_sql("p.project_id = %s AND p.id >= %s AND p.id <= %s"),
                [project_id, taken[0][0], taken[-1][0]],
            )
            rows = [row for row in cursor.fetchall() if row[0] in ids]
        step("export:read")
        files = day_files_write(project_id, rows_table(rows), "export")
        MirrorFile.objects.bulk_create(files)
        outbox_done(taken, rest)
        step("export:before_commit")
    step("export:committed")
    logger.info("mirror_exported", project_id=project_id, events=len(rows), files=len(files))
    return len(rows), {f.day for f in files}


def _outbox_take(project_id: int, limit: int) -> tuple[list[tuple[int, list[int]]], list[int]]:
    """The project's oldest outbox rows holding up to `limit` events, as [(row id, event ids
    to export)] in row order, and the ids the last row keeps (when only part of it fits)."""
    before = Window(Sum("events"), order_by="id") - F("events")  # the events of the rows before
    rows = (
        Outbox.objects.filter(project_id=project_id)
        .annotate(before=before)
        .filter(before__lt=limit)
        .order_by("id")
        .values_list("id", "event_ids", "before")
    )
    taken, rest = [], []
    for pk, event_ids, preceding in rows:
        room = limit - preceding
        taken.append((pk, event_ids[:room]))
        rest = event_ids[room:]
    return taken, rest


def outbox_done(taken: list[tuple[int, list[int]]], rest: list[int]) -> None:
    """Takes exported ids out of the outbox (in the transaction that adds their files): the
    rows wholly taken are deleted, the last keeps `rest`."""
    whole = [pk for pk, _ in taken]
    if rest:
        Outbox.objects.filter(id=whole.pop()).update(event_ids=rest, events=len(rest))
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":  # one statement, an array parameter
            cursor.execute("DELETE FROM warehouse_outbox WHERE id = ANY(%s)", [whole])
            return
        for start in range(0, len(whole), DELETE_CHUNK):
            chunk = whole[start : start + DELETE_CHUNK]
            cursor.execute(f"DELETE FROM warehouse_outbox WHERE id IN ({', '.join(['%s'] * len(chunk))})", chunk)


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


def outbox_add(*, project_id: int, ids) -> None:
    """Lists newly stored events in the outbox, one row for the write (inside the transaction
    that stored them)."""
    ids = list(ids)
    if ids:
        Outbox.objects.create(project_id=project_id, event_ids=ids, events=len(ids))


def outbox_events(project_id: int) -> int:
    """How many of the project's events the outbox lists."""
    return Outbox.objects.filter(project_id=project_id).aggregate(n=Sum("events"))["n"] or 0
