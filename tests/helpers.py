"""Small helpers shared by the tests."""


def assert_error(response, status: int, code: str | None = None) -> dict:
    """Asserts the one error shape and returns its `error` object."""
    assert response.status_code == status, response.content
    body = response.json()
    assert set(body["error"]) == {"code", "message", "details"}, body
    assert isinstance(body["error"]["message"], str) and body["error"]["message"]
    if code:
        assert body["error"]["code"] == code, body
    return body["error"]


def run_django(code: str, **env: str) -> str:
    """Runs `code` in a fresh Python process with Django set up and the given environment
    on top of ours; returns its stdout. For what must be seen from outside this process
    (settings chosen by the environment, a service down at start-up)."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    full_env = {**os.environ, "DJANGO_SETTINGS_MODULE": "tests.settings", "ALLOWED_HOSTS": "testserver", **env}
    script = "import django; django.setup()\n" + code
    result = subprocess.run(
        [sys.executable, "-c", script],
        cwd=Path(__file__).resolve().parent.parent,
        env=full_env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


def run_jobs() -> None:
    """What the worker does, in this process: due-or-not timers are released (as the RQ
    scheduler would once they are due), then every queued job runs; then the exports those
    jobs scheduled (a second later, warehouse.jobs.EXPORT_DELAY) are released and run too (a
    retry's timer set meanwhile waits for the next call). A no-op in the embedded default,
    where jobs already ran inline."""

    from rq import SimpleWorker
    from rq.job import Job
    from rq.registry import ScheduledJobRegistry

    from analytics_platform.redis import redis_client
    from events.queueing import ingest_queue
    from warehouse.jobs import EXPORT_JOB

    client = redis_client()
    if client is None:
        return
    queue = ingest_queue()
    registry = ScheduledJobRegistry(queue=queue)
    for round_ in range(10):
        timers = [Job.fetch(job_id, connection=client) for job_id in registry.get_jobs_to_schedule(10**12)]
        if round_:
            timers = [job for job in timers if job.func_name == EXPORT_JOB]
        for job in timers:
            queue.enqueue_job(job)
            registry.remove(job.id)
        if round_ and not timers:
            return
        SimpleWorker([queue], connection=client).work(burst=True)


def stored(project) -> list:
    from events.models import Event

    return list(Event.objects.filter(project=project).order_by("timestamp", "id"))


def event(user="u1", name="page_view", ts="2024-01-01T10:00:00Z", **fields) -> dict:
    return {"userId": user, "eventName": name, "timestamp": ts, **fields}


def store_events(project, events, *, publish: bool = False) -> None:
    """Stores (user, event name, aware datetime[, properties[, session id]]) tuples directly
    through the persistence service, as the worker would (publishing to the live stream too
    with `publish`)."""
    from datetime import UTC, datetime

    from events.services import events_persist
    from events.validation import validate_event

    rows = []
    for i, (user, name, moment, *rest) in enumerate(events):
        raw = {
            "userId": user,
            "eventName": name,
            "timestamp": moment.isoformat(),
            "eventId": f"t{i}-{moment.timestamp()}",
        }
        if rest:
            raw["properties"] = rest[0]
        if len(rest) > 1:
            raw["sessionId"] = rest[1]
        row, errors = validate_event(raw, received_at=datetime(2030, 1, 1, tzinfo=UTC), client_ip=None, user_agent=None)
        assert errors is None, errors
        rows.append(row.as_job_row())
    for start in range(0, len(rows), 2000):
        events_persist(project_id=project.id, rows=rows[start : start + 2000], publish=publish)
