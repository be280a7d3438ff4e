"""Rebuilding a project's mirror from the database (the system of record)."""

from django.db import connection, transaction
from django.utils import timezone

from warehouse.compact import partition_compact
from warehouse.export import mirror_export_all
from warehouse.models import MirrorFile, Pending


def mirror_rebuild(*, project_id: int) -> int:
    """Retires every file of the project and lists all its events in the outbox, in one
    transaction (readers meanwhile read them from the database), then exports them and
    compacts each day into one file. Returns the number of events mirrored."""
    with transaction.atomic():
        MirrorFile.objects.filter(project_id=project_id, retired_at__isnull=True).update(retired_at=timezone.now())
        Pending.objects.filter(project_id=project_id).delete()
        with connection.cursor() as cursor:
            cursor.execute(
                "INSERT INTO warehouse_pending (event_id, project_id) "
                "SELECT id, project_id FROM events_event WHERE project_id = %s",
                [project_id],
            )
    exported = mirror_export_all(project_id=project_id)
    days = MirrorFile.objects.filter(project_id=project_id, retired_at__isnull=True).values_list("day", flat=True)
    for day in sorted(set(days)):
        partition_compact(project_id=project_id, day=day)
    return exported
