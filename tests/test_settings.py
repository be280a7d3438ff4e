"""The environment alone picks the mode (checked in fresh processes)."""

import json
import os
import secrets
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers import run_django

SHOW = """
import json
from django.conf import settings
print(json.dumps({
    "db": settings.DATABASES["default"]["ENGINE"],
    "cache": settings.CACHES["default"]["BACKEND"],
    "layer": settings.CHANNEL_LAYERS["default"]["BACKEND"],
    "rq_async": settings.RQ_QUEUES["default"]["ASYNC"],
    "rate": [settings.RATE_LIMIT_WINDOW_MS, settings.RATE_LIMIT_MAX_REQUESTS],
    "batch": settings.EVENT_BATCH_SIZE, "buffer": settings.EVENT_BUFFER_TIMEOUT_MS, "ttl": settings.CACHE_TTL_SECONDS,
    "hosts": settings.ALLOWED_HOSTS,
}))
"""


def show(**env) -> dict:
    return json.loads(run_django(SHOW, **env).strip().splitlines()[-1])


def test_nothing_set_is_the_embedded_default():
    mode = show(DATABASE_URL="", REDIS_URL="")
    assert mode["db"] == "django.db.backends.sqlite3"
    assert mode["cache"] == "django.core.cache.backends.locmem.LocMemCache"
    assert mode["layer"] == "channels.layers.InMemoryChannelLayer"
    assert mode["rq_async"] is False
    assert mode["rate"] == [900000, 100] and mode["batch"] == 1000 and mode["buffer"] == 5000


def test_urls_switch_to_postgres_and_redis():
    mode = show(
        DATABASE_URL="postgres://u@db:5432/x",
        REDIS_URL="redis://cache:6379/2",
        RATE_LIMIT_MAX_REQUESTS="7",
        CACHE_TTL_SECONDS="9",
        ALLOWED_HOSTS="a.example, b.example",
    )
    assert mode["db"] == "analytics_platform.postgresql"  # Django's backend, its pool made restart-proof
    assert mode["cache"] == "django_redis.cache.RedisCache"
    assert mode["layer"] == "channels_redis.core.RedisChannelLayer"
    assert mode["rq_async"] is True
    assert mode["rate"][1] == 7 and mode["ttl"] == 9
    assert mode["hosts"] == ["a.example", "b.example"]


def start(**env) -> subprocess.CompletedProcess:
    """Django set up on the real settings module (not tests.settings) in a fresh process."""
    full_env = {**os.environ, "DJANGO_SETTINGS_MODULE": "analytics_platform.settings", **env}
    return subprocess.run(
        [sys.executable, "-c", "import django; django.setup(); print('started')"],
        env=full_env,
        capture_output=True,
        text=True,
    )


def test_secret_key_is_required_when_debug_is_off():
    result = start(DEBUG="0", SECRET_KEY="")
    assert result.returncode != 0 and "SECRET_KEY must be set" in result.stderr
    assert "secrets.token_urlsafe(50)" in result.stderr  # how to make one


@pytest.mark.parametrize(
    ("key", "reason"),
    [
        ("change-me", "is a placeholder"),  # env.example's old value
        ("CHANGEME", "is a placeholder"),
        ("secret", "is a placeholder"),
        ("please-change-me-to-something-long-and-random-in-production", "is a placeholder"),
        ("django-insecure-3x!m@q9v#w1z$k7p%r2t^y5u&i8o*a0s(d)f_g+h=j4l", "is a placeholder"),
        ("Zk3vQ9mW2xR7pL4tN8cB1yH6", "is 24 characters long, fewer than 32"),
        ("abababababababababababababababababababababababababab", "has fewer than 5 distinct characters"),
    ],
)
def test_insecure_secret_keys_are_refused_when_debug_is_off(key, reason):
    result = start(DEBUG="0", SECRET_KEY=key)
    assert result.returncode != 0, result.stdout
    assert "ImproperlyConfigured" in result.stderr and f"SECRET_KEY {reason}" in result.stderr, result.stderr
    if len(key) >= 20:
        assert key not in result.stderr  # the message never repeats a real-looking key


@pytest.mark.parametrize(
    ("key", "debug"),
    [
        (secrets.token_urlsafe(50), "0"),
        (secrets.token_hex(16), "0"),  # 32 characters: the least accepted
        ("change-me", "1"),  # development mode accepts anything
    ],
)
def test_good_secret_keys_start(key, debug):
    result = start(DEBUG=debug, SECRET_KEY=key)
    assert result.returncode == 0 and "started" in result.stdout, result.stderr


def test_env_example_cannot_be_copied_as_is_into_production():
    """env.example leaves SECRET_KEY empty, so a copied file fails loudly at start."""
    lines = (Path(__file__).resolve().parent.parent / "env.example").read_text().splitlines()
    assert "SECRET_KEY=" in lines and "DEBUG=0" in lines


PREFIXES = """
import json
from django.conf import settings
print(json.dumps([settings.CACHES["default"]["KEY_PREFIX"], settings.CHANNEL_LAYERS["default"]["CONFIG"]["prefix"]]))
"""


def prefixes(**env) -> list[str]:
    """The cache key prefix and the channel layer prefix a process with this environment uses."""
    env = {"REDIS_URL": "redis://cache:6379/2", "DEPLOYMENT_NAME": "", **env}
    return json.loads(run_django(PREFIXES, **env).strip().splitlines()[-1])


def test_each_deployment_has_its_own_cache_namespace_derived_from_its_database():
    staging = prefixes(DATABASE_URL="postgres://app:one@db.internal:5432/analytics_staging")
    production = prefixes(DATABASE_URL="postgres://app:one@db.internal:5432/analytics")
    elsewhere = prefixes(DATABASE_URL="postgres://app:one@db2.internal:5432/analytics")
    # the same database, however the URL spells it (password, default port, scheme, options)
    again = prefixes(DATABASE_URL="postgresql://other:two@DB.internal/analytics?sslmode=require")
    cache_prefix, channel_prefix = production
    assert cache_prefix.startswith("ap:") and channel_prefix == f"{cache_prefix}:channels"
    assert len({staging[0], production[0], elsewhere[0]}) == 3
    assert len({staging[1], production[1], elsewhere[1]}) == 3
    assert again == production


def test_sqlite_deployments_are_told_apart_by_their_file(tmp_path):
    one = prefixes(DATABASE_URL="", DATA_DIR=str(tmp_path / "one"))
    two = prefixes(DATABASE_URL="", DATA_DIR=str(tmp_path / "two"))
    assert one != two and one == prefixes(DATABASE_URL="", DATA_DIR=str(tmp_path / "one"))


def test_deployment_name_sets_the_namespace():
    assert prefixes(DATABASE_URL="postgres://u@db/x", DEPLOYMENT_NAME="staging") == [
        "ap:staging",
        "ap:staging:channels",
    ]
    with pytest.raises(AssertionError, match="DEPLOYMENT_NAME must be"):
        prefixes(DEPLOYMENT_NAME="stag ing")


@pytest.mark.redis
def test_two_deployments_on_one_redis_do_not_see_each_others_cache(redis_url):
    from django_redis.cache import RedisCache

    staging_prefix = prefixes(DATABASE_URL="postgres://u@db:5432/staging")[0]
    production_prefix = prefixes(DATABASE_URL="postgres://u@db:5432/production")[0]
    options = {"OPTIONS": {"SOCKET_CONNECT_TIMEOUT": 1, "SOCKET_TIMEOUT": 1}}
    staging = RedisCache(redis_url, {**options, "KEY_PREFIX": staging_prefix})
    production = RedisCache(redis_url, {**options, "KEY_PREFIX": production_prefix})
    key = "data-version:1"  # the same project id in both deployments
    try:
        staging.set(key, 7)
        assert production.get(key) is None
        production.set(key, 3)
        assert staging.get(key) == 7 and production.get(key) == 3
        staging.delete(key)
        assert production.get(key) == 3
    finally:
        staging.delete(key)
        production.delete(key)
