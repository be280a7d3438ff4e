"""Query-string dates, read in the project's timezone (API.md, "Dates and buckets").

`YYYY-MM-DD` is that whole local day (`endDate` inclusive); a full ISO-8601 datetime is an
instant, local to the project when it has no offset, and inclusive as an `endDate`. Ranges
are returned as half-open [start, end) in UTC. Default: the last 30 local days, today included.

Supported dates run from 1970-01-01 (no event is older) to 2999-12-31, checked on the date as
written, before any arithmetic: the runners add up to a day for `endDate`, a funnel's
conversion window (at most ~68 years) or retention's periods (at most 400 months) to a
bound, and Python's datetime ends at 9999-12-31, so a wider range would overflow there.
"""

import re
import zoneinfo
from datetime import UTC, date, datetime, time, timedelta

from analytics_platform.errors import InvalidInput

DATE_ONLY = re.compile(r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$")
DEFAULT_DAYS = 30
FIRST_DAY, LAST_DAY = date(1970, 1, 1), date(2999, 12, 31)


def local_midnight(day: date, tz: zoneinfo.ZoneInfo) -> datetime:
    """The first instant of `day` in `tz`, in UTC (a midnight inside a DST gap moves forward)."""
    naive = datetime.combine(day, time(0))
    moment = naive.replace(tzinfo=tz)
    roundtrip = moment.astimezone(UTC).astimezone(tz)
    if roundtrip.replace(tzinfo=None) != naive:  # midnight does not exist that day
        moment = roundtrip
    return moment.astimezone(UTC)


def _parse_one(name: str, raw: str, tz: zoneinfo.ZoneInfo, *, is_end: bool) -> datetime:
    raw = raw.strip()
    try:
        if DATE_ONLY.match(raw):
            moment = day = date.fromisoformat(raw)
        else:
            moment = datetime.fromisoformat(raw)
            day = moment.date()
    except ValueError:
        raise InvalidInput(
            f"{name} must be a date (YYYY-MM-DD) or an ISO-8601 datetime.", details={name: raw[:100]}
        ) from None
    if not FIRST_DAY <= day <= LAST_DAY:
        raise InvalidInput(
            f"{name} must be between {FIRST_DAY.isoformat()} and {LAST_DAY.isoformat()}.", details={name: raw[:100]}
        )
    if not isinstance(moment, datetime):
        return local_midnight(day + timedelta(days=1) if is_end else day, tz)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=tz)
    moment = moment.astimezone(UTC)
    return moment + timedelta(microseconds=1) if is_end else moment


def parse_range(
    start_raw: str | None, end_raw: str | None, tz: zoneinfo.ZoneInfo, *, now: datetime | None = None
) -> tuple[datetime, datetime]:
    """[start, end) in UTC; InvalidInput for a malformed date or a start after the end."""
    now = now or datetime.now(UTC)
    today = now.astimezone(tz).date()
    start = _parse_one("startDate", start_raw, tz, is_end=False) if start_raw else None
    end = _parse_one("endDate", end_raw, tz, is_end=True) if end_raw else None
    if end is None:
        end = local_midnight(today + timedelta(days=1), tz)
    if start is None:
        start = local_midnight(end.astimezone(tz).date() - timedelta(days=DEFAULT_DAYS), tz)
    if start >= end:
        raise InvalidInput("startDate must not be after endDate.", details={"startDate": start_raw, "endDate": end_raw})
    return start, end


def iso_utc(moment: datetime | None) -> str | None:
    if moment is None:
        return None
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")
