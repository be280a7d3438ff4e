"""The one place that opens the column engine (DuckDB, in-process).

Each process has one in-memory DuckDB database, opened on first use with the memory limit,
spill directory and threads from the settings; every query takes its own cursor (DuckDB's
cursors are independent connections to that database, safe to use from any one thread).
Data is never stored in DuckDB itself: queries read the Parquet mirror and the outbox tail
(warehouse.snapshot).
"""

import threading

import duckdb
from django.conf import settings

_lock = threading.Lock()
_database = None
_memory_limit_setting = "ANALYTICS_MEMORY_LIMIT"


def for_workers() -> None:
    """From now on this process's database is bounded by ANALYTICS_WORKER_MEMORY_LIMIT (the
    rqworker command calls it before any job runs)."""
    global _memory_limit_setting, _database
    with _lock:
        _memory_limit_setting = "ANALYTICS_WORKER_MEMORY_LIMIT"
        if _database is not None:  # opened with the other bound: the next cursor reopens it
            _database.close()
            _database = None


def _open() -> duckdb.DuckDBPyConnection:
    spill = settings.ANALYTICS_SPILL_DIR
    spill.mkdir(parents=True, exist_ok=True)
    config = {
        "memory_limit": getattr(settings, _memory_limit_setting),
        "threads": settings.ANALYTICS_THREADS,
        "temp_directory": str(spill),
        "enable_external_access": True,  # the mirror's files; nothing else is ever named
        "autoinstall_known_extensions": False,
        "autoload_known_extensions": False,
    }
    return duckdb.connect(":memory:", config=config)


def engine_cursor() -> duckdb.DuckDBPyConnection:
    """A fresh cursor on this process's database (close it when done)."""
    global _database
    with _lock:
        if _database is None:
            _database = _open()
        cursor = _database.cursor()
    cursor.execute("SET TimeZone = 'UTC'")
    return cursor
