"""The column engine's bounds: a worker's DuckDB gets ANALYTICS_WORKER_MEMORY_LIMIT, every
other process's ANALYTICS_MEMORY_LIMIT."""

import pytest
from django.core.management import call_command
from django_rq.management.commands.rqworker import Command as RQWorkerCommand

from warehouse import engine


def memory_limit() -> str:
    cursor = engine.engine_cursor()
    try:
        return cursor.execute("SELECT current_setting('memory_limit')").fetchone()[0]
    finally:
        cursor.close()


@pytest.fixture
def fresh_engine(monkeypatch):
    """This process's database reopened under the test's settings, and again after it."""
    monkeypatch.setattr(engine, "_database", None)
    monkeypatch.setattr(engine, "_memory_limit_setting", "ANALYTICS_MEMORY_LIMIT")
    yield
    if engine._database is not None:
        engine._database.close()


def test_the_rqworker_command_bounds_its_engine_by_the_workers_limit(fresh_engine, settings, monkeypatch):
    settings.ANALYTICS_MEMORY_LIMIT, settings.ANALYTICS_WORKER_MEMORY_LIMIT = "512MB", "64MB"
    assert memory_limit() == "488.2 MiB"  # opened before the command: reopened with the worker's
    monkeypatch.setattr(RQWorkerCommand, "handle", lambda self, *args, **options: None)  # no work loop
    call_command("rqworker", "default")
    assert memory_limit() == "61.0 MiB"
