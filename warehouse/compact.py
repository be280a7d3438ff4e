"""Compaction: a UTC day's live files of a project merged into one, atomically through the
catalog; and the sweep that deletes what no reader needs any more.

Compaction locks the partition's live catalog rows (a concurrent compaction of the same
partition waits, then finds them retired), writes the merged file, then in the same
transaction retires the old rows and adds the new one. Killed before the commit, the old
files are still the live ones and the new file is an orphan; after, the new file is live
and the old ones are retired. Retired files stay on disk for ANALYTICS_GRACE_SECONDS, so a
reader that listed them before the swap can finish; then the sweep deletes them, and the
orphans a crash left (files no catalog row names, older than the grace period).
"""

import os
import time
from datetime import timedelta

import structlog
from django.conf import settings
from django.db import transaction
from django.utils import timezone

from warehouse.engine import engine_cursor
from warehouse.files import COLUMNS_SQL, TMP_SUFFIX, new_path, write_parquet
from warehouse.models import MirrorFile

logger = structlog.get_logger(__name__)
COMPACT_AT = 8  # live files in one partition that make it worth merging


def partition_compact(*, project_id: int, day) -> int:
    """Merges the partition's live files into one; returns how many were merged (0: fewer
    than two)."""
    with transaction.atomic():
        files = list(
            MirrorFile.objects.select_for_update()
            .filter(project_id=project_id, day=day, retired_at__isnull=True)
            .order_by("id")
        )
        if len(files) < 2:
            return 0
        paths = ", ".join("'" + str(settings.ANALYTICS_DIR / f.path).replace("'", "''") + "'" for f in files)
        relative = new_path(project_id, day)
        engine = engine_cursor()
        try:
            size = write_parquet(engine, f"SELECT {COLUMNS_SQL} FROM read_parquet([{paths}])", relative)
        finally:
            engine.close()
        MirrorFile.objects.filter(pk__in=[f.pk for f in files]).update(retired_at=timezone.now())
        MirrorFile.objects.create(
            project_id=project_id, day=day, path=relative, rows=sum(f.rows for f in files), bytes=size
        )
    logger.info("mirror_compacted", project_id=project_id, day=str(day), files=len(files))
    return len(files)


def partitions_to_compact(*, project_id: int, days=None) -> list:
    """The project's UTC days (among `days`, if given) with COMPACT_AT live files or more."""
    from django.db.models import Count

    live = MirrorFile.objects.filter(project_id=project_id, retired_at__isnull=True)
    if days is not None:
        live = live.filter(day__in=list(days))
    counts = live.values("day").annotate(n=Count("id")).filter(n__gte=COMPACT_AT)
    return sorted(row["day"] for row in counts)


def mirror_sweep() -> int:
    """Deletes retired files past the grace period (file, then catalog row) and orphans:
    files under ANALYTICS_DIR that no catalog row names, older than the grace period.
    Returns how many files were deleted."""
    grace = settings.ANALYTICS_GRACE_SECONDS
    deleted = 0
    expired = MirrorFile.objects.filter(retired_at__lt=timezone.now() - timedelta(seconds=grace))
    for mirror_file in expired.iterator():
        (settings.ANALYTICS_DIR / mirror_file.path).unlink(missing_ok=True)
        mirror_file.delete()
        deleted += 1
    root = settings.ANALYTICS_DIR
    if not root.is_dir():
        return deleted
    cutoff = time.time() - grace
    known = set(MirrorFile.objects.values_list("path", flat=True))
    for project_dir in root.iterdir():
        if not project_dir.name.isdigit():
            continue  # the spill directory, or anything not ours
        for day_dir in project_dir.iterdir():
            for path in day_dir.iterdir():
                relative = f"{project_dir.name}/{day_dir.name}/{path.name}"
                orphan = path.name.endswith(TMP_SUFFIX) or relative not in known
                if orphan and path.stat().st_mtime < cutoff:
                    path.unlink(missing_ok=True)
                    deleted += 1
            _remove_if_empty(day_dir)
        _remove_if_empty(project_dir)
    return deleted


def _remove_if_empty(directory) -> None:
    try:
        os.rmdir(directory)
    except OSError:
        pass
