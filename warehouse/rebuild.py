"""Rebuilding a project's mirror from the database (the system of record).

What the live files must hold is every stored event not in the outbox. A rebuild writes
exactly that, read from the events table, as new files, and in the same transaction retires
every live file of the project, all under the project's mirror lock (so no export or
compaction moves events between the outbox and the files meanwhile). The outbox is not
touched: events stored during the rebuild, and those waiting for an export, stay in the tail
and are exported as usual. So readers never see an event twice or miss one, and never read
the whole project from the database while the rebuild runs (only what the tail held
anyway). Files lost from disk, or holding events no longer stored, are repaired this way.
Then the outbox is exported, each day's files are merged into one (warehouse.compact) and
the months' spans merged again (warehouse.spans).

Killed before the commit, the old files are still live and the new ones are orphans (swept);
after, the rebuilt files are live, at worst not yet compacted.
"""

from django.db import connection, transaction
from django.utils import timezone

from warehouse.compact import partition_compact
from warehouse.export import EXPORT_BATCH, day_files_write, mirror_export_all, mirror_lock
from warehouse.files import step
from warehouse.models import MirrorFile
from warehouse.snapshot import event_columns_sql, outbox_events_sql, rows_table
from warehouse.spans import spans_merge


def _mirrored_events_sql() -> str:
    """The project's stored events that are not in the outbox, in the snapshot's COLUMNS order."""
    outboxed = f"SELECT e.id FROM {outbox_events_sql()} WHERE p.project_id = %s"
    return f"SELECT {event_columns_sql()} FROM events_event e WHERE e.project_id = %s AND e.id NOT IN ({outboxed})"


def mirror_rebuild(*, project_id: int, batch: int = EXPORT_BATCH) -> int:
    """Rewrites the project's live files from the events table (see the module docstring),
    reading `batch` events at a time, then exports the outbox and compacts every day.
    Returns the number of events written to files."""
    total = 0
    with transaction.atomic():
        mirror_lock(project_id)
        files: list[MirrorFile] = []
        with connection.chunked_cursor() as cursor:  # server-side on PostgreSQL: streamed
            cursor.execute(_mirrored_events_sql(), [project_id, project_id])
            while rows := cursor.fetchmany(batch):
                step("rebuild:read")
                files += day_files_write(project_id, rows_table(rows), "rebuild")
                total += len(rows)
        MirrorFile.objects.filter(project_id=project_id, retired_at__isnull=True).update(retired_at=timezone.now())
        MirrorFile.objects.bulk_create(files)
        step("rebuild:before_commit")
    step("rebuild:committed")
    total += mirror_export_all(project_id=project_id)[0]  # the tail too, so the mirror is whole
    live = MirrorFile.objects.filter(project_id=project_id, retired_at__isnull=True)
    for day in sorted(set(live.values_list("day", flat=True))):
        partition_compact(project_id=project_id, day=day)
    spans_merge(project_id=project_id)
    return total
