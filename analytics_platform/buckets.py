"""Calendar buckets in a project's timezone (API.md, "Dates and buckets").

Days start at local midnight, weeks on Monday, months on the 1st; hours are real hours
(stepped in UTC from a local :00), so a spring-forward day has 23 and a fall-back day 25,
the repeated local hour appearing twice with its two offsets, and half-hour zones start
their hours at local :00. Boundaries are aware UTC datetimes.
"""

import zoneinfo
from datetime import UTC, date, datetime, timedelta

from analytics_platform.dates import local_midnight
from analytics_platform.errors import InvalidInput

INTERVALS = {
    "hour": "hour",
    "hourly": "hour",
    "day": "day",
    "daily": "day",
    "week": "week",
    "weekly": "week",
    "month": "month",
    "monthly": "month",
}
MAX_BUCKETS = 10_000
MAX_HOURLY_RANGE = timedelta(days=366)


def parse_interval(raw: str | None, *, name: str = "interval", default: str = "day", allowed=None) -> str:
    value = INTERVALS.get((raw or default).strip().lower())
    if value is None or (allowed and value not in allowed):
        choices = ", ".join(allowed or ("hour", "day", "week", "month"))
        raise InvalidInput(f"{name} must be one of {choices}.", details={name: raw})
    return value


def _floor_date(day: date, interval: str) -> date:
    if interval == "week":
        return day - timedelta(days=day.weekday())
    if interval == "month":
        return day.replace(day=1)
    return day


def _next_date(day: date, interval: str) -> date:
    if interval == "day":
        return day + timedelta(days=1)
    if interval == "week":
        return day + timedelta(days=7)
    return (day.replace(day=28) + timedelta(days=4)).replace(day=1)


def bucket_start(moment: datetime, interval: str, tz: zoneinfo.ZoneInfo) -> datetime:
    """The start (UTC) of the bucket that contains `moment`."""
    local = moment.astimezone(tz)
    if interval == "hour":
        return local.replace(minute=0, second=0, microsecond=0).astimezone(UTC)
    return local_midnight(_floor_date(local.date(), interval), tz)


def next_bucket(start: datetime, interval: str, tz: zoneinfo.ZoneInfo) -> datetime:
    if interval == "hour":
        return start + timedelta(hours=1)
    return local_midnight(_next_date(start.astimezone(tz).date(), interval), tz)


def bucket_bounds(interval: str, start: datetime, end: datetime, tz: zoneinfo.ZoneInfo, *, limit=MAX_BUCKETS):
    """Boundaries b0 < b1 < ... < bn of the buckets that intersect [start, end): bucket i is
    [b_i, b_i+1). InvalidInput if there would be more than `limit` buckets."""
    if interval == "hour" and end - start > MAX_HOURLY_RANGE + timedelta(hours=1):
        raise InvalidInput("Hourly buckets cover at most 366 days; narrow the range or use interval=day.")
    bounds = [bucket_start(start, interval, tz)]
    while bounds[-1] < end:
        bounds.append(next_bucket(bounds[-1], interval, tz))
        if len(bounds) > limit + 1:
            raise InvalidInput(f"That range has more than {limit} buckets; narrow it or use a longer interval.")
    return bounds


def local_iso(moment: datetime, tz: zoneinfo.ZoneInfo) -> str:
    return moment.astimezone(tz).isoformat()
