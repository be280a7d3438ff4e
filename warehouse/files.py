"""Writing the mirror's Parquet files durably: to a temporary name, fsync, rename, fsync the
directory. A crash leaves either no file or a whole one (never a torn file under a live
name); files no catalog row names are swept away after the grace period (warehouse.sweep)."""

import os
import uuid
from datetime import date
from pathlib import Path

from django.conf import settings

TMP_SUFFIX = ".tmp"
PARQUET = "(FORMAT parquet, COMPRESSION zstd, ROW_GROUP_SIZE 122880)"
# The order rows are written in: by user, then time, as funnels and retention read them.
ORDER = 'user_id, "timestamp", id'
COLUMNS_SQL = 'id, event_id, user_id, event_name, "timestamp", properties, session_id, page_url'


def new_path(project_id: int, day: date) -> str:
    """A fresh file name, relative to ANALYTICS_DIR."""
    return f"{project_id}/{day.isoformat()}/{uuid.uuid4().hex}.parquet"


def write_parquet(cursor, select_sql: str, relative: str) -> int:
    """Writes the rows of `select_sql` (with COLUMNS_SQL's columns) to `relative`, durably;
    returns the file's size in bytes."""
    final = settings.ANALYTICS_DIR / relative
    final.parent.mkdir(parents=True, exist_ok=True)
    temporary = final.with_name(final.name + TMP_SUFFIX)
    quoted = str(temporary).replace("'", "''")
    cursor.execute(f"COPY ({select_sql} ORDER BY {ORDER}) TO '{quoted}' {PARQUET}")
    _fsync(temporary)
    os.replace(temporary, final)
    _fsync(final.parent)
    return final.stat().st_size


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
