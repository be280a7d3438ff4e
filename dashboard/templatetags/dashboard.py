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
