"""Compaction: a UTC day's live files of a project merged into one, atomically through the
catalog; and the sweep that deletes what no reader needs any more.

Compaction takes the project's mirror lock (warehouse.export.mirror_lock), writes the merged
file, then in the same transaction retires the old rows and adds the new one. Killed before
the commit, the old files are still the live ones and the new file is an orphan; after, the
new file is live and the old ones are retired. Retired files stay on disk for
ANALYTICS_GRACE_SECONDS, so a reader that listed them before the swap can finish; then the
sweep deletes them, and the orphans a crash left (files no catalog row names, older than the
grace period). The sweep looks for orphans of a project only while holding its mirror lock,
so a file whose export or compaction has not committed yet is never taken for one.
"""

import os
import time
from datetime import timedelta
from pathlib import Path

import structlog
from django.conf import settings
from django.db import transaction
from django.db.models import Count
from django.utils import timezone

from warehouse.engine import engine_cursor
from warehouse.export import mirror_lock
from warehouse.files import COLUMNS_SQL, TMP_SUFFIX, new_path, sql_path, sql_paths, step, write_parquet
from warehouse.models import MirrorFile, MirrorSpan
from warehouse.rollup import SUFFIX, rollup_path

logger = structlog.get_logger(__name__)
COMPACT_AT = 8  # live files in one partition that make it worth merging


def partition_compact(*, project_id: int, day) -> int:
    """Merges the partition's live files into one; returns how many were merged (0: fewer
    than two). Raises RuntimeError, swapping nothing, if the merged file does not hold the
    rows the catalog says the old ones do."""
    with transaction.atomic():
        mirror_lock(project_id)
        files = list(MirrorFile.objects.filter(project_id=project_id, day=day, retired_at__isnull=True).order_by("id"))
        step("compact:read")
        if len(files) < 2:
            return 0
        relative = new_path(project_id, day)
        engine = engine_cursor()
        try:
            size = write_parquet(
                engine,
                f"SELECT {COLUMNS_SQL} FROM read_parquet({sql_paths(f.path for f in files)})",
                relative,
                "compact",
                day,
            )
            merged = engine.execute(f"SELECT COUNT(*) FROM read_parquet({sql_path(relative)})")
            rows = merged.fetchone()[0]
        finally:
            engine.close()
        if rows != sum(f.rows for f in files):
            raise RuntimeError(f"compacting {project_id}/{day}: {rows} rows merged, the catalog lists {files}")
        MirrorFile.objects.filter(pk__in=[f.pk for f in files]).update(retired_at=timezone.now())
        MirrorFile.objects.create(project_id=project_id, day=day, path=relative, rows=rows, bytes=size, rollup=True)
        step("compact:before_commit")
    step("compact:committed")
    logger.info("mirror_compacted", project_id=project_id, day=str(day), files=len(files))
    return len(files)


def partitions_to_compact(*, project_id: int, days=None) -> list:
    """The project's UTC days (among `days`, if given) with COMPACT_AT live files or more."""
    live = MirrorFile.objects.filter(project_id=project_id, retired_at__isnull=True)
    if days is not None:
        live = live.filter(day__in=list(days))
    counts = live.values("day").annotate(n=Count("id")).filter(n__gte=COMPACT_AT)
    return sorted(row["day"] for row in counts)


def mirror_sweep() -> int:
    """Deletes retired files and spans past the grace period (file, then catalog row) and orphans:
    files under ANALYTICS_DIR that no catalog row names, older than the grace period (a
    project whose mirror lock is taken is left for the next sweep). Returns how many files
    were deleted."""
    grace = settings.ANALYTICS_GRACE_SECONDS
    deleted = 0
    retired_before = timezone.now() - timedelta(seconds=grace)
    for mirror_file in MirrorFile.objects.filter(retired_at__lt=retired_before).iterator():
        for relative in _paths(mirror_file.path, mirror_file.rollup):
            (settings.ANALYTICS_DIR / relative).unlink(missing_ok=True)
        step("sweep:unlinked")
        mirror_file.delete()
        deleted += 1
    for span in MirrorSpan.objects.filter(retired_at__lt=retired_before).iterator():
        (settings.ANALYTICS_DIR / span.path).unlink(missing_ok=True)
        span.delete()
        deleted += 1
    cutoff = time.time() - grace
    for project_dir in _entries(settings.ANALYTICS_DIR):
        if project_dir.name.isdigit():  # not the spill directory, nor anything not ours
            deleted += _orphans_delete(project_dir, cutoff)
    return deleted


def _orphans_delete(project_dir: Path, cutoff: float) -> int:
    deleted = 0
    with transaction.atomic():
        if not mirror_lock(int(project_dir.name), wait=False):
            return 0
        catalog = MirrorFile.objects.filter(project_id=int(project_dir.name)).values_list("path", "rollup")
        known = {relative for path, rollup in catalog for relative in _paths(path, rollup)}
        known |= set(MirrorSpan.objects.filter(project_id=int(project_dir.name)).values_list("path", flat=True))
        for day_dir in _entries(project_dir):
            for path in _entries(day_dir):
                relative = f"{project_dir.name}/{day_dir.name}/{path.name}"
                if relative in known and not path.name.endswith(TMP_SUFFIX):
                    continue
                try:
                    old = path.stat().st_mtime < cutoff
                except FileNotFoundError:  # another sweep's
                    continue
                if old:
                    path.unlink(missing_ok=True)
                    deleted += not path.name.endswith(SUFFIX)
            _remove_if_empty(day_dir)
        _remove_if_empty(project_dir)
    return deleted


def _paths(path: str, rollup: bool) -> list[str]:
    """A catalog row's files: its own, and its rollup's if it has one."""
    return [path, rollup_path(path)] if rollup else [path]


def _entries(directory: Path) -> list[Path]:
    """The directory's entries; none if it is gone (a deleted project's) or not a directory."""
    try:
        return list(directory.iterdir())
    except (FileNotFoundError, NotADirectoryError):
        return []


def _remove_if_empty(directory: Path) -> None:
    try:
        os.rmdir(directory)
    except OSError:
        pass
