"""Writing rows to the events table, idempotently.

Rows arrive as lists in COLUMNS order (see EventRow.as_job_row). Every write is
`INSERT ... ON CONFLICT (project_id, event_id) DO NOTHING RETURNING`, so a retried job or a
replayed batch stores nothing twice, and the caller learns exactly which rows are new.
PostgreSQL first COPYs the batch into a session-local staging table (the fastest way in);
SQLite takes multi-row INSERTs. That choice is the one dialect difference here; with it
goes how the inserted rows reach the daily rollups (events.rollups).
"""

from datetime import datetime

from django.db import connection

from events.rollups import rollups_add
from events.validation import COLUMNS

TIMESTAMP_POSITIONS = (3, 9)  # ISO strings in job rows; SQLite wants Django's own format
TABLE = "events_event"
_COLUMN_LIST = ", ".join(f'"{c}"' for c in COLUMNS)
_ON_CONFLICT = 'ON CONFLICT ("project_id", "event_id") DO NOTHING'
SQLITE_ROWS_PER_STATEMENT = 500

STAGING_DDL = """
CREATE TEMP TABLE IF NOT EXISTS event_staging (
    event_id text, user_id text, event_name text, "timestamp" timestamptz, properties jsonb,
    session_id text, page_url text, user_agent text, ip_address inet, received_at timestamptz
) ON COMMIT DELETE ROWS
"""


def insert_rows(project_id: int, rows: list[list], rollup_timezone: str = "") -> dict[str, int]:
    """Inserts the rows that are not stored yet, and counts exactly those into the daily
    rollups when `rollup_timezone` is given; returns {event_id: id} of the inserted rows.
    Must run inside a transaction (the PostgreSQL staging table empties on commit)."""
    if not rows:
        return {}
    if connection.vendor == "postgresql":
        return _insert_postgresql(project_id, rows, rollup_timezone)
    inserted = _insert_generic(project_id, rows)
    if inserted and rollup_timezone:
        new_rows = [row for row in rows if row[0] in inserted]
        rollups_add(project_id=project_id, timezone_name=rollup_timezone, rows=new_rows)
    return inserted


# PostgreSQL counts the inserted rows into the rollups in the same statement, straight from
# the INSERT's RETURNING: no row goes back through Python. Keys are upserted in sorted order.
ROLLUPS_FROM_INSERTED = """
, day_rows AS (
    INSERT INTO events_userday (project_id, day, user_id, events)
    SELECT %(project)s, ("timestamp" AT TIME ZONE %(tz)s)::date, user_id, COUNT(*) FROM ins
    GROUP BY 2, 3 ORDER BY 2, 3
    ON CONFLICT (project_id, day, user_id) DO UPDATE SET events = events_userday.events + excluded.events
), event_rows AS (
    INSERT INTO events_userdayevent (project_id, event_name, day, user_id, events)
    SELECT %(project)s, event_name, ("timestamp" AT TIME ZONE %(tz)s)::date, user_id, COUNT(*) FROM ins
    GROUP BY 2, 3, 4 ORDER BY 2, 3, 4
    ON CONFLICT (project_id, event_name, day, user_id)
    DO UPDATE SET events = events_userdayevent.events + excluded.events
)"""


def _insert_postgresql(project_id: int, rows: list[list], rollup_timezone: str) -> dict[str, int]:
    with connection.cursor() as cursor:
        cursor.execute(STAGING_DDL)
        with cursor.cursor.copy(f"COPY event_staging ({_COLUMN_LIST}) FROM STDIN") as copy:
            for row in rows:
                copy.write_row(row)
        insert = (
            f'INSERT INTO {TABLE} ("project_id", {_COLUMN_LIST}) '
            f"SELECT %(project)s, {_COLUMN_LIST} FROM event_staging {_ON_CONFLICT} "
            'RETURNING "id", "event_id", "user_id", "event_name", "timestamp"'
        )
        rollups = ROLLUPS_FROM_INSERTED if rollup_timezone else ""
        cursor.execute(
            f"WITH ins AS ({insert}){rollups} SELECT id, event_id FROM ins",
            {"project": project_id, "tz": rollup_timezone},
        )
        inserted = dict((event_id, pk) for pk, event_id in cursor.fetchall())
        cursor.execute("TRUNCATE event_staging")  # ON COMMIT alone misses a second call in one transaction
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
                + f' {_ON_CONFLICT} RETURNING "id", "event_id"',
                params,
            )
            inserted.update((event_id, pk) for pk, event_id in cursor.fetchall())
    return inserted
