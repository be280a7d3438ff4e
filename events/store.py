"""Writing rows to the events table, idempotently.

Rows arrive as lists in COLUMNS order (see EventRow.as_job_row). Every write stores only
the rows whose (project_id, event_id) is not stored yet, so a retried job or a replayed
batch stores nothing twice, and the caller learns exactly which rows are new. PostgreSQL
first COPYs the batch straight into the table, which the unique constraint refuses whole if
any row is stored already; then it COPYs the batch into a session-local staging table and
runs `INSERT ... ON CONFLICT (project_id, event_id) DO NOTHING RETURNING` from it. SQLite
takes that INSERT with many rows per statement. That choice is the one dialect difference
here. The inserted rows' ids enter the column store's outbox (warehouse.models.Outbox) as
one row for the write.

`insert_rows_isolating` is what the worker calls: a batch the database refuses for its
content (text PostgreSQL cannot store, a malformed row that bypassed validation) is split in
halves, each tried again under its own savepoint, down to the single rows at fault, so every
good row is stored and only the bad ones are handed back. An outage (the database gone, a
lock or statement timeout) is not about the rows: it propagates, and the job retries whole.
"""

from datetime import datetime

import psycopg
from django import db
from django.db import IntegrityError, connection, transaction
from rq.timeouts import JobTimeoutException

from events.validation import COLUMNS
from warehouse.export import outbox_add

TIMESTAMP_POSITIONS = (3, 9)  # ISO strings in job rows; SQLite wants Django's own format
TABLE = "events_event"
_COLUMN_LIST = ", ".join(f'"{c}"' for c in COLUMNS)
_ON_CONFLICT = 'ON CONFLICT ("project_id", "event_id") DO NOTHING'
SQLITE_ROWS_PER_STATEMENT = 500
# n ids from the table's sequence. The sequence is looked up once: pg_get_serial_sequence()
# called per row was 7 of the 8.5 µs per id.
_IDS_SQL = (
    f"WITH s AS MATERIALIZED (SELECT pg_get_serial_sequence('{TABLE}', 'id')::regclass AS seq) "
    "SELECT nextval(s.seq) FROM s, generate_series(1, %s)"
)

STAGING_DDL = """
CREATE TEMP TABLE IF NOT EXISTS event_staging (
    event_id text, user_id text, event_name text, "timestamp" timestamptz, properties jsonb,
    session_id text, page_url text, user_agent text, ip_address inet, received_at timestamptz
) ON COMMIT DELETE ROWS
"""


# Not the rows' fault: the whole write is retried later.
OUTAGE_ERRORS = (
    db.OperationalError,
    db.InterfaceError,
    psycopg.OperationalError,
    psycopg.InterfaceError,
    JobTimeoutException,
)
MAX_ERROR_CHARS = 2000


def insert_rows_isolating(project_id: int, rows: list) -> tuple[dict[str, int], list[tuple[int, str]]]:
    """insert_rows, setting aside the rows refused for their content. Returns ({event_id: id}
    of the inserted rows, [(position in `rows`, error)] of the refused ones). Must run inside a
    transaction; raises OUTAGE_ERRORS."""
    inserted: dict[str, int] = {}
    refused: list[tuple[int, str]] = []
    pending = [(0, len(rows))]  # [start, end) slices still to write
    while pending:
        start, end = pending.pop()
        try:
            with transaction.atomic():
                inserted.update(insert_rows(project_id, rows[start:end]))
        except OUTAGE_ERRORS:
            raise
        except Exception as exc:
            if end - start == 1:
                refused.append((start, describe_error(exc)))
            else:
                middle = (start + end) // 2
                pending += [(middle, end), (start, middle)]
    refused.sort()
    return inserted, refused


def describe_error(exc: BaseException) -> str:
    """The error as storable text: one line or a few, no NUL, no lone surrogate."""
    text = f"{type(exc).__name__}: {exc}".replace("\x00", "\\x00")
    return text.encode("utf-8", "backslashreplace").decode("utf-8")[:MAX_ERROR_CHARS]


def insert_rows(project_id: int, rows: list[list]) -> dict[str, int]:
    """Inserts the rows that are not stored yet and lists exactly those in the column
    store's outbox; returns {event_id: id} of the inserted rows. Must run inside a
    transaction (the PostgreSQL staging table empties on commit)."""
    if not rows:
        return {}
    if connection.vendor == "postgresql":
        inserted = _insert_postgresql(project_id, rows)
    else:
        inserted = _insert_generic(project_id, rows)
    outbox_add(project_id=project_id, ids=inserted.values())
    return inserted


def _insert_postgresql(project_id: int, rows: list[list]) -> dict[str, int]:
    """COPY straight into the table when none of the rows is stored yet (the usual case:
    Redis's claims turned the repeats away), under a savepoint; a stored one (a retried job,
    claims lost with Redis) makes the COPY fail on the unique constraint, and the rows go
    through the staging table's INSERT ... ON CONFLICT instead."""
    try:
        with transaction.atomic():
            return _copy_new(project_id, rows)
    except (IntegrityError, psycopg.errors.UniqueViolation):
        return _insert_staged(project_id, rows)


def _copy_new(project_id: int, rows: list[list]) -> dict[str, int]:
    """The rows COPYed with ids taken from the table's sequence. ON CONFLICT has no COPY
    form: this is a third of the database's time less."""
    with connection.cursor() as cursor:
        cursor.execute(_IDS_SQL, [len(rows)])
        ids = [pk for (pk,) in cursor.fetchall()]
        with cursor.cursor.copy(f'COPY {TABLE} ("id", "project_id", {_COLUMN_LIST}) FROM STDIN') as copy:
            for pk, row in zip(ids, rows, strict=True):
                copy.write_row([pk, project_id, *row])
    return {row[0]: pk for pk, row in zip(ids, rows, strict=True)}


def _insert_staged(project_id: int, rows: list[list]) -> dict[str, int]:
    with connection.cursor() as cursor:
        cursor.execute(STAGING_DDL)
        with cursor.cursor.copy(f"COPY event_staging ({_COLUMN_LIST}) FROM STDIN") as copy:
            for row in rows:
                copy.write_row(row)
        insert = (
            f'INSERT INTO {TABLE} ("project_id", {_COLUMN_LIST}) '
            f"SELECT %(project)s, {_COLUMN_LIST} FROM event_staging {_ON_CONFLICT} "
            'RETURNING "id", "event_id"'
        )
        cursor.execute(insert, {"project": project_id})
        inserted = dict((event_id, pk) for pk, event_id in cursor.fetchall())
        cursor.execute("TRUNCATE event_staging")  # ON COMMIT alone misses a second call in one transaction
    return inserted


def project_lock_for_write(project_id: int) -> bool:
    """Whether the project still exists, holding its row's share lock for the rest of the
    caller's transaction (a concurrent deletion waits, so no event outlives its project)."""
    return _project_lock(project_id, "SHARE")


def project_lock_for_delete(project_id: int) -> None:
    """Holds the project row's exclusive lock for the rest of the deleting transaction, taken
    before its events are deleted: it waits for the writes in flight to commit (their events
    are then deleted too), and a write starting meanwhile waits and then finds no project.
    The events table has no foreign key to enforce this (Event.project). NO KEY UPDATE, not
    UPDATE: the key-share locks of other tables' foreign keys (an export's catalog rows, under
    the mirror lock the deletion waits for next) must not wait for it."""
    _project_lock(project_id, "NO KEY UPDATE")


def _project_lock(project_id: int, mode: str) -> bool:
    lock = f" FOR {mode}" if connection.vendor == "postgresql" else ""  # SQLite: one writer at a time
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT 1 FROM accounts_project WHERE id = %s{lock}", [project_id])
        return cursor.fetchone() is not None


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
