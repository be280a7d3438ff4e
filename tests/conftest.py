import gzip
import json
import os
from datetime import date

import pytest
import redis
from django.core.cache import cache
from django.db import connection
from django.test import override_settings
from rest_framework.test import APIClient

from accounts.services import api_key_create, organization_get_or_create, project_get_or_create
from tests.helpers import run_jobs

REQUIRE_SERVICES = os.environ.get("REQUIRE_SERVICES") == "1"
LOCAL_REDIS_URL = "redis://127.0.0.1:6379/15"  # a db number of its own, flushed by the tests


def service_missing(reason: str):
    """Skips the test with the reason printed, or fails it when CI requires the services."""
    if REQUIRE_SERVICES:
        pytest.fail(f"REQUIRE_SERVICES=1 but {reason}", pytrace=False)
    pytest.skip(reason)


@pytest.fixture(scope="session")
def django_db_modify_db_settings(django_db_modify_db_settings_parallel_suffix, tmp_path_factory):
    """The embedded default's test database is a file, as in production, not Django's shared
    in-memory one: there every thread of the live server uses the test's own connection, and
    Django documents that concurrent queries on it fail at random ("database table is
    locked" while the browser posted events and the test read them). With a file, each
    thread connects on its own, under WAL and the busy timeout."""
    from django.conf import settings

    database = settings.DATABASES["default"]
    if database["ENGINE"] == "django.db.backends.sqlite3":
        database.setdefault("TEST", {})["NAME"] = str(tmp_path_factory.mktemp("database") / "test.sqlite3")


@pytest.fixture(autouse=True)
def _fresh_cache():
    cache.clear()
    yield


@pytest.fixture(scope="session")
def redis_url() -> str:
    url = os.environ.get("REDIS_URL") or LOCAL_REDIS_URL
    client = redis.Redis.from_url(url, socket_connect_timeout=1)
    try:
        client.ping()
    except redis.RedisError as exc:
        service_missing(f"Redis is not reachable at {url} ({type(exc).__name__})")
    finally:
        client.close()
    return url


@pytest.fixture
def redis_cache(redis_url):
    """The default cache on a real Redis server, emptied before and after the test."""
    caches = {
        "default": {
            "BACKEND": "django_redis.cache.RedisCache",
            "LOCATION": redis_url,
            "KEY_PREFIX": "ap-test",
            "OPTIONS": {"SOCKET_CONNECT_TIMEOUT": 1, "SOCKET_TIMEOUT": 1},
        }
    }
    with override_settings(CACHES=caches, REDIS_URL=redis_url):
        cache.clear()
        yield redis.Redis.from_url(redis_url)
        cache.clear()


@pytest.fixture
def unreachable_redis_cache():
    """A django-redis cache pointing at a port where nothing listens."""
    caches = {
        "default": {
            "BACKEND": "django_redis.cache.RedisCache",
            "LOCATION": "redis://127.0.0.1:1/0",
            "OPTIONS": {"SOCKET_CONNECT_TIMEOUT": 0.2, "SOCKET_TIMEOUT": 0.2},
        }
    }
    with override_settings(CACHES=caches, REDIS_URL="redis://127.0.0.1:1/0"):
        yield


@pytest.fixture
def project(db):
    org = organization_get_or_create(name="Acme")
    return project_get_or_create(organization=org, name="Web", timezone_name="UTC")


@pytest.fixture
def other_project(db):
    org = organization_get_or_create(name="Globex")
    return project_get_or_create(organization=org, name="App")


@pytest.fixture
def make_key(db):
    def make(project, scopes=("ingest", "read", "admin"), **kwargs) -> str:
        _, plaintext = api_key_create(project=project, name=kwargs.pop("name", "test"), scopes=list(scopes), **kwargs)
        return plaintext

    return make


@pytest.fixture
def client_for():
    """An API client sending the given key in X-API-Key."""

    def make(plaintext: str | None) -> APIClient:
        client = APIClient()
        if plaintext:
            client.credentials(HTTP_X_API_KEY=plaintext)
        return client

    return make


@pytest.fixture
def api(project, make_key, client_for) -> APIClient:
    return client_for(make_key(project))


@pytest.fixture
def postgres(transactional_db):
    """For what only PostgreSQL can show (concurrent sessions, table locks)."""
    if connection.vendor != "postgresql":
        service_missing("needs PostgreSQL as the database (set DATABASE_URL)")
    return connection


@pytest.fixture
def jobs():
    return run_jobs


@pytest.fixture
def ingest_key(project, make_key):
    return make_key(project, scopes=["ingest"])


@pytest.fixture
def post_events(client_for, ingest_key):
    """POSTs a payload (JSON-encoded unless bytes) to /api/v1/events with an ingest key."""
    client = client_for(ingest_key)

    def post(payload, *, compress=False, **extra):
        body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
        if compress:
            body = gzip.compress(body)
            extra.setdefault("HTTP_CONTENT_ENCODING", "gzip")
        content_type = extra.pop("content_type", "application/json")
        return client.generic("POST", "/api/v1/events", body, content_type=content_type, **extra)

    return post


@pytest.fixture(params=["tail", "mixed", "files"])
def mirror(request, monkeypatch):
    """Runs an analytics test three times, the stored events read from the database's
    not-yet-mirrored tail only, half from Parquet files and half from the tail, and all from
    compacted files, every month merged into a span: `ready(project)` puts the stored events
    in that state (nothing is exported by itself meanwhile) and checks it."""
    from django.db.models import Sum

    from warehouse.compact import partition_compact
    from warehouse.export import mirror_export, mirror_export_all, outbox_events
    from warehouse.models import MirrorFile
    from warehouse.spans import spans_merge

    monkeypatch.setattr("events.services.export_schedule", lambda project_id: None)

    class Mirror:
        name = request.param

        @staticmethod
        def ready(project):
            pending = outbox_events(project.id)
            if request.param == "mixed":
                mirror_export(project_id=project.id, limit=pending // 2)
            elif request.param == "files":
                mirror_export_all(project_id=project.id)
                live = MirrorFile.objects.filter(project=project, retired_at__isnull=True)
                for day in set(live.values_list("day", flat=True)):
                    partition_compact(project_id=project.id, day=day)
                spans_merge(project_id=project.id, today=date.max)  # every month's users merged
            live = MirrorFile.objects.filter(project=project, retired_at__isnull=True)
            in_files = live.aggregate(n=Sum("rows"))["n"] or 0
            in_tail = outbox_events(project.id)
            assert in_files + in_tail == pending
            assert (in_files > 0) == (request.param != "tail") or pending == 0
            assert (in_tail > 0) == (request.param != "files") or pending < 2

    return Mirror
