"""Daily rollups of the events table, kept by the ingestion worker in the same transaction
as the insert: per (project, local day, user) and per (project, event, local day, user),
each with an event count. Daily counts and unique users become sums over a few rows per
user-day instead of scans of every event; metrics and retention use them whenever the range
is whole local days (hours and partial days keep reading the events).

Days are local to the project's timezone, so the rollups are valid only while
`Project.rollup_timezone == Project.timezone`. A timezone change leaves them stale and the
analytics read the raw events until `rollups_rebuild` has recomputed them (queries schedule
it). Writers hold the project row FOR SHARE while they add to the rollups and the rebuild
holds it FOR UPDATE, so a rebuild never races an insert; every writer upserts its keys in
sorted order, so concurrent workers cannot deadlock.
"""

from collections import Counter
from datetime import date, datetime
from zoneinfo import ZoneInfo

from django.conf import settings
from django.core.cache import cache
from django.db import connection, transaction

from accounts.models import Project
from analytics_platform.dates import local_midnight
from analytics_platform.sql import USER_DAY_EVENTS, USER_DAYS, Source
from events.models import Event, UserDay, UserDayEvent

UPSERT_CHUNK = 1000
REBUILD_CHUNK = 20_000


def rollup_timezone_for_write(project_id: int) -> str | None:
    """The timezone to add new events in ("" if the rollups are not built), taking the
    project row's share lock for the rest of the caller's transaction."""
    lock = " FOR SHARE" if connection.vendor == "postgresql" else ""
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT rollup_timezone FROM accounts_project WHERE id = %s{lock}", [project_id])
        row = cursor.fetchone()
    return row[0] if row else None


def rollups_add(*, project_id: int, timezone_name: str, rows: list[list]) -> None:
    """Counts newly stored job rows (events.validation.COLUMNS order) into the rollups."""
    tz = ZoneInfo(timezone_name)
    per_day: Counter = Counter()
    per_event: Counter = Counter()
    for row in rows:
        day = datetime.fromisoformat(row[3]).astimezone(tz).date()
        per_day[(day, row[1])] += 1
        per_event[(row[2], day, row[1])] += 1
    _upsert("events_userday", ["day", "user_id"], per_day, project_id)
    _upsert("events_userdayevent", ["event_name", "day", "user_id"], per_event, project_id)


def _upsert(table: str, key_columns: list[str], counts: Counter, project_id: int) -> None:
    items = sorted(counts.items())  # one lock order for every writer
    columns = ["project_id", *key_columns, "events"]
    placeholders = "(" + ", ".join(["%s"] * len(columns)) + ")"
    adapt = connection.ops.adapt_datefield_value
    with connection.cursor() as cursor:
        for start in range(0, len(items), UPSERT_CHUNK):
            chunk = items[start : start + UPSERT_CHUNK]
            params = []
            for key, n in chunk:
                params += [project_id, *(adapt(k) if isinstance(k, date) else k for k in key), n]
            cursor.execute(
                f"INSERT INTO {table} ({', '.join(columns)}) VALUES {', '.join([placeholders] * len(chunk))} "
                f"ON CONFLICT (project_id, {', '.join(key_columns)}) "
                f"DO UPDATE SET events = {table}.events + excluded.events",
                params,
            )


def rollups_valid(project_id: int) -> bool:
    timezone_name, rollup_timezone = Project.objects.values_list("timezone", "rollup_timezone").get(pk=project_id)
    return timezone_name == rollup_timezone


def rollups_rebuild(*, project_id: int) -> None:
    """Recomputes a project's rollups from its events in its current timezone, one local
    day at a time (bounded memory), while holding off writers."""
    with transaction.atomic():
        project = Project.objects.select_for_update().get(pk=project_id)
        UserDay.objects.filter(project_id=project_id).delete()
        UserDayEvent.objects.filter(project_id=project_id).delete()
        tz = project.tzinfo
        day, pending = None, []
        events = Event.objects.filter(project_id=project_id).order_by("timestamp")
        for user_id, event_name, moment in events.values_list("user_id", "event_name", "timestamp").iterator(
            chunk_size=REBUILD_CHUNK
        ):
            local_day = moment.astimezone(tz).date()
            if local_day != day and len(pending) >= REBUILD_CHUNK:
                rollups_add(project_id=project_id, timezone_name=project.timezone, rows=pending)
                pending = []
            day = local_day
            pending.append([None, user_id, event_name, moment.isoformat()])
        if pending:
            rollups_add(project_id=project_id, timezone_name=project.timezone, rows=pending)
        Project.objects.filter(pk=project_id).update(rollup_timezone=project.timezone)


def rollups_schedule_rebuild(project_id: int) -> None:
    """Queues one rebuild (at most one per ten minutes per project)."""
    from events.queueing import ingest_queue

    if cache.add(f"rollup-rebuild:{project_id}", 1, 600):
        ingest_queue().enqueue(
            "events.jobs.rebuild_rollups", project_id, description=f"rebuild rollups of {project_id}"
        )


def rollup_source(*, project, start: datetime, end: datetime, interval: str, event_name: str | None) -> Source | None:
    """The rollup that answers a query over [start, end) exactly, or None (read the events):
    it must cover whole local days in the timezone the rollup was built in."""
    if not settings.ANALYTICS_USE_ROLLUPS or interval == "hour":
        return None
    tz = project.tzinfo
    for edge in (start, end):
        if local_midnight(edge.astimezone(tz).date(), tz) != edge:
            return None
    if not rollups_valid(project.id):
        rollups_schedule_rebuild(project.id)
        return None
    return USER_DAY_EVENTS if event_name is not None else USER_DAYS


def as_local_dates(moments: list[datetime], tz) -> list[date]:
    return [moment.astimezone(tz).date() for moment in moments]
