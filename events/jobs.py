"""RQ jobs. Each takes plain values and calls one service; each is idempotent (the insert
ignores stored event ids, a dead letter is recorded once), so RQ's retries, and a rerun from
the failed registry, are safe. Only an outage fails a job: events refused for their content
become dead letters and the rest of the job goes on."""

import json
from collections import defaultdict

import msgspec
from django.db import close_old_connections, connection
from rq import get_current_job

from analytics_platform.redis import redis_client
from events.drainer import TAKE_BYTES, TAKE_LUA
from events.queueing import BUFFER_KEY, rearm_if_pending
from events.services import dead_letters_add, events_persist

DRAIN_CHUNK = 5000


def _fresh_connection() -> None:
    """A long-lived worker hands back or drops a broken connection before each job (never
    one a surrounding transaction is using, as when a test runs the job in-process)."""
    if not connection.in_atomic_block:
        close_old_connections()


def persist_events(project_id: int, rows_json: str) -> dict:
    """Returns {"stored": n, "refused": [[position, error], ...]} (read by the inline queue)."""
    _fresh_connection()
    return events_persist(project_id=project_id, rows=json.loads(rows_json)).as_job_result()


def drain_buffer() -> int:
    """Stores the ingest buffer, DRAIN_CHUNK items or TAKE_BYTES (but at least an item) at a
    time: each chunk moves atomically to a key named after this job and is deleted once
    stored (a backlog of any length never sits in one worker's memory). Killed midway, the
    retried job finds its key again and finishes that chunk first."""
    _fresh_connection()
    client = redis_client()
    processing = f"{BUFFER_KEY}:processing:{get_current_job().id}"
    stored = store_buffered(client, processing) if client.exists(processing) else 0
    take = client.register_script(TAKE_LUA)
    try:
        while take(keys=[BUFFER_KEY, processing], args=[DRAIN_CHUNK, TAKE_BYTES, 1])[0]:
            stored += store_buffered(client, processing)
    finally:
        rearm_if_pending(client)
    return stored


def store_buffered(client, key: str) -> int:
    """Stores the buffered items of the list `key` (pushed by queueing.buffer_push), then
    deletes it; returns how many events were stored. Used by the drain job and the drainer."""
    by_project: dict[int, list] = defaultdict(list)
    unreadable: list[str] = []
    for item in client.lrange(key, 0, -1):
        try:
            project_id, *rows = _decoded(item)
            if not isinstance(project_id, int) or isinstance(project_id, bool) or not 0 < project_id < 2**63:
                raise ValueError("no project id")
            if not rows:
                raise ValueError("no rows")
        except (ValueError, TypeError):  # not JSON, not UTF-8, not [project id, row, ...]
            unreadable.append(item.decode("utf-8", "backslashreplace").replace("\x00", "\\u0000"))
            continue
        by_project[project_id] += rows
    if unreadable:
        dead_letters_add(project_id=None, letters=[(item, "unreadable buffer item") for item in unreadable])
    stored = 0
    for project_id, rows in by_project.items():  # a project deleted meanwhile: nothing is written
        for start in range(0, len(rows), DRAIN_CHUNK):
            stored += events_persist(project_id=project_id, rows=rows[start : start + DRAIN_CHUNK]).stored
    client.delete(key)
    return stored


_decode = msgspec.json.Decoder()


def _decoded(item: bytes):
    """An item as Python's json reads it, with msgspec's speed (a third of the drainer's time
    was json.loads); what msgspec refuses but Python's json reads (a lone surrogate escape,
    a number past a double) goes through Python's json."""
    try:
        return _decode.decode(item)
    except msgspec.DecodeError:
        return json.loads(item)
