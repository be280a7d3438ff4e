"""The few places where SQLite and PostgreSQL differ for the analytics SQL."""

from datetime import datetime

from django.db import connection


def ts(moment: datetime):
    """A datetime as a query parameter that compares correctly with stored timestamps
    (SQLite keeps them as naive UTC text, PostgreSQL as timestamptz)."""
    return connection.ops.adapt_datetimefield_value(moment)


def ranges_cte(name: str, ranges: list[tuple[datetime, datetime]]) -> tuple[str, list]:
    """`name(idx, lo, hi) AS (VALUES ...)`: numbered half-open time ranges to join against."""
    rows, params = [], []
    for idx, (lo, hi) in enumerate(ranges):
        rows.append("(%s, %s, %s)")
        params.extend([idx, ts(lo), ts(hi)])
    return f"{name}(idx, lo, hi) AS (VALUES {', '.join(rows)})", params


def fetch_all(sql: str, params: list) -> list[tuple]:
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.fetchall()
