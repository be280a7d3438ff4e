"""Writing rows to the events table, idempotently.

Rows arrive as lists in COLUMNS order (see EventRow.as_job_row). Every write is
`INSERT ... ON CONFLICT (project_id, event_id) DO NOTHING RETURNING`, so a retried job or a
replayed batch stores nothing twice, and the caller learns exactly which rows are new.
PostgreSQL first COPYs the batch into a session-local staging table (the fastest way in);
SQLite takes multi-row INSERTs. That choice is the one dialect difference here.
"""

from datetime import datetime

from django.db import connection

TIMESTAMP_POSITIONS = (3, 9)  # ISO strings in job rows; SQLite wants Django's own format
COLUMNS = [
    "event_id",
    "user_id",
    "event_name",
    "timestamp",
    "properties",
    "session_id",
    "page_url",
    "user_agent",
    "ip_address",
    "received_at",
]
TABLE = "events_event"
_COLUMN_LIST = ", ".join(f'"{c}"' for c in COLUMNS)
_CONFLICT = 'ON CONFLICT ("project_id", "event_id") DO NOTHING RETURNING "id", "event_id"'
SQLITE_ROWS_PER_STATEMENT = 500

STAGING_DDL = """
CREATE TEMP TABLE IF NOT EXISTS event_staging (
    event_id text, user_id text, event_name text, "timestamp" timestamptz, properties jsonb,
    session_id text, page_url text, user_agent text, ip_address inet, received_at timestamptz
) ON COMMIT DELETE ROWS
"""


def insert_rows(project_id: int, rows: list[list]) -> dict[str, int]:
    """Inserts the rows that are not stored yet; returns {event_id: id} of those inserted.
    Must run inside a transaction (the PostgreSQL staging table empties on commit)."""
    if not rows:
        return {}
    if connection.vendor == "postgresql":
        return _insert_postgresql(project_id, rows)
    return _insert_generic(project_id, rows)


def _insert_postgresql(project_id: int, rows: list[list]) -> dict[str, int]:
    with connection.cursor() as cursor:
        cursor.execute(STAGING_DDL)
        with cursor.cursor.copy(f"COPY event_staging ({_COLUMN_LIST}) FROM STDIN") as copy:
            for row in rows:
                copy.write_row(row)
        cursor.execute(
            f'INSERT INTO {TABLE} ("project_id", {_COLUMN_LIST}) '
            f"SELECT %s, {_COLUMN_LIST} FROM event_staging {_CONFLICT}",
            [project_id],
        )
        inserted = dict((event_id, pk) for pk, event_id in cursor.fetchall())
        cursor.execute("TRUNCATE event_staging")
    return inserted


def _adapt(row: list) -> list:
    row = list(row)
    for position in TIMESTAMP_POSITIONS:
        row[position] = connection.ops.adapt_datetimefield_value(datetime.fromisoformat(row[position]))
    return row


def _insert_generic(project_id: int, rows: list[list]) -> dict[str, int]:
    placeholders = "(" + ", ".join(["%s"] * (len(COLUMNS) + 1)) + ")"
    inserted: dict[str, int] = {}
    with connection.cursor() as cursor:
        for start in range(0, len(rows), SQLITE_ROWS_PER_STATEMENT):
            chunk = rows[start : start + SQLITE_ROWS_PER_STATEMENT]
            params = [value for row in chunk for value in (project_id, *_adapt(row))]
            cursor.execute(
                f'INSERT INTO {TABLE} ("project_id", {_COLUMN_LIST}) VALUES '
                + ", ".join([placeholders] * len(chunk))
                + f" {_CONFLICT}",
                params,
            )
            inserted.update((event_id, pk) for pk, event_id in cursor.fetchall())
    return inserted
