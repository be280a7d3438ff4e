"""The environment alone picks the mode (checked in fresh processes)."""

import json

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
    assert mode["db"] == "django.db.backends.postgresql"
    assert mode["cache"] == "django_redis.cache.RedisCache"
    assert mode["layer"] == "channels_redis.core.RedisChannelLayer"
    assert mode["rq_async"] is True
    assert mode["rate"][1] == 7 and mode["ttl"] == 9
    assert mode["hosts"] == ["a.example", "b.example"]


def test_secret_key_is_required_when_debug_is_off():
    import os
    import subprocess
    import sys

    env = {**os.environ, "DEBUG": "0", "SECRET_KEY": "", "DJANGO_SETTINGS_MODULE": "analytics_platform.settings"}
    result = subprocess.run(
        [sys.executable, "-c", "import django; django.setup()"], env=env, capture_output=True, text=True
    )
    assert result.returncode != 0 and "SECRET_KEY must be set" in result.stderr
