"""The few places where SQLite and PostgreSQL differ for the analytics SQL."""

from dataclasses import dataclass
from datetime import datetime

from django.db import connection


def ts(moment: datetime):
    """A datetime as a query parameter that compares correctly with stored timestamps
    (SQLite keeps them as naive UTC text, PostgreSQL as timestamptz)."""
    return connection.ops.adapt_datetimefield_value(moment)


@dataclass(frozen=True)
class Source:
    """Where per-user activity is read from: the events themselves, or a daily rollup
    (events.rollups) whose time column is a local date and whose rows carry a count."""

    table: str
    time_column: str
    count: str  # per-row event count
    dates: bool  # the time column holds local dates, the bounds must too


EVENTS = Source("events_event", "timestamp", "1", dates=False)
USER_DAYS = Source("events_userday", "day", "events", dates=True)
USER_DAY_EVENTS = Source("events_userdayevent", "day", "events", dates=True)


def param(source: Source, value):
    if source.dates:
        return connection.ops.adapt_datefield_value(value)
    return ts(value)


def activity_by_bucket(source: Source, bounds: list, *, project_id: int, lo, hi, event_name: str | None = None):
    """A subquery of (idx, user_id, n): the source's rows for the project in [lo, hi), with
    idx the bucket holding each, bounds[idx] <= time < bounds[idx + 1], and n its events.

    PostgreSQL finds the bucket with `width_bucket` over the sorted bounds during a single
    index scan; SQLite has no such function and joins the rows to the numbered ranges."""
    time = f"e.{source.time_column}"
    where = f"e.project_id = %s AND {time} >= %s AND {time} < %s"
    params: list = [project_id, param(source, lo), param(source, hi)]
    if event_name is not None:
        where += " AND e.event_name = %s"
        params.append(event_name)
    columns = f"e.user_id, {source.count} AS n"
    if connection.vendor == "postgresql":
        array_type = "date[]" if source.dates else "timestamptz[]"
        return (
            f"SELECT width_bucket({time}, %s::{array_type}) - 1 AS idx, {columns} FROM {source.table} e WHERE {where}",
            [list(bounds), *params],
        )
    rows, range_params = [], []
    for idx, (start, end) in enumerate(zip(bounds, bounds[1:], strict=False)):
        rows.append("(%s, %s, %s)")
        range_params.extend([idx, param(source, start), param(source, end)])
    return (
        f"SELECT b.column1 AS idx, {columns} FROM (VALUES {', '.join(rows)}) b "
        f"JOIN {source.table} e ON {time} >= b.column2 AND {time} < b.column3 WHERE {where}",
        [*range_params, *params],
    )


def as_datetime(value):
    """A timestamp read by raw SQL: SQLite returns its text, PostgreSQL a datetime."""
    if value is None or isinstance(value, datetime):
        return value
    return connection.ops.convert_datetimefield_value(value, None, connection)


def fetch_all(sql: str, params: list) -> list[tuple]:
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.fetchall()
