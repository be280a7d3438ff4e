"""Ingestion when things go wrong: Redis flushed or unreachable, the database refusing
writes, concurrent duplicates, and the single-event buffer's guarantees."""

import threading

import psycopg
import pytest
from django.db import connection
from django.test import Client
from rq.registry import ScheduledJobRegistry

from analytics_platform.redis import redis_client
from events import drainer
from events import jobs as job_module
from events.models import Event
from events.queueing import BUFFER_KEY, ingest_queue
from tests.helpers import assert_error, event, run_jobs, stored


@pytest.mark.django_db
@pytest.mark.redis
def test_dedup_holds_after_a_redis_flush(redis_cache, post_events, project, jobs):
    assert post_events([event("a"), event("b", eventId="id-b")]).json()["accepted"] == 2
    jobs()
    redis_cache.flushdb()
    again = post_events([event("a"), event("b", eventId="id-b"), event("c")])
    assert again.status_code == 202  # the fast path forgot; the constraint did not
    jobs()
    assert sorted(e.user_id for e in stored(project)) == ["a", "b", "c"]


@pytest.mark.django_db
def test_redis_unreachable_writes_synchronously(unreachable_redis_cache, post_events, project):
    response = post_events([event("a"), event("b"), event("a")])
    assert response.status_code == 202
    assert response.json() == {"accepted": 2, "duplicates": 1, "rejected": []}
    assert sorted(e.user_id for e in stored(project)) == ["a", "b"]  # already stored, no worker involved
    retried = post_events([event("a"), event("b")])
    assert retried.json() == {"accepted": 0, "duplicates": 2, "rejected": []}
    assert len(stored(project)) == 2


def test_database_refusing_writes_with_redis_down_is_503_and_nothing_is_stored(
    postgres, unreachable_redis_cache, post_events, project
):
    settings = postgres.settings_dict
    holder = psycopg.connect(
        host=settings["HOST"], port=settings["PORT"] or 5432, user=settings["USER"], dbname=settings["NAME"]
    )
    try:
        holder.execute("LOCK TABLE events_event IN ACCESS EXCLUSIVE MODE")
        with postgres.cursor() as cursor:
            cursor.execute("SET lock_timeout = '300ms'")
        response = post_events([event("a"), event("b")])
    finally:
        holder.rollback()
        holder.close()
        with postgres.cursor() as cursor:
            cursor.execute("SET lock_timeout = 0")
    assert_error(response, 503, "service_unavailable")
    assert response["Retry-After"]
    assert Event.objects.count() == 0
    assert post_events([event("a"), event("b")]).json()["accepted"] == 2  # and a retry is welcome


@pytest.mark.parametrize("redis_state", ["reachable", "unreachable"])
def test_two_concurrent_requests_with_the_same_event_id_store_one_row(
    postgres, redis_state, request, project, ingest_key
):
    request.getfixturevalue("redis_cache" if redis_state == "reachable" else "unreachable_redis_cache")
    barrier = threading.Barrier(8)
    bodies = []

    def send(i):
        try:
            barrier.wait()
            response = Client().post(
                "/api/v1/events",
                event(f"u{i}", eventId="same-id"),
                content_type="application/json",
                headers={"X-API-Key": ingest_key},
            )
            bodies.append(response.json())
        finally:
            connection.close()

    threads = [threading.Thread(target=send, args=(i,)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if redis_state == "reachable":
        run_jobs()
    assert sum(b["accepted"] for b in bodies) == 1 and sum(b["duplicates"] for b in bodies) == 7
    assert Event.objects.filter(event_id="same-id").count() == 1


@pytest.mark.django_db
@pytest.mark.redis
def test_single_events_are_coalesced_into_one_timed_drain(redis_cache, post_events, project, jobs, settings):
    settings.EVENT_BUFFER_TIMEOUT_MS = 60_000
    for i in range(40):
        assert post_events(event(f"u{i}")).json()["accepted"] == 1
    queue = ingest_queue()
    assert queue.count == 0  # no job per event
    assert ScheduledJobRegistry(queue=queue).count == 1  # one timer for the buffer
    assert redis_client().llen(BUFFER_KEY) == 40
    assert Event.objects.count() == 0
    jobs()
    assert Event.objects.count() == 40 and redis_client().llen(BUFFER_KEY) == 0
    post_events(event("late"))
    assert ScheduledJobRegistry(queue=queue).count == 1  # the next event arms a new timer
    jobs()
    assert Event.objects.count() == 41


@pytest.mark.django_db
@pytest.mark.redis
def test_a_drain_killed_midway_is_finished_by_its_retry(redis_cache, post_events, project, jobs):
    for i in range(5):
        post_events(event(f"first{i}"))
    client = redis_client()
    (job_id,) = ScheduledJobRegistry(queue=ingest_queue()).get_job_ids()
    # The job had taken the buffer and died before storing it:
    client.rename(BUFFER_KEY, f"{BUFFER_KEY}:processing:{job_id}")
    for i in range(3):
        post_events(event(f"later{i}"))
    jobs()
    assert Event.objects.count() == 8
    assert not list(client.scan_iter(f"{BUFFER_KEY}*"))


@pytest.mark.django_db
@pytest.mark.redis
def test_drains_take_a_bounded_number_of_bytes_but_any_item_whole(
    redis_cache, post_events, project, jobs, settings, monkeypatch
):
    """An item holds a request's events, so takes are bounded in bytes: the drain job takes
    at least one item, however large, and the drainer's take stops where the bytes would
    pass TAKE_BYTES."""
    settings.EVENT_BUFFER_TIMEOUT_MS = 60_000
    for i in range(3):
        post_events([event(f"u{i}-{j}") for j in range(4)])
    client = redis_client()
    sizes = [len(item) for item in client.lrange(BUFFER_KEY, 0, -1)]
    assert len(sizes) == 3
    stores = []
    real_store = job_module.store_buffered
    monkeypatch.setattr(job_module, "store_buffered", lambda *args: stores.append(1) or real_store(*args))
    monkeypatch.setattr(job_module, "TAKE_BYTES", 1)  # smaller than any item
    jobs()
    assert Event.objects.count() == 12 and len(stores) == 3  # an item at a time

    for i in range(3):
        post_events([event(f"v{i}-{j}") for j in range(4)])
    monkeypatch.setattr(drainer, "TAKE_BYTES", sum(sizes[:2]))  # two of them
    assert drainer.Drainer(client, "bounded")._take_batch()
    assert client.llen(drainer.draining_key("bounded")) == 2 and client.llen(BUFFER_KEY) == 1
    client.delete(drainer.draining_key("bounded"))


def lock_timeout_setter(postgres):
    """Sets lock_timeout for every new connection to the test database and empties the pool,
    so the app's next connections (whichever thread or job takes them) have it."""
    settings = postgres.settings_dict

    def set_lock_timeout(value: str) -> None:
        with psycopg.connect(host=settings["HOST"], user=settings["USER"], dbname="postgres", autocommit=True) as admin:
            admin.execute(f'ALTER DATABASE "{settings["NAME"]}" SET lock_timeout = {value}')
        postgres.close()  # this thread's own connection too
        postgres.close_pool()

    return set_lock_timeout


@pytest.mark.redis
def test_a_job_the_database_keeps_refusing_retries_with_backoff_then_lands_in_the_failed_registry(
    postgres, redis_cache, project, post_events, jobs
):
    """An outage (here: the events table locked past lock_timeout) is not the events' fault:
    the whole job is retried, and nothing becomes a dead letter."""
    from rq.job import Job
    from rq.registry import FailedJobRegistry

    from events.models import DeadLetter
    from events.queueing import RETRY

    batch = [event(f"u{i}", ts=1704103200000 + i) for i in range(20)]
    assert post_events(batch).json()["accepted"] == 20
    queue = ingest_queue()
    (job_id,) = queue.job_ids
    settings = postgres.settings_dict
    holder = psycopg.connect(
        host=settings["HOST"], port=settings["PORT"] or 5432, user=settings["USER"], dbname=settings["NAME"]
    )
    holder.execute("LOCK TABLE events_event IN ACCESS EXCLUSIVE MODE")
    set_lock_timeout = lock_timeout_setter(postgres)
    set_lock_timeout("'100ms'")
    try:
        waits = []
        for _ in range(RETRY.max):
            jobs()
            scheduled = ScheduledJobRegistry(queue=queue)
            assert scheduled.get_job_ids() == [job_id]  # failed, and waiting to be retried
            waits.append(scheduled.get_expiration_time(Job.fetch(job_id, connection=queue.connection)))
        assert waits == sorted(waits)  # the backoff grows
        jobs()
        assert FailedJobRegistry(queue=queue).get_job_ids() == [job_id]
    finally:
        holder.rollback()
        holder.close()
        set_lock_timeout("DEFAULT")
    assert Event.objects.count() == 0 and DeadLetter.objects.count() == 0
    FailedJobRegistry(queue=queue).requeue(job_id)  # what an operator does once it is back
    jobs()
    assert Event.objects.count() == 20


@pytest.mark.django_db
def test_stored_events_are_published_once_to_the_projects_group(post_events, project, jobs):
    from asgiref.sync import async_to_sync
    from channels.layers import get_channel_layer

    from events.live.publish import listeners_add, listeners_remove, project_group

    layer = get_channel_layer()
    channel = async_to_sync(layer.new_channel)()
    listeners_add(project.id)  # as a process with sockets does: writers publish only then
    async_to_sync(layer.group_add)(project_group(project.id), channel)
    post_events([event("a", properties={"k": 1}), event("b", sessionId="s1")])
    jobs()
    post_events([event("a", properties={"k": 1}), event("c")])  # "a" again: only "c" is new
    jobs()

    async def receive_all():  # one event loop for every receive, as a consumer has
        import asyncio

        messages = [await layer.receive(channel), await layer.receive(channel)]
        with pytest.raises(asyncio.TimeoutError):
            await asyncio.wait_for(layer.receive(channel), 0.3)
        return messages

    first, second = async_to_sync(receive_all)()
    listeners_remove(project.id)
    assert first["type"] == second["type"] == "events.stored"
    assert [(e["userId"], e["eventName"], e["properties"], e["sessionId"]) for e in first["events"]] == [
        ("a", "page_view", {"k": 1}, None),
        ("b", "page_view", {}, "s1"),
    ]
    assert [e["userId"] for e in second["events"]] == ["c"]


@pytest.mark.django_db
@pytest.mark.redis
def test_events_written_while_redis_was_down_are_duplicates_once_it_is_back(
    request, redis_url, post_events, project, jobs
):
    """During the outage the events go straight to the database, with no claim in Redis;
    resent after Redis is back, they are still counted as duplicates, not accepted again."""
    from django.test import override_settings

    from events.models import DirectWrite

    outage = request.getfixturevalue("unreachable_redis_cache")  # noqa: F841 (applies the settings)
    during = [event(f"d{i}", ts=1704103200000 + i) for i in range(30)]
    assert post_events(during).json()["accepted"] == 30
    assert post_events(event("single-during")).json()["accepted"] == 1
    assert DirectWrite.objects.filter(project=project).exists()
    caches = {"default": {"BACKEND": "django_redis.cache.RedisCache", "LOCATION": redis_url, "KEY_PREFIX": "ap-test"}}
    with override_settings(CACHES=caches, REDIS_URL=redis_url):
        redis_client().flushdb()
        resent = post_events([*during, event("new-after"), event("single-during")]).json()
        assert (resent["accepted"], resent["duplicates"]) == (1, 31)
        again = post_events(during[:5]).json()  # now claimed in Redis too
        assert (again["accepted"], again["duplicates"]) == (0, 5)
        jobs()
        assert Event.objects.filter(project=project).count() == 32
        redis_client().flushdb()


@pytest.mark.redis
def test_events_are_queued_while_the_database_cannot_record_a_keys_use(postgres, redis_cache, project, make_key, jobs):
    """Recording when a key was last used is a write to the database; when that write
    fails, ingestion (which only needs Redis) still answers 202."""
    from accounts.models import ApiKey

    key = make_key(project, scopes=["ingest"])
    settings = postgres.settings_dict
    holder = psycopg.connect(
        host=settings["HOST"], port=settings["PORT"] or 5432, user=settings["USER"], dbname=settings["NAME"]
    )
    holder.execute("LOCK TABLE accounts_apikey IN EXCLUSIVE MODE")  # reads pass, the UPDATE waits
    set_lock_timeout = lock_timeout_setter(postgres)
    set_lock_timeout("'100ms'")
    try:
        response = Client().post(
            "/api/v1/events", event("u1"), content_type="application/json", headers={"X-API-Key": key}
        )
    finally:
        holder.rollback()
        holder.close()
        set_lock_timeout("DEFAULT")
    assert response.status_code == 202, response.content
    assert ApiKey.objects.get(project=project).last_used_at is None  # the write did fail
    jobs()
    assert Event.objects.filter(project=project).count() == 1
