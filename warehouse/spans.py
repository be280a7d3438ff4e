"""Spans: a UTC month's active users merged from its files' rollups, so that unique users
over many days read a few rows per user instead of one per user and day.

A span has, per user (ANY_EVENT) and per (event name, user) (EACH_EVENT), a bit for each day
of the month they were active in. It records the files it was merged from, per day; a
reader uses its bits for a day only while all of those files are live, and reads the day's
other live files (events exported since) from their own rollups: a user counted from both
is still counted once. Compacting a day retires its files, so the span stops serving that
day until it is merged again; nothing else can make a span wrong, since events are never
taken out of the mirror except by a rebuild, which retires every file.

`spans_merge` (run after each export) merges a month again when its span does not list
exactly the live files of one of its days other than today (UTC); under the mirror lock, with the same durable steps
as an export (warehouse.files), the new span and the old one's retirement committed
together.
"""

import uuid
from datetime import UTC, date, datetime

import structlog
from django.db import transaction
from django.utils import timezone

from warehouse.engine import engine_cursor
from warehouse.export import mirror_lock
from warehouse.files import sql_path, sql_paths, step, write_durably
from warehouse.models import MirrorFile, MirrorSpan
from warehouse.rollup import ANY_EVENT, EACH_EVENT, PARQUET, rollup_path

logger = structlog.get_logger(__name__)


def month_of(day: date) -> date:
    return day.replace(day=1)


def spans_merge(*, project_id: int, today: date | None = None) -> int:
    """Merges every month of the project whose span does not list exactly the live files of
    one of its days (today apart, whose files keep coming; and days with a file that has no
    rollup, which no span can serve); returns how many were merged."""
    today = today or datetime.now(UTC).date()
    live, spans = _live(project_id), _spans(project_id)
    merged = 0
    for month in sorted({month_of(day) for day in live}):
        days = {day for day, files in live.items() if month_of(day) == month and day != today and _rolled(files)}
        span = spans.get(month)
        if days and (span is None or any(sorted(live[day]) != span.files.get(day.isoformat()) for day in days)):
            merged += span_merge(project_id=project_id, month=month)
    return merged


def span_merge(*, project_id: int, month: date) -> int:
    """Merges the rollups of the month's live files (of its days whose files all have one)
    into a new span that replaces the month's old one; returns 1, or 0 if there was nothing
    to merge."""
    with transaction.atomic():
        mirror_lock(project_id)
        days = {day: files for day, files in _live(project_id).items() if month_of(day) == month and _rolled(files)}
        step("span:read")
        if not days:
            return 0
        rollups = [rollup_path(path) for files in days.values() for path, _ in files.values()]
        relative = f"{project_id}/spans/{month.isoformat()}-{uuid.uuid4().hex}.parquet"
        engine = engine_cursor()
        try:
            size = write_durably(engine, [(relative, _merge_sql(rollups, month), PARQUET)], "span")
            rows = engine.execute(f"SELECT COUNT(*) FROM read_parquet({sql_path(relative)})").fetchone()[0]
        finally:
            engine.close()
        MirrorSpan.objects.filter(project_id=project_id, month=month, retired_at__isnull=True).update(
            retired_at=timezone.now()
        )
        MirrorSpan.objects.create(
            project_id=project_id,
            month=month,
            path=relative,
            files={day.isoformat(): sorted(files) for day, files in days.items()},
            rows=rows,
            bytes=size,
        )
        step("span:before_commit")
    step("span:committed")
    logger.info("mirror_span_merged", project_id=project_id, month=str(month), days=len(days))
    return 1


def _merge_sql(rollups: list[str], month: date) -> str:
    bit = f"1::UINTEGER << (day - DATE '{month.isoformat()}')::UINTEGER"
    return (
        f"SELECT kind, event_name, user_id, BIT_OR({bit}) AS days FROM read_parquet({sql_paths(rollups)}) "
        f"WHERE kind IN ({ANY_EVENT}, {EACH_EVENT}) GROUP BY kind, event_name, user_id "
        "ORDER BY kind, event_name, user_id"
    )


def _live(project_id: int) -> dict[date, dict[int, tuple[str, bool]]]:
    """The project's live files: day -> {id: (path, has a rollup)}."""
    live: dict[date, dict] = {}
    rows = MirrorFile.objects.filter(project_id=project_id, retired_at__isnull=True)
    for pk, day, path, rollup in rows.values_list("id", "day", "path", "rollup"):
        live.setdefault(day, {})[pk] = (path, rollup)
    return live


def _rolled(files: dict) -> bool:
    return all(rollup for _, rollup in files.values())


def _spans(project_id: int) -> dict:
    return {s.month: s for s in MirrorSpan.objects.filter(project_id=project_id, retired_at__isnull=True)}
