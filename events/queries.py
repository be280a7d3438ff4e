from datetime import datetime

from django.db.models import Count, Max, Min

from analytics_platform.dates import iso_utc
from events.models import Event

TOP_EVENTS = 10


def event_summary(*, project, start: datetime, end: datetime) -> dict:
    """Totals over [start, end), computed in the database."""
    events = Event.objects.filter(project=project, timestamp__gte=start, timestamp__lt=end)
    totals = events.aggregate(
        total=Count("id"), users=Count("user_id", distinct=True), first=Min("timestamp"), last=Max("timestamp")
    )
    top = (
        events.values("event_name")
        .annotate(count=Count("id"), users=Count("user_id", distinct=True))
        .order_by("-count", "event_name")[:TOP_EVENTS]
    )
    return {
        "totalEvents": totals["total"],
        "uniqueUsers": totals["users"],
        "firstEventAt": iso_utc(totals["first"]),
        "lastEventAt": iso_utc(totals["last"]),
        "topEvents": [{"eventName": t["event_name"], "count": t["count"], "uniqueUsers": t["users"]} for t in top],
    }
