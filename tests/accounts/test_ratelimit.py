import logging

import pytest
from django.test import override_settings

from accounts.models import ApiKey
from tests.helpers import assert_error


def _exhaust(client, limit):
    responses = [client.get("/api/v1/project") for _ in range(limit + 1)]
    return responses[:-1], responses[-1]


def _check_limit(project, make_key, client_for):
    client = client_for(make_key(project, scopes=["read"], rate_limit=3))
    allowed, refused = _exhaust(client, 3)
    assert [r.status_code for r in allowed] == [200, 200, 200]
    assert [r["X-RateLimit-Remaining"] for r in allowed] == ["2", "1", "0"]
    assert all(r["X-RateLimit-Limit"] == "3" for r in allowed)
    assert 1 <= int(allowed[0]["X-RateLimit-Reset"]) <= 60
    assert_error(refused, 429, "rate_limited")
    assert 1 <= int(refused["Retry-After"]) <= 60
    assert refused["X-RateLimit-Remaining"] == "0"
    return client


@pytest.mark.django_db
@override_settings(RATE_LIMIT_WINDOW_MS=60_000)
def test_per_key_limit_in_local_cache(project, make_key, client_for):
    _check_limit(project, make_key, client_for)


@pytest.mark.django_db
@pytest.mark.redis
@override_settings(RATE_LIMIT_WINDOW_MS=60_000)
def test_per_key_limit_in_real_redis(redis_cache, project, make_key, client_for):
    _check_limit(project, make_key, client_for)
    counters = [k for k in redis_cache.scan_iter("*ratelimit*")]
    assert counters, "the counter must live in Redis"
    assert 0 < redis_cache.ttl(counters[0]) <= 61


@pytest.mark.django_db
@override_settings(RATE_LIMIT_WINDOW_MS=60_000, RATE_LIMIT_MAX_REQUESTS=2)
def test_default_limit_applies_and_keys_are_independent(project, make_key, client_for):
    first = client_for(make_key(project, scopes=["read"]))
    second = client_for(make_key(project, scopes=["read"]))
    assert [first.get("/api/v1/project").status_code for _ in range(3)] == [200, 200, 429]
    assert second.get("/api/v1/project").status_code == 200


@pytest.mark.django_db
@override_settings(RATE_LIMIT_WINDOW_MS=60_000)
def test_401_does_not_count_against_a_key(project, make_key, client_for):
    plaintext = make_key(project, scopes=["read"], rate_limit=1)
    for _ in range(5):
        assert_error(client_for(plaintext + "x").get("/api/v1/project"), 401)
    assert client_for(plaintext).get("/api/v1/project").status_code == 200


@pytest.mark.django_db
@override_settings(RATE_LIMIT_WINDOW_MS=2_000)
def test_window_resets(project, make_key, client_for):
    import time

    client = client_for(make_key(project, scopes=["read"], rate_limit=1))
    time.sleep(2 - time.time() % 2)  # at a window's start: both requests fall in one window
    assert client.get("/api/v1/project").status_code == 200
    refused = client.get("/api/v1/project")
    assert refused.status_code == 429
    time.sleep(int(refused["Retry-After"]) + 0.05)
    assert client.get("/api/v1/project").status_code == 200


@pytest.mark.django_db
def test_redis_down_fails_open_with_a_warning(unreachable_redis_cache, project, make_key, client_for, caplog):
    client = client_for(make_key(project, scopes=["read"], rate_limit=1))
    with caplog.at_level(logging.WARNING):
        statuses = [client.get("/api/v1/project").status_code for _ in range(3)]
    assert statuses == [200, 200, 200]
    warnings = [r for r in caplog.records if "rate_limiter_unavailable" in str(r.msg)]
    assert len(warnings) == 3
    assert ApiKey.objects.filter(project=project).count() == 1


def _post_event(client, i):
    return client.post("/api/v1/events", {"userId": f"u{i}", "eventName": "view"}, format="json")


def _check_ingest_bucket(project, make_key, client_for, rate):
    """`rate` per second, bursts of 2 x rate: of rapid posts, at least the burst and at most
    the burst plus what refilled meanwhile get through; the rest are 429 and store nothing."""
    import time

    from events.models import Event
    from tests.helpers import run_jobs

    client = client_for(make_key(project, scopes=["ingest"], ingest_rate_limit=rate))
    started = time.monotonic()
    responses = [_post_event(client, i) for i in range(2 * rate + 4)]
    elapsed = time.monotonic() - started
    allowed = [r for r in responses if r.status_code == 202]
    refused = [r for r in responses if r.status_code != 202]
    assert 2 * rate <= len(allowed) <= 2 * rate + int(elapsed * rate) + 1
    assert refused and all(r.status_code == 429 for r in refused)
    assert_error(refused[0], 429, "rate_limited")
    assert 1 <= int(refused[0]["Retry-After"]) <= 2
    assert allowed[0]["X-RateLimit-Limit"] == str(rate)
    run_jobs()
    assert Event.objects.filter(project=project).count() == len(allowed)
    return client


@pytest.mark.django_db
def test_ingestion_has_its_own_token_bucket(project, make_key, client_for):
    _check_ingest_bucket(project, make_key, client_for, rate=2)


@pytest.mark.django_db
@pytest.mark.redis
def test_ingestion_token_bucket_in_real_redis(redis_cache, project, make_key, client_for):
    _check_ingest_bucket(project, make_key, client_for, rate=2)
    buckets = list(redis_cache.scan_iter("*ratelimit:ingest:*"))
    assert len(buckets) == 1 and 0 < redis_cache.pttl(buckets[0]) <= 3000


@pytest.mark.django_db
@override_settings(RATE_LIMIT_WINDOW_MS=60_000, RATE_LIMIT_MAX_REQUESTS=1, INGEST_RATE_LIMIT_PER_SECOND=1000)
def test_ingestion_does_not_count_against_the_read_limit(project, make_key, client_for):
    client = client_for(make_key(project, scopes=["ingest", "read"]))
    assert [_post_event(client, i).status_code for i in range(150)] == [202] * 150
    assert client.get("/api/v1/project").status_code == 200
    assert client.get("/api/v1/project").status_code == 429
    assert _post_event(client, 999).status_code == 202  # reads exhausted, ingestion goes on


@pytest.mark.django_db
@override_settings(INGEST_RATE_LIMIT_PER_SECOND=1)
def test_a_keys_ingest_limit_overrides_the_default(project, make_key, client_for):
    generous = client_for(make_key(project, scopes=["ingest"], ingest_rate_limit=500))
    assert [_post_event(generous, i).status_code for i in range(20)] == [202] * 20
    default = client_for(make_key(project, scopes=["ingest"]))
    assert 429 in [_post_event(default, i).status_code for i in range(8)]
