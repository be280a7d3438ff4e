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


def _open() -> duckdb.DuckDBPyConnection:
    spill = settings.ANALYTICS_SPILL_DIR
    spill.mkdir(parents=True, exist_ok=True)
    config = {
        "memory_limit": settings.ANALYTICS_MEMORY_LIMIT,
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
