"""Poison events: rows the database refuses for their content, put straight into a job or
the ingest buffer (as if validation had missed them), never hold back the good ones — of the
same batch or of another tenant — and are kept as dead letters, once, with their error."""

import json
from datetime import UTC, datetime

import pytest
from django.contrib.auth.models import User
from django.db import connection
from django.test import Client
from rq.registry import FailedJobRegistry, ScheduledJobRegistry

from events.models import DeadLetter, Event
from events.queueing import BUFFER_KEY, buffer_push, enqueue_rows, ingest_queue
from events.validation import validate_event
from tests.helpers import stored

RECEIVED = datetime(2024, 1, 2, tzinfo=UTC)


def good_row(user: str, i: int = 0) -> list:
    raw = {"userId": user, "eventName": "view", "timestamp": f"2024-01-01T10:00:{i:02d}Z", "eventId": f"{user}-{i}"}
    row, errors = validate_event(raw, received_at=RECEIVED, client_ip=None, user_agent=None)
    assert errors is None
    return row.as_job_row()


def with_value(user: str, position: int, value) -> list:
    row = good_row(user)
    row[position] = value
    return row


# Refused by every database: text that is no Unicode, a row of the wrong shape, no user,
# properties that are not JSON, a timestamp that is not one.
BAD_EVERYWHERE = {
    "surrogate in event name": with_value("b1", 2, "\ud800"),
    "surrogate in user id": with_value("b2", 1, "u\udfff"),
    "surrogate in a property key": with_value("b3", 4, json.dumps({"k\ud800": 1}, ensure_ascii=False)),
    "surrogate in a nested value": with_value("b4", 4, json.dumps({"a": [{"b": "\udbff"}]}, ensure_ascii=False)),
    "properties not JSON": with_value("b5", 4, "{not json"),
    "timestamp not a timestamp": with_value("b6", 3, "the day after"),
    "no user": with_value("b7", 1, None),
    "row too short": good_row("b8")[:5],
    "not a row": {"userId": "b9"},
}
# PostgreSQL refuses these too; SQLite stores them as they are.
BAD_ON_POSTGRESQL = {
    "NUL in user id": with_value("p1", 1, "u\x00"),
    "NUL escape in properties": with_value("p2", 4, '{"a": "\\u0000"}'),
    "NUL in a property key": with_value("p3", 4, '{"k\\u0000": 1}'),
    "not an IP address": with_value("p4", 8, "999.1.1.1"),
    "user id too long": with_value("p5", 1, "u" * 300),
}


def bad_rows() -> dict:
    return {**BAD_EVERYWHERE, **(BAD_ON_POSTGRESQL if connection.vendor == "postgresql" else {})}


def assert_only_good_stored(project, users):
    assert sorted(e.user_id for e in stored(project)) == sorted(users)


@pytest.mark.django_db
def test_a_job_stores_every_good_row_and_sets_each_bad_one_aside(project, jobs):
    bad = bad_rows()
    good = [good_row(f"g{i}") for i in range(6)]
    rows = [good[0], *list(bad.values())[:4], good[1], good[2], *list(bad.values())[4:], *good[3:]]
    result = enqueue_rows(project.id, rows)  # a job, as the API would enqueue it
    jobs()
    assert_only_good_stored(project, [f"g{i}" for i in range(6)])
    letters = list(DeadLetter.objects.filter(project=project).order_by("id"))
    assert sorted(letter.payload for letter in letters) == sorted(json.dumps(row) for row in bad.values())
    assert all(letter.error and letter.attempts == 1 for letter in letters)
    assert any("surrogates not allowed" in letter.error for letter in letters)
    if result is not None:  # the embedded default ran it inline and says what the database did
        refused_positions = [position for position, _ in result["refused"]]
        assert result["stored"] == 6
        assert [rows[position] for position in refused_positions] == [r for r in rows if r not in good]
    else:  # a worker ran it: finished, not failed or waiting for a retry
        queue = ingest_queue()
        assert FailedJobRegistry(queue=queue).count == 0 and ScheduledJobRegistry(queue=queue).count == 0


@pytest.mark.django_db
@pytest.mark.parametrize("kind", [*BAD_EVERYWHERE, *BAD_ON_POSTGRESQL])
def test_each_kind_of_bad_value_alone_in_a_job(kind, project, jobs):
    bad = {**BAD_EVERYWHERE, **BAD_ON_POSTGRESQL}[kind]
    refused_here = kind in BAD_EVERYWHERE or connection.vendor == "postgresql"
    others = [good_row(f"x{i}") for i in range(20)]
    enqueue_rows(project.id, [good_row("before", 1), bad, good_row("after", 2), *others])
    jobs()
    users = {e.user_id for e in stored(project)}
    assert {"before", "after"} <= users and len([u for u in users if u.startswith("x")]) == 20
    assert DeadLetter.objects.filter(project=project).count() == (1 if refused_here else 0)


@pytest.mark.django_db
def test_a_retried_job_sets_a_bad_event_aside_once(project, jobs):
    from events.services import events_persist

    rows = [good_row("g"), BAD_EVERYWHERE["surrogate in event name"]]
    first = events_persist(project_id=project.id, rows=rows)
    again = events_persist(project_id=project.id, rows=rows)  # a job rerun after a crash
    assert (first.stored, len(first.refused)) == (1, 1)
    assert (again.stored, len(again.refused)) == (0, 1)
    assert DeadLetter.objects.count() == 1 and Event.objects.count() == 1


@pytest.mark.django_db
@pytest.mark.redis
def test_a_bad_event_in_the_buffer_delays_nobody(redis_cache, project, other_project, jobs):
    """One tenant's poison in the shared single-event buffer: every tenant's good events are
    stored by that same drain, and unreadable buffer items are kept too."""
    bad = bad_rows()
    buffer_push(redis_cache, project.id, [good_row("mine-1"), *bad.values(), good_row("mine-2", 3)])
    buffer_push(redis_cache, other_project.id, [good_row("theirs-1"), good_row("theirs-2", 4)])
    redis_cache.rpush(BUFFER_KEY, b"not json", b'{"a": 1}', b"\xff\xfe", json.dumps(["x", good_row("nobody")]))
    redis_cache.rpush(BUFFER_KEY, json.dumps([2**63, good_row("past-bigint")]))  # no database can look it up
    redis_cache.rpush(BUFFER_KEY, json.dumps([other_project.id + 1000, good_row("project-gone")]))  # skipped
    jobs()
    assert_only_good_stored(project, ["mine-1", "mine-2"])
    assert_only_good_stored(other_project, ["theirs-1", "theirs-2"])
    assert DeadLetter.objects.filter(project=project).count() == len(bad)
    assert DeadLetter.objects.filter(project=other_project).count() == 0
    unreadable = sorted(DeadLetter.objects.filter(project=None).values_list("payload", flat=True))
    assert len(unreadable) == 5 and "not json" in unreadable
    assert Event.objects.count() == 4
    assert redis_cache.llen(BUFFER_KEY) == 0
    queue = ingest_queue()
    assert FailedJobRegistry(queue=queue).count == 0 and ScheduledJobRegistry(queue=queue).count == 0


@pytest.fixture
def staff(db) -> Client:
    client = Client()
    client.force_login(User.objects.create_superuser("boss", "boss@example.com", "pw-for-tests-only"))
    return client


@pytest.mark.django_db
def test_the_admin_lists_retries_and_deletes_dead_letters(staff, project, jobs):
    from events.services import events_persist

    events_persist(project_id=project.id, rows=[BAD_EVERYWHERE["surrogate in event name"], BAD_EVERYWHERE["no user"]])
    page = staff.get("/admin/events/deadletter/")
    assert page.status_code == 200
    html = page.content.decode()
    assert "surrogates not allowed" in html and "Retry storing the selected events" in html
    still_bad, fixable = DeadLetter.objects.order_by("id")
    # As if a fix had made the event storable (say, a bug in the writer): retry stores it.
    repaired = good_row("repaired")
    fixable.payload = json.dumps(repaired)
    fixable.save()

    answer = staff.post(
        "/admin/events/deadletter/",
        {"action": "retry", "_selected_action": [still_bad.pk, fixable.pk]},
        follow=True,
    )
    assert answer.status_code == 200
    text = answer.content.decode()
    assert "1 stored" in text and "1 refused again" in text
    assert [e.user_id for e in stored(project)] == ["repaired"]
    (left,) = DeadLetter.objects.all()
    assert left.pk == still_bad.pk and left.attempts == 2 and "surrogates not allowed" in left.error

    staff.post(
        "/admin/events/deadletter/",
        {"action": "delete_selected", "_selected_action": [left.pk], "post": "yes"},
    )
    assert DeadLetter.objects.count() == 0
    assert staff.get(f"/admin/events/deadletter/{left.pk}/change/").status_code == 302  # gone


@pytest.mark.django_db
def test_deleting_a_project_deletes_its_dead_letters(project):
    from events.services import events_persist

    events_persist(project_id=project.id, rows=[BAD_EVERYWHERE["no user"]])
    assert DeadLetter.objects.count() == 1
    project.delete()
    assert DeadLetter.objects.count() == 0


@pytest.mark.django_db
def test_a_batch_partly_stored_stores_and_lists_in_the_outbox_only_its_new_rows(project, monkeypatch):
    """PostgreSQL's COPY straight into the table is refused whole by one stored row; the
    batch then goes through INSERT ... ON CONFLICT: the new rows, each once, each in the
    outbox once (an export left out of it: the outbox is read as the write left it)."""
    from events.services import events_persist
    from warehouse.models import Outbox

    monkeypatch.setattr("events.services.export_schedule", lambda project_id: None)
    rows = [good_row(f"p{i}", i) for i in range(10)]
    first = events_persist(project_id=project.id, rows=rows[3:6])
    second = events_persist(project_id=project.id, rows=rows)
    assert (first.stored, second.stored) == (3, 7)
    ids = dict(Event.objects.filter(project=project).values_list("event_id", "id"))
    assert sorted(ids) == sorted(row[0] for row in rows)
    outbox = [pk for row in Outbox.objects.filter(project_id=project.id) for pk in row.event_ids]
    assert sorted(outbox) == sorted(ids.values())
