"""Event ingestion and persistence. See DESIGN.md, "Ingestion, end to end".

`events_ingest` validates a request's events, drops duplicates (in the batch, then against
Redis with SET NX), and hands the new ones to the queue before it returns: once it has
answered, an accepted event is in Redis (an RQ job, or the single-event buffer) and will be
written. `events_persist` is what the worker runs: an idempotent bulk insert, then the
project's data version is bumped (cached analytics go stale) and the new rows are published
to the live stream. Events the database refuses for their content become dead letters
(`DeadLetter`, listed in the admin) in the same transaction, and the others are stored.
When Redis is unreachable the request writes synchronously instead, the
database's unique constraint alone deduplicating; when the database is unreachable too, the
request is refused with 503 and nothing is accepted.
"""

import hashlib
import json
from dataclasses import dataclass, field
from typing import NamedTuple

import structlog
from django.conf import settings
from django.db import transaction
from django.utils import timezone

from analytics_platform.data_version import project_data_version_bump
from analytics_platform.errors import InvalidInput, PayloadTooLarge, ServiceUnavailable
from analytics_platform.redis import REDIS_DOWN
from events import dedup, queueing
from events.live.publish import live_publish
from events.live.stats import live_count
from events.models import DeadLetter
from events.store import OUTAGE_ERRORS, insert_rows_isolating, project_lock_for_write
from events.validation import BodyError, EnvelopeError, parse_body, validate_item
from warehouse.jobs import export_schedule

logger = structlog.get_logger(__name__)
NOT_STORED = "the database refused this event; it was set aside for review (dead letters)"


@dataclass
class IngestResult:
    accepted: int = 0
    duplicates: int = 0
    rejected: list[dict] = field(default_factory=list)

    def as_body(self) -> dict:
        return {"accepted": self.accepted, "duplicates": self.duplicates, "rejected": self.rejected}


@dataclass
class PersistOutcome:
    stored: int = 0
    refused: list[tuple[int, str]] = field(default_factory=list)  # (position in the rows, error)

    def as_job_result(self) -> dict:
        return {"stored": self.stored, "refused": [list(item) for item in self.refused]}


def events_persist(*, project_id: int, rows: list, publish: bool = True, set_aside: bool = True) -> PersistOutcome:
    """Stores the rows not stored yet (idempotent); rows refused for their content become
    dead letters (unless not `set_aside`: a dead letter's retry keeps its own). Nothing is
    written for a deleted project. Raises the database's outage errors
    (events.store.OUTAGE_ERRORS), so a job retries."""
    with transaction.atomic():
        if not project_lock_for_write(project_id):
            logger.warning("persist_skipped_project_gone", project_id=project_id, events=len(rows))
            return PersistOutcome()
        inserted, refused = insert_rows_isolating(project_id, rows)
        if refused and set_aside:
            dead_letters_add(project_id=project_id, letters=[(json.dumps(rows[i]), error) for i, error in refused])
    if inserted:
        project_data_version_bump(project_id=project_id)
        export_schedule(project_id)
        if publish:
            refused_positions = {i for i, _ in refused}
            new = [row for i, row in enumerate(rows) if i not in refused_positions and row[0] in inserted]
            live_count(project_id=project_id, user_ids=[row[1] for row in new])
            live_publish(project_id=project_id, rows=new)
    return PersistOutcome(stored=len(inserted), refused=refused)


def dead_letters_add(*, project_id: int | None, letters: list[tuple[str, str]]) -> None:
    """Records refused events as (payload, error) (idempotent: the same payload of the same
    project once). Runs inside the caller's transaction, with the events stored beside them."""
    now = timezone.now()
    dead_letters = [
        DeadLetter(
            project_id=project_id,
            payload=payload,
            error=error,
            digest=hashlib.sha256(f"{project_id}:{payload}".encode()).hexdigest(),
            last_tried_at=now,
        )
        for payload, error in letters
    ]
    DeadLetter.objects.bulk_create(dead_letters, ignore_conflicts=True)
    logger.error("events_dead_lettered", project_id=project_id, events=len(letters), error=letters[0][1][:200])


def dead_letter_retry(*, dead_letter: DeadLetter) -> bool:
    """Tries to store a dead letter's event again (after a fix). Stored, found already
    stored, or of a project deleted since: the letter is deleted and True returned. Refused
    again: the error and attempt count are updated and False returned. Raises the
    database's outage errors."""
    try:
        if dead_letter.project_id is None:
            project_id, row = json.loads(dead_letter.payload)
        else:
            project_id, row = dead_letter.project_id, json.loads(dead_letter.payload)
        if not isinstance(project_id, int):
            raise ValueError("the buffer item names no project")
    except ValueError as exc:
        _dead_letter_failed(dead_letter, f"{type(exc).__name__}: {exc}")
        return False
    outcome = events_persist(project_id=project_id, rows=[row], set_aside=False)
    if outcome.refused:
        _dead_letter_failed(dead_letter, outcome.refused[0][1])
        return False
    dead_letter.delete()
    return True


def _dead_letter_failed(dead_letter: DeadLetter, error: str) -> None:
    dead_letter.error = error
    dead_letter.attempts += 1
    dead_letter.last_tried_at = timezone.now()
    dead_letter.save(update_fields=["error", "attempts", "last_tried_at"])


def events_ingest(*, project, body: bytes, client_ip: str | None, user_agent: str | None) -> IngestResult:
    """Validates and accepts the events of a request body (one object, an array, or
    {batch, sentAt}) for `project`. Raises InvalidInput (not JSON, empty batch, bad
    envelope), PayloadTooLarge (too many events) or ServiceUnavailable (neither Redis nor
    the database can take the events)."""
    result, rows, indices, claims = events_validate(body, client_ip=client_ip, user_agent=user_agent)
    if not rows:
        return result

    try:
        claimed = dedup.claim(project.id, claims)
        fresh = [position for position, is_new in enumerate(claimed) if is_new]
        try:
            written = queueing.enqueue_rows(project.id, [rows[position] for position in fresh])
        except BaseException:
            dedup.release(project.id, [claims[position] for position in fresh if claims[position] is not None])
            raise
    except REDIS_DOWN as exc:
        logger.warning("ingest_redis_down_writing_synchronously", error=type(exc).__name__, events=len(rows))
        return _ingest_synchronously(project.id, rows, indices, result)
    if written is None:  # queued: the claims are the count
        result.accepted = len(fresh)
        result.duplicates += len(rows) - len(fresh)
        return result
    return _count_written(result, written, [indices[position] for position in fresh], offered=len(rows))


class Validated(NamedTuple):
    result: IngestResult  # the rejections, and the duplicates inside the body
    rows: list[list]  # the job rows of the distinct valid events
    indices: list[int]  # each row's index in the body
    claims: list[str | None]  # each row's id to claim in Redis; None for a minted id


def events_validate(body: bytes, *, client_ip: str | None, user_agent: str | None) -> Validated:
    """What both ingestion paths (this module's and events.hot's) do before Redis: the body's
    events validated. Raises InvalidInput and PayloadTooLarge for the body as a whole."""
    received_at = timezone.now()
    try:
        items, skew, _ = parse_body(body, received_at=received_at)
    except BodyError as exc:
        raise InvalidInput(str(exc), code="malformed_body") from None
    except EnvelopeError as exc:
        raise InvalidInput(exc.args[0], details=exc.args[1]) from None
    if not items:
        raise InvalidInput("The batch is empty: send one event object or a non-empty array.")
    if len(items) > settings.EVENT_BATCH_SIZE:
        raise PayloadTooLarge(
            f"At most {settings.EVENT_BATCH_SIZE} events per request; this one has {len(items)}.",
            details={"maxEvents": settings.EVENT_BATCH_SIZE, "events": len(items)},
        )
    result = IngestResult()
    rows, indices, claims, seen, received_text = [], [], [], set(), received_at.isoformat()
    for index, item in enumerate(items):
        row, errors = validate_item(
            item, received_at=received_at, client_ip=client_ip, user_agent=user_agent, skew=skew
        )
        if errors:
            result.rejected.append({"index": index, "errors": errors})
        elif row.event_id in seen:  # never a minted id: it is new
            result.duplicates += 1
        else:
            if not row.minted:
                seen.add(row.event_id)
            rows.append(row.as_job_row(received_text))
            indices.append(index)
            claims.append(None if row.minted else row.event_id)
    return Validated(result, rows, indices, claims)


def _ingest_synchronously(project_id: int, rows: list[list], indices: list[int], result: IngestResult) -> IngestResult:
    try:
        dedup.direct_write_mark(project_id)
        outcome = events_persist(project_id=project_id, rows=rows)
    except OUTAGE_ERRORS as exc:
        logger.error("ingest_refused_redis_and_database_down", error=type(exc).__name__, events=len(rows))
        raise ServiceUnavailable("Neither the queue nor the database can take events right now.") from None
    return _count_written(result, outcome.as_job_result(), indices, offered=len(rows))


def _count_written(result: IngestResult, written: dict, indices: list[int], *, offered: int) -> IngestResult:
    """The answer from what the database did with the rows written at `indices` of the
    request (out of `offered` distinct valid events): new ones are accepted, the database's
    refusals are rejections, the rest were stored already."""
    refused = sorted(position for position, _ in written["refused"])
    result.accepted = written["stored"]
    result.duplicates += offered - written["stored"] - len(refused)
    result.rejected += [{"index": indices[position], "errors": {"event": [NOT_STORED]}} for position in refused]
    result.rejected.sort(key=lambda item: item["index"])
    return result
