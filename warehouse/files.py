"""Writing the mirror's Parquet files durably: to a temporary name, fsync, rename, fsync the
directory (and any directory created on the way). A crash leaves either no file or a whole
one (never a torn file under a live name); files no catalog row names are swept away after
the grace period (warehouse.compact.mirror_sweep).

`step(name)` marks the points between the steps of an export, a compaction, a rebuild or a
sweep, for the crash tests, and does nothing unless a test names that point in
WAREHOUSE_CRASH_AT (the process then kills itself with SIGKILL, as `kill -9` would) or
WAREHOUSE_PAUSE_AT (it stops itself with SIGSTOP, so a test can act while it is in between,
then resume it with SIGCONT or kill it). Nothing else reads these variables.
"""

import os
import signal
import uuid
from datetime import date
from pathlib import Path

from django.conf import settings

from warehouse.rollup import PARQUET as ROLLUP
from warehouse.rollup import rollup_path, rollup_select

TMP_SUFFIX = ".tmp"
PARQUET = "(FORMAT parquet, COMPRESSION zstd, ROW_GROUP_SIZE 122880)"
# The order rows are written in: by user, then time, as funnels and retention read them.
ORDER = 'user_id, "timestamp", id'
# The mirror's columns, in the order every file, the outbox tail and the snapshot use.
COLUMNS = ("id", "event_id", "user_id", "event_name", "timestamp", "properties", "session_id", "page_url")
COLUMNS_SQL = ", ".join(f'"{name}"' for name in COLUMNS)


def sql_path(relative: str) -> str:
    """A file under ANALYTICS_DIR as an SQL string literal (for read_parquet)."""
    return "'" + str(settings.ANALYTICS_DIR / relative).replace("'", "''") + "'"


def sql_paths(relatives) -> str:
    """Files under ANALYTICS_DIR as an SQL list literal (for read_parquet)."""
    return "[" + ", ".join(sql_path(relative) for relative in relatives) + "]"


def step(name: str) -> None:
    """A crash test's hook between two steps (see the module docstring); a no-op otherwise."""
    if os.environ.get("WAREHOUSE_CRASH_AT") == name:
        os.kill(os.getpid(), signal.SIGKILL)
    if os.environ.get("WAREHOUSE_PAUSE_AT") == name:
        os.kill(os.getpid(), signal.SIGSTOP)


def new_path(project_id: int, day: date) -> str:
    """A fresh file name, relative to ANALYTICS_DIR."""
    return f"{project_id}/{day.isoformat()}/{uuid.uuid4().hex}.parquet"


def write_parquet(cursor, select_sql: str, relative: str, stage: str, day: date) -> int:
    """Writes the rows of `select_sql` (with COLUMNS_SQL's columns, all on UTC day `day`) to
    `relative`, and their rollup beside it (warehouse.rollup), durably; returns the bytes
    written (both files). `stage` names the caller in its step() points."""
    outputs = [
        (relative, f"{select_sql} ORDER BY {ORDER}", PARQUET),
        (rollup_path(relative), rollup_select(select_sql, day), ROLLUP),
    ]
    return write_durably(cursor, outputs, stage)


def write_durably(cursor, outputs: list[tuple[str, str, str]], stage: str) -> int:
    """Writes each (path relative to ANALYTICS_DIR, SELECT, COPY options) of `outputs` in one
    directory: all to temporary names, fsync, then all renamed, fsync the directory. Returns
    the bytes written."""
    written = []
    for relative, sql, options in outputs:
        target = settings.ANALYTICS_DIR / relative
        _make_directories(target.parent)
        temporary = target.with_name(target.name + TMP_SUFFIX)
        quoted = str(temporary).replace("'", "''")
        cursor.execute(f"COPY ({sql}) TO '{quoted}' {options}")
        _fsync(temporary)
        written.append((temporary, target))
    step(f"{stage}:tmp_written")
    for temporary, target in written:
        os.replace(temporary, target)
    _fsync(written[0][1].parent)
    step(f"{stage}:renamed")
    return sum(target.stat().st_size for _, target in written)


def _make_directories(directory: Path) -> None:
    """mkdir -p, with each new directory's entry made durable in its parent (a renamed file
    in a directory whose own entry was lost in a power cut would be lost with it)."""
    if directory.is_dir():
        return
    _make_directories(directory.parent)
    try:
        directory.mkdir()
    except FileExistsError:
        return
    _fsync(directory.parent)


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
