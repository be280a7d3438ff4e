"""Event ingestion and persistence. See DESIGN.md, "Ingestion, end to end".

`events_ingest` validates a request's events, drops duplicates (in the batch, then against
Redis with SET NX), and hands the new ones to the queue before it returns: once it has
answered, an accepted event is in Redis (an RQ job, or the single-event buffer) and will be
written. `events_persist` is what the worker runs: an idempotent bulk insert, then the
project's data version is bumped (cached analytics go stale) and the new rows are published
to the live stream. When Redis is unreachable the request writes synchronously instead, the
database's unique constraint alone deduplicating; when the database is unreachable too, the
request is refused with 503 and nothing is accepted.
"""

from dataclasses import dataclass, field

import structlog
from django.conf import settings
from django.db import DatabaseError, transaction
from django.utils import timezone

from analytics_platform.data_version import project_data_version_bump
from analytics_platform.errors import InvalidInput, PayloadTooLarge, ServiceUnavailable
from analytics_platform.redis import REDIS_DOWN
from events import dedup, queueing
from events.live import live_publish
from events.livestats import live_count
from events.rollups import rollup_timezone_for_write
from events.store import insert_rows
from events.validation import validate_event

logger = structlog.get_logger(__name__)


@dataclass
class IngestResult:
    accepted: int = 0
    duplicates: int = 0
    rejected: list[dict] = field(default_factory=list)

    def as_body(self) -> dict:
        return {"accepted": self.accepted, "duplicates": self.duplicates, "rejected": self.rejected}


def events_persist(*, project_id: int, rows: list[list], publish: bool = True) -> int:
    """Stores the rows not stored yet (idempotent) and returns how many were new. Raises the
    database's error if it cannot write, so a job retries."""
    with transaction.atomic():
        inserted = insert_rows(project_id, rows, rollup_timezone_for_write(project_id) or "")
    if inserted:
        project_data_version_bump(project_id=project_id)
        if publish:
            new = [row for row in rows if row[0] in inserted]
            live_count(project_id=project_id, user_ids=[row[1] for row in new])
            live_publish(project_id=project_id, rows=new)
    return len(inserted)


def events_ingest(*, project, payload, client_ip: str | None, user_agent: str | None) -> IngestResult:
    """Validates and accepts one object or a list of events for `project`.
    Raises InvalidInput (empty batch), PayloadTooLarge (too many events) or
    ServiceUnavailable (neither Redis nor the database can take the events)."""
    items = payload if isinstance(payload, list) else [payload]
    if not items:
        raise InvalidInput("The batch is empty: send one event object or a non-empty array.")
    if len(items) > settings.EVENT_BATCH_SIZE:
        raise PayloadTooLarge(
            f"At most {settings.EVENT_BATCH_SIZE} events per request; this one has {len(items)}.",
            details={"maxEvents": settings.EVENT_BATCH_SIZE, "events": len(items)},
        )
    received_at = timezone.now()
    result = IngestResult()
    rows, seen = [], set()
    for index, raw in enumerate(items):
        row, errors = validate_event(raw, received_at=received_at, client_ip=client_ip, user_agent=user_agent)
        if errors:
            result.rejected.append({"index": index, "errors": errors})
        elif row.event_id in seen:
            result.duplicates += 1
        else:
            seen.add(row.event_id)
            rows.append(row.as_job_row())
    if not rows:
        return result

    try:
        claimed = dedup.claim(project.id, [row[0] for row in rows])
        fresh = [row for row, is_new in zip(rows, claimed, strict=True) if is_new]
        try:
            queueing.enqueue_rows(project.id, fresh)
        except BaseException:
            dedup.release(project.id, [row[0] for row in fresh])
            raise
    except REDIS_DOWN as exc:
        logger.warning("ingest_redis_down_writing_synchronously", error=type(exc).__name__, events=len(rows))
        return _ingest_synchronously(project.id, rows, result)
    result.accepted = len(fresh)
    result.duplicates += len(rows) - len(fresh)
    return result


def _ingest_synchronously(project_id: int, rows: list[list], result: IngestResult) -> IngestResult:
    try:
        stored = events_persist(project_id=project_id, rows=rows)
    except DatabaseError as exc:
        logger.error("ingest_refused_redis_and_database_down", error=type(exc).__name__, events=len(rows))
        raise ServiceUnavailable("Neither the queue nor the database can take events right now.") from None
    result.accepted = stored
    result.duplicates += len(rows) - stored
    return result
