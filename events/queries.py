"""Read-side analytics over events: summary, time-bucketed metrics, one user's journey."""

from dataclasses import dataclass
from datetime import datetime, timedelta

from django.db.models import Q

from analytics_platform.buckets import bucket_bounds, local_iso, parse_interval
from analytics_platform.dates import FIRST_DAY, LAST_DAY, iso_utc, parse_range
from analytics_platform.errors import InvalidInput, NotFound
from analytics_platform.ids import object_id
from analytics_platform.queries import QueryRunner, cursor_decode, cursor_encode, event_name_param, whole_param
from analytics_platform.sql import as_datetime, fetch_all, ts
from events.models import Event
from warehouse.snapshot import snapshot

TOP_EVENTS = 10


@dataclass(frozen=True)
class SummaryParams:
    start: datetime
    end: datetime


class SummaryQuery(QueryRunner):
    """Totals over [start, end), computed in the column store (as one bucket of Snapshot.bucketed)."""

    name = "summary"

    def parse(self, raw) -> SummaryParams:
        return SummaryParams(*parse_range(raw.get("startDate"), raw.get("endDate"), self.tz, now=self.now))

    def calculate(self) -> dict:
        p = self.params
        with snapshot(self.project.id, p.start, p.end) as snap:
            data = snap.bucketed([p.start, p.end], p.start, p.end)
            rows = snap.fetch(
                "SELECT 'count', event_name, SUM(n), MIN(first_ts), MAX(last_ts) "
                f"FROM {data.counts()} c GROUP BY GROUPING SETS ((), (event_name)) "
                f"UNION ALL SELECT 'users', NULL, COUNT(DISTINCT user_id), NULL, NULL FROM {data.users()} u "
                "UNION ALL SELECT 'users', event_name, COUNT(DISTINCT user_id), NULL, NULL "
                f"FROM {data.users(each=True)} u GROUP BY event_name"
            )
        self.rows = len(rows)
        users = {name: n for kind, name, n, *_ in rows if kind == "users"}
        counts = [
            (name, n or 0, users.get(name, 0), first, last) for kind, name, n, first, last in rows if kind == "count"
        ]
        totals = next((row for row in counts if row[0] is None and row[1]), None)
        top = sorted((row for row in counts if row[0] is not None), key=lambda row: (-row[1], row[0]))[:TOP_EVENTS]
        return {
            "totalEvents": totals[1] if totals else 0,
            "uniqueUsers": totals[2] if totals else 0,
            "firstEventAt": iso_utc(totals[3]) if totals else None,
            "lastEventAt": iso_utc(totals[4]) if totals else None,
            "topEvents": [{"eventName": name, "count": count, "uniqueUsers": users} for name, count, users, *_ in top],
        }


@dataclass(frozen=True)
class MetricsParams:
    event: str | None
    interval: str
    start: datetime
    end: datetime


class MetricsQuery(QueryRunner):
    """Event counts and unique users per calendar bucket in the project's timezone. The
    buckets' bounds come from analytics_platform.buckets; the column store counts them, from
    the mirror's rollups where they can be cut on the buckets' bounds and from the events
    elsewhere (Snapshot.bucketed); every bucket is present, empty ones as 0."""

    name = "metrics"

    def parse(self, raw) -> MetricsParams:
        start, end = parse_range(raw.get("startDate"), raw.get("endDate"), self.tz, now=self.now)
        return MetricsParams(
            event_name_param(raw.get("event"), "event"), parse_interval(raw.get("interval")), start, end
        )

    def calculate(self) -> dict:
        p = self.params
        bounds = bucket_bounds(p.interval, p.start, p.end, self.tz)
        with snapshot(self.project.id, p.start, p.end) as snap:
            data = snap.bucketed(bounds, p.start, p.end)
            where, params = ("WHERE event_name = ?", [p.event, p.event]) if p.event is not None else ("", [])
            rows = snap.fetch(
                f"SELECT 'count', idx, SUM(n) FROM {data.counts()} c {where} GROUP BY idx UNION ALL "
                f"SELECT 'users', idx, COUNT(DISTINCT user_id) FROM {data.users(each=p.event is not None)} u {where} "
                "GROUP BY idx",
                params,
            )
        counts = {}
        for kind, idx, n in rows:
            count, users = counts.get(idx, (0, 0))
            counts[idx] = (n, users) if kind == "count" else (count, n)
        self.rows = len(counts)  # buckets with events
        buckets = []
        for i, lo in enumerate(bounds[:-1]):
            count, users = counts.get(i, (0, 0))
            buckets.append({"start": local_iso(lo, self.tz), "count": count, "uniqueUsers": users})
        return {"event": p.event, "interval": p.interval, "timezone": self.project.timezone, "buckets": buckets}


@dataclass(frozen=True)
class JourneyParams:
    user_id: str
    start: datetime
    end: datetime
    limit: int
    after: tuple[str, int] | None  # (timestamp ISO, id) of the last event already seen


SESSION_GAP = timedelta(minutes=30)
MAX_LIMIT = 1000


def encode_cursor(moment: datetime, pk: int) -> str:
    return cursor_encode(f"{moment.isoformat()}|{pk}")


def decode_cursor(raw: str) -> tuple[str, int]:
    """(timestamp, id) of a cursor from encode_cursor; 400 for anything else, a crafted one
    with a timestamp no event can have or an id past BIGINT included."""
    text = cursor_decode(raw)
    try:
        moment, pk_text = text.rsplit("|", 1)
        parsed = datetime.fromisoformat(moment)
        pk = object_id(pk_text)
        if parsed.tzinfo is None or pk is None or not FIRST_DAY <= parsed.date() <= LAST_DAY:
            raise ValueError(moment)
        return moment, pk
    except ValueError:
        raise InvalidInput("cursor is not one this API returned.", details={"cursor": raw[:100]}) from None


class JourneyQuery(QueryRunner):
    """One user's events in time order, keyset-paginated on (timestamp, id), with sessions:
    by sessionId, or for events without one, runs with gaps of at most 30 minutes."""

    name = "journey"

    def parse(self, raw) -> JourneyParams:
        start, end = parse_range(raw.get("startDate"), raw.get("endDate"), self.tz, now=self.now)
        limit = whole_param(raw.get("limit", 100), "limit", low=1)  # more than MAX_LIMIT is clamped
        cursor = raw.get("cursor")
        return JourneyParams(
            raw["userId"], start, end, min(limit, MAX_LIMIT), decode_cursor(cursor) if cursor else None
        )

    def calculate(self) -> dict:
        p = self.params
        overview = self._overview()
        if overview["first"] is None:
            raise NotFound(f"No events for user {p.user_id!r} in this project.")
        page = Event.objects.filter(
            project=self.project, user_id=p.user_id, timestamp__gte=p.start, timestamp__lt=p.end
        )
        if p.after:
            moment = datetime.fromisoformat(p.after[0])
            page = page.filter(Q(timestamp__gt=moment) | Q(timestamp=moment, id__gt=p.after[1]))
        fields = ("id", "event_id", "event_name", "timestamp", "properties", "session_id", "page_url")
        events = list(page.order_by("timestamp", "id").values(*fields)[: p.limit + 1])
        more = len(events) > p.limit
        self.rows = len(events) + overview["rows"]
        events = events[: p.limit]
        return {
            "userId": p.user_id,
            "firstSeen": iso_utc(overview["first"]),
            "lastSeen": iso_utc(overview["last"]),
            "totalEvents": overview["total"],
            "events": [
                {
                    "eventId": e["event_id"],
                    "userId": p.user_id,
                    "eventName": e["event_name"],
                    "timestamp": iso_utc(e["timestamp"]),
                    "properties": e["properties"],
                    "sessionId": e["session_id"],
                    "pageUrl": e["page_url"],
                }
                for e in events
            ],
            "sessions": overview["sessions"],
            "nextCursor": encode_cursor(events[-1]["timestamp"], events[-1]["id"]) if more else None,
        }

    def _overview(self) -> dict:
        """One statement over the user's index range: first and last seen (all history), and
        per named session in the range its span and size, plus the range's unnamed events'
        times, from which runs with gaps of at most 30 minutes become sessions."""
        p = self.params
        user = "e.project_id = %s AND e.user_id = %s"
        in_range = f"{user} AND e.timestamp >= %s AND e.timestamp < %s"
        rows = fetch_all(
            f"SELECT 0, NULL, MIN(e.timestamp), MAX(e.timestamp), COUNT(*) FROM events_event e WHERE {user} "
            "UNION ALL SELECT 1, e.session_id, MIN(e.timestamp), MAX(e.timestamp), COUNT(*) FROM events_event e "
            f"WHERE {in_range} AND e.session_id IS NOT NULL GROUP BY e.session_id "
            "UNION ALL SELECT 2, NULL, e.timestamp, e.timestamp, 1 FROM events_event e "
            f"WHERE {in_range} AND e.session_id IS NULL",
            [self.project.id, p.user_id, *([self.project.id, p.user_id, ts(p.start), ts(p.end)] * 2)],
        )
        overview = {"first": None, "last": None, "total": 0, "rows": len(rows)}
        sessions, gaps = [], []
        for kind, session_id, start, end, count in rows:
            start, end = as_datetime(start), as_datetime(end)
            if kind == 0:
                overview["first"], overview["last"] = start, end
                continue
            overview["total"] += count
            if kind == 1:
                sessions.append({"sessionId": session_id, "start": start, "end": end, "eventCount": count})
            else:
                gaps.append(start)
        current = None
        for moment in sorted(gaps):
            if current is None or moment - current["end"] > SESSION_GAP:
                current = {"sessionId": None, "start": moment, "end": moment, "eventCount": 0}
                sessions.append(current)
            current["end"] = moment
            current["eventCount"] += 1
        sessions.sort(key=lambda s: (s["start"], s["sessionId"] or ""))
        overview["sessions"] = [{**s, "start": iso_utc(s["start"]), "end": iso_utc(s["end"])} for s in sessions]
        return overview
