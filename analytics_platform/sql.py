"""The few places where SQLite and PostgreSQL differ for the raw SQL still run against the
database (a user's journey); analytics run in the column store (warehouse/)."""

from datetime import datetime

from django.db import connection


def ts(moment: datetime):
    """A datetime as a query parameter that compares correctly with stored timestamps
    (SQLite keeps them as naive UTC text, PostgreSQL as timestamptz)."""
    return connection.ops.adapt_datetimefield_value(moment)


def as_datetime(value):
    """A timestamp read by raw SQL: SQLite returns its text, PostgreSQL a datetime."""
    if value is None or isinstance(value, datetime):
        return value
    return connection.ops.convert_datetimefield_value(value, None, connection)


def fetch_all(sql: str, params: list) -> list[tuple]:
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.fetchall()
