import json

import pytest
from django.test import Client, override_settings

from tests.helpers import run_django


@pytest.mark.django_db
def test_health_ok_without_redis_configured():
    with override_settings(REDIS_URL=""):
        response = Client().get("/health")
    assert response.status_code == 200
    assert response.json() == {"status": "ok", "database": "ok", "redis": "disabled"}


@pytest.mark.django_db
@pytest.mark.redis
def test_health_ok_with_real_redis(redis_url):
    with override_settings(REDIS_URL=redis_url):
        response = Client().get("/health")
    assert response.status_code == 200
    assert response.json() == {"status": "ok", "database": "ok", "redis": "ok"}


@pytest.mark.django_db
def test_health_503_names_redis_when_it_is_down():
    with override_settings(REDIS_URL="redis://127.0.0.1:1/0"):
        response = Client().get("/health")
    assert response.status_code == 503
    body = response.json()
    assert body["database"] == "ok" and body["redis"] == "down" and body["status"] == "unavailable"
    assert body["error"]["code"] == "service_unavailable" and "redis" in body["error"]["message"]
    assert response["Retry-After"]


def test_health_503_names_the_database_when_it_is_down():
    """A server process whose database cannot be reached (nothing listens on port 1)."""
    out = run_django(
        "from django.test import Client; r = Client().get('/health'); print(r.status_code, r.content.decode())",
        DATABASE_URL="postgres://postgres@127.0.0.1:1/nothing",
        REDIS_URL="",
    )
    status, body = out.strip().splitlines()[-1].split(" ", 1)
    assert status == "503"
    body = json.loads(body)
    assert body["database"] == "down" and body["redis"] == "disabled"
    assert "database" in body["error"]["message"]


@pytest.mark.django_db
def test_health_answers_probes_by_address_whatever_allowed_hosts_is():
    """The Docker HEALTHCHECK calls http://127.0.0.1:$PORT/health while ALLOWED_HOSTS names
    the public host; every other path still refuses an unknown Host."""
    with override_settings(ALLOWED_HOSTS=["analytics.example.com"], REDIS_URL=""):
        probe = Client().get("/health", HTTP_HOST="127.0.0.1:8000")
        head = Client().head("/health", HTTP_HOST="127.0.0.1")
        elsewhere = Client().get("/api/v1/project", HTTP_HOST="127.0.0.1:8000")
        admin = Client().get("/admin/", HTTP_HOST="127.0.0.1")
        public = Client().get("/api/v1/project", HTTP_HOST="analytics.example.com")
    assert probe.status_code == 200, probe.content
    assert probe.json() == {"status": "ok", "database": "ok", "redis": "disabled"}
    assert probe["X-Request-ID"]  # still logged like any request
    assert head.status_code == 200
    assert elsewhere.status_code == 400 and admin.status_code == 400
    assert public.status_code == 401  # a known host reaches the API (and wants a key)
