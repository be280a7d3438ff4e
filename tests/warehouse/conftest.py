import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from django.db import connection

ROOT = Path(__file__).resolve().parent.parent.parent


@pytest.fixture(autouse=True)
def _own_mirror_directory(settings, tmp_path, monkeypatch):
    """Each test's mirror in a directory of its own (and its subprocesses'), so a sweep sees
    only the files of this test, not those whose catalog rows earlier tests rolled back."""
    directory = tmp_path / "mirror"
    settings.ANALYTICS_DIR = directory
    monkeypatch.setenv("ANALYTICS_DIR", str(directory))
    return directory


@pytest.fixture
def no_auto_export(monkeypatch):
    """Stored events stay in the outbox until a test exports them."""
    monkeypatch.setattr("events.services.export_schedule", lambda project_id: None)


def _driver_command(operations: list) -> list[str]:
    return [sys.executable, "-m", "tests.warehouse.driver", json.dumps(operations)]


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory) -> Path:
    """A migrated SQLite database file, copied by each embedded-mode crash test (the test
    process's own database is in memory, where no other process can see it)."""
    directory = tmp_path_factory.mktemp("sqlite-template")
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "tests.settings", "DATA_DIR": str(directory), "REDIS_URL": ""}
    env.pop("DATABASE_URL", None)
    subprocess.run(_driver_command([["migrate"]]), cwd=ROOT, env=env, check=True, capture_output=True, timeout=300)
    return directory / "db.sqlite3"


class Driver:
    """Runs tests/warehouse/driver.py processes on this mode's database (the test
    PostgreSQL database, or a SQLite file of the test's own) and a mirror directory of the
    test's own."""

    def __init__(self, env: dict, analytics_dir: Path):
        self.env = env
        self.analytics_dir = analytics_dir

    def start(self, operations: list) -> subprocess.Popen:
        return subprocess.Popen(
            _driver_command(operations), cwd=ROOT, env=self.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE
        )

    def run(self, operations: list, *, killed: bool = False) -> list[tuple[str, object]]:
        """(operation, result) of each operation completed, in order; with `killed`, the
        process must have been killed by SIGKILL (the operations after it did not run)."""
        return self.results(self.start(operations), killed=killed)

    @staticmethod
    def results(process: subprocess.Popen, *, killed: bool = False) -> list[tuple[str, object]]:
        stdout, stderr = process.communicate(timeout=180)
        expected = -signal.SIGKILL if killed else 0
        if process.returncode != expected:
            raise AssertionError(f"driver exited {process.returncode}, not {expected}:\n{stderr.decode()[-1500:]}")
        lines = [json.loads(line) for line in stdout.decode().splitlines()]
        return [(line["op"], line["result"]) for line in lines]


@pytest.fixture
def driver(request, transactional_db, tmp_path, _own_mirror_directory) -> Driver:
    """On PostgreSQL the driver's commits are real (flushed after the test)."""
    analytics_dir = _own_mirror_directory
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "tests.settings",
        "ANALYTICS_DIR": str(analytics_dir),
        "REDIS_URL": "",  # the driver calls the export and compaction itself
    }
    env.pop("WAREHOUSE_CRASH_AT", None)
    env.pop("WAREHOUSE_PAUSE_AT", None)
    if connection.vendor == "postgresql":
        from tests.integration.test_worker_crash import database_url

        env["DATABASE_URL"] = database_url()
    else:
        shutil.copy(request.getfixturevalue("sqlite_template"), tmp_path / "db.sqlite3")
        env["DATA_DIR"] = str(tmp_path)
        env.pop("DATABASE_URL", None)
    return Driver(env, analytics_dir)


@pytest.fixture
def worker_settings(redis_url, monkeypatch, settings):
    """This process and the rqworker it starts share the queue and the cache namespace (so
    an export job clears the marker its schedule set): one deployment name for both."""
    name = "warehouse-tests"
    monkeypatch.setenv("DEPLOYMENT_NAME", name)
    settings.REDIS_URL = redis_url
    settings.CACHES = {
        "default": {
            "BACKEND": "django_redis.cache.RedisCache",
            "LOCATION": redis_url,
            "KEY_PREFIX": f"ap:{name}",
            "OPTIONS": {"SOCKET_CONNECT_TIMEOUT": 1, "SOCKET_TIMEOUT": 1},
        }
    }
    from django.core.cache import cache

    cache.clear()
    yield redis_url
    cache.clear()
