"""Template filters of the dashboard's pages."""

from datetime import datetime
from zoneinfo import ZoneInfo

from django import template

register = template.Library()


@register.filter
def local_time(iso: str | None, timezone_name: str) -> str:
    """An API timestamp (ISO 8601) as a wall-clock time in the project's timezone, to the
    second; midnight alone is shown as the date (a bucket's start), and a date (a cohort's)
    as it is."""
    if not iso:
        return ""
    moment = datetime.fromisoformat(iso)
    if moment.tzinfo is None:  # a calendar date of the project's, already local
        return iso
    moment = moment.astimezone(ZoneInfo(timezone_name))
    if (moment.hour, moment.minute, moment.second) == (0, 0, 0):
        return moment.date().isoformat()
    return moment.strftime("%Y-%m-%d %H:%M:%S")


@register.filter
def percent(rate: float | None) -> str:
    """A rate in [0, 1] as a percentage to one decimal: 0.3333 → "33.3%"."""
    if rate is None:
        return ""
    return f"{100 * rate:.1f}%"


DURATION_UNITS = (("d", 86400), ("h", 3600), ("min", 60), ("s", 1))


@register.filter
def seconds(value: float | None) -> str:
    """A duration in seconds as a person reads it, in its two largest units: 42.5 → "42.5 s",
    5400 → "1 h 30 min", 1209600 → "14 d"."""
    if value is None:
        return ""
    if value < 60:
        return f"{value:.1f}".removesuffix(".0") + " s"
    rest, counts = round(value), []
    for unit, size in DURATION_UNITS:
        count, rest = divmod(rest, size)
        counts.append((count, unit))
    first = next(i for i, (count, _) in enumerate(counts) if count)
    return " ".join(f"{count} {unit}" for count, unit in counts[first : first + 2] if count)
