"""The few places where SQLite and PostgreSQL differ for the analytics SQL."""

from datetime import datetime

from django.db import connection


def ts(moment: datetime):
    """A datetime as a query parameter that compares correctly with stored timestamps
    (SQLite keeps them as naive UTC text, PostgreSQL as timestamptz)."""
    return connection.ops.adapt_datetimefield_value(moment)


def events_by_bucket(
    bounds: list[datetime], *, project_id: int, lo: datetime, hi: datetime, event_name: str | None = None
) -> tuple[str, list]:
    """A subquery of (idx, user_id): one row per event of the project in [lo, hi), where idx
    is the bucket holding it, bounds[idx] <= timestamp < bounds[idx + 1].

    PostgreSQL finds the bucket with `width_bucket` over the sorted bounds during a single
    index scan; SQLite has no such function and joins the events to the numbered ranges."""
    where = "e.project_id = %s AND e.timestamp >= %s AND e.timestamp < %s"
    params: list = [project_id, ts(lo), ts(hi)]
    if event_name is not None:
        where += " AND e.event_name = %s"
        params.append(event_name)
    if connection.vendor == "postgresql":
        return (
            "SELECT width_bucket(e.timestamp, %s::timestamptz[]) - 1 AS idx, e.user_id "
            f"FROM events_event e WHERE {where}",
            [list(bounds), *params],
        )
    rows, range_params = [], []
    for idx, (start, end) in enumerate(zip(bounds, bounds[1:], strict=False)):
        rows.append("(%s, %s, %s)")
        range_params.extend([idx, ts(start), ts(end)])
    return (
        f"SELECT b.column1 AS idx, e.user_id FROM (VALUES {', '.join(rows)}) b "
        f"JOIN events_event e ON e.timestamp >= b.column2 AND e.timestamp < b.column3 WHERE {where}",
        [*range_params, *params],
    )


def fetch_all(sql: str, params: list) -> list[tuple]:
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.fetchall()
