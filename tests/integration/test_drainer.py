"""The ingest buffer's drainer (events.drainer) in a real `rqworker` process: single events
are stored as they arrive, not at the buffer's timer, and a worker killed while storing a
batch loses and doubles nothing (the next worker puts its list back into the buffer)."""

import os
import signal
import time

import psycopg
import pytest
from django.db import connection

from events.drainer import DRAINING_PREFIX
from events.models import Event
from events.queueing import BUFFER_KEY
from tests.helpers import event
from tests.integration.test_worker_crash import start_worker, wait_for

pytestmark = pytest.mark.redis


def stop(worker) -> None:
    os.killpg(worker.pid, signal.SIGKILL)
    worker.wait(timeout=10)


def test_single_events_are_stored_as_they_come_not_at_the_buffer_timer(
    postgres, redis_cache, redis_url, post_events, settings, tmp_path
):
    settings.EVENT_BUFFER_TIMEOUT_MS = 3_600_000  # the timer's drain would come in an hour
    worker = start_worker(redis_url, tmp_path / "worker.log")  # no scheduler: no timed drain at all
    try:
        for i in range(5):
            assert post_events(event(f"u{i}")).json()["accepted"] == 1
            wait_for(lambda i=i: Event.objects.filter(user_id=f"u{i}").exists(), timeout=20)
        assert Event.objects.count() == 5
        assert redis_cache.llen(BUFFER_KEY) == 0
        # and it works at a lower priority than ours (the web's), by WORKER_NICE
        ours = os.getpriority(os.PRIO_PROCESS, 0)
        assert os.getpriority(os.PRIO_PROCESS, worker.pid) == min(19, ours + settings.WORKER_NICE) > ours
    finally:
        stop(worker)


def test_a_worker_killed_while_draining_loses_and_doubles_nothing(
    postgres, redis_cache, redis_url, post_events, settings, tmp_path
):
    settings.EVENT_BUFFER_TIMEOUT_MS = 3_600_000
    s = connection.settings_dict
    holder = psycopg.connect(host=s["HOST"], port=s["PORT"] or 5432, user=s["USER"], dbname=s["NAME"])
    holder.execute("LOCK TABLE events_event IN ACCESS EXCLUSIVE MODE")  # its insert blocks here
    first = start_worker(redis_url, tmp_path / "first.log")
    try:
        for i in range(30):
            assert post_events(event(f"u{i}", properties={"i": i})).json()["accepted"] == 1

        def taken_by_the_first():
            lists = list(redis_cache.scan_iter(f"{DRAINING_PREFIX}*"))
            return redis_cache.llen(BUFFER_KEY) == 0 and sum(redis_cache.llen(key) for key in lists) == 30

        wait_for(taken_by_the_first)
        time.sleep(0.3)
        stop(first)
    finally:
        holder.rollback()
        holder.close()
    assert Event.objects.count() == 0
    second = start_worker(redis_url, tmp_path / "second.log")
    try:
        wait_for(lambda: Event.objects.count() >= 30, timeout=60)  # once the first's liveness key is gone
        time.sleep(1)
        assert Event.objects.count() == 30
        assert sorted(Event.objects.values_list("properties__i", flat=True)) == list(range(30))
        wait_for(lambda: not list(redis_cache.scan_iter(f"{DRAINING_PREFIX}*")))
        assert redis_cache.llen(BUFFER_KEY) == 0
    finally:
        stop(second)


@pytest.mark.redis
def test_a_gone_workers_list_stays_while_redis_refuses_writes(redis_cache):
    """At maxmemory Redis refuses the list's move back to the buffer but not a DEL: the list
    of accepted events must stay, for the maintenance's next round, not be dropped."""
    from redis.exceptions import ResponseError

    from events.drainer import DRAINERS_KEY, abandoned_return, draining_key

    client = redis_cache
    client.rpush(draining_key("gone"), b"[1, []]", b"[1, []]")
    client.sadd(DRAINERS_KEY, "gone")
    policy = client.config_get("maxmemory-policy")["maxmemory-policy"]
    limit = client.config_get("maxmemory")["maxmemory"]
    client.config_set("maxmemory-policy", "noeviction")  # refuse writes, never evict
    client.config_set("maxmemory", 1)
    try:
        with pytest.raises(ResponseError, match="maxmemory"):
            abandoned_return(client, lambda name: True)
    finally:
        client.config_set("maxmemory", limit)
        client.config_set("maxmemory-policy", policy)
    assert client.llen(draining_key("gone")) == 2 and client.sismember(DRAINERS_KEY, "gone")
    assert abandoned_return(client, lambda name: True) == 2 and client.llen(BUFFER_KEY) == 2
    assert not client.sismember(DRAINERS_KEY, "gone")
