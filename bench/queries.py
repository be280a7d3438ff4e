"""Analytics query benchmark (a report, not a test): `python bench/queries.py` or `make bench`.

Seeds PostgreSQL databases with the `seed` command's data (~50k users over 60 days) at each
size in BENCH_SIZES (default 1000000,10000000; a database already holding the right number
of events is reused), then times each query runner: the median of BENCH_RUNS (3) cold runs
(computed, cache bypassed) and a cached repeat (through Redis). Prints a table and writes
JSON under bench/results/.

Environment: BENCH_PG (maintenance database URL), BENCH_REDIS_URL, BENCH_SIZES, BENCH_RUNS,
BENCH_EXPLAIN=1 to print EXPLAIN (ANALYZE, BUFFERS) of each query's SQL.
"""

import json
import os
import secrets
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import psycopg

ROOT = Path(__file__).resolve().parent.parent
PG_ADMIN = os.environ.get("BENCH_PG", "postgresql://postgres@127.0.0.1:5432/postgres")
REDIS_URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/13")
SIZES = [int(s) for s in os.environ.get("BENCH_SIZES", "1000000,10000000").split(",")]
RUNS = int(os.environ.get("BENCH_RUNS", "3"))
USERS, DAYS, SEED = 50_000, 60, 1


def database_url(name: str) -> str:
    return PG_ADMIN.rsplit("/", 1)[0] + "/" + name


def env_for(db: str) -> dict:
    return {
        **os.environ,
        "DATABASE_URL": database_url(db),
        "REDIS_URL": REDIS_URL,
        "SECRET_KEY": secrets.token_urlsafe(50),
        "LOG_LEVEL": "WARNING",
        "DJANGO_SETTINGS_MODULE": "analytics_platform.settings",
    }


def ensure_seeded(size: int) -> str:
    db = f"bench_queries_{size}"
    with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [db]).fetchone()
        if not exists:
            conn.execute(f'CREATE DATABASE "{db}"')
    env = env_for(db)
    subprocess.run([sys.executable, "manage.py", "migrate", "-v0"], cwd=ROOT, env=env, check=True)
    with psycopg.connect(database_url(db)) as conn:
        count = conn.execute("SELECT count(*) FROM events_event").fetchone()[0]
    if count != size:
        with psycopg.connect(database_url(db), autocommit=True) as conn:
            conn.execute("TRUNCATE events_event")
        subprocess.run(
            [sys.executable, "manage.py", "setup", "--no-migrate", "-v0"],
            cwd=ROOT,
            env=env,
            check=True,
            capture_output=True,
        )
        started = time.perf_counter()
        subprocess.run(
            [
                sys.executable,
                "manage.py",
                "seed",
                "--events",
                str(size),
                "--users",
                str(USERS),
                "--days",
                str(DAYS),
                "--seed",
                str(SEED),
            ],
            cwd=ROOT,
            env=env,
            check=True,
        )
        print(f"seeded {size} events in {time.perf_counter() - started:.0f} s")
    started = time.perf_counter()
    rebuilt = subprocess.run(
        [sys.executable, "manage.py", "rebuild_mirror"],
        cwd=ROOT,
        env=env,
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    if rebuilt:
        print(f"{rebuilt} ({time.perf_counter() - started:.0f} s)")
    with psycopg.connect(database_url(db), autocommit=True) as conn:
        conn.execute("VACUUM ANALYZE")
    return db


QUERIES = {
    "metrics, daily, 60 days, all events": ("events.queries.MetricsQuery", {"interval": "day", "days_back": 60}),
    "metrics, daily, 60 days, one event": (
        "events.queries.MetricsQuery",
        {"interval": "day", "days_back": 60, "event": "purchase"},
    ),
    "retention, daily, 14 periods over 30 days": (
        "retention.queries.RetentionQuery",
        {"period": "day", "periods": "14", "days_back": 30, "cohort": "signup"},
    ),
    "journey, one user's first page": ("events.queries.JourneyQuery", {"days_back": 60, "userId": "user_0000042"}),
    "funnel, 4 steps, 7-day window, 30 days": (
        "funnels.queries.FunnelQuery",
        {"days_back": 30, "funnel": ["page_view", "add_to_cart", "checkout_start", "purchase"]},
    ),
}


def measure(db: str) -> dict:
    """Runs in a child process with the database's settings (one Django setup per size)."""
    code = f"""
import json, statistics, time, importlib
from datetime import timedelta
import django; django.setup()
from django.core.cache import cache
from django.db import connection
from django.utils import timezone
from accounts.models import Project
project = Project.objects.get(slug="demo")
cache.clear()
out = {{}}
for label, (path, spec) in {QUERIES!r}.items():
    module, cls = path.rsplit(".", 1)
    runner_cls = getattr(importlib.import_module(module), cls)
    params = {{k: v for k, v in spec.items() if k not in ("days_back", "funnel")}}
    if "funnel" in spec:
        from funnels.models import Funnel
        funnel, _ = Funnel.objects.get_or_create(
            project=project, name="bench " + " > ".join(spec["funnel"]),
            defaults={{"steps": [{{"eventName": n}} for n in spec["funnel"]], "conversion_window": 7 * 86400}},
        )
        params["funnelId"] = funnel.id
    today = timezone.now().astimezone(project.tzinfo).date()
    params["startDate"] = (today - timedelta(days=spec["days_back"] - 1)).isoformat()
    params["endDate"] = today.isoformat()
    cold = []
    for _ in range({RUNS}):
        runner = runner_cls(project=project, params=params)
        started = time.perf_counter(); runner.calculate(); cold.append(time.perf_counter() - started)
    if {os.environ.get("BENCH_EXPLAIN") == "1"!r}:
        from django.test.utils import CaptureQueriesContext
        with CaptureQueriesContext(connection) as captured:
            runner_cls(project=project, params=params).calculate()
        for query in captured.captured_queries:
            with connection.cursor() as cursor:
                cursor.execute("EXPLAIN (ANALYZE, BUFFERS) " + query["sql"])
                print("EXPLAIN", label, chr(10) + chr(10).join(row[0] for row in cursor.fetchall()))
    runner_cls(project=project, params=params).run()
    started = time.perf_counter()
    runner_cls(project=project, params=params).run()
    cached = time.perf_counter() - started
    out[label] = {{"cold_ms": [round(c * 1000, 1) for c in cold],
                  "median_cold_ms": round(statistics.median(cold) * 1000, 1), "cached_ms": round(cached * 1000, 2)}}
print("RESULT" + json.dumps(out))
"""
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env_for(db), capture_output=True, text=True)
    if result.returncode:
        raise SystemExit(f"measuring failed:\n{result.stderr[-3000:]}")
    if os.environ.get("BENCH_EXPLAIN") == "1":
        print(result.stdout.split("RESULT")[0])
    line = next(line for line in result.stdout.splitlines() if line.startswith("RESULT"))
    return json.loads(line[len("RESULT") :])


def main():
    report = {"when": datetime.now(UTC).isoformat(timespec="seconds"), "cpus": os.cpu_count(), "sizes": {}}
    for size in SIZES:
        db = ensure_seeded(size)
        report["sizes"][size] = measure(db)
    out = ROOT / "bench" / "results" / f"queries-{datetime.now(UTC):%Y%m%dT%H%M%SZ}.json"
    out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"\nQuery benchmark ({os.cpu_count()} CPUs), median of {RUNS} cold runs / cached repeat, ms")
    labels = list(QUERIES)
    print(f"{'':44}" + "".join(f"{f'{s:,} events':>24}" for s in SIZES))
    for label in labels:
        cells = "".join(
            f"{r[label]['median_cold_ms']:>14} / {r[label]['cached_ms']:>6}" for r in report["sizes"].values()
        )
        print(f"{label:44}{cells}")
    print(f"written to {out.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
